"""Checks on every name and value a user can type, so hostile input ends in exit 2, not a traceback."""

from __future__ import annotations

import re

from lictools.errors import UsageError

MAX_TEXT = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")


def name(value: str, what: str) -> str:
    """A pool, feature, project or session name: letters, digits and ``._:@+-``, up to 128 characters."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 40 else f"{str(value)[:40]}..."
        raise UsageError(
            f"{what} {shown!r} is not valid: use up to 128 letters, digits and . _ : @ + - (starting with a letter or digit)"
        )
    return value


def text(value: str, what: str) -> str:
    """A user, host, node, app or client value: printable, no control characters, up to 256 characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise UsageError(f"{what} must be 1 to {MAX_TEXT} printable characters")
    return value


def count(value: int, what: str, maximum: int = 10**9) -> int:
    """A non-negative whole number no larger than ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > maximum:
        raise UsageError(f"{what} must be a whole number from 0 to {maximum}")
    return value


def whole_number(text: str, what: str, maximum: int = 10**9) -> int:
    """``text`` as a whole number from 0 to ``maximum`` (ASCII digits only; any length refused cleanly)."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) > maximum:
        shown = text if isinstance(text, str) and len(text) <= 40 else f"{str(text)[:40]}..."
        raise UsageError(f"{what} {shown!r} is not a whole number from 0 to {maximum}")
    return int(text)
