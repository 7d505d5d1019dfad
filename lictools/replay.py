"""Rebuild the state from the journal alone, audit it on the way, and compare it with a store's state.

``replay(events)`` folds journal events, oldest first, through :func:`lictools.apply.apply` (the same
function that changed the live state) into a memory transaction: a fold, not a second engine. Around
each event it checks what cannot be right (:attr:`ReplayedState.problems`): an event for a session
that is not live, a ``grant`` for a seat already held or a ``share`` of a seat nobody holds, an
``in_use``, ``issued`` or ``expires`` that disagrees with the rebuilt state, a missing key, a
``recharge`` of a seat whose project still holds it or to a project none of its sessions belongs to.
Grants that opened a seat the counting rules did not allow (beyond the issued seats, or through the
shared seats while reservations left none) and denials of a session whose seat key was already held
go to :attr:`ReplayedState.violations`: those are oversold or wrongly refused seats.

The reservation invariant (issue 10) is audited after every event: the seats held beyond their
projects' reservations must not exceed the shared seats (issued minus every reservation), i.e. every
unused reservation has a free seat waiting for it. Two things may break it, and only they: an admin
change of reservations or licenses while the seats are held (``reserve``, ``license-remove``: nobody
is evicted), and a ``recharge`` forced by the always-join rule (a grouped seat left by its charged
project and kept by clients of projects with no reserved seat free). Any other event that raises the
excess is a violation, so is a forced-looking ``recharge`` that went beyond the reservations while a
holder's reservation had room, and, in a version-2 journal, an event ending the charged project's
last session on a seat still held that is not followed by that seat's ``recharge`` (the seat "stayed
charged" to a project that left it: its reservation stopped protecting the project).

``compare(store)`` replays the store's journal and lists every difference with the pools and
sessions the store holds, read through one transaction; an empty list means the journal fully
explains the state. ``lictools doctor``, the crash harness and the property tests use it.

Which events exist, and how an event written just before a crash is recognised
-------------------------------------------------------------------------------
Every state change is an event (lictools/events.py) that :func:`lictools.apply.commit` applies and
journals inside the same store transaction; ``deny`` records a refusal and changes nothing. A crash (SIGKILL, power loss) can hit any instruction of a command, so a
journal may hold the trace of a command that never finished. It is recognised like this:

- **SQLite layout** (``state.db``): the ``events`` rows are inserted by the same SQLite
  transaction as the state rows they describe and become visible with its COMMIT. A crash before
  the COMMIT leaves uncommitted WAL frames that SQLite discards when the database is next opened,
  state rows and event rows together; a crash after it leaves both. So an event cannot exist
  without its state change, nor a state change without its event: there is no "event written
  just before a crash" to recognise, every event that ``read_journal`` returns is committed.
- **JSON layout** (``state.json``): the events are appended to ``state.json.journal`` and fsynced
  *before* the new state replaces the old one by an atomic rename, and the state records
  ``journal_bytes``, the journal's length after its own events. Bytes beyond ``journal_bytes``
  were written by a transaction that crashed before its rename (the state on disk is the old
  one): they are not part of the journal. ``read_journal`` stops at ``journal_bytes`` and the next
  commit truncates the file there before appending. :func:`pending_events` shows such a tail
  (for ``doctor`` and the crash harness); a journal *shorter* than ``journal_bytes`` means
  committed events were lost and :func:`compare` reports it.

In both layouts a command killed between its commit and its output (the ``ACK`` of the crash
harness) has landed although its caller never heard of it; that is the one operation per crash
whose fate the caller cannot know, and the harness accounts for it from the journal.

Journals written before events had a version (no ``v``) replay too: a ``detach`` then carries no
``linger`` and takes the pool's detach timeout, and ``license-add`` no ``host_lock`` (which
:func:`compare` does not compare).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

from lictools import events as kinds
from lictools.admission import charges, holder_text, shared_capacity, shared_used
from lictools.apply import NoSuchPolicy, NoSuchPool, NoSuchSeat, NoSuchSession, NoSuchWaiter, UnknownEvent, apply
from lictools.errors import DamagedStateError
from lictools.model import SESSION_FIELDS, Pool, Session
from lictools.stores.memory import MemoryTransaction, empty_document
from lictools.timeutil import iso

__all__ = ["ReplayedState", "compare", "compare_state", "compare_transaction", "may_open_seat", "pending_events",
           "replay", "shared_used"]

TIME_TOLERANCE = 1e-5
"""Seconds two times may differ by and still be equal (``ts`` is journaled to the microsecond)."""

_SESSION_TIMES = ("started", "refreshed", "expires")


class ReplayedState:
    """What the journal says the state is (a memory transaction), and what replay found wrong on the way."""

    def __init__(self) -> None:
        self.tx = MemoryTransaction(empty_document(), 0.0)
        self.events = 0
        self.last_seq = 0
        self.counts: dict[str, int] = {}
        self.problems: list[str] = []
        self.violations: list[str] = []
        self.ignored: dict[str, int] = {}
        # (pool, feature) -> seats held beyond reservations in excess of the shared seats
        self.excess: dict[tuple[str, str], int] = {}
        # (pool, feature, seat) -> where the charged project's last session left it, awaiting its recharge
        self.pending: dict[tuple[str, str, str], tuple[str, str | None]] = {}

    @property
    def pools(self) -> dict[str, Pool]:
        return {p.name: p for p in self.tx.list_pools()}

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        """Session id -> the stored fields of the live session."""
        return {s.id: s.to_doc() for s in self.tx.find_sessions()}


def may_open_seat(
    issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None, reserves: Iterable[str] = (),
) -> bool:
    """SPEC.md section 2 as a yes/no: may a new seat open? (the audit's statement, apart from the engine's reasons)

    A project (or a ``reserve`` policy holder the request matched, ``reserves``) below its reservation
    takes a reserved seat; anyone else needs a free shared seat (shared = issued - sum of
    reservations); and never beyond the issued count.
    """
    in_use = sum(usage.values())
    if any(key and usage.get(key, 0) < reserved.get(key, 0) for key in [project, *reserves]):
        return in_use < issued
    return shared_used(usage, reserved) < shared_capacity(issued, reserved) and in_use < issued


def replay(events: Iterable[dict[str, Any]]) -> ReplayedState:
    """Fold journal events, oldest first, into the pools and live sessions they describe, auditing each."""
    st = ReplayedState()
    tx = st.tx
    for index, ev in enumerate(events, 1):
        st.events += 1
        seq = ev.get("seq", index)
        st.last_seq = seq
        kind = str(ev.get("event"))
        st.counts[kind] = st.counts.get(kind, 0) + 1
        where = f"event {seq} ({kind}" + (f" {ev['session']}" if ev.get("session") else "") + ")"
        if kind not in kinds.KINDS:
            st.ignored[kind] = st.ignored.get(kind, 0) + 1
            continue
        for key in kinds.missing_keys(ev):
            st.problems.append(f"{where}: lacks field {key!r}")
        tx.now = ev.get("ts", tx.now)
        _audit_pending(st, ev)
        _audit_before(st, ev, where)
        try:
            apply(tx, ev)
        except (NoSuchSession, NoSuchPool, NoSuchSeat, NoSuchPolicy, NoSuchWaiter) as exc:
            st.problems.append(f"{where}: {exc.args[0]} at this point of the journal")
            continue
        except UnknownEvent:
            continue
        except KeyError:
            continue  # reported above as a lacking field
        _audit_after(st, ev, where)
    _audit_pending(st, None)
    return st


# --------------------------------------------------------------------------- the audit
def _audit_before(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    """Checks against the state before the event: what it assumes exists, and whether it was allowed."""
    tx, kind = st.tx, ev["event"]
    pool = tx.get_pool(ev["pool"]) if "pool" in ev else None
    if kind == "pool-add" and pool is not None:
        st.problems.append(f"{where}: pool {ev['pool']!r} already exists")
    elif kind == "pool-remove" and pool is not None:
        left = sorted(s.id for s in tx.find_sessions(pool=ev["pool"]))
        if left:
            st.problems.append(f"{where}: sessions {', '.join(left)} were not ended before the pool was removed")
    elif kind == "license-add" and pool is not None and any(lic.serial == ev.get("serial") for lic in pool.licenses):
        st.problems.append(f"{where}: serial {ev['serial']} is already loaded")
    elif kind == "license-remove" and pool is not None and not any(lic.serial == ev.get("serial") for lic in pool.licenses):
        st.problems.append(f"{where}: serial {ev['serial']} is not loaded")
    elif kind in ("grant", "share"):
        _audit_grant(st, ev, pool, where)
    elif kind == "deny" and pool is not None and tx.count_seat_sessions(ev["pool"], ev["feature"], ev.get("seat", "")):
        # only who may use the feature at all (include / exclude) refuses a session joining a held seat
        if (ev.get("policy") or {}).get("kind") not in ("include", "exclude"):
            st.violations.append(f"{where}: denied although seat {ev['seat']!r} was already held (it costs no new seat)")
    elif kind in ("refresh", "detach", "release", "expire", "remove"):
        _audit_session_change(st, ev, pool, where)
    elif kind == "recharge" and pool is not None:
        _audit_recharge(st, ev, pool, where)


def _audit_grant(st: ReplayedState, ev: dict[str, Any], pool: Pool | None, where: str) -> None:
    tx = st.tx
    if tx.get_session(ev["session"]) is not None:
        st.problems.append(f"{where}: session {ev['session']} is already live")
    held = tx.count_seat_sessions(ev["pool"], ev["feature"], ev.get("seat", ""))
    if ev["event"] == "share" and not held:
        st.problems.append(f"{where}: shares seat {ev.get('seat')!r}, which no live session holds")
    if ev["event"] == "grant" and held:
        st.problems.append(f"{where}: opens seat {ev.get('seat')!r}, which live sessions already hold (should be a share)")
    if ev["event"] == "grant" and ev.get("seat_project") not in charges(ev.get("project"), ev.get("reserves")):
        st.problems.append(f"{where}: opens a seat charged to {ev.get('seat_project')!r}, not its project {ev.get('project')!r}"
                           " nor a reserve policy it matched")
    if ev["event"] == "share" and held:
        charged = tx.find_sessions(pool=ev["pool"], feature=ev["feature"], seat=ev["seat"])[0].seat_project
        if ev.get("seat_project") != charged:
            st.problems.append(f"{where}: says its seat is charged to {ev.get('seat_project')!r}, the seat is charged to {charged!r}")
    if ev["event"] == "grant" and pool is not None:
        feature = ev["feature"]
        issued, reserved, usage = pool.issued(feature), pool.reserved(feature), tx.seats_by_project(pool.name, feature)
        if not may_open_seat(issued, reserved, usage, ev.get("project"), ev.get("reserves") or ()):
            st.violations.append(
                f"{where}: opened seat {ev.get('seat')!r} for project {ev.get('project')} with {sum(usage.values())} of "
                f"{issued} in use, reservations {reserved}, shared used {shared_used(usage, reserved)}: oversold"
            )
    if pool is None:
        st.problems.append(f"{where}: pool {ev['pool']!r} does not exist at this point of the journal")


def _audit_session_change(st: ReplayedState, ev: dict[str, Any], pool: Pool | None, where: str) -> None:
    session = st.tx.get_session(ev["session"])
    if session is None:
        return  # apply reports it
    kind = ev["event"]
    if kind != "refresh" and ev.get("v", 0) >= 2 and ev.get("seat_project") != session.seat_project:
        st.problems.append(f"{where}: says its seat is charged to {ev.get('seat_project')!r}, the seat is charged to "
                           f"{session.seat_project!r}")
    if kind == "refresh" and session.detached and not ev.get("retry"):
        st.problems.append(f"{where}: refreshes a detached session")
    if kind == "expire" and str(ev.get("reason", "")).startswith(("lease", "detached")):
        if session.expires is None or session.expires > ev["ts"] + TIME_TOLERANCE:
            st.problems.append(f"{where}: expired before its expiry {iso(session.expires)}")
    if kind == "detach" and pool is not None:
        from lictools.rules import detach_timeout

        linger = detach_timeout(pool)
        if kinds.ends_session(ev) and linger:
            st.problems.append(f"{where}: ended the session although the pool's detach timeout is {linger} s")
        if not kinds.ends_session(ev) and ev.get("linger", linger) != linger:
            st.problems.append(f"{where}: kept the session {ev.get('linger')} s although the pool's detach timeout is {linger} s")


def _audit_recharge(st: ReplayedState, ev: dict[str, Any], pool: Pool, where: str) -> None:
    """A recharge must move a seat its charged project left to a project holding it, within a holder's
    reservation whenever one has a reserved seat free."""
    holders = st.tx.find_sessions(pool=ev["pool"], feature=ev["feature"], seat=ev["seat"])
    if not holders:
        return  # apply reports it
    charged, new, projects = holders[0].seat_project, ev.get("seat_project"), _charges(holders)
    seat = f"seat {ev['seat']!r}"
    if ev.get("previous_project") != charged:
        st.problems.append(f"{where}: says {seat} was charged to {ev.get('previous_project')!r}, it was charged to {charged!r}")
    if charged in projects:
        st.problems.append(f"{where}: re-charges {seat} although {holder_text(charged)} still holds it")
    if new not in projects:
        st.problems.append(f"{where}: {holder_text(new)} is not the project of a session holding {seat} "
                           "(nor a reserve policy one matched)")
    reserved, usage = pool.reserved(ev["feature"]), st.tx.seats_by_project(ev["pool"], ev["feature"])
    room = sorted(p for p in projects if p and usage.get(p, 0) < reserved.get(p, 0))
    if room and new not in room:
        st.violations.append(
            f"{where}: charged {seat} to {holder_text(new)} beyond the reservations although {holder_text(room[0])} had a "
            "reserved seat free"
        )


def _charges(holders: Iterable[Session]) -> set[str | None]:
    """Everything the sessions holding a seat may charge it to: their projects and their reserve policies."""
    return {key for h in holders for key in charges(h.project, h.reserves)}


def _audit_pending(st: ReplayedState, ev: dict[str, Any] | None) -> None:
    """The event after one that left a seat charged to a project with no session on it must recharge that seat."""
    if not st.pending:
        return
    for key, (where, project) in list(st.pending.items()):
        if ev is not None and ev.get("event") == "recharge" and (ev.get("pool"), ev.get("feature"), ev.get("seat")) == key:
            continue
        st.violations.append(
            f"{where}: seat {key[2]!r} stayed charged to {holder_text(project)} after its last session left it: "
            "the seat still counts for that reservation while only others hold it"
        )
    st.pending.clear()


ADMIN_CHANGES = ("reserve", "license-remove", "policy-add", "policy-remove")
"""Admin changes that may break the reservation invariant: they evict nobody from the seats held."""


def _audit_reservation_invariant(
    st: ReplayedState, ev: dict[str, Any], feature: str, where: str, usage: dict[str | None, int]
) -> None:
    """Seats beyond reservations <= shared seats, except after an admin change or a forced recharge."""
    pool = st.tx.get_pool(ev["pool"])
    if pool is None:
        return
    kind = ev["event"]
    reserved = pool.reserved(feature)
    used, cap = shared_used(usage, reserved), shared_capacity(pool.issued(feature), reserved)
    key = (pool.name, feature)
    excess, before = max(0, used - cap), st.excess.get(key, 0)
    st.excess[key] = excess
    allowed = before + 1 if kind == "recharge" else before
    if excess > allowed and kind not in ADMIN_CHANGES:
        st.violations.append(
            f"{where}: seats held beyond reservations rose to {used} where {cap} are shared "
            f"(issued {pool.issued(feature)}, reserved {reserved}, usage {usage}): a reservation stopped protecting its project"
        )


def _audit_after(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    """Checks of what the event says the change led to against what applying it gave."""
    tx, kind = st.tx, ev["event"]
    usage = tx.seats_by_project(ev["pool"], ev["feature"]) if "feature" in ev and "pool" in ev else None
    if usage is not None and kind != "deny":
        _audit_reservation_invariant(st, ev, ev["feature"], where, usage)
    policy_feature = (ev.get("policy") or {}).get("feature") if kind in ("policy-add", "policy-remove") else None
    if policy_feature is not None:  # a reserve policy changes the reservations of its feature
        _audit_reservation_invariant(st, ev, policy_feature, where, tx.seats_by_project(ev["pool"], policy_feature))
    if usage is not None and kinds.ends_session(ev) and ev.get("v", 0) >= 2 and "seat" in ev:
        holders = tx.find_sessions(pool=ev["pool"], feature=ev["feature"], seat=ev["seat"])
        if holders and holders[0].seat_project not in _charges(holders):
            st.pending[(ev["pool"], ev["feature"], ev["seat"])] = (where, holders[0].seat_project)
    if "in_use" in ev and usage is not None:
        have = sum(usage.values())
        if have != ev["in_use"]:
            st.problems.append(f"{where}: says in_use {ev['in_use']} for {ev['pool']}/{ev['feature']}, replay has {have}")
    if kind in ("license-add", "license-remove"):
        pool = tx.get_pool(ev["pool"])
        if pool is not None and "issued" in ev and pool.issued(ev["feature"]) != ev["issued"]:
            st.problems.append(
                f"{where}: says issued {ev['issued']} for {pool.name}/{ev['feature']}, replay has {pool.issued(ev['feature'])}"
            )
    reserved_feature = ev["feature"] if kind == "reserve" else policy_feature if kind == "policy-add" else None
    if reserved_feature is not None:
        pool = tx.get_pool(ev["pool"])
        if pool is not None and sum(pool.reserved(reserved_feature).values()) > pool.issued(reserved_feature):
            st.violations.append(
                f"{where}: reservations of {pool.name}/{reserved_feature} now exceed the {pool.issued(reserved_feature)} issued"
            )
    if "expires" in ev and kind in ("grant", "share", "refresh", "detach"):
        session = tx.get_session(ev["session"])
        if session is not None and ev["expires"] != iso(session.expires):
            st.problems.append(f"{where}: says expires {ev['expires']}, replay computes {iso(session.expires)}")


# --------------------------------------------------------------------------- comparison
def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TIME_TOLERANCE


def compare_state(
    replayed: ReplayedState, pools: Iterable[Pool], sessions: Iterable[Session], settings: dict[str, str] | None = None,
) -> list[str]:
    """Differences between a replayed journal and actual pools, sessions and (when given) settings and groups."""
    diffs = [f"journal: {p}" for p in replayed.problems] + [f"journal: {v}" for v in replayed.violations]
    if settings is not None:
        rebuilt_settings = replayed.tx.get_settings()
        for key in sorted(set(rebuilt_settings) | set(settings)):
            if rebuilt_settings.get(key) != settings.get(key):
                diffs.append(f"setting {key}: {settings.get(key)!r} in the state, {rebuilt_settings.get(key)!r} in the journal")
    rebuilt_pools = replayed.pools
    actual_pools = {p.name: p for p in pools}
    for name in sorted(set(rebuilt_pools) | set(actual_pools)):
        r, a = rebuilt_pools.get(name), actual_pools.get(name)
        if r is None:
            diffs.append(f"pool {name}: in the state, not in the journal")
            continue
        if a is None:
            diffs.append(f"pool {name}: in the journal, not in the state")
            continue
        if r.product != a.product:
            diffs.append(f"pool {name}: product {a.product!r} in the state, {r.product!r} in the journal")
        if r.options != a.options:
            diffs.append(f"pool {name}: options {a.options} in the state, {r.options} in the journal")
        actual_serials = {lic.serial: (lic.feature, lic.count) for lic in a.licenses}
        rebuilt_serials = {lic.serial: (lic.feature, lic.count) for lic in r.licenses}
        if actual_serials != rebuilt_serials:
            diffs.append(f"pool {name}: serials {actual_serials} in the state, {rebuilt_serials} in the journal")
        if a.reservations != r.reservations:
            diffs.append(f"pool {name}: reservations {a.reservations} in the state, {r.reservations} in the journal")
        if a.policies != r.policies:
            diffs.append(f"pool {name}: policies {[p.text() for p in a.policies]} in the state, "
                         f"{[p.text() for p in r.policies]} in the journal")
        if not _close(a.created, r.created):
            diffs.append(f"pool {name}: created {a.created} in the state, {r.created} in the journal")
    rebuilt_sessions = {s.id: s for s in replayed.tx.find_sessions()}
    actual_sessions = {s.id: s for s in sessions}
    for sid in sorted(set(rebuilt_sessions) | set(actual_sessions)):
        rs, s = rebuilt_sessions.get(sid), actual_sessions.get(sid)
        if rs is None:
            diffs.append(f"session {sid}: live in the state, not in the journal")
            continue
        if s is None:
            diffs.append(f"session {sid}: live in the journal ({rs.pool}/{rs.feature} seat {rs.seat}), not in the state")
            continue
        for key in SESSION_FIELDS:
            mine, theirs = getattr(s, key), getattr(rs, key)
            same = _close(mine, theirs) if key in _SESSION_TIMES else mine == theirs
            if not same:
                diffs.append(f"session {sid}: {key} {mine!r} in the state, {theirs!r} in the journal")
    return diffs


def compare_transaction(events: Iterable[dict[str, Any]], tx: Any) -> list[str]:
    """Replay ``events`` and compare with what transaction ``tx`` sees (pools and live sessions)."""
    return compare_state(replay(events), tx.list_pools(), tx.find_sessions(), tx.get_settings())


def compare(store: Any) -> list[str]:
    """Replay ``store``'s journal and list every difference with its state; [] when they agree.

    Reads the journal and the state inside one transaction of the store (its lock held), and
    changes nothing: no expired lease is reaped, nothing is written.
    """
    with store.transaction() as tx:
        diffs = journal_problems(store)
        events = []
        try:
            for event in store.read_journal():
                events.append(event)
        except (ValueError, DamagedStateError) as exc:  # a damaged journal line (JSON layout)
            diffs.append(f"journal: unreadable after event {len(events)}: {getattr(exc, 'message', exc)}")
        diffs += compare_transaction(events, tx)
    return diffs


# --------------------------------------------------------------------------- journal file checks
def _json_layout(store: Any) -> bool:
    return hasattr(store, "journal_path") and str(getattr(store, "path", "")).endswith(".json")


def _committed_bytes(store: Any) -> int:
    with open(store.path, "rb") as f:
        return int(json.load(f).get("journal_bytes", 0))


def pending_events(store: Any) -> tuple[list[dict[str, Any]], bytes]:
    """The JSON layout's uncommitted tail: (whole events, trailing partial line) beyond ``journal_bytes``.

    Written by a transaction that crashed before its rename; not part of the journal. Always
    empty for the SQLite layout, whose events commit with the state.
    """
    if not _json_layout(store) or not os.path.exists(store.path):
        return [], b""
    committed = _committed_bytes(store)
    try:
        with open(store.journal_path, "rb") as f:
            f.seek(committed)
            tail = f.read()
    except FileNotFoundError:
        return [], b""
    *lines, partial = tail.split(b"\n")
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            partial = line + b"\n" + partial
    return events, partial


def journal_problems(store: Any) -> list[str]:
    """Committed journal bytes that are missing (JSON layout): events the state counts but lost."""
    if not _json_layout(store) or not os.path.exists(store.path):
        return []
    committed = _committed_bytes(store)
    size = os.path.getsize(store.journal_path) if os.path.exists(store.journal_path) else 0
    if size < committed:
        return [f"journal {store.journal_path} has {size} bytes, the state says {committed} are committed"]
    return []
