"""The clock and ISO 8601 time text used everywhere in output and options."""

from __future__ import annotations

import os
import time

from lictools.errors import UsageError


def now() -> float:
    """Seconds since the epoch; ``LICTOOLS_NOW`` (epoch or ISO 8601) pins it for tests and simulations."""
    pinned = os.environ.get("LICTOOLS_NOW")
    if pinned:
        return parse_time(pinned, "LICTOOLS_NOW")
    return time.time()


def iso(ts: float | None) -> str | None:
    """``2026-11-22T08:00:00+00:00`` for a timestamp, None for None (a lease that never ends)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def parse_time(text: str, what: str = "time") -> float:
    """Epoch seconds from epoch digits or ISO 8601 (a date alone means midnight UTC)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= value < 253402300800:  # NaN fails too; up to year 9999
            raise UsageError(f"{what}: {text!r} is not a time between 1970 and 9999")
        return value
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is neither epoch seconds nor an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
