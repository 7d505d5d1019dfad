"""The one function that changes state: :func:`apply` turns a journal event into pools, sessions and settings.

The engine decides (validate, ask the rule for a seat key, admit) and builds an event; :func:`commit`
applies it and journals it in the same store transaction. Replay folds a journal through the same
:func:`apply` into a memory store, so the journal and the state cannot tell two stories.

Everything a change needs is in its event: times come from ``ts``, never from a clock, so applying an
event again (replay, migration) gives the same state to the microsecond.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from lictools import events
from lictools.errors import DamagedStateError
from lictools.events import (
    Config, Deny, Detach, End, Event, Grant, GroupRemove, GroupSet, LicenseAdd, LicenseRemove, PolicyAdd, PolicyRemove,
    PoolAdd, PoolRemove, PoolSet, Queue, Dequeue, Recharge, Refresh, Reserve,
)
from lictools.model import REQUEST_FIELDS, License, Policy, Pool, Session, Waiter
from lictools.stores.api import Transaction
from lictools.timeutil import iso


def commit(tx: Transaction, event: Event) -> Session | None:
    """Apply ``event`` and append it to the journal, in ``tx``; returns the session it created or changed.

    What the change led to is written into the event before it is journaled, so the journal says it
    and nothing computes it twice: ``expires`` of the session it created or changed, and ``in_use``
    (seats in use after it) of a session event that names a seat, when the engine did not know it.
    """
    session = apply(tx, event)
    doc: dict[str, Any] = event  # type: ignore[assignment]
    if session is not None:
        doc["expires"] = iso(session.expires)
    if doc["event"] in events.SESSION_KINDS and doc.get("in_use") is None and "seat" in doc:
        doc["in_use"] = tx.seats_in_use(doc["pool"], doc["feature"])
    tx.append_event(events.to_line(doc))
    return session


def apply(tx: Transaction, event: Event | dict[str, Any]) -> Session | None:
    """Change the state as ``event`` says; returns the session it created or changed (None otherwise).

    Raises KeyError for an event lacking a key its change needs, and LookupError (NoSuchSession /
    NoSuchPool) for one naming a session or pool that does not exist: replay reports both.
    """
    handler = _HANDLERS.get(str(event.get("event")))
    if handler is None:
        raise UnknownEvent(f"unknown event kind {event.get('event')!r}")
    return handler(tx, event)


class UnknownEvent(LookupError):
    """An event kind this lictools does not know (a newer journal)."""


class NoSuchSession(LookupError):
    """The event names a session that is not live."""


class NoSuchPool(LookupError):
    """The event names a pool that does not exist."""


class NoSuchSeat(LookupError):
    """The event names a seat that no live session holds."""


class NoSuchPolicy(LookupError):
    """The event removes a policy the pool does not have."""


def expiry(ts: float, lease: int) -> float | None:
    """When a lease of ``lease`` seconds taken at ``ts`` ends; None for ``lease`` 0 (never)."""
    return None if lease == 0 else ts + lease


# --------------------------------------------------------------------------- pools, licenses, settings
def _pool(tx: Transaction, name: str) -> Pool:
    pool = tx.get_pool(name)
    if pool is None:
        raise NoSuchPool(f"pool {name!r} does not exist")
    return pool


def _pool_add(tx: Transaction, ev: PoolAdd) -> None:
    licenses = [License(f"initial-{feature}", feature, count, None, ev["ts"]) for feature, count in ev["issued"].items()]
    tx.put_pool(Pool(ev["pool"], ev["product"], dict(ev["options"]), licenses, {}, ev["ts"]))


def _pool_set(tx: Transaction, ev: PoolSet) -> None:
    pool = _pool(tx, ev["pool"])
    pool.options = dict(ev["options"])
    tx.put_pool(pool)


def _pool_remove(tx: Transaction, ev: PoolRemove) -> None:
    _pool(tx, ev["pool"])
    for session in tx.find_sessions(pool=ev["pool"]):  # a journal written before v1 ended them first anyway
        tx.delete_session(session.id)
    tx.delete_pool(ev["pool"])


def _license_add(tx: Transaction, ev: LicenseAdd) -> None:
    pool = _pool(tx, ev["pool"])
    pool.licenses = [lic for lic in pool.licenses if lic.serial != ev["serial"]]
    pool.licenses.append(License(ev["serial"], ev["feature"], ev["count"], ev.get("host_lock"), ev["ts"]))
    tx.put_pool(pool)


def _license_remove(tx: Transaction, ev: LicenseRemove) -> None:
    pool = _pool(tx, ev["pool"])
    pool.licenses = [lic for lic in pool.licenses if lic.serial != ev["serial"]]
    tx.put_pool(pool)


def _reserve(tx: Transaction, ev: Reserve) -> None:
    pool = _pool(tx, ev["pool"])
    per_feature = pool.reservations.setdefault(ev["project"], {})
    if ev["count"]:
        per_feature[ev["feature"]] = ev["count"]
    else:
        per_feature.pop(ev["feature"], None)
    if not per_feature:
        pool.reservations.pop(ev["project"])
    tx.put_pool(pool)


def _config(tx: Transaction, ev: Config) -> None:
    tx.put_setting(ev["key"], ev.get("value") or None)


def _policy_add(tx: Transaction, ev: PolicyAdd) -> None:
    """Add the policy, or replace the one with its kind, feature and target (a new count), where it was."""
    pool = _pool(tx, ev["pool"])
    policy = Policy.from_doc(ev["policy"])
    kept = [p if p.identity != policy.identity else policy for p in pool.policies]
    pool.policies = kept if policy in kept else [*kept, policy]
    tx.put_pool(pool)


def _policy_remove(tx: Transaction, ev: PolicyRemove) -> None:
    pool = _pool(tx, ev["pool"])
    gone = Policy.from_doc(ev["policy"]).identity
    if not any(p.identity == gone for p in pool.policies):
        raise NoSuchPolicy(f"pool {pool.name} has no policy {Policy.from_doc(ev['policy']).text()}")
    pool.policies = [p for p in pool.policies if p.identity != gone]
    tx.put_pool(pool)


def _group_set(tx: Transaction, ev: GroupSet) -> None:
    from lictools.policies import GROUP_SETTING

    tx.put_setting(GROUP_SETTING + ev["group"], json.dumps(sorted(ev["members"])))


def _group_remove(tx: Transaction, ev: GroupRemove) -> None:
    from lictools.policies import GROUP_SETTING

    tx.put_setting(GROUP_SETTING + ev["group"], None)


# --------------------------------------------------------------------------- sessions
def _live(tx: Transaction, ev: Refresh | Detach | End) -> Session:
    session = tx.get_session(ev["session"])
    if session is None or (session.pool, session.feature) != (ev["pool"], ev["feature"]):
        raise NoSuchSession(f"session {ev['session']} is not live in {ev['pool']}/{ev['feature']}")
    return session


def session_from_grant(ev: Grant) -> Session:
    """The session a ``grant`` / ``share`` event starts (also what ``acquire --dry-run`` shows)."""
    ts, lease = ev["ts"], ev["lease"]
    return Session(
        id=ev["session"], pool=ev["pool"], feature=ev["feature"], seat=ev["seat"],
        user=ev["user"], host=ev["host"], node=ev["node"],
        started=ts, refreshed=ts, expires=expiry(ts, lease), lease=lease,
        shared=ev["event"] == "share", terminal=bool(ev.get("terminal")), app=ev.get("app"),
        project=ev.get("project"), parent=ev.get("parent"), root=ev.get("root"), client=ev.get("client"),
        monitor=ev.get("monitor"), pid=ev.get("pid"), seat_project=ev.get("seat_project"), uid=ev.get("uid"),
        pid_start=ev.get("pid_start"), caller_pid=ev.get("caller_pid"), reserves=ev.get("reserves") or None,
    )


def _grant(tx: Transaction, ev: Grant) -> Session:
    session = session_from_grant(ev)
    tx.put_session(session)
    return session


def _deny(tx: Transaction, ev: Deny) -> None:
    """A refusal changes nothing."""


def _refresh(tx: Transaction, ev: Refresh) -> Session:
    """Extend the lease from ``ts``. The same lease never ends earlier than it did: a clock stepped back
    changes nothing; only a retried acquire asking for a different ``lease``, or re-attaching a detached
    session (whose expiry was its detach timeout), sets it from ``ts`` whatever it was."""
    session = _live(tx, ev)
    lease_changed = False
    if ev.get("retry"):
        # a retried acquire: it may carry a new lease, and it re-attaches a detached session
        lease = ev.get("lease")
        lease_changed = session.detached or (lease is not None and lease != session.lease)
        session.lease = session.lease if lease is None else lease
        session.detached = False
    session.refreshed = ev["ts"]
    new = expiry(ev["ts"], session.lease)
    if lease_changed or new is None or session.expires is None or new > session.expires:
        session.expires = new
    tx.put_session(session)
    return session


def _detach(tx: Transaction, ev: Detach) -> Session | None:
    session = _live(tx, ev)
    if events.ends_session(ev):
        tx.delete_session(session.id)
        return None
    linger = ev.get("linger")
    if linger is None:  # a version-0 line: the timeout was the pool's detach option at the time
        linger = _legacy_linger(tx, session)
    session.detached = True
    session.expires = ev["ts"] + linger
    tx.put_session(session)
    return session


def _legacy_linger(tx: Transaction, session: Session) -> int:
    from lictools.rules import detach_timeout, get_rule

    pool = _pool(tx, session.pool)
    try:
        return detach_timeout(pool)
    except ValueError:
        value = pool.options.get(get_rule(pool.product).DETACH_OPTION)
        raise DamagedStateError(f"pool {pool.name}: detach timeout {value!r} is not a number") from None


def _end(tx: Transaction, ev: End) -> None:
    tx.delete_session(_live(tx, ev).id)


def _recharge(tx: Transaction, ev: Recharge) -> None:
    """Every live session of the seat now says it is charged to ``seat_project``."""
    holders = tx.find_sessions(pool=ev["pool"], feature=ev["feature"], seat=ev["seat"])
    if not holders:
        raise NoSuchSeat(f"seat {ev['seat']} is not held in {ev['pool']}/{ev['feature']}")
    for session in holders:
        session.seat_project = ev.get("seat_project")
        tx.put_session(session)


# --------------------------------------------------------------------------- the queue (acquire --wait)
def _queue(tx: Transaction, ev: Queue) -> None:
    pool = _pool(tx, ev["pool"])
    request = {k: ev.get(k) for k in REQUEST_FIELDS if k in ev}
    pool.queue.append(Waiter(ev["session"], ev["feature"], request, ev["ts"], ev["until_ts"],
                             ev.get("waiter_pid"), ev.get("waiter_pid_start"), ev.get("waiter_node")))
    tx.put_pool(pool)


def _dequeue(tx: Transaction, ev: Dequeue) -> None:
    pool = _pool(tx, ev["pool"])
    if not any(w.session == ev["session"] for w in pool.queue):
        raise NoSuchWaiter(f"session {ev['session']} is not waiting in pool {ev['pool']}")
    pool.queue = [w for w in pool.queue if w.session != ev["session"]]
    tx.put_pool(pool)


class NoSuchWaiter(LookupError):
    """The event names a waiter that is not in the queue."""


_HANDLERS: dict[str, Callable[[Transaction, Any], Session | None]] = {
    "pool-add": _pool_add,
    "pool-set": _pool_set,
    "pool-remove": _pool_remove,
    "license-add": _license_add,
    "license-remove": _license_remove,
    "reserve": _reserve,
    "config": _config,
    "grant": _grant,
    "share": _grant,
    "deny": _deny,
    "refresh": _refresh,
    "detach": _detach,
    "release": _end,
    "expire": _end,
    "remove": _end,
    "recharge": _recharge,
    "policy-add": _policy_add,
    "policy-remove": _policy_remove,
    "group-set": _group_set,
    "group-remove": _group_remove,
    "queue": _queue,
    "dequeue": _dequeue,
}
