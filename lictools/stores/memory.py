"""A transaction over an in-memory document: the JSON file store's engine, and a fast test double.

The document is ``{"schema": 1, "pools": {name: pool}, "sessions": {id: session}}``; every query
scans it, which is fine for the few thousand sessions a JSON state is meant for.
"""

from __future__ import annotations

from typing import Any

from lictools.model import Pool, Session
from lictools.stores.api import SCHEMA_VERSION, Transaction


def empty_document() -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "pools": {}, "sessions": {}, "settings": {}}


class MemoryTransaction(Transaction):
    """Reads and writes ``doc`` in place; ``events`` collects what the journal will get."""

    def __init__(self, doc: dict[str, Any], now: float) -> None:
        self.doc = doc
        self.now = now
        self.events: list[dict[str, Any]] = []
        self.dirty = False

    def get_pool(self, name: str) -> Pool | None:
        doc = self.doc["pools"].get(name)
        return Pool.from_doc(doc) if doc else None

    def list_pools(self) -> list[Pool]:
        return [Pool.from_doc(self.doc["pools"][name]) for name in sorted(self.doc["pools"])]

    def put_pool(self, pool: Pool) -> None:
        self.doc["pools"][pool.name] = pool.to_doc()
        self.dirty = True

    def delete_pool(self, name: str) -> None:
        self.doc["pools"].pop(name, None)
        self.dirty = True

    def get_session(self, session_id: str) -> Session | None:
        doc = self.doc["sessions"].get(session_id)
        return Session.from_doc(doc) if doc else None

    def put_session(self, session: Session) -> None:
        self.doc["sessions"][session.id] = session.to_doc()
        self.dirty = True

    def delete_session(self, session_id: str) -> None:
        self.doc["sessions"].pop(session_id, None)
        self.dirty = True

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
        settings = self.doc.setdefault("settings", {})
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
        self.dirty = True

    def append_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.dirty = True
