"""The clock and ISO 8601 time text used everywhere in output and options."""

from __future__ import annotations

import os
import time
from typing import Callable

from lictools.errors import UsageError


PIN_ENV = "LICTOOLS_NOW"
"""Pins the clock (epoch seconds or ISO 8601) for tests and demos; see :func:`state_clock`."""


def pinned() -> float | None:
    """The time ``LICTOOLS_NOW`` pins, or None when it is not set."""
    text = os.environ.get(PIN_ENV)
    return parse_time(text, PIN_ENV) if text else None


def state_clock(owner_uid: Callable[[], int | None], location: str) -> float:
    """The time of a command on the state at ``location``: the system clock, or a pin its owner set.

    ``owner_uid`` is asked only when the clock is pinned (for a file store it stats the folder,
    which an unpinned command, a login hook's, need not pay).

    A shared state takes its time from the system clock: a pinned clock dates every event and
    decides every expiry, so a pin from any account would let it reap everybody's sessions. Only
    root and the state's owner (an admin by right, who may remove any session anyway) may pin
    it; anybody else gets exit 7.
    """
    at = pinned()
    if at is None:
        return time.time()
    uid = os.geteuid()
    if uid != 0 and uid != owner_uid():
        from lictools.errors import ForbiddenError

        raise ForbiddenError(
            f"{PIN_ENV} pins the clock, which only root and the owner of state {location} may do; unset it"
        )
    return at


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
