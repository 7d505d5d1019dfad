"""Copy a whole state from one store into another: ``lictools migrate`` and ``simulate --keep-state``.

The source is read through one snapshot (:meth:`Store.read`: the live sessions, as ``dump`` shows
them) and written into the target in one transaction (:meth:`Store.transaction`), through the
:class:`~lictools.stores.api.Transaction` interface only, so it works between any two stores
(SQLite, JSON, memory, PostgreSQL).

Why it writes directly and not through :func:`lictools.apply.apply`: a copy is not a change of
state. Nothing is decided and nothing happens to a seat, so there is no event to journal; the
source's own journal is copied as it is, each event with its ``seq`` and its times. Rebuilding the
state by applying the journal instead would be wrong wherever the journal does not hold the whole
history, and a fake "copied" event would make the two journals differ. So this module is the one
narrow exemption from the only-apply-writes rule (tests/test_write_path.py): it lives among the
stores, which implement those writes, and only ever writes what it read.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Callable

from lictools.errors import DamagedStateError, UsageError
from lictools.stores.api import StateView, Store, Transaction


@dataclass
class Copied:
    """What a copy wrote (``lictools migrate``'s JSON output)."""

    source: str
    target: str
    pools: int = 0
    sessions: int = 0
    waiters: int = 0
    settings: int = 0
    events: int = 0
    last_seq: int = 0
    replaced: bool = False

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


def same_place(a: str, b: str) -> bool:
    """True when two ``--state`` targets name the same state (the same file, or the same URL)."""
    if "://" in a or "://" in b:
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


def contents(tx: StateView) -> str | None:
    """What ``tx`` holds, in words (``2 pool(s), 14 journal event(s)``); None for an empty state."""
    found = []
    for count, what in (
        (len(tx.list_pools()), "pool(s)"),
        (len(tx.find_sessions()), "session(s)"),
        (len(tx.get_settings()), "setting(s)"),
        (sum(1 for _ in tx.journal()), "journal event(s)"),
    ):
        if count:
            found.append(f"{count} {what}")
    return ", ".join(found) or None


def clear(tx: Transaction) -> None:
    """Empty the state of ``tx``: sessions, pools, settings and the journal."""
    for session in tx.find_sessions():
        tx.delete_session(session.id)
    for pool in tx.list_pools():
        tx.delete_pool(pool.name)
    for key in tx.get_settings():
        tx.put_setting(key, None)
    tx.clear_journal()


FORCE_HINT = "give --force to replace its whole state"


def copy_state(
    source: Store, target: Store, force: bool = False, before_replace: Callable[[StateView], None] | None = None,
    hint: str = FORCE_HINT,
) -> Copied:
    """Copy the state of ``source`` into ``target``, in one target transaction; returns the counts.

    Refused (exit 2) when both name the same state, and when ``target`` is not empty unless
    ``force``, which replaces its whole state (journal included); ``before_replace(tx)`` runs
    first then (``migrate`` checks the caller may); ``hint`` ends the refusal's message. A missing source is NotFoundError (exit 4),
    and nothing is created. A source journal not numbered 1, 2, 3 ... is DamagedStateError (exit
    6): the target numbers its events itself, so the copy could not keep their ``seq``.
    """
    if same_place(source.location, target.location):
        raise UsageError(f"the source and the target are the same state ({target.location}): nothing to copy")
    copied = Copied(source=source.location, target=target.location)
    with source.read() as view, target.transaction() as tx:
        held = contents(tx)
        if held is not None:
            if not force:
                raise UsageError(f"the target {target.location} is not empty ({held}); {hint}")
            if before_replace is not None:
                before_replace(tx)
            clear(tx)
            copied.replaced = True
        for pool in view.list_pools():
            tx.put_pool(pool)
            copied.pools += 1
            copied.waiters += len(pool.queue)
        for session in view.find_sessions():
            tx.put_session(session)
            copied.sessions += 1
        for key, value in sorted(view.get_settings().items()):
            tx.put_setting(key, value)
            copied.settings += 1
        for event in view.journal():
            seq = event.pop("seq", None)
            if seq != copied.events + 1:
                raise DamagedStateError(
                    f"the journal of {source.location} has event seq {seq} where {copied.events + 1} was due; "
                    "a copy would renumber it, so nothing was copied")
            tx.append_event(event)
            copied.events += 1
        copied.last_seq = copied.events
    return copied
