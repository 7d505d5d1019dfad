"""The usage fold: one pass over journal events (oldest first) into the ``report`` rows.

This is a usage statistic, not a second engine: it keeps only what the numbers need.

- **Seats in use** per pool feature come from each event's ``in_use`` (the count right after the
  event, written by the engine), so no rule is re-run. A ``recharge`` (journal version 2) moves a
  held seat's charge to another project. An event that ends a session (``release``, ``expire``,
  ``remove``, a ``detach`` with ``linger`` 0 or, before journal version 1, without ``expires``)
  and lowers ``in_use`` freed its ``seat``.
  An ``expire`` is journaled by the reap at the start of the next command, which may come hours
  later: the seat is freed at the lease's end (the ``expires`` of the session's last grant, share,
  refresh or detach, to the second), so the fold keeps each live session's lease end.
- **Who holds a seat**: a seat is charged to the session that opened it (the ``grant``): its user,
  its host, and its ``seat_project`` (the engine's own charging, which reservations count). A
  session that joins the seat later (``share``) costs no seat and is charged nothing. So the seats
  of the groups of ``--by user|host|project`` add up to the pool's seats, and a group's peak is the
  most seats it had opened at once. The fold keeps a map of live seats to their opener and of
  live sessions to their lease end, nothing else about sessions.
- **Requests** (``grants``, ``shares``, ``denials``) are counted for the group of the session that
  asked. A **true denial** is a denial after which the same user got no seat (``grant`` or
  ``share``) in the same pool and feature within ``retry_window`` seconds (OpenLM's "true
  denials"); grants after ``until`` still count for denials near its end, and a denial whose
  window runs past the last event counts as true.
- **Time**: seats held at ``since`` count from ``since``, seats still held at ``until`` count to
  ``until``. ``seat_hours`` is the integral of seats in use; ``utilisation`` is that over the
  integral of issued seats; ``reserved_unused_hours`` integrates, per project, the reserved seats
  it did not hold (``max(0, reserved - seats charged to it)``). ``issued`` is the most seats issued
  at any time in the row's period. Buckets (``--by hour|day|week|month``) are UTC periods clipped
  to the window.

Memory is bounded by the pools, features, groups, buckets and live seats, never by the number of
events: the fold reads each event once and keeps none. Events arrive as dicts from any iterable
(:func:`lictools.reports.source.journal_events` is the one place that reads the journal).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from lictools.events import ends_session
from lictools.reports.periods import TIME_UNITS, bucket_end, bucket_start
from lictools.timeutil import iso

GROUP_UNITS = ("user", "host", "project")
BY_CHOICES = (*TIME_UNITS, *GROUP_UNITS, "feature")
COLUMNS = ["pool", "feature", "group", "peak", "peak_at", "seat_hours", "grants", "shares", "denials",
           "true_denials", "policy_denials", "issued", "utilisation", "reserved_unused_hours", "since", "until"]
"""The ``report`` JSON keys, in order (SPEC.md section 3, then the row's own period)."""

_OWNER_INDEX = {"user": 0, "host": 1, "project": 2}
SWEEP_INTERVAL = 3600.0
"""Journal seconds between sweeps of the pending denials: a denial is judged by its own time whenever
it is swept, so this only bounds memory (to about an hour of denials)."""
_ENDS = frozenset(("release", "expire", "remove"))


class Row:
    """The numbers of one report row over one period."""

    __slots__ = ("since", "until", "peak", "peak_at", "seat_seconds", "issued_seconds", "issued_max",
                 "unused_seconds", "grants", "shares", "denials", "true_denials", "policy_denials")

    def __init__(self, since: float, until: float, in_use: int, issued: int) -> None:
        self.since = since
        self.until = until
        self.peak = in_use
        self.peak_at = since if in_use > 0 else None
        self.seat_seconds = self.issued_seconds = self.unused_seconds = 0.0
        self.issued_max = issued
        self.grants = self.shares = self.denials = self.true_denials = self.policy_denials = 0

    def active(self) -> bool:
        return bool(self.peak or self.issued_max or self.grants or self.shares or self.denials
                    or self.unused_seconds)


class Line:
    """Something whose seats in use move over time: a pool feature, a feature over all pools, or
    a group's seats in one pool feature; it integrates its levels into its row(s)."""

    __slots__ = ("window", "unit", "in_use", "issued", "unused", "t", "row", "rows", "parent", "series")

    def __init__(self, window: Window, t: float, unit: str | None = None, parent: Line | None = None) -> None:
        self.window = window
        self.unit = unit
        self.in_use = self.issued = self.unused = 0
        self.t = window.since
        self.row: Row | None = None
        self.rows: list[Row] = []
        self.parent = parent
        self.series: Series | None = None
        if window.open:
            self.start(t)

    def start(self, t: float) -> None:
        """Open the first row at ``t`` (the window's start, or when the line first appears in it)."""
        self.t = t
        since = max(self.window.since, bucket_start(t, self.unit)) if self.unit else self.window.since
        self._new_row(since)

    def _new_row(self, since: float) -> Row:
        until = self.window.until
        if self.unit:
            until = min(until, bucket_end(bucket_start(since, self.unit), self.unit))
        row = self.row = Row(since, until, self.in_use, self.issued)
        self.rows.append(row)
        return row

    @property
    def current(self) -> Row:
        """The row being filled (once the window is open)."""
        assert self.row is not None, "the report window is not open yet"
        return self.row

    def advance(self, t: float) -> None:
        """Integrate the levels from the last change up to ``t`` (crossing bucket ends); a ``t``
        before the last change means the last change's time."""
        row = self.row
        if row is None or t <= self.t:
            return
        while self.unit and t >= row.until and row.until < self.window.until:
            self._accrue(row, row.until)
            row = self._new_row(row.until)
        self._accrue(row, t)

    def _accrue(self, row: Row, t: float) -> None:
        """Add the levels held from the last change to ``t`` (not before it) to ``row``."""
        dt = t - self.t
        row.seat_seconds += self.in_use * dt
        row.issued_seconds += self.issued * dt
        row.unused_seconds += self.unused * dt
        self.t = t

    def add(self, t: float, delta: int) -> None:
        """One seat more (+1) or fewer (-1) from ``t`` on: the lean path of a group's line."""
        self.advance(t)
        self.in_use += delta
        row = self.row
        if row is not None and self.in_use > row.peak:
            row.peak, row.peak_at = self.in_use, self.t

    def change(self, t: float, in_use: int | None = None, issued: int | None = None, unused: int | None = None) -> None:
        """New levels from ``t`` on (None: unchanged); a parent line (a feature over all pools) moves
        by the same amounts."""
        in_use = self.in_use if in_use is None else in_use
        issued = self.issued if issued is None else issued
        unused = self.unused if unused is None else unused
        if in_use == self.in_use and issued == self.issued and unused == self.unused:
            return
        t = max(t, self.t)
        parent = self.parent
        if parent is not None:
            parent.change(t, parent.in_use + in_use - self.in_use, parent.issued + issued - self.issued,
                          parent.unused + unused - self.unused)
        self.advance(t)
        self.in_use, self.issued, self.unused = in_use, issued, unused
        row = self.row
        if row is not None:
            if in_use > row.peak:
                row.peak, row.peak_at = in_use, t
            if issued > row.issued_max:
                row.issued_max = issued
        if self.series is not None:
            self.series.level(t, in_use, issued)


class Series:
    """Seats in use over the window in ``slots`` equal slots: per slot the peak in use, the most
    seats issued and the denials (what the charts draw; bounded whatever the number of events)."""

    __slots__ = ("since", "width", "peaks", "issued", "denials", "slot", "last")

    def __init__(self, since: float, until: float, slots: int, in_use: int, issued: int) -> None:
        self.since = since
        self.width = max(until - since, 1e-9) / slots
        self.peaks = [in_use] + [0] * (slots - 1)
        self.issued = [issued] + [0] * (slots - 1)
        self.denials = [0] * slots
        self.slot = 0
        self.last = (in_use, issued)

    def _slot(self, t: float) -> int:
        slot = int((t - self.since) / self.width)
        return slot if 0 <= slot < len(self.peaks) else (0 if slot < 0 else len(self.peaks) - 1)

    def level(self, t: float, in_use: int, issued: int) -> None:
        """The levels changed at ``t``; the slots since the last change keep the level that held."""
        slot = self._slot(t)
        if slot > self.slot:
            held_in_use, held_issued = self.last
            for s in range(self.slot + 1, slot + 1):
                self.peaks[s], self.issued[s] = held_in_use, held_issued
            self.slot = slot
        if in_use > self.peaks[slot]:
            self.peaks[slot] = in_use
        if issued > self.issued[slot]:
            self.issued[slot] = issued
        self.last = (in_use, issued)

    def deny(self, t: float) -> None:
        self.denials[self._slot(t)] += 1

    def points(self) -> list[tuple[float, int, int, int]]:
        """``(slot start, peak seats in use, issued, denials)`` for every slot."""
        return [(self.since + i * self.width, p, n, d)
                for i, (p, n, d) in enumerate(zip(self.peaks, self.issued, self.denials))]


class Window:
    """The report period and whether the fold has reached it yet."""

    __slots__ = ("since", "until", "open")

    def __init__(self, since: float, until: float) -> None:
        self.since, self.until = since, until
        self.open = False


class UsageFold:
    """Fold journal events into report rows; see the module docstring for what each number means.

    ``by``: one of :data:`BY_CHOICES` or None (one row per pool feature); ``dims``: group kinds
    (``user``, ``host``, ``project``) to track besides ``by`` (the HTML report's top users and
    hosts); ``slots``: when above 0, keep a :class:`Series` per pool feature for the charts.
    """

    def __init__(
        self,
        since: float,
        until: float,
        by: str | None = None,
        pool: str | None = None,
        feature: str | None = None,
        retry_window: float = 300.0,
        dims: Iterable[str] = (),
        slots: int = 0,
    ) -> None:
        if by is not None and by not in BY_CHOICES:
            raise ValueError(f"unknown --by {by!r}")
        self.window = Window(since, until)
        self.by = by
        self.pool = pool
        self.feature = feature
        self.retry_window = retry_window
        self.dims = tuple(dict.fromkeys(([by] if by in GROUP_UNITS else []) + list(dims)))
        self.slots = slots
        self.events = 0
        # (pool, feature) -> Line, and what the fold keeps per pool feature
        self.lines: dict[tuple[str, str], Line] = {}
        # (pool, feature) -> live seat -> (opener's (user, host, seat project), the opener's group lines)
        self.seats: dict[tuple[str, str], dict[str, tuple[tuple[Any, Any, Any], tuple[Line, ...]]]] = {}
        self.reserved: dict[tuple[str, str], dict[str, int]] = {}
        self.held: dict[tuple[str, str], dict[Any, int]] = {}
        # (dim, pool, feature, group) -> Line; feature -> Line (--by feature)
        self.groups: dict[tuple[str, str, str, Any], Line] = {}
        self.features: dict[str, Line] = {}
        # (pool, feature, user) -> [(deny time, rows to charge if it turns out true)]
        self.pending: dict[tuple[str, str, Any], list[tuple[float, list[Row]]]] = {}
        self.swept = since
        # live session -> when its lease ends (ISO text, as journaled): an ``expire`` journaled by a
        # later command's reap frees the seat from then, not from the reap
        self.lease_ends: dict[str, str] = {}
        self.t = 0.0  # the fold's clock: the latest event time seen

    # ------------------------------------------------------------------ lines
    def _line(self, key: tuple[str, str], t: float) -> Line:
        """The line of one pool feature (created when the journal first names it)."""
        line = self.lines.get(key)
        if line is None:
            parent = None
            if self.by == "feature":
                parent = self.features.get(key[1])
                if parent is None:
                    parent = self.features[key[1]] = Line(self.window, t)
            line = self.lines[key] = Line(self.window, t, self.by if self.by in TIME_UNITS else None, parent)
            self.seats[key] = {}
            if self.slots and self.window.open:
                line.series = Series(self.window.since, self.window.until, self.slots, 0, 0)
        return line

    def _group(self, dim: str, key: tuple[str, str], group: Any, t: float) -> Line:
        gkey = (dim, key[0], key[1], group)
        line = self.groups.get(gkey)
        if line is None:
            line = self.groups[gkey] = Line(self.window, t)
        return line

    def _open(self) -> None:
        """The fold reached ``since``: every line starts its row with the seats it holds now."""
        w = self.window
        w.open = True
        for line in (*self.features.values(), *self.lines.values(), *self.groups.values()):
            line.start(w.since)
        if self.slots:
            for line in self.lines.values():
                line.series = Series(w.since, w.until, self.slots, line.in_use, line.issued)

    # ------------------------------------------------------------------ reservations
    def _reservation_levels(self, t: float, key: tuple[str, str]) -> None:
        """Reserved seats not held by their project, for the pool feature and each project group."""
        reserved = self.reserved[key]
        held = self.held[key]
        unused = {p: max(0, r - held.get(p, 0)) for p, r in reserved.items()}
        self.lines[key].change(t, unused=sum(unused.values()))
        if "project" in self.dims:
            for project in set(held) | set(reserved):
                self._group("project", key, project, t).change(t, unused=unused.get(project, 0))

    def _charge(self, t: float, key: tuple[str, str], holder: tuple[tuple[Any, Any, Any], tuple[Line, ...]],
                delta: int) -> None:
        """A seat opened (+1) or freed (-1) by ``holder`` = (its opener, the opener's group lines)."""
        owner, groups = holder
        for group in groups:
            group.add(t, delta)
        held = self.held.get(key)
        if held is not None:
            held[owner[2]] = held.get(owner[2], 0) + delta
            self._reservation_levels(t, key)

    # ------------------------------------------------------------------ true denials
    def _resolve(self, key: tuple[str, str, Any], t: float) -> None:
        """The user got a seat at ``t``: their denials within the retry window were not true ones."""
        for denied_at, rows in self.pending.pop(key, ()):
            if t - denied_at > self.retry_window:
                for row in rows:
                    row.true_denials += 1

    def _sweep(self, t: float) -> None:
        """Count as true every pending denial whose retry window ended before ``t`` (keeps ``pending`` small)."""
        self.swept = t
        for key in list(self.pending):
            waiting = []
            for denied_at, rows in self.pending[key]:
                if t - denied_at > self.retry_window:
                    for row in rows:
                        row.true_denials += 1
                else:
                    waiting.append((denied_at, rows))
            if waiting:
                self.pending[key] = waiting
            else:
                del self.pending[key]

    # ------------------------------------------------------------------ the fold
    def feed(self, events: Iterable[dict[str, Any]]) -> UsageFold:
        """Fold ``events`` (oldest first); can be called again with the events that follow."""
        window = self.window
        since, until = window.since, window.until
        last = until + self.retry_window
        pool_filter, feature_filter = self.pool, self.feature
        lease_ends = self.lease_ends
        t = self.t
        count = 0
        for event in events:
            count += 1
            if pool_filter is not None and event.get("pool") != pool_filter:
                continue
            if feature_filter is not None and event.get("feature", feature_filter) != feature_filter:
                continue
            kind = event["event"]
            if kind == "refresh":  # the most frequent event: it only moves the lease's end
                if "expires" in event:
                    lease_ends[event["session"]] = event["expires"]
                continue
            ts = event["ts"]
            if ts > t:  # a clock that stepped back does not move the fold back
                t = ts
            if t > until:
                if t > last:
                    break
                if kind == "grant" or kind == "share":
                    self._resolve((event["pool"], event["feature"], event.get("user")), t)
                continue
            if not window.open and t >= since:
                self._open()
            if self.pending and t - self.swept > SWEEP_INTERVAL:
                self._sweep(t)
            if kind == "grant":
                self._grant(event, t)
            elif kind in _ENDS or (kind == "detach" and ends_session(event)):
                self._end(event, t)
            elif kind == "deny":
                self._deny(event, t)
            elif kind == "share":
                self._share(event, t)
            elif kind == "detach":
                if event.get("expires"):
                    lease_ends[event["session"]] = event["expires"]
            elif kind == "recharge":
                self._recharge(event, t)
            elif kind == "pool-add":
                for feature, issued in (event.get("issued") or {}).items():
                    if feature_filter is None or feature == feature_filter:
                        self._line((event["pool"], feature), t).change(t, issued=issued)
            elif kind == "license-add" or kind == "license-remove":
                self._line((event["pool"], event["feature"]), t).change(t, issued=event["issued"])
            elif kind == "reserve":
                self._reserve(event, t)
            elif kind == "pool-remove":
                self._pool_removed(event["pool"], t)
        self.t = t
        self.events += count
        return self

    def _rows_of(self, key: tuple[str, str], line: Line, who: tuple[Any, Any, Any], t: float) -> list[Row]:
        """The rows a request counts in: its pool feature's (or feature's) and its groups' of ``who``
        = (user, host, project)."""
        rows = [(line.parent or line).current]
        for dim in self.dims:
            rows.append(self._group(dim, key, who[_OWNER_INDEX[dim]], t).current)
        return rows

    def _grant(self, event: dict[str, Any], t: float) -> None:
        key = (event["pool"], event["feature"])
        line = self.lines.get(key) or self._line(key, t)
        owner = (event.get("user"), event.get("host"), event.get("seat_project"))
        groups = tuple(self._group(dim, key, owner[_OWNER_INDEX[dim]], t) for dim in self.dims)
        holder = self.seats[key][event["seat"]] = (owner, groups)
        if "expires" in event:
            self.lease_ends[event["session"]] = event["expires"]
        line.change(t, in_use=event.get("in_use", line.in_use + 1))
        if groups or key in self.held:
            self._charge(t, key, holder, +1)
        if self.window.open:
            if line.unit:
                line.advance(t)  # a grant that opened no seat (in use unchanged) still counts in ``t``'s bucket
            (line.parent or line).current.grants += 1
            for group in groups:
                group.current.grants += 1
        if self.pending:
            self._resolve((key[0], key[1], owner[0]), t)

    def _end(self, event: dict[str, Any], t: float) -> None:
        """A session ended; when it was the seat's last (``in_use`` fell), the seat is freed.

        An ``expire`` frees it when the lease ended, if that was before the event: a reap runs at
        the start of the next command, so nothing else happened to the seats in between."""
        key = (event["pool"], event["feature"])
        line = self.lines.get(key) or self._line(key, t)
        lease_end = self.lease_ends.pop(event.get("session", ""), None)
        in_use = event.get("in_use")
        if in_use is None or in_use >= line.in_use:
            return  # the session's seat is still held by others
        if event["event"] == "expire" and lease_end is not None:
            t = min(t, datetime.fromisoformat(lease_end).timestamp())  # journaled by iso(): always ISO
        holder = self.seats[key].pop(event.get("seat", ""), None)
        line.change(t, in_use=in_use)
        if holder is not None and (holder[1] or key in self.held):
            self._charge(t, key, holder, -1)

    def _deny(self, event: dict[str, Any], t: float) -> None:
        key = (event["pool"], event["feature"])
        line = self.lines.get(key) or self._line(key, t)
        if not self.window.open:
            return
        if line.unit:
            line.advance(t)  # into the bucket of ``t``
        rows = self._rows_of(key, line, (event.get("user"), event.get("host"), event.get("project")), t)
        by_policy = event.get("policy") is not None  # refused by a pool policy, not for want of a seat
        for row in rows:
            row.denials += 1
            row.policy_denials += by_policy
        self.pending.setdefault((key[0], key[1], event.get("user")), []).append((t, rows))
        if line.series is not None:
            line.series.deny(t)

    def _share(self, event: dict[str, Any], t: float) -> None:
        key = (event["pool"], event["feature"])
        line = self.lines.get(key) or self._line(key, t)
        if "expires" in event:
            self.lease_ends[event["session"]] = event["expires"]
        if self.window.open:
            if line.unit:
                line.advance(t)  # into the bucket of ``t``
            who = (event.get("user"), event.get("host"), event.get("project"))
            for row in self._rows_of(key, line, who, t):
                row.shares += 1
        if self.pending:
            self._resolve((key[0], key[1], event.get("user")), t)

    def _recharge(self, event: dict[str, Any], t: float) -> None:
        """A held seat is charged to another project from now on (journal version 2): its last
        session of the charged project ended while other projects' sessions still hold it."""
        key = (event["pool"], event["feature"])
        seats = self.seats.get(key, {})
        holder = seats.get(event["seat"])
        if holder is None:
            return
        (user, host, _), groups = holder
        self._charge(t, key, holder, -1)
        owner = (user, host, event.get("seat_project"))
        groups = tuple(self._group(dim, key, owner[2], t) if dim == "project" else line
                       for dim, line in zip(self.dims, groups))
        seats[event["seat"]] = holder = (owner, groups)
        self._charge(t, key, holder, +1)

    def _reserve(self, event: dict[str, Any], t: float) -> None:
        key = (event["pool"], event["feature"])
        self._line(key, t)
        reserved = self.reserved.setdefault(key, {})
        if event.get("count"):
            reserved[event["project"]] = event["count"]
        else:
            reserved.pop(event["project"], None)
        if key not in self.held:  # the first reservation: count the seats each project holds now
            held = self.held[key] = {}
            for owner, _ in self.seats[key].values():
                held[owner[2]] = held.get(owner[2], 0) + 1
        self._reservation_levels(t, key)

    def _pool_removed(self, pool: str, t: float) -> None:
        for key, line in self.lines.items():
            if key[0] != pool:
                continue
            for holder in self.seats[key].values():
                self._charge(t, key, holder, -1)
            self.seats[key].clear()
            if key in self.reserved:
                self.reserved[key].clear()
                self._reservation_levels(t, key)
            line.change(t, in_use=0)
            line.change(t, issued=0)

    # ------------------------------------------------------------------ results
    def finish(self) -> UsageFold:
        """Close the window: seats still held count to ``until``; pending denials are true."""
        w = self.window
        if not w.open:
            self._open()
        for line in (*self.features.values(), *self.lines.values(), *self.groups.values()):
            line.advance(w.until)
            if line.series is not None:
                line.series.level(w.until, line.in_use, line.issued)
        self._sweep(float("inf"))
        return self

    def rows(self) -> list[dict[str, Any]]:
        """The report rows (the ``report`` JSON shape), sorted by pool, feature and group."""
        if self.by in GROUP_UNITS:
            return self.group_rows(self.by)
        out: list[dict[str, Any]] = []
        if self.by == "feature":
            for feature, line in sorted(self.features.items()):
                out.extend(_doc(None, feature, feature, row, row) for row in line.rows if row.active())
            return out
        for (pool, feature), line in sorted(self.lines.items()):
            for row in line.rows:
                if row.active():
                    group = iso(bucket_start(row.since, self.by)) if self.by else None  # the calendar period
                    out.append(_doc(pool, feature, group, row, row))
        return out

    def charts(self) -> list[tuple[dict[str, Any], list[tuple[float, int, int, int]]]]:
        """Per pool feature with a series: its whole-window row and its series points (for the pictures)."""
        out = []
        for (pool, feature), line in sorted(self.lines.items()):
            whole = _whole(line)
            if line.series is not None and whole.active():
                out.append((_doc(pool, feature, None, whole, whole), line.series.points()))
        return out

    def group_rows(self, dim: str) -> list[dict[str, Any]]:
        """One row per pool feature and group of ``dim``; issued and utilisation against the pool
        feature's issued seats over the whole window."""
        out = []
        for (d, pool, feature, group), line in self.groups.items():
            row = line.row
            if d == dim and row is not None and row.active():
                doc = _doc(pool, feature, group, row, _whole(self.lines[(pool, feature)]))
                if dim != "project":
                    doc["reserved_unused_hours"] = None
                out.append(doc)
        out.sort(key=lambda r: (r["pool"], r["feature"], r["group"] is not None, str(r["group"])))
        return out


def _whole(line: Line) -> Row:
    """A line's rows over the whole window as one row (its buckets added up)."""
    if len(line.rows) == 1:
        return line.rows[0]
    whole = Row(line.window.since, line.window.until, 0, 0)
    for row in line.rows:
        if row.peak > whole.peak:
            whole.peak, whole.peak_at = row.peak, row.peak_at
        whole.issued_max = max(whole.issued_max, row.issued_max)
        for name in ("seat_seconds", "issued_seconds", "unused_seconds", "grants", "shares", "denials",
                     "true_denials", "policy_denials"):
            setattr(whole, name, getattr(whole, name) + getattr(row, name))
    return whole


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 4)


def _doc(pool: str | None, feature: str, group: Any, row: Row, capacity: Row) -> dict[str, Any]:
    """A report row; ``capacity`` is the row whose issued seats the utilisation is measured against."""
    issued_seconds = capacity.issued_seconds
    return {
        "pool": pool,
        "feature": feature,
        "group": group,
        "peak": row.peak,
        "peak_at": iso(row.peak_at) if row.peak else None,
        "seat_hours": _hours(row.seat_seconds),
        "grants": row.grants,
        "shares": row.shares,
        "denials": row.denials,
        "true_denials": row.true_denials,
        "policy_denials": row.policy_denials,
        "issued": capacity.issued_max,
        "utilisation": round(row.seat_seconds / issued_seconds, 4) if issued_seconds > 0 else None,
        "reserved_unused_hours": _hours(row.unused_seconds),
        "since": iso(row.since),
        "until": iso(row.until),
    }


def usage_report(events: Iterable[dict[str, Any]], since: float, until: float, **options: Any) -> UsageFold:
    """Fold ``events`` over ``[since, until]`` and close the window (options as :class:`UsageFold`)."""
    return UsageFold(since, until, **options).feed(events).finish()
