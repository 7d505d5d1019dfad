"""Where reports read events from: the one place that knows the journal's files.

Today that is the store's journal (``state.db``'s events table, or ``<state>.journal``); when
rotated journal files arrive they are chained here, oldest first, and every report follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lictools.stores.api import Store


def journal_events(store: Store) -> Iterator[dict[str, Any]]:
    """Every journal event of ``store``, oldest first, read as it is consumed (never all at once)."""
    return iter(store.read_journal(0))
