"""The report window (``--since``/``--until``) and its time buckets (``--by hour|day|week|month``), in UTC."""

from __future__ import annotations

import calendar
import re
import time

from lictools.errors import UsageError
from lictools.timeutil import parse_time

TIME_UNITS = ("hour", "day", "week", "month")

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: float, what: str) -> float:
    """Epoch seconds for ``--since``/``--until``: a span back from ``now`` (``7d``, ``12h``, ``30m``,
    ``2w``, ``90s``), epoch seconds, or ISO 8601 (a date alone is midnight UTC, no offset means UTC)."""
    match = _SPAN.match(text)
    if match:
        return now - float(match.group(1)) * _SPAN_SECONDS[match.group(2)]
    try:
        return parse_time(text, what)
    except UsageError:
        raise UsageError(
            f"{what}: {text!r} is neither a span back from now (7d, 12h, 30m) nor an ISO 8601 time"
        ) from None


def report_window(since: str | None, until: str | None, now: float) -> tuple[float | None, float]:
    """``--since``/``--until`` as epoch seconds: since None means the first journal event, until
    None means ``now``; exit 2 unless since is before until."""
    since_t = parse_when(since, now, "--since") if since is not None else None
    until_t = parse_when(until, now, "--until") if until is not None else now
    if since_t is not None and since_t >= until_t:
        raise UsageError(f"--since ({since}) must be before --until ({until or 'now'})")
    return since_t, until_t


def bucket_start(t: float, unit: str) -> float:
    """The start of the UTC hour, day, ISO week (Monday) or month holding ``t``."""
    if unit == "hour":
        return t - t % 3600
    day = t - t % 86400
    if unit == "day":
        return day
    if unit == "week":
        return day - time.gmtime(day).tm_wday * 86400
    if unit == "month":
        g = time.gmtime(t)
        return float(calendar.timegm((g.tm_year, g.tm_mon, 1, 0, 0, 0)))
    raise ValueError(f"unknown time unit {unit!r}")


def bucket_end(start: float, unit: str) -> float:
    """The start of the bucket after the one starting at ``start``."""
    if unit == "hour":
        return start + 3600
    if unit == "day":
        return start + 86400
    if unit == "week":
        return start + 7 * 86400
    g = time.gmtime(start)
    year, month = (g.tm_year + 1, 1) if g.tm_mon == 12 else (g.tm_year, g.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))
