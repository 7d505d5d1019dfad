"""One product rule and feature under simulation: the real engine on in-memory stores, twice.

A :class:`Run` is one pool in a :class:`~lictools.stores.memory.MemoryStore` whose clock is the
simulation's, driven through :mod:`lictools.engine` exactly as the commands drive it (each client
event is one transaction that first reaps expired sessions), with a :class:`SimulatedHost` for
the machine. A :class:`Lane` holds two runs of the same events: with unlimited capacity (the
demand, measured by :class:`Demand`) and, when a capacity is given, with that capacity (the denials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lictools import engine
from lictools.admission import shared_used
from lictools.events import ends_session
from lictools.model import Request
from lictools.simulation.clientlog import ClientEvent
from lictools.stores.api import Transaction
from lictools.stores.memory import MemoryStore

UNLIMITED = 10**9
"""The issued count of the demand run: more seats than any log can ask for."""

POOL = "simulated"
"""The name of the one pool of each run."""

SLOTS = 720
"""Time slots of a ``--chart`` timeline, as ``report`` draws."""


class SimulatedHost:
    """The machine of a simulation: nothing real is read. A row without ``user`` or ``node`` takes
    this machine's (both ``simulated``), as ``acquire`` takes the login user and this host's name."""

    NAME = "simulated"

    def __init__(self) -> None:
        self.ids = 0

    def login_user(self) -> str:
        return self.NAME

    def account(self) -> tuple[int, str]:
        return 0, self.NAME

    def node(self) -> str:
        return self.NAME

    def pid_alive(self, pid: int) -> bool:
        return True

    def process_start(self, pid: int) -> int | None:
        return None

    def new_id(self) -> str:
        self.ids += 1
        return f"{self.NAME}-{self.ids}"

    def caller_pid(self) -> int:
        return 0


Listener = Callable[[float, dict[str, Any]], None]
"""Called with every event a run journals and the time it happened (an expiry: when the lease ended)."""


class Run:
    """One pool under one rule and capacity, replayed through the engine on a memory store."""

    def __init__(self, clock: Callable[[], float], product: str, feature: str, issued: int,
                 options: dict[str, str], reserved: dict[str, int], listener: Listener | None = None,
                 journal_denials: bool = False) -> None:
        self.store = MemoryStore(clock)
        # journal a deny event for each refusal (a run whose journal is kept: simulate --keep-state)
        self.journal_denials = journal_denials
        self.host = SimulatedHost()
        self.feature = feature
        self.listener = listener
        # sessions refused here, and RUN children of refused ones: they never ran, so their stops end nothing
        self.denied: set[str] = set()
        self.denials = 0
        self.serials = 0
        with self._transaction() as tx:
            engine.add_pool(tx, POOL, product, {feature: issued}, options)
            for project, count in reserved.items():
                engine.reserve(tx, POOL, project, feature, count)

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        """One command's transaction: reap what expired by now, yield, then hand the journal to the listener."""
        with self.store.transaction() as tx:
            reaped = engine.reap(tx, self.host)
            yield tx
        journal = self.store.journal
        if self.listener is not None and journal:
            lease_ends = {s.id: s.expires for s in reaped}
            t = journal[0]["ts"]
            for event in journal:
                kind = event["event"]
                if kind == "expire":
                    t = lease_ends.get(event["session"]) or event["ts"]
                elif kind != "recharge":  # a recharge follows the end that caused it
                    t = event["ts"]
                self.listener(t, event)
        journal.clear()  # the journal is read as it is written: a run keeps only its live sessions

    def live(self, session: str) -> bool:
        return session in self.store.doc["sessions"]

    def running(self) -> int:
        """Sessions live now (running, or detached within their timeout)."""
        return len(self.store.doc["sessions"])

    def start(self, event: ClientEvent, session: str, lease: int) -> engine.Outcome | None:
        """Acquire for a ``start``; None when it never started here (its parent was refused here)."""
        if event.parent is not None and event.parent in self.denied:
            self.denied.add(session)
            return None
        self.denied.discard(session)
        request = Request(
            pool=POOL, feature=self.feature, session=session, user=event.user or self.host.login_user(),
            host=event.host, node=event.node or self.host.node(), terminal=event.terminal, app=event.app,
            project=event.project, parent=event.parent, client=event.client, monitor=event.monitor, lease=lease,
        )
        with self._transaction() as tx:
            outcome = engine.acquire(tx, request, journal_denial=self.journal_denials, host=self.host)
        if not outcome.granted:
            self.denied.add(session)
            self.denials += 1
        return outcome

    def stop(self, session: str) -> bool:
        """Release for a ``stop``; False when no session of that id was live here."""
        if session in self.denied:
            self.denied.discard(session)
            return False
        with self._transaction() as tx:
            handled = engine.release(tx, [session])
        return not handled.missing

    def detach(self, session: str) -> bool:
        """Detach for a ``detach``: kept for the product's detach timeout; False when not live here."""
        if session in self.denied:
            return False
        with self._transaction() as tx:
            handled = engine.detach(tx, [session])
        return not handled.missing

    def reattach(self, session: str) -> bool:
        """A retried acquire of a detached session (the journal's ``refresh`` with ``reattached``)."""
        with self._transaction() as tx:
            live = tx.get_session(session)
            if live is None or not live.detached:
                return False
            again = Request(pool=POOL, feature=self.feature, session=live.id, user=live.user, host=live.host,
                            node=live.node, lease=live.lease)
            engine.acquire(tx, again, host=self.host)
        return True

    def tick(self) -> None:
        """Reap what expired by now (the end of the log)."""
        with self._transaction():
            pass

    def issued(self) -> int:
        with self._transaction() as tx:
            return engine.get_pool(tx, POOL).issued(self.feature)

    def set_issued(self, issued: int) -> None:
        """The pool's issued seats become ``issued`` (a journal's license change): a new serial, then the old go."""
        with self._transaction() as tx:
            pool = engine.get_pool(tx, POOL)
            if pool.issued(self.feature) == issued:
                return
            old = [lic.serial for lic in pool.licenses if lic.feature == self.feature]
            self.serials += 1
            engine.add_license(tx, POOL, self.feature, issued, serial=f"issued-{self.serials}", host=self.host)
            for serial in old:
                engine.remove_license(tx, POOL, serial)

    def reserve(self, project: str, count: int) -> None:
        with self._transaction() as tx:
            engine.reserve(tx, POOL, project, self.feature, count)

    def set_options(self, options: dict[str, str]) -> None:
        with self._transaction() as tx:
            engine.set_pool_options(tx, POOL, options)


class Timeline:
    """Seats in use over a span not known in advance, in at most :data:`SLOTS` equal slots (``--chart``):
    per slot the peak in use and the denials. When the slots run out, neighbours merge and each
    slot covers twice the time, so memory stays the same whatever the log's length."""

    def __init__(self, since: float | None = None, slots: int = SLOTS) -> None:
        self.slots = slots
        self.since = since  # None: from the first change
        self.width = 1.0
        self.peaks: list[int] = []
        self.denials: list[int] = []
        self.held = 0

    def _slot(self, t: float) -> int:
        if self.since is None:
            self.since = t
        slot = int((t - self.since) / self.width)
        while slot >= self.slots:
            self.peaks = [max(self.peaks[i:i + 2]) for i in range(0, len(self.peaks), 2)]
            self.denials = [sum(self.denials[i:i + 2]) for i in range(0, len(self.denials), 2)]
            self.width *= 2
            slot = int((t - self.since) / self.width)
        while len(self.peaks) <= slot:  # slots since the last change keep the level that held
            self.peaks.append(self.held)
            self.denials.append(0)
        return slot

    def level(self, t: float, in_use: int) -> None:
        slot = self._slot(t)
        self.held = in_use
        if in_use > self.peaks[slot]:
            self.peaks[slot] = in_use

    def deny(self, t: float) -> None:
        self.denials[self._slot(t)] += 1

    def points(self, until: float, issued: int) -> list[tuple[float, int, int, int]]:
        """``(slot start, peak in use, issued, denials)`` per slot up to ``until`` (what the chart draws)."""
        self._slot(until)
        since = self.since or until
        return [(since + i * self.width, peak, issued, denied)
                for i, (peak, denied) in enumerate(zip(self.peaks, self.denials))]


class Demand:
    """What the unlimited run's journal says over time: seats in use, the level ``needed`` measures
    (seats in use plus reserved seats their projects leave unused), their peaks, and the series."""

    def __init__(self, reserved: dict[str, int], series: bool, timeline: Timeline | None) -> None:
        self.reserved = dict(reserved)
        self.in_use = 0
        # seats in use per charged project (None: no project), as the engine charges them
        self.usage: dict[str | None, int] = {}
        self.peak = 0
        self.needed = 0
        self.needed_at: float | None = None
        self.points: list[tuple[float, int]] | None = [] if series else None
        self.timeline = timeline

    def _charge(self, project: str | None, delta: int) -> None:
        self.usage[project] = self.usage.get(project, 0) + delta

    def event(self, t: float, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "grant":
            self._charge(event.get("seat_project"), +1)
        elif kind == "recharge":
            self._charge(event.get("previous_project"), -1)
            self._charge(event.get("seat_project"), +1)
        elif ends_session(event) and event.get("in_use", self.in_use) < self.in_use:
            self._charge(event.get("seat_project"), -1)  # its seat was freed
        else:
            return  # a share, a refresh, a detach that keeps the seat: the levels stay
        self.in_use = event.get("in_use", self.in_use)
        self.measure(t)

    def set_reserved(self, t: float, project: str, count: int) -> None:
        if count:
            self.reserved[project] = count
        else:
            self.reserved.pop(project, None)
        self.measure(t)

    def measure(self, t: float) -> None:
        """Take the levels at ``t`` into the peaks, the series and the timeline."""
        in_use = self.in_use
        level = shared_used(self.usage, self.reserved) + sum(self.reserved.values()) if self.reserved else in_use
        if in_use > self.peak:
            self.peak = in_use
        if level > self.needed:
            self.needed, self.needed_at = level, t
        points = self.points
        if points is not None and (points[-1][1] if points else 0) != in_use:
            points.append((t, in_use))
        if self.timeline is not None:
            self.timeline.level(t, in_use)


class Lane:
    """One product rule and feature (of one pool, for a journal) replayed twice: the demand, with
    unlimited seats, and the denials at ``capacity`` (no second run without a capacity)."""

    def __init__(self, clock: Callable[[], float], pool: str | None, product: str, feature: str,
                 capacity: int | None, options: dict[str, str], reserved: dict[str, int],
                 series: bool = False, chart: bool = False, follows_journal: bool = False,
                 since: float | None = None, keep: Listener | None = None) -> None:
        self.pool = pool
        self.product = product
        self.feature = feature
        # the capacity is the pool's own issued seats as the journal changes them
        self.follows_journal = follows_journal
        # why the rule refused a row (with --compare the lane is then left out), None while it accepts the log
        self.refused: str | None = None
        self.timeline = Timeline(since) if chart else None  # since: the log's start, so lanes share one axis
        self.demand = Demand(reserved, series, self.timeline)
        self.unlimited = Run(clock, product, feature, UNLIMITED, options, reserved, self.demand.event)
        # keep: where the limited run's journal goes (simulate --keep-state, lictools.simulation.keep)
        self.limited = Run(clock, product, feature, capacity, options, reserved, keep,
                           journal_denials=keep is not None) if capacity is not None else None
        self.requests = 0

    def start(self, event: ClientEvent, session: str, lease: int) -> None:
        """Raises the rule's UsageError / NotFoundError when it refuses the request."""
        outcome = self.unlimited.start(event, session, lease)
        if outcome is not None and not outcome.retry:
            self.requests += 1
        if self.limited is not None:
            refused = self.limited.denials
            self.limited.start(event, session, lease)
            if self.timeline is not None and self.limited.denials > refused:
                self.timeline.deny(event.t)

    def stop(self, session: str, detach: bool = False) -> bool:
        """A ``stop`` (or ``detach``) of ``session``; False when it was not running in the demand run."""
        matched = self.unlimited.detach(session) if detach else self.unlimited.stop(session)
        if self.limited is not None:
            if detach:
                self.limited.detach(session)
            else:
                self.limited.stop(session)
        return matched

    def runs(self) -> list[Run]:
        return [self.unlimited] if self.limited is None else [self.unlimited, self.limited]

    def reattach(self, session: str) -> None:
        for run in self.runs():
            run.reattach(session)

    def reserve(self, t: float, project: str, count: int) -> None:
        """A journal's reservation change, from ``t`` on."""
        for run in self.runs():
            run.reserve(project, count)
        self.demand.set_reserved(t, project, count)

    def set_options(self, options: dict[str, str]) -> None:
        for run in self.runs():
            run.set_options(options)

    def sweep(self) -> None:
        """Forget refused sessions that ended in the demand run (their stop can no longer matter)."""
        if self.limited is not None and self.limited.denied:
            self.limited.denied = {s for s in self.limited.denied if self.unlimited.live(s)}

    def finish(self) -> None:
        for run in self.runs():
            run.tick()
