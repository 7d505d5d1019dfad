"""Where reports read events from: the one place that knows the journal's files.

That is the store's journal: its rotated files (``<state>.journal.<first>-<last>.jsonl.gz``),
oldest first, then the live journal (``state.db``'s events table, or ``<state>.journal``). The
stores chain them (lictools.stores.rotation), so ``Store.read_journal`` and ``StateView.journal``
give the same events before and after a rotation, and every report follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lictools.stores.api import Store


def journal_events(store: Store, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """The journal events of ``store`` after ``since_seq``, oldest first, read as they are consumed
    (never all at once). ``report`` and the denial counter of ``metrics`` read through here."""
    return iter(store.read_journal(since_seq))
