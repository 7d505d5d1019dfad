"""generic: a product none of the vendor rules covers, counted like FlexNet DUP_GROUP or RLM share=.

SPEC.md section 2 (generic): "Seat key built from a configurable list of session attributes,
like FlexNet DUP_GROUP or RLM share= (for example share=user,host); the empty list means one
seat per session."
"""

from __future__ import annotations

from lictools.errors import UsageError
from lictools.model import SESSION_ATTRIBUTES, Pool, Request
from lictools.rules.base import Option, Seat, SessionView
from lictools.rules.base import no_lease_advice as lease_advice
from lictools.rules.base import no_option_warnings as option_warnings
from lictools.rules.base import no_reservation_file as parse_reservation_file
from lictools.rules.base import seat_front_end as front_end

NAME = "generic"
TITLE = "generic (lictools)"
SUMMARY = "seat key from the session attributes named by option share= (empty: one seat per session)"
FEATURES: tuple[str, ...] = ()
FEATURE_TITLES: dict[str, str] = {}
DEFAULT_LEASE = 3600
DETACH_OPTION = "linger"
DENIAL_TEXT: str | None = None

__all__ = [  # what this module provides as a rule (lictools.rules.base.Rule)
    "NAME", "TITLE", "SUMMARY", "FEATURES", "FEATURE_TITLES", "OPTIONS", "DEFAULT_LEASE", "DETACH_OPTION",
    "DENIAL_TEXT", "seat_key", "front_end", "lease_advice", "parse_reservation_file", "option_warnings",
]


def _check_share(value: str) -> str:
    attrs = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in attrs if a not in SESSION_ATTRIBUTES]
    if unknown:
        raise UsageError(f"share: unknown attribute {unknown[0]!r}; use any of {', '.join(SESSION_ATTRIBUTES)}")
    return ",".join(dict.fromkeys(attrs))


OPTIONS = {
    "share": Option(
        "",
        _check_share,
        "comma-separated session attributes whose equal values share one seat; empty = one seat per session",
    ),
}


def _escape(value: object) -> str:
    """A value with ``\\``, ``,`` and ``=`` escaped, so that different values never give one key."""
    return str(value).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def seat_key(request: Request, pool: Pool, view: SessionView) -> Seat:
    share = [a for a in pool.options.get("share", "").split(",") if a]
    if not share:
        return Seat(request.session, "share= is empty: every session takes its own seat")
    # host: the client host, this node when none was given (SPEC.md section 3)
    parts = [f"{attr}={_escape(request.client_host if attr == 'host' else getattr(request, attr))}" for attr in share]
    return Seat(",".join(parts), f"sessions with the same {', '.join(share)} share one seat (share={','.join(share)})")
