"""What every counting rule provides (:class:`Rule`), the values it returns, and the common options.

A rule is a module, like a pre-commit language: the same few names in every product's module, and
one registry (:mod:`lictools.rules`) naming them all. A new product is one new module. mypy checks
each module against :class:`Rule` (``lictools/rules/__init__.py``).

A rule knows one product: how it keys seats, its features and their titles, its options, how its
front ends are listed, its denial text. It decides nothing about capacity (that is
:mod:`lictools.admission`) and changes nothing: :meth:`Rule.seat_key` is a pure function of the
request, the pool and a read-only view of the live sessions.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple, Protocol

from lictools.errors import UsageError
from lictools.model import Pool, Request, Session


class SessionView(Protocol):
    """The read-only queries a rule may make (a store transaction provides them)."""

    def get_session(self, session_id: str) -> Session | None: ...

    def find_sessions(self, **criteria: object) -> list[Session]: ...

    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int: ...


class Seat(NamedTuple):
    """The seat key a rule chose for a request, and why, in words an admin understands."""

    key: str
    why: str
    # the root session a child shares (Genero RUN); None for everything else
    root: str | None = None
    # request attributes the session takes from what it joins instead of its own (a Genero RUN child
    # takes its root's client and monitor): (name, value) pairs
    inherits: tuple[tuple[str, Any], ...] = ()


class FrontEnd(NamedTuple):
    """How the fglWrt-style listing groups a session: under which front end, its ``cx-mode``, and the
    front end's address (the ``GUI Server`` line; None: the session's client host)."""

    kind: Literal["monitor", "gui-server", "terminal", "seat"]
    id: str
    cx_mode: str | None = None
    address: str | None = None


class Option(NamedTuple):
    """One pool option: its default (text), how to check a value, what it means."""

    default: str
    check: Callable[[str], str]
    help: str


ReservationFile = tuple[dict[str, dict[str, int]], list[str]]
"""What a product's reservation file gives: project -> feature -> seats, and warnings."""


class Rule(Protocol):
    """The interface every rule module implements."""

    NAME: str
    """The product name used with ``pool add --product``."""
    TITLE: str
    """The product as its vendor names it (the ``Product`` line of ``info users``)."""
    SUMMARY: str
    """One line for help and the man page."""
    FEATURES: tuple[str, ...]
    """The feature names it knows; an empty tuple accepts any name (generic)."""
    FEATURE_TITLES: dict[str, str]
    """Feature -> the vendor's name for it (the ``Type`` line of ``info users``)."""
    OPTIONS: dict[str, Option]
    """Pool options of its own, on top of :data:`COMMON_OPTIONS`."""
    DEFAULT_LEASE: int
    """Seconds a session lives without a refresh."""
    DETACH_OPTION: str
    """The pool option giving how long a detached session keeps its seat."""
    DENIAL_TEXT: str | None
    """The line printed when a seat is refused, or None for lictools' own reason."""

    def seat_key(self, request: Request, pool: Pool, view: SessionView) -> Seat:
        """The seat a new session takes or joins. Pure; UsageError / NotFoundError refuse the request."""
        ...

    def front_end(self, session: Session) -> FrontEnd:
        """Where ``info users`` lists the session."""
        ...

    def lease_advice(self, pool: Pool) -> str | None:
        """What ``explain`` adds about refreshing (AVEVA: the refresh interval), or None."""
        ...

    def parse_reservation_file(self, data: bytes) -> ReservationFile:
        """Reservations from the product's own file (``reserve --from``); UsageError if it has none."""
        ...

    def option_warnings(self, options: dict[str, str]) -> list[str]:
        """Warnings about checked pool options that are valid but work against the product (``pool add|set``
        print them on stderr and succeed)."""
        ...


# --------------------------------------------------------------------------- defaults rules may reuse
def seat_front_end(session: Session) -> FrontEnd:
    """List every session under its seat key (products without front ends of their own)."""
    return FrontEnd("seat", session.seat)


def no_lease_advice(pool: Pool) -> str | None:
    return None


def no_option_warnings(options: dict[str, str]) -> list[str]:
    return []


def no_reservation_file(data: bytes) -> ReservationFile:
    raise UsageError("this product has no reservation file format: use 'reserve POOL PROJECT FEATURE COUNT'")


# --------------------------------------------------------------------------- option checkers
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
    "trust_claims": Option(
        "yes", boolean,
        "no: a caller who is not an admin may only acquire as their own account (--user) and below their own "
        "sessions (--parent); yes: both are taken as given",
    ),
}
