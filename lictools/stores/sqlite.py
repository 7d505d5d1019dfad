"""The default embedded store: one SQLite file (stdlib ``sqlite3``), WAL mode, fsync on every commit.

Why SQLite and not one JSON document: with 10,000 live sessions a JSON state costs about 80 ms
of parsing and rewriting per command (docs/performance.md); here ``acquire`` touches a handful
of index pages and two counter rows (kept by triggers, so its cost does not grow with the number
of sessions), and the journal is a table appended in the same commit, so one fsync makes the
grant and its journal line durable together. ``lictools dump`` prints the state as JSON.

Read-only commands read a snapshot through a read-only connection, without the state lock:
WAL readers never block the writer, nor the writer them.

A new state file is built in memory and published under its name with a link, so a state file
that exists is always a complete lictools database. A file that is not one (garbled, truncated,
another program's database, a newer schema, rows of the wrong shape) is refused with exit 6 and
never written. SQLite follows symlinks in the names it opens, so it is only ever given the state
itself (checked, once opened, to be the very file lictools checked) and scratch files in a
private folder (``files.private_folder``); see docs/security.md.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from lictools import background
from lictools.errors import BusyError, CannotWriteError, DamagedStateError, ForbiddenError, NotFoundError
from lictools.model import Pool, Session
from lictools.stores import files, rotation, schema
from lictools.stores.api import StateView, Transaction
from lictools.stores.filestore import FileStore
from lictools.stores.locking import state_lock
from lictools.stores.codec import decode_event, encode_event

APPLICATION_ID = 0x4C494354  # "LICT": tells a lictools state from any other SQLite file
SQLITE_MAGIC = b"SQLite format 3\x00"
SCHEMA_VERSION = 2
"""Version of the SQLite layout: 1 had no counters; 2 adds them (a version 1 file is upgraded by its next write)."""

class _ShortFile(DamagedStateError):
    """The state file is shorter than its header says (or not whole pages): truncated, or mid-checkpoint."""


TABLES = [
    "CREATE TABLE pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY, pool TEXT NOT NULL, feature TEXT NOT NULL, seat TEXT NOT NULL,
        seat_project TEXT, expires REAL, doc TEXT NOT NULL)""",
    "CREATE INDEX sessions_seat ON sessions (pool, feature, seat_project, seat)",
    "CREATE INDEX sessions_expires ON sessions (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


def _count_in(row: str) -> str:
    """Trigger statements counting session ``row`` (``new``) in: its seat, and its pool feature's usage."""
    return f"""
        INSERT INTO usage (pool, feature, project, seats, sessions)
        VALUES ({row}.pool, {row}.feature, coalesce({row}.seat_project, ''),
                NOT EXISTS (SELECT 1 FROM seats WHERE pool = {row}.pool AND feature = {row}.feature AND seat = {row}.seat), 1)
        ON CONFLICT (pool, feature, project) DO UPDATE SET seats = seats + excluded.seats, sessions = sessions + 1;
        INSERT INTO seats (pool, feature, seat, project, sessions)
        VALUES ({row}.pool, {row}.feature, {row}.seat, coalesce({row}.seat_project, ''), 1)
        ON CONFLICT (pool, feature, seat) DO UPDATE SET sessions = sessions + 1;"""


def _count_out(row: str) -> str:
    """Trigger statements counting session ``row`` (``old``) out; a seat whose last session left is freed."""
    seat = f"pool = {row}.pool AND feature = {row}.feature AND seat = {row}.seat"
    return f"""
        UPDATE seats SET sessions = sessions - 1 WHERE {seat};
        UPDATE usage SET sessions = sessions - 1
        WHERE pool = {row}.pool AND feature = {row}.feature AND project = coalesce({row}.seat_project, '');
        UPDATE usage SET seats = seats - 1
        WHERE (pool, feature, project) IN (SELECT pool, feature, project FROM seats WHERE {seat} AND sessions = 0);
        DELETE FROM seats WHERE {seat} AND sessions = 0;
        DELETE FROM usage WHERE pool = {row}.pool AND feature = {row}.feature AND seats = 0 AND sessions = 0;"""


def _recharge() -> str:
    """Trigger statements for a session whose seat is charged to another project (``old`` -> ``new``)."""
    seat = "pool = old.pool AND feature = old.feature AND seat = old.seat"
    charged_old = f"EXISTS (SELECT 1 FROM seats WHERE {seat} AND project = coalesce(old.seat_project, ''))"
    return f"""
        UPDATE usage SET sessions = sessions - 1
        WHERE pool = old.pool AND feature = old.feature AND project = coalesce(old.seat_project, '');
        INSERT INTO usage (pool, feature, project, seats, sessions)
        VALUES (new.pool, new.feature, coalesce(new.seat_project, ''), {charged_old}, 1)
        ON CONFLICT (pool, feature, project) DO UPDATE SET seats = seats + excluded.seats, sessions = sessions + 1;
        UPDATE usage SET seats = seats - 1
        WHERE pool = old.pool AND feature = old.feature AND project = coalesce(old.seat_project, '') AND {charged_old};
        UPDATE seats SET project = coalesce(new.seat_project, '') WHERE {seat};
        DELETE FROM usage WHERE pool = old.pool AND feature = old.feature AND seats = 0 AND sessions = 0;"""


COUNTERS = [
    # one row per seat in use (its sessions and the project it is charged to), one per pool feature
    # and project (seats and sessions): what acquire and info ask, answered without reading sessions
    """CREATE TABLE seats (pool TEXT NOT NULL, feature TEXT NOT NULL, seat TEXT NOT NULL, project TEXT NOT NULL,
        sessions INTEGER NOT NULL, PRIMARY KEY (pool, feature, seat)) WITHOUT ROWID""",
    """CREATE TABLE usage (pool TEXT NOT NULL, feature TEXT NOT NULL, project TEXT NOT NULL,
        seats INTEGER NOT NULL, sessions INTEGER NOT NULL, PRIMARY KEY (pool, feature, project)) WITHOUT ROWID""",
    "CREATE INDEX sessions_by_seat ON sessions (pool, feature, seat)",
    f"CREATE TRIGGER session_in AFTER INSERT ON sessions BEGIN {_count_in('new')} END",
    f"CREATE TRIGGER session_out AFTER DELETE ON sessions BEGIN {_count_out('old')} END",
    f"""CREATE TRIGGER session_moved AFTER UPDATE OF pool, feature, seat, seat_project ON sessions
        WHEN old.pool IS NOT new.pool OR old.feature IS NOT new.feature OR old.seat IS NOT new.seat
        BEGIN {_count_out('old')} {_count_in('new')} END""",
    # a recharge (lictools.apply) moves every session of a seat to another project, one row at a time:
    # each session's own count moves, and the seat's charge moves with the first of them
    f"""CREATE TRIGGER session_recharged AFTER UPDATE OF seat_project ON sessions
        WHEN old.pool IS new.pool AND old.feature IS new.feature AND old.seat IS new.seat
             AND old.seat_project IS NOT new.seat_project
        BEGIN {_recharge()} END""",
]

RECOUNT = [
    "DELETE FROM seats",
    "DELETE FROM usage",
    """INSERT INTO seats (pool, feature, seat, project, sessions)
       SELECT pool, feature, seat, coalesce(max(seat_project), ''), count(*) FROM sessions GROUP BY pool, feature, seat""",
    """INSERT INTO usage (pool, feature, project, seats, sessions)
       SELECT pool, feature, project, sum(seats), sum(sessions) FROM (
           SELECT pool, feature, project, count(*) AS seats, 0 AS sessions FROM seats GROUP BY pool, feature, project
           UNION ALL
           SELECT pool, feature, coalesce(seat_project, ''), 0, count(*) FROM sessions
           GROUP BY pool, feature, coalesce(seat_project, ''))
       GROUP BY pool, feature, project""",
]

BACKUP_INTERVAL = 60.0
"""Seconds between good copies (``<state>.bak``) of a state up to BACKUP_RATE * 60 bytes."""
BACKUP_RATE = 1 << 20
"""Bytes per second of state a good copy may cost on average: a larger state is copied less often
(at most every size / rate seconds), so the background copies stay a small part of the disk's work."""

EVENT_RANGE = "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)"
"""The first and last seq of the events table: two index lookups (``min(seq), max(seq)`` in one
SELECT would read the whole table)."""

# criteria answered by a column; anything else is filtered from the document
_COLUMNS = {"id", "pool", "feature", "seat", "seat_project"}
_LIVE = " AND (expires IS NULL OR expires > ?)"


_KEPT: list[sqlite3.Connection] = []
"""Connections a process ending with os._exit keeps open: never closed, so never checkpointed
outside the state lock (a checkpoint there could make a concurrent writer see 'database is locked')."""


class SqliteView(StateView):
    """Reads of one SQLite snapshot; with ``live_at`` set, sessions whose lease ended by then are left out."""

    def __init__(self, db: sqlite3.Connection, now: float, where: str, live_at: float | None, counters: bool,
                 store: SqliteStore | None = None) -> None:
        self.db = db
        self.store = store  # whose rotated journal files come before the events table
        self.now = now
        self.where = where
        self._live = _LIVE if live_at is not None else ""
        self._live_args: tuple[Any, ...] = (live_at,) if live_at is not None else ()
        # the counters count every stored session; when some have expired unseen, count the live ones
        self._exact = not counters or (live_at is not None and db.execute(
            "SELECT 1 FROM sessions WHERE expires IS NOT NULL AND expires <= ? LIMIT 1", (live_at,)
        ).fetchone() is not None)

    def _pool(self, text: str) -> Pool:
        return schema.pool_row(text, self.where)

    def _session(self, text: str) -> Session:
        return schema.session_row(text, self.where)

    def get_pool(self, name: str) -> Pool | None:
        row = self.db.execute("SELECT doc FROM pools WHERE name = ?", (name,)).fetchone()
        return self._pool(row[0]) if row else None

    def list_pools(self) -> list[Pool]:
        return [self._pool(doc) for (doc,) in self.db.execute("SELECT doc FROM pools ORDER BY name")]

    def get_session(self, session_id: str) -> Session | None:
        row = self.db.execute(f"SELECT doc FROM sessions WHERE id = ?{self._live}", (session_id, *self._live_args)).fetchone()
        return self._session(row[0]) if row else None

    def find_sessions(self, **criteria: Any) -> list[Session]:
        # a text criterion the table has no column for is matched in the document by SQLite (json_extract),
        # so that asking for one user's sessions does not decode every session of the feature
        column_criteria = {k: v for k, v in criteria.items() if k in _COLUMNS}
        in_doc = {k: v for k, v in criteria.items() if k not in _COLUMNS and isinstance(v, str) and k.isidentifier()}
        where = " AND ".join([f"{k} = ?" for k in column_criteria] + [f"json_extract(doc, '$.{k}') = ?" for k in in_doc])
        rows = self.db.execute(f"SELECT doc FROM sessions WHERE {where or '1'}{self._live}",
                               (*column_criteria.values(), *in_doc.values(), *self._live_args))
        found = [self._session(doc) for (doc,) in rows]
        if len(column_criteria) < len(criteria):  # in_doc again too: the decoded session, not its text, is the truth
            found = [s for s in found if all(getattr(s, k, None) == v for k, v in criteria.items() if k not in _COLUMNS)]
        return sorted(found, key=lambda s: (s.started, s.id))

    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        if self._exact:
            sql = f"SELECT count(*) FROM sessions WHERE pool = ? AND feature = ? AND seat = ?{self._live}"
        else:
            sql = "SELECT sessions FROM seats WHERE pool = ? AND feature = ? AND seat = ?"
        row = self.db.execute(sql, (pool, feature, seat, *(self._live_args if self._exact else ()))).fetchone()
        return row[0] if row else 0

    def count_sessions(self, pool: str, feature: str) -> int:
        if self._exact:
            sql = f"SELECT count(*) FROM sessions WHERE pool = ? AND feature = ?{self._live}"
        else:
            sql = "SELECT coalesce(sum(sessions), 0) FROM usage WHERE pool = ? AND feature = ?"
        return int(self.db.execute(sql, (pool, feature, *(self._live_args if self._exact else ()))).fetchone()[0])

    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        if self._exact:
            rows = self.db.execute(
                "SELECT seat_project, count(DISTINCT seat) FROM sessions WHERE pool = ? AND feature = ?"
                f"{self._live} GROUP BY seat_project", (pool, feature, *self._live_args))
            return {project: count for project, count in rows}
        rows = self.db.execute("SELECT project, seats FROM usage WHERE pool = ? AND feature = ? AND seats > 0",
                               (pool, feature))
        return {(project or None): count for project, count in rows}

    def get_settings(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM settings"))

    def journal(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """The rotated files, then the events table, as of this snapshot (nothing newer than its last event)."""
        if self.store is None:
            yield from self.table_events(since_seq)
            return
        upto = self.db.execute("SELECT max(seq) FROM events").fetchone()[0]
        yield from rotation.chained(
            self.store, since_seq, upto,
            lambda: self.db.execute("SELECT min(seq) FROM events").fetchone()[0],
            lambda after: self.table_events(after, upto),
        )

    def journal_over_limit(self) -> bool:
        """Is the events table larger than the ``journal_max_bytes`` setting? (Cheap: a few index lookups.)

        Its size is estimated as the number of events times the mean length of the newest 64
        (the exact sum would read the whole table on every write).
        """
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (rotation.SETTING,)).fetchone()
        if row is None:
            return False
        limit = rotation.max_bytes({rotation.SETTING: row[0]})
        oldest, newest = self.db.execute(EVENT_RANGE).fetchone()
        if limit is None or newest is None or newest <= oldest:
            return False
        mean = self.db.execute("SELECT avg(length(CAST(doc AS BLOB))) + 1 FROM "
                               "(SELECT doc FROM events ORDER BY seq DESC LIMIT 64)").fetchone()[0]
        return bool((newest - oldest + 1) * mean > limit)

    def table_events(self, since_seq: int, upto: int | None = None) -> Iterator[dict[str, Any]]:
        """The events still in the table after ``since_seq`` (and up to ``upto``)."""
        sql = "SELECT seq, doc FROM events WHERE seq > ?" + (" AND seq <= ?" if upto is not None else "") + " ORDER BY seq"
        for seq, doc in self.db.execute(sql, (since_seq,) if upto is None else (since_seq, upto)):
            event = schema.event(doc, f"{self.where}: journal event {seq}")
            event["seq"] = seq
            yield event


class SqliteTransaction(SqliteView, Transaction):
    """A write transaction: every stored session is visible (``engine.reap`` ends the expired ones)."""

    def __init__(self, db: sqlite3.Connection, now: float, where: str, store: SqliteStore | None = None) -> None:
        super().__init__(db, now, where, live_at=None, counters=True, store=store)

    def put_pool(self, pool: Pool) -> None:
        import json

        self.db.execute("INSERT OR REPLACE INTO pools (name, doc) VALUES (?, ?)", (pool.name, json.dumps(pool.to_doc())))

    def delete_pool(self, name: str) -> None:
        self.db.execute("DELETE FROM pools WHERE name = ?", (name,))

    def put_session(self, session: Session) -> None:
        import json

        values = (session.pool, session.feature, session.seat, session.seat_project, session.expires,
                  json.dumps(session.to_doc()), session.id)
        # an UPDATE, not INSERT OR REPLACE: a replace deletes without firing the counting trigger
        updated = self.db.execute(
            "UPDATE sessions SET pool = ?, feature = ?, seat = ?, seat_project = ?, expires = ?, doc = ? WHERE id = ?",
            values,
        ).rowcount
        if not updated:
            self.db.execute(
                "INSERT INTO sessions (pool, feature, seat, seat_project, expires, doc, id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def delete_session(self, session_id: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def expired_sessions(self, now: float) -> list[Session]:
        rows = self.db.execute("SELECT doc FROM sessions WHERE expires IS NOT NULL AND expires <= ?", (now,))
        return [self._session(doc) for (doc,) in rows]

    def put_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def append_event(self, event: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO events (doc) VALUES (?)", (encode_event(event),))

    def clear_journal(self) -> None:
        if self.store is not None:
            rotation.refuse_clearing(self.store.path)
        self.db.execute("DELETE FROM events")  # seq is the rowid: an empty table numbers from 1 again

    def forget_events(self, upto: int) -> None:
        """Delete the events up to ``upto`` from the table (a rotation, once they are in a file)."""
        self.db.execute("DELETE FROM events WHERE seq <= ?", (upto,))


class SqliteStore(FileStore):
    """The state in one SQLite file, guarded by ``<file>.lock``."""

    layout = "SQLite"

    def __init__(self, path: str, lock_timeout: float, keep_open: bool = False) -> None:
        super().__init__(path, lock_timeout)
        self.where = f"state {self.path}"
        self.keep_open = keep_open
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.prepare_write()
        with state_lock(self.path, self.lock_timeout):
            created = self._create() if not os.path.lexists(self.path) else None
            try:
                db = self._connection()
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc) from None
            try:
                db.execute("BEGIN IMMEDIATE")
                self._upgrade(db)
                tx = SqliteTransaction(db, self.now(), self.where, self)
                yield tx
                rotate = tx.journal_over_limit()
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._rollback(db)
                self.close()
                raise self._translate(exc) from None
            except BaseException:
                self._rollback(db)
                if created is not None:  # a refused first command leaves no state behind
                    self.close()
                    self._remove_created(created)
                raise
            finally:
                if not self.keep_open:
                    # inside the lock: closing the last connection checkpoints the WAL, which must
                    # not overlap the next command's transaction (it would see "database is locked")
                    self.close()
        self._schedule_backup()
        if rotate:
            self.schedule_rotation()

    def _connection(self) -> sqlite3.Connection:
        """The writer's connection; with ``keep_open`` kept across transactions while the file stays the same.

        A CLI command (which ends with os._exit, see lictools.cli.main) and a long-lived caller
        keep it: no reopening, and no checkpoint on close, which leaves the WAL for the next
        command (SQLite checkpoints it inside a commit once it passes 1,000 pages).
        """
        if self._db is not None:
            try:
                st = os.lstat(self.path)
                same = (st.st_dev, st.st_ino) == self._file
            except OSError:
                same = False
            if same:
                return self._db
            self.close()  # the state file was replaced (doctor --restore)
        db, self._file = self._connect(write=True)
        self._db = db
        if self.keep_open:
            _KEPT.append(db)
        return db

    def close(self) -> None:
        """Close the writer's connection (a checkpoint: call it inside the state lock, or not at all)."""
        if self._db is not None:
            if self._db in _KEPT:
                _KEPT.remove(self._db)
            try:
                self._db.close()
            except sqlite3.Error:
                pass  # a failed checkpoint: the WAL stays, the next opener recovers it
            self._db = None

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Bring a version 1 state up to the counters of version 2, inside the write transaction."""
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        for statement in COUNTERS + RECOUNT:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _remove_created(self, created: os.stat_result) -> None:
        try:
            if files.same_file(os.lstat(self.path), created):
                for suffix in ("-wal", "-shm", ""):
                    if os.path.lexists(self.path + suffix):
                        os.unlink(self.path + suffix)
        except OSError:
            pass

    def _create(self) -> os.stat_result | None:
        """Build an empty state in memory and link it into place (never over an existing file); its stat."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        try:
            memory.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            memory.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for statement in TABLES + COUNTERS:
                memory.execute(statement)
            image = bytearray(memory.serialize())
        finally:
            memory.close()
        image[18] = image[19] = 2  # file format 2: the database is in WAL mode from its first open
        fd, temp = files.create_exclusive(f"{self.path}.new-")
        try:
            files.write_all(fd, bytes(image))
            os.fsync(fd)
            try:
                files.publish(fd, temp, self.path, "the new state", replace=False)
            except FileExistsError:
                return None  # created meanwhile by something that does not take the lock: checked when opened
            return os.fstat(fd)
        except OSError as exc:
            raise files.writing_error(exc, f"state {self.path}") from None
        finally:
            files.discard(fd, temp)

    # -- reading -------------------------------------------------------------------------
    @contextmanager
    def read(self, include_expired: bool = False) -> Iterator[StateView]:
        self.require_state()
        db, version = self._reader()
        try:
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM pools LIMIT 1").fetchone()  # the snapshot starts here
            now = self.now()
            yield SqliteView(db, now, self.where, None if include_expired else now, counters=version >= 2, store=self)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        finally:
            self._rollback(db)
            db.close()  # read-only: closing never checkpoints

    def _reader(self) -> tuple[sqlite3.Connection, int]:
        try:
            db, _ = self._connect(write=False)
            return db, db.execute("PRAGMA user_version").fetchone()[0]
        except FileNotFoundError:
            raise NotFoundError(f"no state at {self.path} (nothing was created)") from None
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None

    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        self.require_state()
        db, _ = self._reader()
        try:
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM events LIMIT 1").fetchone()  # the snapshot starts before the files are listed
            yield from SqliteView(db, 0.0, self.where, None, counters=False, store=self).journal(since_seq)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        finally:
            self._rollback(db)
            db.close()

    def _rotate(self, only_over_limit: bool) -> rotation.Segment | None:
        """Write every event but the newest from a snapshot into a file (writers go on), then delete them under the lock.

        The newest stays in the table, so new events keep counting on from it (SQLite numbers a
        row after the largest left). A crash after the file and before the delete leaves the
        events in both: readers skip them by seq.
        """
        db, _ = self._reader()
        try:
            db.execute("BEGIN")
            view = SqliteView(db, 0.0, self.where, None, counters=False)
            if only_over_limit and not view.journal_over_limit():
                return None
            oldest, newest = db.execute(EVENT_RANGE).fetchone()
            if newest is None or oldest >= newest:
                return None
            seg = rotation.write_segment(self, view.table_events(oldest - 1, newest - 1), oldest, newest - 1)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        finally:
            self._rollback(db)
            db.close()
        with self.transaction() as tx:
            assert isinstance(tx, SqliteTransaction)
            tx.forget_events(seg.last)
        return seg

    # -- opening the file ----------------------------------------------------------------
    def _uri(self, mode: str) -> str:
        quoted = self.path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        return f"file:{quoted}?mode={mode}"

    def _connect(self, write: bool) -> tuple[sqlite3.Connection, tuple[int, int]]:
        """A connection to the state file that lictools checked, and that file's (device, inode).

        The file is opened without following a symlink, checked (a regular file, a lictools
        header, a size that matches its page count), then given to SQLite by name; the
        descriptor SQLite opened is then checked to be that same file, so a name swapped in
        between is refused before SQLite reads or writes anything. A reader on a read-only mount
        without a WAL reads the file as it is (``immutable``: nothing can change it there).
        """
        try:
            return self._connect_as(self._uri("rw" if write else "ro"), write)
        except sqlite3.OperationalError as exc:
            cannot_open = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == 14
            if write or not cannot_open or not files.read_only_filesystem(self.folder) or \
                    os.path.exists(self.path + "-wal"):
                raise
            return self._connect_as(self._uri("ro") + "&immutable=1", write)

    def _connect_as(self, uri: str, write: bool) -> tuple[sqlite3.Connection, tuple[int, int]]:
        fd, st = files.open_regular(self.path, "state")
        try:
            self._check_header_as_read(fd, st, write)
            before = _descriptors()
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=max(1.0, self.lock_timeout))
            try:
                _check_opened(before, st, self.path)
            except BaseException:
                db.close()
                raise
        finally:
            # before SQLite reads anything: closing a descriptor of a file drops every POSIX lock this
            # process holds on it, SQLite's included, and a writer that lost its lock can have its WAL
            # checkpointed and deleted under it by another process's close
            os.close(fd)
        try:
            self._check_version(db.execute("PRAGMA user_version").fetchone()[0])
            if write:
                db.execute("PRAGMA synchronous = FULL")
        except BaseException:
            db.close()
            raise
        return db, (st.st_dev, st.st_ino)

    def _check_header_as_read(self, fd: int, st: os.stat_result, write: bool) -> None:
        """:meth:`_check_header` of the open state file; a reader gives a short file time to grow.

        A reader holds no lock, and a checkpoint (which writers run under the state lock) writes
        the header's new page count before the pages that extend the file: for that moment the
        file looks truncated. So a reader looks again until the file matches its header or
        :attr:`lock_timeout` (at most 10 s) has passed; only a file that stays short is damaged.
        """
        deadline = time.monotonic() + min(self.lock_timeout, 10.0)
        while True:
            try:
                self._check_header(os.pread(fd, 100, 0), os.fstat(fd).st_size)
                return
            except _ShortFile:
                if write or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _check_header(self, header: bytes, size: int) -> None:
        if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
            raise DamagedStateError(f"state {self.path} is not a lictools state file (damaged?); nothing was changed")
        if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
            raise DamagedStateError(f"state {self.path} is a SQLite file of another program; nothing was changed")
        self._check_version(int.from_bytes(header[60:64], "big"))
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        counted = pages > 0 and header[24:28] == header[92:96]  # the header's page count is valid
        if page_size < 512 or size % page_size or (counted and size < pages * page_size):
            raise _ShortFile(
                f"state {self.path} is truncated ({size} bytes, " + (f"{pages} pages of {page_size}" if counted else
                f"not a whole number of {page_size}-byte pages") + "); nothing was changed"
            )

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise DamagedStateError(
                f"state {self.path} has schema {version}, newer than this lictools ({SCHEMA_VERSION}); upgrade lictools"
            )

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass  # a damaged file: nothing was written, closing discards the rest

    def _translate(self, exc: sqlite3.DatabaseError) -> Exception:
        """An SQLite error as the exit code it means: 5 busy, 6 damaged, 7 not allowed, 8 cannot write."""
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        text = str(exc)
        if code in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
            return BusyError(f"state {self.path} is locked by another program: {text}")
        if code == 13:  # SQLITE_FULL
            return CannotWriteError(f"cannot write state {self.path}: no space left on the device; nothing was changed")
        if code == 8:  # SQLITE_READONLY
            return CannotWriteError(f"cannot write state {self.path}: {text} (read-only file system or file); "
                                    "nothing was changed")
        if code == 10:  # SQLITE_IOERR: most often the disk filled up under a write
            try:
                files.check_writable(self.folder)
            except CannotWriteError as full:
                return full
            return CannotWriteError(f"cannot write state {self.path}: {text}; nothing was changed")
        if code == 14:  # SQLITE_CANTOPEN: the -wal or -shm beside it cannot be opened or created
            if not os.access(self.folder, os.W_OK):
                return ForbiddenError(f"cannot open state {self.path}: SQLite needs to create {os.path.basename(self.path)}"
                                      "-shm and -wal beside it, and this account may not write that folder")
            return DamagedStateError(f"state {self.path} cannot be opened ({text}: is {os.path.basename(self.path)}-wal "
                                     "or -shm a symlink or not a regular file?); nothing was changed")
        return DamagedStateError(f"state {self.path} is damaged: {text}; nothing was changed")

    # -- the good copy -------------------------------------------------------------------
    def _backup_due(self) -> bool:
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return False
        try:
            age = time.time() - os.lstat(self.path + ".bak").st_mtime  # file times: the real clock
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return age >= max(BACKUP_INTERVAL, size / BACKUP_RATE)

    def _schedule_backup(self) -> None:
        """After a commit: when the good copy is due, take it once the command has answered (never under the lock).

        The claim (``flock`` on ``<state>.bak.lock``) is taken here and handed to the work, so in
        a login storm one process copies and the others, finding the claim held, start nothing.
        """
        if not self._backup_due():
            return
        claim = files.try_claim(self.path + ".bak.lock", "backup claim")  # None: another process copies
        if claim is None:
            return
        background.later(__name__, "take_backup", self.path, fd=claim)

    def backup(self, claim: int) -> bool:
        """Refresh ``<state>.bak`` from a snapshot, without the state lock, holding ``claim`` (closed here).

        SQLite copies the snapshot into a private folder (it would follow a symlink swapped in
        under a name in the shared folder); the copy is then written into the state's folder
        under a fresh name through its descriptor and renamed over ``<state>.bak``. A state too
        large for the free space left is not copied: ``doctor`` then reports a stale copy.
        """
        work = out = temp = None
        try:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return False
            if not self._backup_due():
                return True
            files.remove_dead_leftovers(self.path, time.time())
            space = os.statvfs(self.folder)
            if space.f_bavail * space.f_frsize < 2 * st.st_size + files.MIN_FREE_BYTES:
                return False
            work = files.private_folder()
            files.remove_dead_scratch(work)
            copy = os.path.join(work, "copy.db")
            source, _ = self._connect(write=False)
            try:
                target = sqlite3.connect(copy, isolation_level=None)
                try:
                    source.backup(target)
                    target.execute("PRAGMA journal_mode = DELETE")
                finally:
                    target.close()
            finally:
                source.close()
            src, _ = files.open_regular(copy, "backup copy")
            try:
                out, temp = files.create_exclusive(f"{self.path}.bak.tmp-")
                files.copy_fd(src, out)
                os.fsync(out)
            finally:
                os.close(src)
            files.publish(out, temp, self.path + ".bak", "the good copy")
            return True
        finally:
            files.discard(out, temp)
            if work:
                files.remove_folder(work)
            os.close(claim)

    def restore_backup(self) -> str:
        def check(fd: int, st: os.stat_result) -> None:
            try:
                self._check_header(os.pread(fd, 100, 0), st.st_size)
            except DamagedStateError as exc:
                raise DamagedStateError(f"the last good copy is not usable either: {exc.message}") from None

        self.close()
        with rotation.claimed(self.path, self.lock_timeout):
            kept = self.restore_from(self.path + ".bak", check, extra=("-wal", "-shm"))
            self._set_aside_later_rotations(kept)
        return kept

    def _set_aside_later_rotations(self, kept: str) -> None:
        """Move rotated files holding events newer than the restored copy's beside the replaced state.

        The copy's table goes on numbering events from its own newest one, so those files' seqs
        would name other events; what they record was lost with the state they belong to.
        """
        db, _ = self._reader()
        try:
            newest = db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        finally:
            db.close()
        for seg in rotation.segments(self.path):
            if seg.last > newest:
                os.rename(seg.path, kept + seg.path[len(self.path):])

    # -- doctor --------------------------------------------------------------------------
    def check(self) -> list[tuple[str, str, str]]:
        try:
            db, version = self._reader()
        except (DamagedStateError, ForbiddenError, CannotWriteError) as exc:
            return [("state", "fail", exc.message), self._check_backup()]
        try:
            rows = self._check_contents(db, version)
        except sqlite3.DatabaseError as exc:
            rows = [("state", "fail", f"state {self.path} is damaged: {exc}")]
        finally:
            db.close()
        return rows + [self._check_backup()]

    def _check_contents(self, db: sqlite3.Connection, version: int) -> list[tuple[str, str, str]]:
        result = db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            return [("state", "fail", f"state {self.path}: SQLite quick_check: {result}")]
        db.execute("BEGIN")
        pools, sessions, events = db.execute(
            "SELECT (SELECT count(*) FROM pools), (SELECT count(*) FROM sessions), (SELECT count(*) FROM events)"
        ).fetchone()
        view = SqliteView(db, time.time(), self.where, None, counters=False)
        bad = []
        for (doc,) in db.execute("SELECT doc FROM pools"):
            try:
                view._pool(doc)
            except DamagedStateError as exc:
                bad.append(exc.message)
        for (doc,) in db.execute("SELECT doc FROM sessions"):
            try:
                view._session(doc)
            except DamagedStateError as exc:
                bad.append(exc.message)
        rows = []
        if bad:
            rows.append(("state", "fail", f"{len(bad)} row(s) of the wrong shape, first: {bad[0]}"))
        else:
            rows.append(("state", "ok", f"{self.path}: SQLite (schema {version}), {pools} pool(s), {sessions} session(s)"))
        if version >= 2:
            counted = db.execute("SELECT count(*) FROM seats").fetchone()[0], db.execute(
                "SELECT coalesce(sum(sessions), 0) FROM usage").fetchone()[0]
            actual = db.execute("SELECT count(*) FROM (SELECT DISTINCT pool, feature, seat FROM sessions)").fetchone()[0], sessions
            if counted != actual:
                rows.append(("counters", "fail", f"seat counters say {counted[0]} seats and {counted[1]} sessions, "
                                                 f"the sessions table {actual[0]} and {actual[1]}"))
        rows.append(self._check_journal(db, events))
        rows.append(rotation.check(self, db.execute("SELECT min(seq) FROM events").fetchone()[0],
                                   view.journal_over_limit()))
        db.execute("ROLLBACK")
        return rows

    def _check_journal(self, db: sqlite3.Connection, events: int) -> tuple[str, str, str]:
        try:
            bad = db.execute("SELECT count(*) FROM events WHERE NOT json_valid(doc)").fetchone()[0]
            back = db.execute(
                "SELECT count(*), min(seq) FROM (SELECT seq, json_extract(doc, '$.ts') AS ts, "
                "lag(json_extract(doc, '$.ts')) OVER (ORDER BY seq) AS before FROM events) WHERE ts < before"
            ).fetchone()
        except sqlite3.OperationalError:  # an SQLite without JSON or window functions
            return ("journal", "ok", f"{events} event(s) in the state's events table")
        if bad:
            return ("journal", "fail", f"{bad} of {events} event(s) are not valid JSON")
        if back[0]:
            return ("journal", "warn", f"{events} event(s); times go backwards {back[0]} time(s), first at seq "
                                       f"{back[1]} (the system clock was set back)")
        return ("journal", "ok", f"{events} event(s) in the state's events table, times in order")

    def _check_backup(self) -> tuple[str, str, str]:
        bak = self.path + ".bak"

        def header(fd: int, st: os.stat_result) -> None:
            try:
                self._check_header(os.pread(fd, 100, 0), st.st_size)
            except DamagedStateError as exc:
                raise DamagedStateError(exc.message.replace(f"state {self.path}", f"good copy {bak}")) from None

        row, st = self.check_good_copy("made after the first write", header)
        if row or st is None:
            return row or ("backup", "fail", f"{bak} cannot be read")
        age = time.time() - st.st_mtime
        try:
            changed = max(os.stat(self.path + suffix).st_mtime for suffix in ("", "-wal") if os.path.exists(self.path + suffix))
            size = os.stat(self.path).st_size
        except (OSError, ValueError):
            changed, size = st.st_mtime, 0
        due = max(BACKUP_INTERVAL, size / BACKUP_RATE)
        if changed - st.st_mtime > 2 * due + 60:
            return ("backup", "warn", f"{bak} was taken {age:.0f}s ago, {changed - st.st_mtime:.0f}s before the "
                                      "state's last change: the last copies failed (no space left?)")
        return ("backup", "ok", f"{bak}, taken {age:.0f}s ago")


def take_backup(path: str, claim: str) -> None:
    """The background job :meth:`SqliteStore._schedule_backup` asks for (``claim``: the descriptor it holds)."""
    SqliteStore(path, 0).backup(int(claim))


def _descriptors() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _check_opened(before: set[str] | None, st: os.stat_result, path: str) -> None:
    """Exit 6 unless SQLite's new descriptor is the file ``st`` describes (skipped without /proc)."""
    if before is None:
        return
    after = _descriptors() or set()

    def on_file(names: set[str]) -> int:
        count = 0
        for name in names:
            try:
                count += files.same_file(os.stat(f"/proc/self/fd/{name}"), st)
            except OSError:
                continue
        return count

    # a new descriptor on the file; or, if a number was reused meanwhile, one besides lictools' own
    if on_file(after - before) >= 1 or on_file(after) >= 2:
        return
    raise DamagedStateError(f"state {path} was replaced while it was being opened; nothing was changed")
