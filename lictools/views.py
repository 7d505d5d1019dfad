"""Read views of the state: the documents ``info``, ``users``, ``pool list|show``, ``dump``, ``gc`` and the
fglWrt-style listing print (their ``--format json`` shapes), built from a store transaction.

Nothing here changes state. Times are ISO 8601 (SPEC.md section 3). The JSON keys are a contract:
more may be added, none changes meaning.
"""

from __future__ import annotations

from typing import Any, Iterable

from lictools.admission import available
from lictools.engine import get_pool, rule_of
from lictools.model import Pool, Session
from lictools.rules import check_feature, feature_title
from lictools.stores.api import StateView, Transaction
from lictools.timeutil import iso


def pools(tx: StateView, pool: str | None = None) -> list[Pool]:
    """One named pool (NotFoundError when unknown) or all of them."""
    return [get_pool(tx, pool)] if pool else tx.list_pools()


def pool_features(pool: Pool, tx: StateView) -> list[str]:
    """Every feature of the pool's product, or for generic every feature issued, reserved or used."""
    rule = rule_of(pool)
    if rule.FEATURES:
        return list(rule.FEATURES)
    names = {lic.feature for lic in pool.licenses}
    for per_feature in pool.reservations.values():
        names.update(per_feature)
    names.update(s.feature for s in tx.find_sessions(pool=pool.name))
    return sorted(names)


def info(tx: StateView, pool: str | None = None) -> list[dict[str, Any]]:
    """Per pool and feature: issued, in use, reserved, free, sessions, available, queued (the ``info`` JSON shape)."""
    rows = []
    for p in pools(tx, pool):
        for feature in pool_features(p, tx):
            issued, reserved = p.issued(feature), p.reserved(feature)
            usage = tx.seats_by_project(p.name, feature)
            in_use = sum(usage.values())
            rows.append({
                "pool": p.name,
                "product": p.product,
                "feature": feature,
                "issued": issued,
                "in_use": in_use,
                "reserved": sum(reserved.values()),
                "free": issued - in_use,
                "sessions": tx.count_sessions(p.name, feature),
                "available": available(issued, reserved, usage),
                "queued": len(p.waiting(feature)),
            })
    return rows


def _selected(
    tx: StateView, pool: str | None, feature: str | None, user: str | None, host: str | None
) -> list[Session]:
    """Live sessions of ``pool``/``feature`` (checked when named) whose user and client host match."""
    if pool:
        checked = get_pool(tx, pool)
        if feature is not None:
            check_feature(rule_of(checked), feature)
    criteria = {k: v for k, v in (("pool", pool), ("feature", feature), ("user", user), ("host", host)) if v is not None}
    return tx.find_sessions(**criteria)


def users(
    tx: StateView, pool: str | None = None, feature: str | None = None, user: str | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    """One row per seat in use: who holds it, from where, since when (the ``users`` JSON shape).

    With ``user`` / ``host``: the seats where such a session holds a share, with all their holders.
    """
    seats: dict[tuple[str, str, str], list[Session]] = {}
    for session in _selected(tx, pool, feature, None, None):
        seats.setdefault((session.pool, session.feature, session.seat), []).append(session)
    rows = []
    for (pool_name, feature_name, seat), held in sorted(seats.items()):
        if user is not None and all(s.user != user for s in held):
            continue
        if host is not None and all(s.host != host for s in held):
            continue
        expiries = [s.expires for s in held]
        rows.append({
            "pool": pool_name,
            "feature": feature_name,
            "seat": seat,
            "users": sorted({s.user for s in held}),
            "hosts": sorted({s.host for s in held}),
            "sessions": [s.id for s in held],
            "since": iso(min(s.started for s in held)),
            "expires": None if None in expiries else iso(max(e for e in expiries if e is not None)),
            # what the seat is charged to: a project, or (``reservation``) a reserve policy's holder
            "project": held[0].seat_project if "=" not in (held[0].seat_project or "") else None,
            "reservation": held[0].seat_project if "=" in (held[0].seat_project or "") else None,
            "detached": all(s.detached for s in held),
        })
    return rows


def waiters(
    tx: StateView, pool: str | None = None, feature: str | None = None, user: str | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    """``users --queued``: the requests waiting in the pools' queues (``acquire --wait``), in arrival order."""
    rows = []
    for p in pools(tx, pool):
        for name in dict.fromkeys(w.feature for w in p.queue):
            if feature is not None and name != feature:
                continue
            for place, w in enumerate(p.waiting(name), 1):
                if (user is not None and w.request.get("user") != user) or (host is not None and w.request.get("host") != host):
                    continue
                rows.append({
                    "pool": p.name, "feature": name, "position": place, "session": w.session,
                    "user": w.request.get("user"), "host": w.request.get("host"), "node": w.request.get("node"),
                    "project": w.request.get("project"), "since": iso(w.queued), "until": iso(w.until),
                    "pid": w.pid,
                })
    return rows


def checkouts(
    tx: StateView, pool: str | None = None, feature: str | None = None, user: str | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    """``users --sessions``: one row per session, like the per-license lines of FlexNet ``lmstat -a``."""
    return [
        {
            "session": s.id, "pool": s.pool, "feature": s.feature, "seat": s.seat, "user": s.user,
            "host": s.host, "node": s.node, "client": s.client, "pid": s.pid, "since": iso(s.started),
            "refreshed": iso(s.refreshed), "expires": iso(s.expires), "uid": s.uid, "project": s.project,
            "detached": s.detached,
        }
        for s in sorted(_selected(tx, pool, feature, user, host), key=lambda s: (s.pool, s.feature, s.started, s.id))
    ]


def session_doc(session: Session) -> dict[str, Any]:
    """A session as JSON output: the stored attributes with times in ISO 8601, the id as ``session``."""
    doc = session.to_doc()
    for key in ("started", "refreshed", "expires"):
        doc[key] = iso(doc[key])
    doc["session"] = doc.pop("id")
    return doc


def pool_doc(pool: Pool) -> dict[str, Any]:
    """A pool as ``dump`` prints it: every stored field, times in ISO 8601."""
    doc = pool.to_doc()
    doc["created"] = iso(doc["created"])
    for lic in doc["licenses"]:
        lic["loaded"] = iso(lic["loaded"])
    return doc


def pool_row(pool: Pool) -> dict[str, Any]:
    """One row of ``pool list``: product, issued seats per feature, options, creation time."""
    return {
        "pool": pool.name,
        "product": pool.product,
        "issued": {f: pool.issued(f) for f in dict.fromkeys(lic.feature for lic in pool.licenses)},
        "options": pool.options,
        "created": iso(pool.created),
    }


def pool_detail(tx: StateView, name: str) -> dict[str, Any]:
    """``pool show``: options, loaded serials, reservations, and the ``info`` rows of each feature."""
    pool = get_pool(tx, name)
    doc = pool_doc(pool)
    return {
        "pool": pool.name,
        "product": pool.product,
        "created": doc["created"],
        "options": pool.options,
        "licenses": doc["licenses"],
        "reservations": pool.reservations,
        "policies": [p.to_doc() for p in pool.policies],
        "features": info(tx, name),
    }


def dump(tx: StateView) -> dict[str, Any]:
    """Every pool (its policies included) and live session, the settings and the lictools groups (``lictools dump``)."""
    from lictools.policies import GROUP_SETTING, groups

    settings = tx.get_settings()
    return {
        "pools": [pool_doc(p) for p in tx.list_pools()],
        "sessions": [session_doc(s) for s in tx.find_sessions()],
        "settings": {k: v for k, v in settings.items() if not k.startswith(GROUP_SETTING)},
        "groups": groups(settings),
    }


# --------------------------------------------------------------------------- the fglWrt-style listing
def listing(tx: StateView, pool: str | None = None) -> list[dict[str, Any]]:
    """The blocks of ``info users`` (also its ``--format json`` shape): per pool and feature, the seats
    in use and the sessions grouped under their front end, as the pool's rule lists them."""
    blocks = []
    for p in pools(tx, pool):
        rule = rule_of(p)
        for feature in pool_features(p, tx):
            groups: dict[str, list[Session]] = {}
            for s in tx.find_sessions(pool=p.name, feature=feature):
                groups.setdefault(s.seat, []).append(s)
            front_ends = []
            for seat, members in groups.items():
                first = members[0]
                front = rule.front_end(first)
                # one front end per group: its address is the first DVM's (a RUN child's own --host is not)
                address = front.address or first.host
                front_ends.append({
                    "kind": front.kind, "id": front.id, "seat": seat, "host": first.host, "address": address,
                    "sessions": [_listed_session(s, rule.front_end(s).cx_mode, address) for s in members],
                })
            blocks.append({
                "pool": p.name,
                "product": p.product,
                "product_title": rule.TITLE,
                "feature": feature,
                "feature_title": feature_title(rule, feature),
                "licenses": [lic.serial for lic in p.licenses if lic.feature == feature],
                "users": tx.seats_in_use(p.name, feature),
                "max": p.issued(feature),
                "front_ends": front_ends,
            })
    return blocks


def _listed_session(s: Session, cx_mode: str | None, address: str) -> dict[str, Any]:
    """A session as the listing shows it: ``address`` is its front end's (the ``GUI Server`` line), ``pid``
    the ``--pid`` gc checks, ``caller_pid`` the process that acquired it (shown when ``pid`` is None)."""
    return {
        "session": s.id, "pid": s.pid, "user": s.user, "host": s.host, "node": s.node, "app": s.app,
        "client": s.client, "cx_mode": cx_mode, "root": s.root, "detached": s.detached,
        "address": address, "caller_pid": s.caller_pid,
    }


def reservation_rows(
    pool: Pool, reservations: dict[str, dict[str, int]], touched: Iterable[tuple[str, str, int]] = ()
) -> list[dict[str, Any]]:
    """``reserve``: one row per project and feature reserved (or just changed), with the shared rest."""
    pairs = {(p, f) for p, per in reservations.items() for f in per} | {(p, f) for p, f, _ in touched}
    rows = []
    for project, feature in sorted(pairs):
        issued = pool.issued(feature)
        total = sum(per.get(feature, 0) for per in reservations.values())
        total += sum(n for holder, n in pool.reserved(feature).items() if "=" in holder)
        rows.append({
            "pool": pool.name, "project": project, "feature": feature,
            "reserved": reservations.get(project, {}).get(feature, 0),
            "issued": issued, "shared": max(0, issued - total),
        })
    return rows
