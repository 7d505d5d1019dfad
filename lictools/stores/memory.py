"""The state in memory: :class:`MemoryStore` for tests, replay and the simulator, and
:class:`MemoryTransaction`, the transaction over one document that the JSON file store (its writes
and its snapshots) also uses.

The document is ``{"schema": 1, "pools": {name: pool}, "sessions": {id: session}, "settings": {}}``;
every query scans it, which is fine for the few thousand sessions a JSON state is meant for.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from lictools.model import Pool, Session
from lictools.stores.api import SCHEMA_VERSION, StateView, Store, Transaction


def empty_document() -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "pools": {}, "sessions": {}, "settings": {}}


class MemoryTransaction(Transaction):
    """Reads and writes ``doc`` in place; ``events`` collects what the journal will get.

    With ``undo``, every write is recorded in an undo log so that :meth:`rollback` puts the document
    back as it was (MemoryStore); without it (a JSON file store's transaction, whose document is
    thrown away on failure, and replay's long fold) nothing is kept per write.
    """

    def __init__(self, doc: dict[str, Any], now: float, undo: bool = False) -> None:
        self.doc = doc
        self.now = now
        self.events: list[dict[str, Any]] = []
        # clear_journal was called: the store drops its journal before appending ``events``
        self.journal_cleared = False
        self.dirty = False
        self._undo: list[tuple[str, str, Any]] | None = [] if undo else None

    def _write(self, table: str, key: str, value: Any) -> None:
        """Set (or with None delete) ``doc[table][key]``, remembering the old value when undoing is on."""
        entries = self.doc.setdefault(table, {})
        if self._undo is not None:
            self._undo.append((table, key, entries.get(key)))
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
        self.dirty = True

    def rollback(self) -> None:
        """Undo every write of this transaction (its events are dropped too)."""
        if self._undo is None:
            raise RuntimeError("this memory transaction keeps no undo log")
        for table, key, old in reversed(self._undo):
            if old is None:
                self.doc[table].pop(key, None)
            else:
                self.doc[table][key] = old
        self._undo.clear()
        self.events.clear()
        self.journal_cleared = False
        self.dirty = False

    def get_pool(self, name: str) -> Pool | None:
        doc = self.doc["pools"].get(name)
        return Pool.from_doc(doc) if doc else None

    def list_pools(self) -> list[Pool]:
        return [Pool.from_doc(self.doc["pools"][name]) for name in sorted(self.doc["pools"])]

    def put_pool(self, pool: Pool) -> None:
        self._write("pools", pool.name, pool.to_doc())

    def delete_pool(self, name: str) -> None:
        self._write("pools", name, None)

    def get_session(self, session_id: str) -> Session | None:
        doc = self.doc["sessions"].get(session_id)
        return Session.from_doc(doc) if doc else None

    def put_session(self, session: Session) -> None:
        self._write("sessions", session.id, session.to_doc())

    def delete_session(self, session_id: str) -> None:
        self._write("sessions", session_id, None)

    def find_sessions(self, **criteria: Any) -> list[Session]:
        found = [
            Session.from_doc(doc)
            for doc in self.doc["sessions"].values()
            if all(doc.get(key) == value for key, value in criteria.items())
        ]
        return sorted(found, key=lambda s: (s.started, s.id))

    def expired_sessions(self, now: float) -> list[Session]:
        return [
            Session.from_doc(doc)
            for doc in self.doc["sessions"].values()
            if doc["expires"] is not None and doc["expires"] <= now
        ]

    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        return sum(
            1
            for doc in self.doc["sessions"].values()
            if doc["pool"] == pool and doc["feature"] == feature and doc["seat"] == seat
        )

    def count_sessions(self, pool: str, feature: str) -> int:
        return sum(1 for doc in self.doc["sessions"].values() if doc["pool"] == pool and doc["feature"] == feature)

    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        seats: dict[str, str | None] = {}
        for doc in self.doc["sessions"].values():
            if doc["pool"] == pool and doc["feature"] == feature:
                seats.setdefault(doc["seat"], doc.get("seat_project"))
        out: dict[str | None, int] = {}
        for project in seats.values():
            out[project] = out.get(project, 0) + 1
        return out

    def get_settings(self) -> dict[str, str]:
        return dict(self.doc.get("settings", {}))

    def put_setting(self, key: str, value: str | None) -> None:
        self._write("settings", key, value)

    def append_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.dirty = True

    def clear_journal(self) -> None:
        self.events.clear()
        self.journal_cleared = True
        self.dirty = True


class MemoryView(MemoryTransaction):
    """A transaction or snapshot of a :class:`MemoryStore`: its journal is the store's."""

    def __init__(self, store: MemoryStore, doc: dict[str, Any], now: float, undo: bool = False) -> None:
        super().__init__(doc, now, undo)
        self._store = store

    def journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        return self._store.read_journal(since_seq)


class MemoryStore(Store):
    """A whole state in this process's memory: nothing on disk, no lock (one process owns it).

    ``clock`` gives each transaction its time (default: the system clock), so a simulation moves
    time by hand. The journal is kept in :attr:`journal`, with ``seq`` numbers as the file stores give.
    """

    location = "memory"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        import time

        self.doc = empty_document()
        self.journal: list[dict[str, Any]] = []
        self.clock = clock or time.time

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        tx = MemoryView(self, self.doc, self.clock(), undo=True)
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        if tx.journal_cleared:
            self.journal.clear()
        for event in tx.events:
            self.journal.append({**event, "seq": len(self.journal) + 1})

    @contextmanager
    def read(self, include_expired: bool = False) -> Iterator[StateView]:
        now = self.clock()
        sessions = self.doc["sessions"]
        if not include_expired:
            sessions = {k: s for k, s in sessions.items() if s["expires"] is None or s["expires"] > now}
        yield MemoryView(self, {**self.doc, "sessions": sessions}, now)

    def now(self) -> float:
        return self.clock()

    def owner_uid(self) -> int | None:
        return None

    def check(self) -> list[tuple[str, str, str]]:
        return [("state", "ok", f"in memory: {len(self.doc['pools'])} pool(s), {len(self.doc['sessions'])} session(s)")]

    def restore_backup(self) -> str:
        from lictools.errors import UsageError

        raise UsageError("a state in memory has no backup")

    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        return [dict(e) for e in self.journal[since_seq:]]
