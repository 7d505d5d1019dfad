"""Rebuild the state from the journal alone, and compare it with the state a store holds.

``replay(events)`` folds journal events (oldest first) into a :class:`ReplayedState`: every pool
(product, options, loaded serials and so the issued seats per feature, reservations) and every
live session (pool, feature, seat, user, host, node, start, last refresh, expiry, lease, shared,
detached and the rule attributes). ``compare(store)`` replays the store's journal and lists every
difference with the pools and sessions the store holds, read through one transaction; an empty
list means the journal fully explains the state. The crash harness and the property tests use it
(tests/test_crash.py, tests/test_properties.py).

While folding, replay also checks each event against the state rebuilt so far and records what
cannot be right (:attr:`ReplayedState.problems`): an event for a session that is not live, a
``grant`` for a seat already held or a ``share`` of a seat nobody holds, an ``in_use`` that
disagrees with the rebuilt seats, an ``expires`` that disagrees with ``ts + lease``. Grants that
opened a seat the counting rules did not allow (beyond the issued seats, or through the shared
seats while reservations left none) and denials of a session whose seat key was already held go
to :attr:`ReplayedState.violations`: those are oversold or wrongly refused seats.

Which events exist, and how an event written just before a crash is recognised
-------------------------------------------------------------------------------
Every engine function that changes the state journals one event per change inside the same
store transaction (lictools/engine.py ``_event`` / ``_session_event``): ``pool-add``,
``pool-set``, ``pool-remove``, ``license-add``, ``license-remove``, ``reserve``, ``grant``,
``share``, ``refresh``, ``detach``, ``release``, ``expire``, ``remove``; ``deny`` records a refusal
and changes nothing. A crash (SIGKILL, power loss) can hit any instruction of a command, so a
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

What the journal does not carry (so replay cannot rebuild it)
--------------------------------------------------------------
- (A retried ``acquire`` is journaled as a ``refresh`` event with ``retry: true``, its ``lease``
  and, when it re-attached a detached session, ``reattached: true``; replay applies all three.)
- ``license-add`` does not journal ``host_lock`` (the host a loaded serial is locked to);
  replay leaves it None and :func:`compare` does not compare it.
- Times are journaled as ``ts`` rounded to the microsecond (``expires`` only as ISO text to the
  second), so replayed times are compared to within :data:`TIME_TOLERANCE`.
- A ``detach`` event means two things: with the pool's detach timeout (``linger`` /
  ``user_agent_timeout``) above zero the session stays, detached, until ``ts + timeout`` (the
  event has ``expires``); at zero the session ended (no ``expires``, ``reason`` says the seat was
  freed). Replay tells them apart by the ``expires`` key and cross-checks the pool option.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from lictools.errors import DamagedStateError

from lictools.timeutil import iso

TIME_TOLERANCE = 1e-5
"""Seconds two times may differ by and still be equal (``ts`` is rounded to the microsecond)."""

SESSION_ENDS = ("release", "expire", "remove")
"""Events that end a session (``detach`` without ``expires`` ends one too)."""

_DERIVED = ("id", "started", "refreshed", "expires", "lease", "shared", "detached")
"""Session fields replay computes (from the event kind, ``ts`` and the lease); every other field
of :class:`lictools.model.Session` is read from the grant event by name, so a new session field is
replayed as soon as the engine journals it (and reported by :func:`compare` until it does)."""


def _session_fields() -> tuple[tuple[str, Any], ...]:
    from lictools.model import REQUIRED, Session

    return tuple((name, None if default is REQUIRED else default) for name, default in Session.FIELDS)


@dataclass
class ReplayedPool:
    """A pool as the journal describes it."""

    name: str
    product: str
    options: dict[str, str]
    # serial -> (feature, count)
    licenses: dict[str, tuple[str, int]] = field(default_factory=dict)
    # project -> feature -> reserved seats
    reservations: dict[str, dict[str, int]] = field(default_factory=dict)
    created: float = 0.0

    def issued(self, feature: str) -> int:
        return sum(count for f, count in self.licenses.values() if f == feature)

    def reserved(self, feature: str) -> dict[str, int]:
        return {p: per[feature] for p, per in self.reservations.items() if per.get(feature)}


@dataclass
class ReplayedState:
    """What the journal says the state is, and what replay found wrong on the way."""

    pools: dict[str, ReplayedPool] = field(default_factory=dict)
    # session id -> the fields of lictools.model.Session
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    last_seq: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    # -- queries on the rebuilt state ------------------------------------------------
    def seats(self, pool: str, feature: str) -> dict[str, str | None]:
        """Seat key -> charged project, for the live sessions of one pool feature."""
        out: dict[str, str | None] = {}
        for s in sorted(self.sessions.values(), key=lambda s: (s["started"], s["id"])):
            if s["pool"] == pool and s["feature"] == feature:
                out.setdefault(s["seat"], s.get("seat_project"))
        return out

    def seats_in_use(self, pool: str, feature: str) -> int:
        return len(self.seats(pool, feature))

    def usage(self, pool: str, feature: str) -> dict[str | None, int]:
        """Seats in use per charged project (None: no project)."""
        out: dict[str | None, int] = {}
        for project in self.seats(pool, feature).values():
            out[project] = out.get(project, 0) + 1
        return out


def shared_used(usage: dict[str | None, int], reserved: dict[str, int]) -> int:
    """Seats taken from the shared rest: beyond each project's reservation."""
    return sum(max(0, used - (reserved.get(p, 0) if p else 0)) for p, used in usage.items())


def may_open_seat(issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None) -> bool:
    """SPEC.md section 2 (magic-xpa reservations, used by every product): may a new seat open?

    Written from the spec, independently of engine.admit: a project below its reservation takes
    a reserved seat; anyone else needs a free shared seat (shared = issued - sum of reservations)
    and a free seat at all.
    """
    in_use = sum(usage.values())
    own = reserved.get(project, 0) if project else 0
    if own and usage.get(project, 0) < own:
        return in_use < issued
    return shared_used(usage, reserved) < max(0, issued - sum(reserved.values())) and in_use < issued


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TIME_TOLERANCE


def _detach_option(product: str) -> str:
    try:
        from lictools.rules import get_rule

        return getattr(get_rule(product), "DETACH_OPTION", "linger")
    except Exception:  # an unknown product: the common option
        return "linger"


def replay(events: Iterable[dict[str, Any]]) -> ReplayedState:
    """Fold journal events, oldest first, into the pools and live sessions they describe."""
    st = ReplayedState()
    for index, ev in enumerate(events, 1):
        st.events += 1
        seq = ev.get("seq", index)
        st.last_seq = seq
        kind = ev.get("event")
        st.counts[kind] = st.counts.get(kind, 0) + 1
        where = f"event {seq} ({kind}"
        if ev.get("session"):
            where += f" {ev['session']}"
        where += ")"
        handler = _HANDLERS.get(kind)
        if handler is None:
            st.ignored[str(kind)] = st.ignored.get(str(kind), 0) + 1
            continue
        try:
            handler(st, ev, where)
        except KeyError as exc:
            st.problems.append(f"{where}: lacks field {exc.args[0]!r}")
    return st


# --------------------------------------------------------------------------- handlers
def _pool(st: ReplayedState, ev: dict[str, Any], where: str) -> ReplayedPool | None:
    pool = st.pools.get(ev["pool"])
    if pool is None:
        st.problems.append(f"{where}: pool {ev['pool']!r} does not exist at this point of the journal")
    return pool


def _check_issued(st: ReplayedState, pool: ReplayedPool, ev: dict[str, Any], where: str) -> None:
    if "issued" in ev and pool.issued(ev["feature"]) != ev["issued"]:
        st.problems.append(
            f"{where}: says issued {ev['issued']} for {pool.name}/{ev['feature']}, replay has {pool.issued(ev['feature'])}"
        )


def _check_in_use(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    if "in_use" in ev:
        have = st.seats_in_use(ev["pool"], ev["feature"])
        if have != ev["in_use"]:
            st.problems.append(f"{where}: says in_use {ev['in_use']} for {ev['pool']}/{ev['feature']}, replay has {have}")


def _check_expires(st: ReplayedState, session: dict[str, Any], ev: dict[str, Any], where: str) -> None:
    if "expires" in ev and ev["expires"] != iso(session["expires"]):
        st.problems.append(f"{where}: says expires {ev['expires']}, replay computes {iso(session['expires'])}")


def _pool_add(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    if ev["pool"] in st.pools:
        st.problems.append(f"{where}: pool {ev['pool']!r} already exists")
    pool = ReplayedPool(ev["pool"], ev["product"], dict(ev.get("options", {})), created=ev["ts"])
    for feature, count in ev.get("issued", {}).items():
        pool.licenses[f"initial-{feature}"] = (feature, count)
    st.pools[pool.name] = pool


def _pool_set(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    pool = _pool(st, ev, where)
    if pool:
        pool.options = dict(ev["options"])


def _pool_remove(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    if _pool(st, ev, where) is None:
        return
    left = sorted(s["id"] for s in st.sessions.values() if s["pool"] == ev["pool"])
    if left:
        st.problems.append(f"{where}: sessions {', '.join(left)} were not ended before the pool was removed")
        for sid in left:
            del st.sessions[sid]
    del st.pools[ev["pool"]]


def _license_add(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    pool = _pool(st, ev, where)
    if pool is None:
        return
    if ev["serial"] in pool.licenses:
        st.problems.append(f"{where}: serial {ev['serial']} is already loaded")
    pool.licenses[ev["serial"]] = (ev["feature"], ev["count"])
    _check_issued(st, pool, ev, where)


def _license_remove(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    pool = _pool(st, ev, where)
    if pool is None:
        return
    if pool.licenses.pop(ev["serial"], None) is None:
        st.problems.append(f"{where}: serial {ev['serial']} is not loaded")
    _check_issued(st, pool, ev, where)


def _reserve(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    pool = _pool(st, ev, where)
    if pool is None:
        return
    per_feature = pool.reservations.setdefault(ev["project"], {})
    if ev["count"]:
        per_feature[ev["feature"]] = ev["count"]
    else:
        per_feature.pop(ev["feature"], None)
    if not per_feature:
        pool.reservations.pop(ev["project"])
    if sum(pool.reserved(ev["feature"]).values()) > pool.issued(ev["feature"]):
        st.violations.append(
            f"{where}: reservations of {pool.name}/{ev['feature']} now exceed the {pool.issued(ev['feature'])} issued"
        )


def _grant(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    pool = _pool(st, ev, where)
    sid = ev["session"]
    if sid in st.sessions:
        st.problems.append(f"{where}: session {sid} is already live")
    feature, seat = ev["feature"], ev["seat"]
    seats = st.seats(ev["pool"], feature)
    shared = ev["event"] == "share"
    if shared and seat not in seats:
        st.problems.append(f"{where}: shares seat {seat!r}, which no live session holds")
    if not shared and seat in seats:
        st.problems.append(f"{where}: opens seat {seat!r}, which live sessions already hold (should be a share)")
    if not shared and pool is not None:
        issued, reserved, usage = pool.issued(feature), pool.reserved(feature), st.usage(ev["pool"], feature)
        if not may_open_seat(issued, reserved, usage, ev.get("project")):
            st.violations.append(
                f"{where}: opened seat {seat!r} for project {ev.get('project')} with {sum(usage.values())} of "
                f"{issued} in use, reservations {reserved}, shared used {shared_used(usage, reserved)}: oversold"
            )
    if "lease" not in ev:
        st.problems.append(f"{where}: lacks field 'lease' (needed for expiry and refresh)")
    lease = ev.get("lease", 0)
    ts = ev["ts"]
    session = {name: ev.get(name, default) for name, default in _session_fields() if name not in _DERIVED}
    session.update(
        id=sid,
        started=ts,
        refreshed=ts,
        expires=None if lease == 0 else ts + lease,
        lease=lease,
        shared=shared,
        detached=False,
    )
    st.sessions[sid] = session
    _check_expires(st, session, ev, where)
    _check_in_use(st, ev, where)


def _live(st: ReplayedState, ev: dict[str, Any], where: str) -> dict[str, Any] | None:
    session = st.sessions.get(ev["session"])
    if session is None:
        st.problems.append(f"{where}: session {ev['session']} is not live at this point of the journal")
    elif (session["pool"], session["feature"]) != (ev["pool"], ev["feature"]):
        st.problems.append(f"{where}: names {ev['pool']}/{ev['feature']}, the session is in {session['pool']}/{session['feature']}")
    return session


def _refresh(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    session = _live(st, ev, where)
    if session is None:
        return
    if ev.get("retry"):
        # a retried acquire: it may carry a new lease, and it re-attaches a detached session
        session["lease"] = ev.get("lease", session["lease"])
        session["detached"] = False
    elif session["detached"]:
        st.problems.append(f"{where}: refreshes a detached session")
    session["refreshed"] = ev["ts"]
    session["expires"] = None if session["lease"] == 0 else ev["ts"] + session["lease"]
    _check_expires(st, session, ev, where)


def _detach(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    session = _live(st, ev, where)
    if session is None:
        return
    pool = st.pools.get(session["pool"])
    linger = None
    if pool is not None:
        option = _detach_option(pool.product)
        linger = int(pool.options.get(option, "0") or 0)
    if "expires" not in ev:  # detach timeout 0: the session ended now
        if linger:
            st.problems.append(f"{where}: ended the session although the pool's detach timeout is {linger} s")
        del st.sessions[session["id"]]
        _check_in_use(st, ev, where)
        return
    if linger is None:
        st.problems.append(f"{where}: the detach timeout is unknown (no pool), expiry taken from the ISO text")
        from lictools.timeutil import parse_time

        session["expires"] = parse_time(ev["expires"])
    else:
        if linger == 0:
            st.problems.append(f"{where}: kept the session although the pool's detach timeout is 0")
        session["expires"] = ev["ts"] + linger
    session["detached"] = True
    _check_expires(st, session, ev, where)
    _check_in_use(st, ev, where)


def _end(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    session = _live(st, ev, where)
    if session is None:
        return
    if ev["event"] == "expire" and ev.get("reason", "").startswith(("lease", "detached")):
        if session["expires"] is None or session["expires"] > ev["ts"] + TIME_TOLERANCE:
            st.problems.append(f"{where}: expired before its expiry {iso(session['expires'])}")
    del st.sessions[session["id"]]
    _check_in_use(st, ev, where)


def _deny(st: ReplayedState, ev: dict[str, Any], where: str) -> None:
    if _pool(st, ev, where) is None:
        return
    if ev["seat"] in st.seats(ev["pool"], ev["feature"]):
        st.violations.append(f"{where}: denied although seat {ev['seat']!r} was already held (it costs no new seat)")
    _check_in_use(st, ev, where)


_HANDLERS = {
    "pool-add": _pool_add,
    "pool-set": _pool_set,
    "pool-remove": _pool_remove,
    "license-add": _license_add,
    "license-remove": _license_remove,
    "reserve": _reserve,
    "grant": _grant,
    "share": _grant,
    "refresh": _refresh,
    "detach": _detach,
    "release": _end,
    "expire": _end,
    "remove": _end,
    "deny": _deny,
}


# --------------------------------------------------------------------------- comparison
_SESSION_TIMES = ("started", "refreshed", "expires")


def _norm_reservations(reservations: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {}
    for project, per_feature in reservations.items():
        kept = {f: c for f, c in per_feature.items() if c}
        if kept:
            out[project] = kept
    return out


def compare_state(replayed: ReplayedState, pools: Iterable[Any], sessions: Iterable[Any]) -> list[str]:
    """Differences between a replayed journal and actual pools/sessions (model objects)."""
    diffs = [f"journal: {p}" for p in replayed.problems] + [f"journal: {v}" for v in replayed.violations]
    actual_pools = {p.name: p for p in pools}
    for name in sorted(set(replayed.pools) | set(actual_pools)):
        r, a = replayed.pools.get(name), actual_pools.get(name)
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
        licenses = {lic.serial: (lic.feature, lic.count) for lic in a.licenses}
        if licenses != r.licenses:
            diffs.append(f"pool {name}: serials {licenses} in the state, {r.licenses} in the journal")
        features = {f for f, _ in licenses.values()} | {f for f, _ in r.licenses.values()}
        for feature in sorted(features):
            if a.issued(feature) != r.issued(feature):
                diffs.append(f"pool {name}/{feature}: issued {a.issued(feature)} in the state, {r.issued(feature)} in the journal")
        if _norm_reservations(a.reservations) != _norm_reservations(r.reservations):
            diffs.append(f"pool {name}: reservations {a.reservations} in the state, {r.reservations} in the journal")
        if not _close(a.created, r.created):
            diffs.append(f"pool {name}: created {a.created} in the state, {r.created} in the journal")
    actual_sessions = {s.id: s for s in sessions}
    for sid in sorted(set(replayed.sessions) | set(actual_sessions)):
        r, a = replayed.sessions.get(sid), actual_sessions.get(sid)
        if r is None:
            diffs.append(f"session {sid}: live in the state, not in the journal")
            continue
        if a is None:
            diffs.append(f"session {sid}: live in the journal ({r['pool']}/{r['feature']} seat {r['seat']}), not in the state")
            continue
        for key, _ in _session_fields():
            if key == "id" or key in _SESSION_TIMES:
                continue
            if getattr(a, key, None) != r.get(key):
                diffs.append(f"session {sid}: {key} {getattr(a, key, None)!r} in the state, {r.get(key)!r} in the journal")
        for key in _SESSION_TIMES:
            if not _close(getattr(a, key), r.get(key)):
                diffs.append(f"session {sid}: {key} {getattr(a, key)!r} in the state, {r.get(key)!r} in the journal")
    return diffs


def compare_transaction(events: Iterable[dict[str, Any]], tx: Any) -> list[str]:
    """Replay ``events`` and compare with what transaction ``tx`` sees (pools and live sessions)."""
    return compare_state(replay(events), tx.list_pools(), tx.find_sessions())


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
