"""The default embedded store: one SQLite file (stdlib ``sqlite3``), WAL mode, fsync on every commit.

Why SQLite and not one JSON document: with 10,000 live sessions a JSON state costs about 80 ms
of parsing and rewriting per command (measured in docs/performance.md); here ``acquire`` touches
a handful of index pages, and the journal is a table appended in the same commit, so one fsync
makes the grant and its journal line durable together. ``lictools dump`` prints the state as
JSON for people.

A new state file is built under a temporary name and renamed into place, so a state file that
exists is always a complete lictools database. A file that is not one (garbled by hand,
truncated, another program's database, a newer schema) is refused with exit 6 and never written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from lictools.errors import BusyError, DamagedStateError, ForbiddenError
from lictools.model import Pool, Session
from lictools.stores.api import SCHEMA_VERSION, Store, Transaction
from lictools.stores.codec import decode_event, encode_event
from lictools.stores.locking import ensure_folder, fsync_folder, open_private, restore_file, state_lock
from lictools.timeutil import now as clock_now

APPLICATION_ID = 0x4C494354  # "LICT": tells a lictools state from any other SQLite file
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    feature TEXT NOT NULL,
    seat TEXT NOT NULL,
    seat_project TEXT,
    expires REAL,
    doc TEXT NOT NULL
);
CREATE INDEX sessions_seat ON sessions (pool, feature, seat_project, seat);
CREATE INDEX sessions_expires ON sessions (expires) WHERE expires IS NOT NULL;
CREATE TABLE events (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

BACKUP_INTERVAL = 60.0
"""Seconds between copies of the state to ``<state>.bak`` (taken after a commit; see :meth:`SqliteStore._backup`)."""

# criteria answered by a column; anything else is filtered from the document
_COLUMNS = {"id", "pool", "feature", "seat", "seat_project"}


class SqliteTransaction(Transaction):
    def __init__(self, db: sqlite3.Connection, now: float) -> None:
        self.db = db
        self.now = now

    def get_pool(self, name: str) -> Pool | None:
        row = self.db.execute("SELECT doc FROM pools WHERE name = ?", (name,)).fetchone()
        return Pool.from_doc(json.loads(row[0])) if row else None

    def list_pools(self) -> list[Pool]:
        rows = self.db.execute("SELECT doc FROM pools ORDER BY name").fetchall()
        return [Pool.from_doc(json.loads(doc)) for (doc,) in rows]

    def put_pool(self, pool: Pool) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pools (name, doc) VALUES (?, ?)", (pool.name, json.dumps(pool.to_doc()))
        )

    def delete_pool(self, name: str) -> None:
        self.db.execute("DELETE FROM pools WHERE name = ?", (name,))

    def get_session(self, session_id: str) -> Session | None:
        row = self.db.execute("SELECT doc FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return Session.from_doc(json.loads(row[0])) if row else None

    def put_session(self, session: Session) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sessions (id, pool, feature, seat, seat_project, expires, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                session.id,
                session.pool,
                session.feature,
                session.seat,
                session.seat_project,
                session.expires,
                json.dumps(session.to_doc()),
            ),
        )

    def delete_session(self, session_id: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def find_sessions(self, **criteria: Any) -> list[Session]:
        column_criteria = {k: v for k, v in criteria.items() if k in _COLUMNS}
        other = {k: v for k, v in criteria.items() if k not in _COLUMNS}
        where = " AND ".join(f"{k} = ?" for k in column_criteria) or "1"
        rows = self.db.execute(f"SELECT doc FROM sessions WHERE {where}", tuple(column_criteria.values()))
        found = [Session.from_doc(json.loads(doc)) for (doc,) in rows]
        if other:
            found = [s for s in found if all(getattr(s, k, None) == v for k, v in other.items())]
        return sorted(found, key=lambda s: (s.started, s.id))

    def expired_sessions(self, now: float) -> list[Session]:
        rows = self.db.execute("SELECT doc FROM sessions WHERE expires IS NOT NULL AND expires <= ?", (now,))
        return [Session.from_doc(json.loads(doc)) for (doc,) in rows]

    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM sessions WHERE pool = ? AND feature = ? AND seat = ?", (pool, feature, seat)
        ).fetchone()
        return int(row[0])

    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        rows = self.db.execute(
            "SELECT seat_project, COUNT(DISTINCT seat) FROM sessions WHERE pool = ? AND feature = ?"
            " GROUP BY seat_project",
            (pool, feature),
        )
        return {project: count for project, count in rows}

    def get_settings(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM settings"))

    def put_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def append_event(self, event: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO events (doc) VALUES (?)", (encode_event(event),))


class SqliteStore(Store):
    """The state in one SQLite file, guarded by ``<file>.lock``."""

    def __init__(self, path: str, lock_timeout: float, keep_open: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.location = self.path
        self.lock_timeout = lock_timeout
        self.keep_open = keep_open
        self._db: sqlite3.Connection | None = None
        self._inode = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        ensure_folder(os.path.dirname(self.path))
        with state_lock(self.path, self.lock_timeout):
            if not os.path.lexists(self.path):
                self._create()
            try:
                db = self._connection()
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from None
            try:
                db.execute("BEGIN IMMEDIATE")
                yield SqliteTransaction(db, clock_now())
                db.execute("COMMIT")
                try:
                    self._backup(db)
                except (OSError, sqlite3.Error):
                    pass  # the grant is committed; doctor reports a stale copy
            except sqlite3.DatabaseError as exc:
                self._rollback(db)
                self.close()
                raise self._translate(exc) from None
            except BaseException:
                self._rollback(db)
                raise
            finally:
                if not self.keep_open:
                    # inside the lock: closing the last connection checkpoints the WAL, which must
                    # not overlap the next command's transaction (it would see "database is locked")
                    self.close()

    def _connection(self) -> sqlite3.Connection:
        """The open connection; with ``keep_open`` kept across transactions while the file stays the same.

        A CLI command runs one transaction and closes; a long-lived caller (a service, the
        benchmark) passes ``keep_open`` and saves reopening and a checkpoint per transaction.
        """
        inode = os.stat(self.path).st_ino
        if self._db is not None and self._inode != inode:
            self.close()  # the state file was replaced (doctor --restore)
        if self._db is None:
            self._db = self._open()
            self._inode = inode
        return self._db

    def close(self) -> None:
        """Close the kept connection (also done when the process exits)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def owner_uid(self) -> int | None:
        try:
            return os.stat(self.path).st_uid
        except OSError:
            return None

    def _backup(self, db: sqlite3.Connection) -> None:
        """Refresh ``<state>.bak`` from the committed state when the copy is older than BACKUP_INTERVAL.

        A copy on every write would double the cost of a command on a large state, so the good copy
        is at most a minute old: ``doctor --restore`` on this layout loses what was written after it.
        """
        bak = self.path + ".bak"
        try:
            if time.time() - os.stat(bak).st_mtime < BACKUP_INTERVAL:  # file times: the real clock
                return
        except FileNotFoundError:
            pass
        tmp = f"{bak}.tmp-{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.close(open_private(tmp))
        try:
            copy = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, bak)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    def check(self) -> list[tuple[str, str, str]]:
        rows = []
        try:
            self._check_header()
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            try:
                result = db.execute("PRAGMA integrity_check").fetchone()[0]
                counts = db.execute("SELECT (SELECT COUNT(*) FROM pools), (SELECT COUNT(*) FROM sessions),"
                                    " (SELECT COUNT(*) FROM events)").fetchone()
            finally:
                db.close()
        except (DamagedStateError, sqlite3.DatabaseError) as exc:
            return [("state", "fail", getattr(exc, "message", str(exc)))]
        if result != "ok":
            return [("state", "fail", f"integrity check: {result}")]
        rows.append(("state", "ok", f"{self.path}: SQLite, {counts[0]} pool(s), {counts[1]} session(s)"))
        rows.append(("journal", "ok", f"{counts[2]} event(s) in the state's events table"))
        rows.append(self._check_backup())
        return rows

    def _check_backup(self) -> tuple[str, str, str]:
        bak = self.path + ".bak"
        if not os.path.exists(bak):
            return ("backup", "warn", f"no good copy yet at {bak} (made after the first write)")
        try:
            SqliteStore(bak, self.lock_timeout)._check_header()
        except DamagedStateError as exc:
            return ("backup", "fail", exc.message)
        age = time.time() - os.stat(bak).st_mtime
        return ("backup", "ok", f"{bak}, taken {age:.0f}s ago")

    def restore_backup(self) -> str:
        return restore_file(self.path, self.path + ".bak", self._check_backup, extra=("-wal", "-shm"))

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass  # a damaged file: nothing was written, closing discards the rest

    def _translate(self, exc: sqlite3.DatabaseError) -> Exception:
        """An SQLite error as exit 5 (another program holds a lock) or exit 6 (damaged)."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return BusyError(f"state {self.path} is locked by another program: {text}")
        return DamagedStateError(f"state {self.path} is damaged: {text}; nothing was changed")

    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        if not os.path.exists(self.path):
            return
        db = self._open()
        try:
            for seq, doc in db.execute("SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq", (since_seq,)):
                try:
                    event = decode_event(doc)
                except ValueError:
                    raise DamagedStateError(f"state {self.path}: journal event {seq} is damaged") from None
                event["seq"] = seq
                yield event
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        finally:
            db.close()

    def _check_header(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except PermissionError:
            raise ForbiddenError(f"permission denied: cannot read state {self.path}") from None
        except OSError as exc:
            raise DamagedStateError(f"state {self.path} cannot be opened: {exc.strerror}") from None
        try:
            header = os.read(fd, 100)
        finally:
            os.close(fd)
        if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
            raise DamagedStateError(f"state {self.path} is not a lictools state file (damaged?); nothing was changed")
        if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
            raise DamagedStateError(f"state {self.path} is a SQLite file of another program; nothing was changed")
        self._check_version(int.from_bytes(header[60:64], "big"))

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise DamagedStateError(
                f"state {self.path} has schema {version}, newer than this lictools ({SCHEMA_VERSION}); upgrade lictools"
            )

    def _open(self) -> sqlite3.Connection:
        self._check_header()
        # lictools itself only touches the file under the state lock; the busy timeout covers
        # another program (the sqlite3 shell, a backup) holding SQLite's own lock
        db = sqlite3.connect(self.path, isolation_level=None, timeout=max(1.0, self.lock_timeout))
        try:
            # the file header can lag behind the WAL: ask SQLite for the schema version too
            self._check_version(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute("PRAGMA synchronous = FULL")
        except BaseException:
            db.close()
            raise
        return db

    def _create(self) -> None:
        """Build an empty state under a temporary name, then rename it into place."""
        tmp = f"{self.path}.new-{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)  # left by a crashed creator with our PID
        os.close(open_private(tmp))
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
            finally:
                db.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.rename(tmp, self.path)
            fsync_folder(os.path.dirname(self.path))
        except BaseException:
            for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
            raise
