"""A log of client starts and stops (``simulate EVENTS.csv``): its columns, and the streaming reader.

The log is a CSV file with a header row; any subset of :data:`COLUMNS` in any order (``time`` and
``event`` required). An empty cell means "not given", as when the option is left out of
``acquire``. Rows are read one at a time and must be in time order; a bad row is exit 2 naming
the row and the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from lictools import validate
from lictools.errors import UsageError

COLUMNS = ("time", "event", "session", "feature", "user", "host", "node", "terminal", "app", "project", "client",
           "parent", "monitor")
"""The columns a log may have (``time`` and ``event`` are required)."""

KINDS = ("start", "stop", "detach")
"""What a row says happened: a client started, stopped, or its user agent went away."""

_TEXT_COLUMNS = ("user", "host", "node", "app", "client", "monitor")
_NAME_COLUMNS = ("session", "feature", "project", "parent")


class ClientEvent(NamedTuple):
    """One thing a client did at ``t``; attributes None when not given.

    ``kind`` is ``start``, ``stop``, ``detach``, or (from a journal) ``reattach``: a retried acquire
    of a detached session. ``where`` names the row for messages; ``pool`` is the journal's pool (None
    for a CSV log).
    """

    t: float
    kind: str
    session: str | None
    feature: str | None
    where: str
    user: str | None = None
    host: str | None = None
    node: str | None = None
    terminal: bool = False
    app: str | None = None
    project: str | None = None
    client: str | None = None
    parent: str | None = None
    monitor: str | None = None
    pool: str | None = None


class BadRow(UsageError):
    """A row of the log that cannot be read (exit 2): the message names the row and the column."""


def check_header(header: list[str], name: str) -> list[str]:
    """The column names of a header row; exit 2 naming unknown, repeated or missing columns."""
    columns = [cell.strip().lower() for cell in header]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(c[:40]) for c in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UsageError(f"{name}: unknown column(s) {shown}; a log has the columns {', '.join(COLUMNS)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UsageError(f"{name}: column(s) {', '.join(repeated)} appear more than once in the header")
    missing = [c for c in ("time", "event") if c not in columns]
    if missing:
        raise UsageError(f"{name}: the header has no {' and no '.join(missing)} column (every row needs both)")
    return columns


def read_log(lines: Iterable[str], name: str) -> Iterator[ClientEvent]:
    """The events of a CSV log, one row at a time (nothing is kept but the previous row's time)."""
    import csv

    reader = csv.reader(iter(lines))
    try:
        header = next(reader, None)
        if header is None:
            raise UsageError(f"{name} is empty: the first row must name the columns ({', '.join(COLUMNS)})")
        columns = check_header(header, name)
        last = float("-inf")
        number = 0
        for row in reader:
            number += 1
            if not any(cell.strip() for cell in row):
                continue
            where = f"{name} row {number} (line {reader.line_num})"
            if len(row) > len(columns):
                raise BadRow(f"{where}: {len(row)} cells, but the header names {len(columns)} columns")
            event = parse_row(dict(zip(columns, row)), where)
            if event.t < last:
                raise BadRow(f"{where}, column time: {event.t:.0f} is earlier than the row before; "
                             "rows must be in time order (sort the log by time)")
            last = event.t
            yield event
    except csv.Error as exc:
        raise UsageError(f"{name} line {reader.line_num}: not a readable CSV row ({exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{name} line {reader.line_num + 1}: not UTF-8 text") from None


def parse_row(cells: dict[str, str], where: str) -> ClientEvent:
    """One row's cells (column -> text) as an event; BadRow names the first bad column."""
    from lictools.timeutil import parse_time

    def given(column: str) -> str | None:
        value = cells.get(column, "").strip()
        return value or None

    def cell(column: str) -> str | None:
        value = given(column)
        if value is None:
            return None
        try:
            if column in _NAME_COLUMNS:
                return validate.name(value, "value")
            return validate.text(value, "the value")
        except UsageError as exc:
            raise BadRow(f"{where}, column {column}: {exc.message}") from None

    text = given("time")
    if text is None:
        raise BadRow(f"{where}, column time: empty; every row needs a time (ISO 8601 or epoch seconds)")
    try:
        t = parse_time(text, repr(text[:40]))
    except UsageError as exc:
        raise BadRow(f"{where}, column time: {exc.message.split(': ', 1)[-1]}") from None
    raw = given("event")
    kind = (raw or "").lower()
    if kind not in KINDS:
        shown = repr(raw[:40]) if raw else "empty"
        raise BadRow(f"{where}, column event: {shown} is not start, stop or detach")
    session = cell("session")
    if session is None and kind != "start":
        raise BadRow(f"{where}, column session: empty; a {kind} must name the session it ends")
    terminal = False
    flag = given("terminal")
    if flag is not None:
        from lictools.rules.base import boolean

        try:
            terminal = boolean(flag) == "yes"
        except UsageError:
            raise BadRow(f"{where}, column terminal: {flag[:40]!r} is not yes or no") from None
    return ClientEvent(
        t, kind, session, cell("feature"), where, user=cell("user"), host=cell("host"), node=cell("node"),
        terminal=terminal, app=cell("app"), project=cell("project"), client=cell("client"),
        parent=cell("parent"), monitor=cell("monitor"),
    )
