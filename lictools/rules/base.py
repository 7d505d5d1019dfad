"""What every counting rule shares: the option spec, the seat a rule picks, the common options.

A rule is a module (like a pre-commit language) with the same few names:

- ``NAME``: the product name used with ``pool add --product``;
- ``SUMMARY``: one line for ``pool add --help`` and the man page;
- ``FEATURES``: the feature names it knows; an empty tuple accepts any name (generic);
- ``OPTIONS``: pool options of its own (``dict[str, Option]``), on top of :data:`COMMON_OPTIONS`;
- ``DEFAULT_LEASE``: seconds a session lives without a refresh;
- ``DETACH_OPTION``: the pool option giving how long a detached session keeps its seat;
- ``DENIAL_TEXT``: the line printed when a seat is refused, or None for lictools' own;
- ``seat_key(request, pool, tx) -> Seat``: the seat a new session takes or joins.

The engine never names a product: it asks the module for a seat key and counts distinct keys.
"""

from __future__ import annotations

from typing import Callable

from lictools.errors import UsageError
from lictools.model import Record, fields


class Seat(Record):
    """The seat key a rule chose for a session, and why, in words an admin understands."""

    __slots__ = ("key", "why", "root")
    FIELDS = fields("key", "why", root=None)
    key: str
    why: str
    # the root session a child shares (Genero RUN); None for everything else
    root: str | None


class Option(Record):
    """One pool option: its default (text), how to check a value, what it means."""

    __slots__ = ("default", "check", "help")
    FIELDS = fields("default", "check", "help")
    default: str
    check: Callable[[str], str]
    help: str


def seconds(value: str) -> str:
    """A non-negative whole number of seconds, at most ten years."""
    from lictools.validate import whole_number

    return str(whole_number(value, "seconds", 315_360_000))


def boolean(value: str) -> str:
    """``yes``/``no`` (also true/false, on/off, 1/0), kept as ``yes`` or ``no``."""
    low = value.lower()
    if low in ("yes", "true", "on", "1"):
        return "yes"
    if low in ("no", "false", "off", "0"):
        return "no"
    raise UsageError(f"{value!r} is not yes or no")


def choice(*allowed: str) -> Callable[[str], str]:
    """A checker accepting exactly one of ``allowed``."""

    def check(value: str) -> str:
        if value not in allowed:
            raise UsageError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


COMMON_OPTIONS: dict[str, Option] = {
    "lease": Option(
        "", seconds, "seconds a session lives without a refresh; 0 = never expires (default: the product's)"
    ),
    "linger": Option("0", seconds, "seconds a detached session keeps its seat (products without their own timeout)"),
    "check_pids": Option(
        "no", boolean, "yes: every command drops sessions on this node whose --pid is gone (as gc --check-pids)"
    ),
}
