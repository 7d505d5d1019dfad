"""The counting engine: plain functions over a store :class:`~lictools.stores.api.Transaction`.

Seats in use are the distinct seat keys among live sessions; a rule module picks the key, the
engine never names a product. Every change appends a journal event inside the same transaction.
The CLI and the tests call these functions; none of them prints.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Iterable

from lictools import validate
from lictools.errors import ForbiddenError, NotFoundError, UsageError
from lictools.model import License, Pool, Record, Request, Session, fields
from lictools.rules import check_feature, check_options, get_rule
from lictools.stores.api import Transaction
from lictools.timeutil import iso


# --------------------------------------------------------------------------- results
class Outcome(Record):
    """What ``acquire`` decided: granted (new seat or shared) or denied, and why."""

    __slots__ = ("granted", "pool", "feature", "seat", "session", "shared", "reason", "issued", "in_use",
                 "retry", "denial_text", "holders")
    FIELDS = fields(
        "granted", "pool", "feature", "seat", "session", "shared", "reason", "issued", "in_use",
        retry=False, denial_text=None, holders=list,
    )
    granted: bool
    pool: str
    feature: str
    seat: str
    session: Session | None
    shared: bool
    reason: str
    issued: int
    in_use: int
    retry: bool
    denial_text: str | None
    holders: list[str]

    def to_doc(self) -> dict[str, Any]:
        """The ``acquire --format json`` object (SPEC.md section 3)."""
        s = self.session
        return {
            "session": s.id if s else None,
            "pool": self.pool,
            "feature": self.feature,
            "seat": self.seat,
            "shared": self.shared,
            "granted": self.granted,
            "expires": iso(s.expires) if s else None,
            "reason": self.reason,
            "issued": self.issued,
            "in_use": self.in_use,
        }


class LicenseResult(Record):
    """What ``license add`` did: ``loaded``, ``already-loaded`` or ``not-loaded`` (host lock elsewhere)."""

    __slots__ = ("status", "license", "message")
    FIELDS = fields("status", "license", "message")
    status: str
    license: License
    message: str


# --------------------------------------------------------------------------- helpers
def get_pool(tx: Transaction, name: str) -> Pool:
    """The pool called ``name``; NotFoundError (exit 4) if there is none."""
    validate.name(name, "pool name")
    pool = tx.get_pool(name)
    if pool is None:
        raise NotFoundError(f"unknown pool {name!r}")
    return pool


def rule_of(pool: Pool) -> ModuleType:
    return get_rule(pool.product)


def login_user() -> str:
    """The user running this command (the default ``--user`` and the ``by`` of admin events)."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(var):
            return os.environ[var]
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def this_node() -> str:
    """This host's name (the default ``--node``)."""
    return os.uname().nodename


def record_event(tx: Transaction, kind: str, **fields: Any) -> None:
    """Append one journal event: its kind, the time, and every field that is not None."""
    doc = {"event": kind, "time": iso(tx.now), "ts": round(tx.now, 6)}
    doc.update({k: v for k, v in fields.items() if v is not None})
    tx.append_event(doc)


_SESSION_EVENT_FIELDS = ("user", "host", "node", "app", "project", "client", "monitor", "parent", "root", "pid", "uid")


def _session_event(tx: Transaction, kind: str, session: Session, in_use: int | None = None, **extra: Any) -> None:
    """Journal one session event with the seats in use after it (counted unless the caller knows)."""
    attrs = {k: getattr(session, k) for k in _SESSION_EVENT_FIELDS}
    record_event(
        tx,
        kind,
        pool=session.pool,
        feature=session.feature,
        seat=session.seat,
        session=session.id,
        in_use=tx.seats_in_use(session.pool, session.feature) if in_use is None else in_use,
        **attrs,
        **extra,
    )


def _end_session(tx: Transaction, session: Session, kind: str, **extra: Any) -> None:
    tx.delete_session(session.id)
    _session_event(tx, kind, session, **extra)


# --------------------------------------------------------------------------- expiry
def reap(tx: Transaction) -> list[Session]:
    """End every session whose lease ran out (journal ``expire``); run at the start of every command.

    Also ends dead local processes in pools with ``check_pids=yes``.
    """
    reaped = []
    for session in sorted(tx.expired_sessions(tx.now), key=lambda s: (s.expires, s.id)):
        reason = "detached session timed out" if session.detached else "lease not refreshed"
        _end_session(tx, session, "expire", reason=reason)
        reaped.append(session)
    for pool in tx.list_pools():
        if pool.options.get("check_pids") == "yes":
            reaped.extend(drop_dead_processes(tx, pool.name))
    return reaped


def process_alive(pid: int) -> bool:
    """True when a process with this PID exists on this machine (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def drop_dead_processes(tx: Transaction, pool: str | None = None) -> list[Session]:
    """End sessions on this node whose ``--pid`` no longer runs (``fglWrt -u``); journal ``expire``."""
    node = this_node()
    criteria: dict[str, Any] = {"node": node}
    if pool:
        criteria["pool"] = pool
    dropped = []
    for session in tx.find_sessions(**criteria):
        if session.pid is not None and not process_alive(session.pid):
            _end_session(tx, session, "expire", reason=f"process {session.pid} is gone")
            dropped.append(session)
    return dropped


# --------------------------------------------------------------------------- pools and licenses
def add_pool(
    tx: Transaction,
    name: str,
    product: str,
    licenses: dict[str, int] | None = None,
    options: dict[str, str] | None = None,
    exist_ok: bool = False,
) -> Pool:
    """Create a pool; ``licenses`` loads one serial ``initial-<feature>`` per feature."""
    validate.name(name, "pool name")
    rule = get_rule(product)
    checked = check_options(rule, options or {})
    existing = tx.get_pool(name)
    if existing is not None:
        if exist_ok and existing.product == product:
            return existing
        raise UsageError(f"pool {name!r} already exists (product {existing.product})")
    pool = Pool(name=name, product=product, options=checked, created=tx.now)
    for feature, count in (licenses or {}).items():
        feature = check_feature(rule, feature)
        validate.count(count, f"license count for {feature}")
        pool.licenses.append(License(f"initial-{feature}", feature, count, None, tx.now))
    tx.put_pool(pool)
    record_event(tx, "pool-add", pool=name, product=product, options=checked, issued={l.feature: l.count for l in pool.licenses})
    return pool


def set_pool_options(tx: Transaction, name: str, options: dict[str, str]) -> Pool:
    """Change pool options (checked against the product's option list)."""
    pool = get_pool(tx, name)
    pool.options = check_options(rule_of(pool), {**pool.options, **options})
    tx.put_pool(pool)
    record_event(tx, "pool-set", pool=name, options=pool.options)
    return pool


def remove_pool(tx: Transaction, name: str, force: bool = False, actor: str | None = None) -> list[Session]:
    """Delete a pool; with live sessions only when ``force`` (they are removed and journaled)."""
    get_pool(tx, name)
    sessions = tx.find_sessions(pool=name)
    if sessions and not force:
        raise UsageError(f"pool {name!r} has {len(sessions)} live session(s); release them or use --force")
    for session in sessions:
        _end_session(tx, session, "remove", by=actor or login_user(), reason="pool removed")
    tx.delete_pool(name)
    record_event(tx, "pool-remove", pool=name, by=actor or login_user())
    return sessions


def _same_host(a: str, b: str) -> bool:
    return a.lower().split(".")[0] == b.lower().split(".")[0]


def add_license(
    tx: Transaction,
    pool_name: str,
    feature: str,
    count: int,
    serial: str | None = None,
    host_lock: str | None = None,
    this_host: str | None = None,
) -> LicenseResult:
    """Load a license: idempotent per serial; a host lock for another machine is not loaded.

    Without ``serial`` each call adds a new anonymous license (like a FlexNet INCREMENT line).
    """
    pool = get_pool(tx, pool_name)
    feature = check_feature(rule_of(pool), feature)
    validate.count(count, "license count")
    if serial is not None:
        validate.name(serial, "serial")
    if host_lock is not None:
        validate.text(host_lock, "--host-lock")
    serial = serial or f"anon-{len(pool.licenses) + 1}-{os.urandom(3).hex()}"
    lic = License(serial, feature, count, host_lock, tx.now)
    for loaded in pool.licenses:
        if loaded.serial == serial:
            return LicenseResult("already-loaded", loaded, f"serial {serial} is already loaded in pool {pool_name}; nothing changed")
    host = this_host or this_node()
    if host_lock and not _same_host(host_lock, host):
        return LicenseResult(
            "not-loaded",
            lic,
            f"serial {serial} is locked to host {host_lock}, not this machine ({host}); not loaded",
        )
    pool.licenses.append(lic)
    tx.put_pool(pool)
    record_event(tx, "license-add", pool=pool_name, feature=feature, serial=serial, count=count, issued=pool.issued(feature))
    return LicenseResult("loaded", lic, f"loaded serial {serial}: {count} {feature} seat(s); issued now {pool.issued(feature)}")


def remove_license(tx: Transaction, pool_name: str, serial: str) -> License:
    """Unload one serial; refused when the remaining seats would not cover the reservations."""
    pool = get_pool(tx, pool_name)
    for lic in pool.licenses:
        if lic.serial == serial:
            break
    else:
        raise NotFoundError(f"serial {serial!r} is not loaded in pool {pool_name}")
    pool.licenses.remove(lic)
    reserved = sum(pool.reserved(lic.feature).values())
    if reserved > pool.issued(lic.feature):
        raise UsageError(
            f"removing serial {serial} leaves {pool.issued(lic.feature)} {lic.feature} seat(s), "
            f"fewer than the {reserved} reserved"
        )
    tx.put_pool(pool)
    record_event(tx, "license-remove", pool=pool_name, feature=lic.feature, serial=serial, issued=pool.issued(lic.feature))
    return lic


def reserve(tx: Transaction, pool_name: str, project: str, feature: str, count: int) -> Pool:
    """Reserve ``count`` seats of ``feature`` for ``project`` (0 removes the reservation).

    Refused (exit 2) when the reservations would exceed the issued count.
    """
    pool = get_pool(tx, pool_name)
    feature = check_feature(rule_of(pool), feature)
    validate.name(project, "project")
    validate.count(count, "reserved count")
    others = sum(c for p, c in pool.reserved(feature).items() if p != project)
    issued = pool.issued(feature)
    if others + count > issued:
        raise UsageError(
            f"reserving {count} {feature} seat(s) for {project} would reserve {others + count}, "
            f"more than the {issued} issued in pool {pool_name}"
        )
    per_feature = pool.reservations.setdefault(project, {})
    if count:
        per_feature[feature] = count
    else:
        per_feature.pop(feature, None)
        if not per_feature:
            pool.reservations.pop(project)
    tx.put_pool(pool)
    record_event(tx, "reserve", pool=pool_name, feature=feature, project=project, count=count)
    return pool


# --------------------------------------------------------------------------- acquire
def admit(issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None) -> tuple[bool, str]:
    """May a new seat be opened for ``project``? Reserved seats first, then the shared rest.

    shared = issued - sum(reservations); a project beyond its reservation draws on shared seats.
    """
    in_use = sum(usage.values())
    own = reserved.get(project, 0) if project else 0
    if in_use >= issued:
        # never beyond the issued count, even from a reservation made while the pool was full
        if issued == 0:
            return False, "no seats are issued for this feature (load a license with 'license add')"
        held = f" (its {own} reserved seat(s) were taken by others before the reservation was made)" if own else ""
        return False, f"all {issued} seat(s) are in use{held}"
    if own and usage.get(project, 0) < own:
        return True, f"from the {own} seat(s) reserved for project {project} ({usage.get(project, 0)} of them in use)"
    total_reserved = sum(reserved.values())
    shared_cap = max(0, issued - total_reserved)
    shared_used = sum(max(0, used - (reserved.get(p, 0) if p else 0)) for p, used in usage.items())
    if shared_used < shared_cap:
        if total_reserved:
            return True, f"from the shared seats ({shared_used} of {shared_cap} in use; {total_reserved} reserved for projects)"
        return True, f"taken from the free seats ({in_use} of {issued} in use before it)"
    # only reservations can refuse a pool with free seats (without them shared_cap == issued)
    who = f"project {project} has {usage.get(project, 0)} of its {own} reserved in use and " if own else ""
    return False, (
        f"{who}all {shared_cap} shared seat(s) are in use ({in_use} of {issued} in use, "
        f"{total_reserved} reserved for {', '.join(sorted(reserved))}); "
        f"the {issued - in_use} free seat(s) are reserved for other projects"
    )


def _normalise(request: Request) -> None:
    validate.name(request.pool, "pool name")
    validate.name(request.session, "session id")
    for attr in ("user", "host", "node"):
        validate.text(getattr(request, attr), f"--{attr}")
    for attr in ("app", "client", "monitor"):
        if getattr(request, attr) is not None:
            validate.text(getattr(request, attr), f"--{attr}")
    if request.project is not None:
        validate.name(request.project, "project")
    if request.parent is not None:
        validate.name(request.parent, "parent session id")
    if request.pid is not None:
        validate.count(request.pid, "--pid", 2**31 - 1)
    if request.lease is not None:
        validate.count(request.lease, "--lease", 315_360_000)


def new_session_id() -> str:
    """A fresh unique session id (16 hex digits)."""
    return os.urandom(8).hex()


def acquire(tx: Transaction, request: Request, dry_run: bool = False, journal_denial: bool = True) -> Outcome:
    """Grant, share or deny a seat for ``request``; idempotent by session id.

    A session whose seat key is already in use always joins it, even in a full pool. With
    ``dry_run`` nothing is written and nothing is journaled; ``journal_denial=False`` skips the
    ``deny`` event (for the attempts of ``--wait`` before the last).
    """
    _normalise(request)
    pool = get_pool(tx, request.pool)
    rule = rule_of(pool)
    request.feature = check_feature(rule, request.feature)
    issued = pool.issued(request.feature)

    existing = tx.get_session(request.session)
    if existing is not None:
        if (existing.pool, existing.feature) != (request.pool, request.feature):
            raise UsageError(
                f"session {request.session} already holds pool {existing.pool} feature {existing.feature}"
            )
        if existing.uid is not None and request.uid is not None and existing.uid != request.uid:
            raise ForbiddenError(f"session {existing.id} belongs to another account (user {existing.user})")
        if not dry_run:
            if request.lease is not None:
                existing.lease = request.lease
            reattached = existing.detached
            existing.detached = False
            existing.refreshed = tx.now
            existing.expires = None if existing.lease == 0 else tx.now + existing.lease
            tx.put_session(existing)
            record_event(tx, "refresh", pool=existing.pool, feature=existing.feature, session=existing.id,
                         expires=iso(existing.expires), lease=existing.lease, retry=True,
                         reattached=True if reattached else None)
        return Outcome(
            True, pool.name, existing.feature, existing.seat, existing, existing.shared,
            "this session already holds its seat (retry): same grant, lease renewed",
            issued, tx.seats_in_use(pool.name, existing.feature), retry=True,
        )

    seat = rule.seat_key(request, pool, tx)
    holders = tx.find_sessions(pool=pool.name, feature=request.feature, seat=seat.key) if tx.count_seat_sessions(
        pool.name, request.feature, seat.key
    ) else []
    usage = tx.seats_by_project(pool.name, request.feature)
    in_use = sum(usage.values())
    if holders:
        shared, seat_project = True, holders[0].seat_project
        reason = f"shares seat {seat.key} already held by {len(holders)} session(s): {seat.why}; it costs no new seat"
    else:
        ok, why = admit(issued, pool.reserved(request.feature), usage, request.project)
        if not ok:
            reason = f"denied: needs a new seat {seat.key}, no live session holds that key ({seat.why}), but {why}"
            if not dry_run and journal_denial:
                record_event(
                    tx, "deny", pool=pool.name, feature=request.feature, seat=seat.key, session=request.session,
                    user=request.user, host=request.host, node=request.node, project=request.project,
                    in_use=in_use, reason=why,
                )
            return Outcome(False, pool.name, request.feature, seat.key, None, False, reason, issued, in_use,
                           denial_text=rule.DENIAL_TEXT)
        shared, seat_project = False, request.project
        reason = f"new seat {seat.key} ({seat.why}), {why}"

    lease = request.lease if request.lease is not None else int(pool.options["lease"])
    session = Session(
        id=request.session, pool=pool.name, feature=request.feature, seat=seat.key,
        user=request.user, host=request.host, node=request.node,
        started=tx.now, refreshed=tx.now, expires=None if lease == 0 else tx.now + lease, lease=lease,
        shared=shared, terminal=request.terminal, app=request.app, project=request.project,
        parent=request.parent, root=seat.root, client=request.client, monitor=request.monitor,
        pid=request.pid, seat_project=seat_project, uid=request.uid,
    )
    if not dry_run:
        tx.put_session(session)
        _session_event(tx, "share" if shared else "grant", session, in_use + (0 if shared else 1),
                       expires=iso(session.expires),
                       terminal=session.terminal or None, seat_project=seat_project, lease=lease)
    return Outcome(True, pool.name, request.feature, seat.key, session, shared, reason, issued,
                   in_use + (0 if shared else 1), holders=[h.id for h in holders])


# --------------------------------------------------------------------------- ending and extending
def _lookup(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> tuple[list[Session], list[str]]:
    """The live sessions named by ``ids`` and the ids not found.

    With ``uid`` (a non-admin caller) every session must have been acquired by that account,
    else ForbiddenError (exit 7) before anything changes.
    """
    found, missing = [], []
    for session_id in ids:
        session = tx.get_session(session_id) if isinstance(session_id, str) and session_id.isprintable() else None
        (found.append(session) if session else missing.append(session_id))
    if uid is not None:
        for session in found:
            if session.uid is not None and session.uid != uid:
                raise ForbiddenError(f"session {session.id} belongs to another account (user {session.user})")
    return found, missing


def release(
    tx: Transaction, ids: Iterable[str], actor: str | None = None, uid: int | None = None
) -> tuple[list[Session], list[str]]:
    """End sessions now; returns (released, unknown ids). The seat frees with its last session.

    ``uid`` restricts it to that account's sessions (see :func:`_lookup`).
    """
    found, missing = _lookup(tx, ids, uid)
    for session in found:
        _end_session(tx, session, "release", by=actor)
    return found, missing


def detach(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> tuple[list[Session], list[str]]:
    """The user agent went away: keep each session until its pool's detach timeout, then free it."""
    found, missing = _lookup(tx, ids, uid)
    for session in found:
        pool = get_pool(tx, session.pool)
        linger = int(pool.options.get(rule_of(pool).DETACH_OPTION, "0"))
        if linger == 0:
            _end_session(tx, session, "detach", reason="no detach timeout: seat freed now")
            continue
        session.detached = True
        session.expires = tx.now + linger
        tx.put_session(session)
        _session_event(tx, "detach", session, expires=iso(session.expires))
    return found, missing


def refresh(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> tuple[list[Session], list[str]]:
    """Extend leases by each session's lease; unknown, expired or detached ids are returned as missing."""
    found, missing = _lookup(tx, ids, uid)
    refreshed = []
    for session in found:
        if session.detached:
            missing.append(session.id)
            continue
        session.refreshed = tx.now
        session.expires = None if session.lease == 0 else tx.now + session.lease
        tx.put_session(session)
        record_event(tx, "refresh", pool=session.pool, feature=session.feature, session=session.id,
               expires=iso(session.expires))
        refreshed.append(session)
    return refreshed, missing


def remove(
    tx: Transaction,
    ids: Iterable[str] = (),
    user: str | None = None,
    host: str | None = None,
    pool: str | None = None,
    actor: str | None = None,
) -> tuple[list[Session], list[str]]:
    """Admin forced release (lmremove) by ids, and every session of a user or client host.

    With ``pool``, ids of sessions in other pools are reported as not found.
    """
    actor = actor or login_user()
    found, missing = _lookup(tx, ids)
    if pool is not None:
        validate.name(pool, "--pool")
        missing.extend(s.id for s in found if s.pool != pool)
        found = [s for s in found if s.pool == pool]
    if user is not None or host is not None:
        criteria = {k: v for k, v in (("user", user), ("host", host), ("pool", pool)) if v is not None}
        found.extend(tx.find_sessions(**criteria))
    found = list({s.id: s for s in found}.values())
    for session in found:
        _end_session(tx, session, "remove", by=actor)
    return found, missing


# --------------------------------------------------------------------------- listings
def _pools(tx: Transaction, pool: str | None) -> list[Pool]:
    return [get_pool(tx, pool)] if pool else tx.list_pools()


def pool_features(pool: Pool, tx: Transaction) -> list[str]:
    """Every feature of the pool's product, or for generic every feature issued, reserved or used."""
    rule = rule_of(pool)
    if rule.FEATURES:
        return list(rule.FEATURES)
    names = {lic.feature for lic in pool.licenses}
    for per_feature in pool.reservations.values():
        names.update(per_feature)
    names.update(s.feature for s in tx.find_sessions(pool=pool.name))
    return sorted(names)


def info(tx: Transaction, pool: str | None = None) -> list[dict[str, Any]]:
    """Per pool and feature: issued, in use, reserved, free, sessions (the ``info`` JSON shape)."""
    rows = []
    for p in _pools(tx, pool):
        for feature in pool_features(p, tx):
            issued = p.issued(feature)
            in_use = tx.seats_in_use(p.name, feature)
            rows.append({
                "pool": p.name,
                "product": p.product,
                "feature": feature,
                "issued": issued,
                "in_use": in_use,
                "reserved": sum(p.reserved(feature).values()),
                "free": issued - in_use,
                "sessions": len(tx.find_sessions(pool=p.name, feature=feature)),
            })
    return rows


def users(tx: Transaction, pool: str | None = None, feature: str | None = None) -> list[dict[str, Any]]:
    """One row per seat in use: who holds it, from where, since when (the ``users`` JSON shape)."""
    criteria = {k: v for k, v in (("pool", pool), ("feature", feature)) if v is not None}
    if pool:
        checked = get_pool(tx, pool)
        if feature is not None:
            check_feature(rule_of(checked), feature)
    seats: dict[tuple[str, str, str], list[Session]] = {}
    for session in tx.find_sessions(**criteria):
        seats.setdefault((session.pool, session.feature, session.seat), []).append(session)
    rows = []
    for (pool_name, feature_name, seat), sessions in sorted(seats.items()):
        expiries = [s.expires for s in sessions]
        rows.append({
            "pool": pool_name,
            "feature": feature_name,
            "seat": seat,
            "users": sorted({s.user for s in sessions}),
            "hosts": sorted({s.host for s in sessions}),
            "sessions": [s.id for s in sessions],
            "since": iso(min(s.started for s in sessions)),
            "expires": None if None in expiries else iso(max(expiries)),
            "project": sessions[0].seat_project,
            "detached": all(s.detached for s in sessions),
        })
    return rows


def session_doc(session: Session) -> dict[str, Any]:
    """A session as JSON output: the stored attributes with times in ISO 8601."""
    doc = session.to_doc()
    for key in ("started", "refreshed", "expires"):
        doc[key] = iso(doc[key])
    doc["session"] = doc.pop("id")
    return doc
