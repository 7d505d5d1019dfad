"""Journal events as JSON text: one compact line per event, read back at C speed.

Reports read every event of the journal, so decoding is most of their time: ``raw_decode`` is
``json.loads`` without its two whitespace regex passes and wrappers (about 30% faster per event).
Like every read of the state (lictools.stores.schema), a line holding NaN or Infinity, or nested
absurdly deep, is refused.
"""

from __future__ import annotations

import json
from typing import Any

def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number a journal holds")


_decoder = json.JSONDecoder(parse_constant=_no_constants)


def encode_event(event: dict[str, Any]) -> str:
    """One event as a compact JSON line (no newline)."""
    return json.dumps(event, separators=(",", ":"))


def decode_event(text: str) -> dict[str, Any]:
    """An event from its JSON text; ValueError when the text is not one JSON object."""
    try:
        try:
            event, end = _decoder.raw_decode(text)
        except ValueError:
            event, end = _decoder.decode(text), len(text)  # leading whitespace; raises for damaged text
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if end != len(text) and text[end:].strip():
        raise ValueError(f"extra data after the event at character {end}")
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    return event
