"""The store interface: one transaction per command, with the few queries the engine needs.

Every store (SQLite file, JSON file, and later PostgreSQL) implements :class:`Store` and
:class:`Transaction`. The engine only talks to a :class:`Transaction`, so it never knows which
store holds the state, and each query is narrow enough that a store with an index answers it
without reading every session (what keeps ``acquire`` fast with 10,000 live sessions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Iterable

from lictools.model import Pool, Session

SCHEMA_VERSION = 1
"""Version of the state layout this lictools writes; a newer one on disk is refused (exit 6)."""


class Transaction(ABC):
    """A consistent, exclusive view of the state; changes land together or not at all."""

    #: the time of this transaction (seconds since the epoch), from the store's clock
    now: float

    # -- pools -------------------------------------------------------------------------
    @abstractmethod
    def get_pool(self, name: str) -> Pool | None:
        """The pool called ``name``, or None."""

    @abstractmethod
    def list_pools(self) -> list[Pool]:
        """Every pool, sorted by name."""

    @abstractmethod
    def put_pool(self, pool: Pool) -> None:
        """Insert or replace a pool."""

    @abstractmethod
    def delete_pool(self, name: str) -> None:
        """Delete a pool (its sessions must already be gone)."""

    # -- sessions ----------------------------------------------------------------------
    @abstractmethod
    def get_session(self, session_id: str) -> Session | None:
        """The live session with this id, or None."""

    @abstractmethod
    def put_session(self, session: Session) -> None:
        """Insert or replace a session."""

    @abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Delete a session."""

    @abstractmethod
    def find_sessions(self, **criteria: Any) -> list[Session]:
        """Sessions whose attributes equal every given criterion (``pool``, ``feature``,
        ``seat``, ``user``, ``host``, ``node``, ``root`` ...), oldest first."""

    @abstractmethod
    def expired_sessions(self, now: float) -> list[Session]:
        """Sessions whose lease ended at or before ``now``."""

    @abstractmethod
    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        """How many live sessions hold seat ``seat``."""

    @abstractmethod
    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        """Seats in use (distinct seat keys) per charged project; None for no project."""

    # -- settings (state-wide, e.g. the admin group) ------------------------------------
    @abstractmethod
    def get_settings(self) -> dict[str, str]:
        """Every state-wide setting."""

    @abstractmethod
    def put_setting(self, key: str, value: str | None) -> None:
        """Set a state-wide setting; None deletes it."""

    # -- journal -----------------------------------------------------------------------
    @abstractmethod
    def append_event(self, event: dict[str, Any]) -> None:
        """Append one event to the journal, inside this transaction."""

    def seats_in_use(self, pool: str, feature: str) -> int:
        """Seats in use (distinct seat keys among live sessions) for one pool feature."""
        return sum(self.seats_by_project(pool, feature).values())


class Store(ABC):
    """A place holding the state: opens one transaction per command."""

    #: what ``lictools`` shows as the state's location (a path or a URL)
    location: str

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Lock the state, yield a transaction, commit when the block ends without error.

        Raises BusyError when the lock is not obtained in time and DamagedStateError when
        the state cannot be read; on any exception nothing is changed.
        """

    @abstractmethod
    def owner_uid(self) -> int | None:
        """The account that owns the state (an admin by right), or None when unknown."""

    @abstractmethod
    def check(self) -> list[tuple[str, str, str]]:
        """Read-only health checks: ``(check, ok|warn|fail, detail)`` rows for ``lictools doctor``."""

    @abstractmethod
    def restore_backup(self) -> str:
        """Replace the state by its last good copy; returns where the replaced state was kept."""

    def close(self) -> None:
        """Release what the store keeps open between transactions (nothing by default)."""

    @abstractmethod
    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        """Journal events after ``since_seq``, oldest first (no lock needed: append-only)."""
