"""The store interface: one transaction per write command, a snapshot per read-only command.

Every store (SQLite file, JSON file, and later PostgreSQL) implements :class:`Store`,
:class:`StateView` and :class:`Transaction`. The engine only talks to these, so it never knows
which store holds the state, and each query is narrow enough that a store with an index or a
counter answers it without reading every session (what keeps ``acquire`` as fast with 100,000
live sessions as with none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Iterable, NamedTuple

from lictools.model import Pool, Session

SCHEMA_VERSION = 1
"""Version of the JSON state document this lictools writes; a newer one on disk is refused (exit 6)."""


class RotatedJournal(NamedTuple):
    """What one rotation moved: the events ``first_seq`` to ``last_seq`` into ``file`` (``bytes`` compressed)."""

    file: str
    first_seq: int
    last_seq: int
    bytes: int


class StateView(ABC):
    """A consistent, read-only view of the state at one moment.

    Read through :meth:`Store.read`, it shows the state as the next write's reap would leave
    it: a session whose lease ended at or before :attr:`now` is not in it.
    """

    #: the time of this view (seconds since the epoch), from the store's clock
    now: float

    @abstractmethod
    def get_pool(self, name: str) -> Pool | None:
        """The pool called ``name``, or None."""

    @abstractmethod
    def list_pools(self) -> list[Pool]:
        """Every pool, sorted by name."""

    @abstractmethod
    def get_session(self, session_id: str) -> Session | None:
        """The live session with this id, or None."""

    @abstractmethod
    def find_sessions(self, **criteria: Any) -> list[Session]:
        """Sessions whose attributes equal every given criterion (``pool``, ``feature``,
        ``seat``, ``user``, ``host``, ``node``, ``root`` ...), oldest first."""

    @abstractmethod
    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        """How many live sessions hold seat ``seat``."""

    @abstractmethod
    def count_sessions(self, pool: str, feature: str) -> int:
        """How many live sessions one pool feature has (without reading them)."""

    @abstractmethod
    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        """Seats in use (distinct seat keys) per charged project; None for no project."""

    @abstractmethod
    def get_settings(self) -> dict[str, str]:
        """Every state-wide setting."""

    def seats_in_use(self, pool: str, feature: str) -> int:
        """Seats in use (distinct seat keys among live sessions) for one pool feature."""
        return sum(self.seats_by_project(pool, feature).values())

    def journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        """Journal events after ``since_seq`` as of this view, oldest first, in bounded memory.

        (A view with no journal behind it, such as an in-memory test double, has none to give.)
        """
        raise NotImplementedError(f"{type(self).__name__} has no journal")


class Transaction(StateView):
    """A consistent, exclusive view of the state that can change it; changes land together or not at all.

    Unlike a :class:`StateView` it shows expired sessions until ``engine.reap`` ends them.
    """

    # -- pools -------------------------------------------------------------------------
    @abstractmethod
    def put_pool(self, pool: Pool) -> None:
        """Insert or replace a pool."""

    @abstractmethod
    def delete_pool(self, name: str) -> None:
        """Delete a pool (its sessions must already be gone)."""

    # -- sessions ----------------------------------------------------------------------
    @abstractmethod
    def put_session(self, session: Session) -> None:
        """Insert or replace a session."""

    @abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Delete a session."""

    @abstractmethod
    def expired_sessions(self, now: float) -> list[Session]:
        """Sessions whose lease ended at or before ``now``."""

    # -- settings (state-wide, e.g. the admin group) ------------------------------------
    @abstractmethod
    def put_setting(self, key: str, value: str | None) -> None:
        """Set a state-wide setting; None deletes it."""

    # -- journal -----------------------------------------------------------------------
    @abstractmethod
    def append_event(self, event: dict[str, Any]) -> None:
        """Append one event to the journal, inside this transaction."""

    def clear_journal(self) -> None:
        """Drop every journal event, inside this transaction: the next appended event is ``seq`` 1.

        Only ``lictools migrate --force`` calls it, to replace a state whole (its journal too). No
        default can be made of the other methods, so a store that does not implement it refuses (exit 2).
        """
        from lictools.errors import UsageError

        raise UsageError(f"this store ({type(self).__name__}) cannot clear its journal: migrate into an empty state")


class Store(ABC):
    """A place holding the state: one transaction per write command, one snapshot per read-only one."""

    #: what ``lictools`` shows as the state's location (a path or a URL)
    location: str

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Lock the state, yield a transaction, commit when the block ends without error.

        Creates the state when it does not exist yet. Raises BusyError when the lock is not
        obtained in time, DamagedStateError when the state cannot be read and CannotWriteError
        when it cannot be written; on any exception nothing is changed.
        """

    @abstractmethod
    def read(self, include_expired: bool = False) -> AbstractContextManager[StateView]:
        """Yield a consistent snapshot without the state lock and without blocking writers.

        Sessions whose lease has ended are left out unless ``include_expired`` (``doctor``
        compares the state with its journal). A state that does not exist raises NotFoundError
        (exit 4) and nothing is created.
        """

    @abstractmethod
    def owner_uid(self) -> int | None:
        """The account that owns the state (an admin by right), or None when unknown.

        A fact that writing the state cannot change (for the file layouts: the owner of the
        state's folder), so no command run by another account makes that account the owner.
        """

    @abstractmethod
    def check(self) -> list[tuple[str, str, str]]:
        """Read-only health checks: ``(check, ok|warn|fail, detail)`` rows for ``lictools doctor``."""

    @abstractmethod
    def restore_backup(self) -> str:
        """Replace the state by its last good copy; returns where the replaced state was kept."""

    def now(self) -> float:
        """The time of a command on this state (the system clock; the file stores honour their owner's pin)."""
        import time

        return time.time()

    def close(self) -> None:
        """Release what the store keeps open between transactions (nothing by default)."""

    def rotate_journal(self, only_over_limit: bool = False, claim: int | None = None) -> RotatedJournal | None:
        """Move the journal's older events into a compressed file beside the state (``journal rotate``).

        ``only_over_limit``: only when the journal is larger than the ``journal_max_bytes``
        setting (a write asks for that). ``claim``: a descriptor already holding the rotation
        lock (closed here). None when there was nothing to move. Events stay readable through
        :meth:`read_journal` and :meth:`StateView.journal`, in seq order, across the files.
        """
        if claim is not None:
            import os

            os.close(claim)
        from lictools.errors import UsageError

        raise UsageError("journal rotation is not available on this store")

    @abstractmethod
    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        """Journal events after ``since_seq``, oldest first, in bounded memory (no lock needed: append-only).

        NotFoundError (exit 4) when the state does not exist.
        """
