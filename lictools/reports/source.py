"""Where reports read events from: the one place that knows the journal's files.

Today that is the store's journal (``state.db``'s events table, or ``<state>.journal``); when
rotated journal files arrive they are chained here, oldest first, and every report follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lictools.stores.api import Store


def journal_events(store: Store, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """The journal events of ``store`` after ``since_seq``, oldest first, read as they are consumed
    (never all at once). ``report`` and the denial counter of ``metrics`` read through here."""
    return iter(store.read_journal(since_seq))
