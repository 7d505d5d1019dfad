"""The shared store: one PostgreSQL database that clients on several hosts count seats in (psycopg 3).

Same semantics as the file stores, with the database doing what the state lock does there:

- one database transaction per command (READ COMMITTED); reading a pool in a write transaction
  locks its row (``SELECT ... FOR UPDATE``) until the commit, so decisions on one pool are taken
  one at a time while commands on other pools proceed. Every later statement of the transaction
  sees what the previous holder of that row committed.
- a read-only command reads a REPEATABLE READ READ ONLY snapshot: it neither waits for nor holds
  up writers.
- the time of a command is the database server's ``now()`` (never a client's clock, which may
  be off on one of the hosts); LICTOOLS_NOW pins it for root, as on the file stores.
- the journal is the ``events`` table, written in the same transaction. Its rows are numbered
  under a transaction-scoped advisory lock taken just before the commit, so ``seq`` order is
  commit order and a reader that remembers the last ``seq`` it saw (``metrics``) misses nothing.
- the tables live in the schema ``lictools`` (the connection's ``search_path``), created by the
  first write, versioned in the schema's comment: a newer version is refused with exit 6.

Errors become the exit codes of SPEC.md with one line naming the server (host and port), never
the password: 5 when the server is down, unreachable, or a lock is not obtained within
``--lock-timeout``; 7 when it refuses the login; 4 when the database does not exist.

No seat counters here (the SQLite store keeps them with triggers): counting the sessions of one
pool feature through an index costs well under a millisecond at thousands of sessions, and one
fact in one place beats a trigger layer in PL/pgSQL (docs/performance.md).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg
from psycopg.pq import TransactionStatus

from lictools.errors import (
    BusyError, CannotWriteError, DamagedStateError, ForbiddenError, LictoolsError, NotFoundError, UsageError,
)
from lictools.model import Pool, Session
from lictools.stores import schema
from lictools.stores.api import StateView, Store, Transaction
from lictools.stores.codec import encode_event
from lictools.timeutil import pinned, state_clock

SCHEMA = "lictools"
"""The PostgreSQL schema (namespace) holding lictools' tables in the database the URL names."""
SCHEMA_VERSION = 1
MARK = "lictools state, schema version "
"""The schema's comment: tells lictools' schema from another program's, and carries its version."""

TABLES = [
    "CREATE TABLE pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    # clock_skew: the writing client's clock minus the server's, in seconds (doctor: nodes whose clock is off)
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY, pool TEXT NOT NULL, feature TEXT NOT NULL, seat TEXT NOT NULL,
        seat_project TEXT, expires DOUBLE PRECISION, node TEXT, clock_skew DOUBLE PRECISION, doc TEXT NOT NULL)""",
    "CREATE INDEX sessions_seat ON sessions (pool, feature, seat_project, seat)",
    "CREATE INDEX sessions_by_seat ON sessions (pool, feature, seat)",
    "CREATE INDEX sessions_expires ON sessions (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE events (seq BIGINT PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

JOURNAL_LOCK = 0x4C494354  # "LICT": advisory lock numbering the journal in commit order (per database)
SCHEMA_LOCK = 0x4C494355  # held while the first write creates the schema
JOURNAL_BATCH = 1000
"""Events a transaction keeps before it numbers and writes them (and so takes the journal lock early)."""
NODE_CLOCK_TOLERANCE = 5.0
"""Seconds a client's clock may differ from the server's before ``doctor`` warns about it."""

_CURSORS = itertools.count(1)
"""Names of server-side cursors (unique in a connection: two journal reads may overlap)."""
_COLUMNS = {"id", "pool", "feature", "seat", "seat_project"}
_LIVE = " AND (expires IS NULL OR expires > %s)"
_STATE_QUERY = (
    "SELECT extract(epoch FROM now())::float8, extract(epoch FROM clock_timestamp())::float8, "
    f"obj_description(to_regnamespace('{SCHEMA}'), 'pg_namespace'), "
    f"has_schema_privilege(to_regnamespace('{SCHEMA}'), 'USAGE'), current_user"
)
"""One round trip at the start of every command: the command's time, the server's clock now, the version
mark, whether this role may use the schema, and the role's name."""


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), fit for any message."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{hosts}"
    query = "&".join(p for p in parts.query.split("&") if p.partition("=")[0] != "password")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresView(StateView):
    """Reads through one transaction; with ``live_at`` set, sessions whose lease ended by then are left out."""

    def __init__(self, db: psycopg.Connection[Any], now: float, where: str, live_at: float | None) -> None:
        self.db = db
        self.now = now
        self.where = where
        self._live = _LIVE if live_at is not None else ""
        self._live_args: tuple[Any, ...] = (live_at,) if live_at is not None else ()

    def _pool(self, text: str) -> Pool:
        return schema.pool_row(text, self.where)

    def _session(self, text: str) -> Session:
        return schema.session_row(text, self.where)

    def get_pool(self, name: str) -> Pool | None:
        row = self.db.execute("SELECT doc FROM pools WHERE name = %s", (name,)).fetchone()
        return self._pool(row[0]) if row else None

    def list_pools(self) -> list[Pool]:
        return [self._pool(doc) for (doc,) in self.db.execute("SELECT doc FROM pools ORDER BY name COLLATE \"C\"")]

    def get_session(self, session_id: str) -> Session | None:
        row = self.db.execute(f"SELECT doc FROM sessions WHERE id = %s{self._live}",
                              (session_id, *self._live_args)).fetchone()
        return self._session(row[0]) if row else None

    def find_sessions(self, **criteria: Any) -> list[Session]:
        # a text criterion without a column is matched in the document by the server, so that asking
        # for one user's sessions does not send and decode every session of the feature; Python checks
        # again on the decoded session (the truth). "= NULL" matches nothing: None is asked with IS NULL.
        columns = {k: v for k, v in criteria.items() if k in _COLUMNS}
        in_doc = {k: v for k, v in criteria.items() if k not in _COLUMNS and isinstance(v, str)}
        where = [f"{k} = %s" if v is not None else f"{k} IS NULL" for k, v in columns.items()]
        where += ["doc::jsonb ->> %s = %s"] * len(in_doc)
        args = [v for v in columns.values() if v is not None] + [x for item in in_doc.items() for x in item]
        rows = self.db.execute(f"SELECT doc FROM sessions WHERE {' AND '.join(where) or 'TRUE'}{self._live}",
                               (*args, *self._live_args))
        found = [self._session(doc) for (doc,) in rows]
        if len(columns) < len(criteria):
            found = [s for s in found if all(getattr(s, k, None) == v for k, v in criteria.items() if k not in _COLUMNS)]
        return sorted(found, key=lambda s: (s.started, s.id))

    def count_seat_sessions(self, pool: str, feature: str, seat: str) -> int:
        row = self.db.execute(f"SELECT count(*) FROM sessions WHERE pool = %s AND feature = %s AND seat = %s{self._live}",
                              (pool, feature, seat, *self._live_args)).fetchone()
        return int(row[0]) if row else 0

    def count_sessions(self, pool: str, feature: str) -> int:
        row = self.db.execute(f"SELECT count(*) FROM sessions WHERE pool = %s AND feature = %s{self._live}",
                              (pool, feature, *self._live_args)).fetchone()
        return int(row[0]) if row else 0

    def seats_by_project(self, pool: str, feature: str) -> dict[str | None, int]:
        rows = self.db.execute(
            "SELECT seat_project, count(DISTINCT seat) FROM sessions WHERE pool = %s AND feature = %s"
            f"{self._live} GROUP BY seat_project", (pool, feature, *self._live_args))
        return {project: int(count) for project, count in rows}

    def get_settings(self) -> dict[str, str]:
        return {key: value for key, value in self.db.execute("SELECT key, value FROM settings")}

    def journal(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        # a server-side cursor: bounded memory however long the journal is
        with self.db.cursor(name=f"lictools_journal_{next(_CURSORS)}") as rows:
            rows.itersize = 2000
            rows.execute("SELECT seq, doc FROM events WHERE seq > %s ORDER BY seq", (since_seq,))
            for seq, doc in rows:
                event = schema.event(doc, f"{self.where}: journal event {seq}")
                event["seq"] = seq
                yield event


class PostgresTransaction(PostgresView, Transaction):
    """A write transaction: a pool read is a pool locked; journal events are numbered at the commit.

    Every stored session is visible (``engine.reap`` ends the expired ones).
    """

    def __init__(self, db: psycopg.Connection[Any], now: float, where: str, clock_skew: float) -> None:
        super().__init__(db, now, where, live_at=None)
        self.clock_skew = clock_skew
        self.events: list[str] = []  # encoded, not yet numbered
        self._next_seq: int | None = None  # known once the journal lock is held
        # pools this transaction read (and so locked): name -> whether it existed
        self._read_pools: dict[str, bool] = {}

    def get_pool(self, name: str) -> Pool | None:
        row = self.db.execute("SELECT doc FROM pools WHERE name = %s FOR UPDATE", (name,)).fetchone()
        self._read_pools[name] = row is not None
        return self._pool(row[0]) if row else None

    def get_session(self, session_id: str) -> Session | None:
        # locked: a command ending or changing it waits for another doing so, then finds what that left
        row = self.db.execute("SELECT doc FROM sessions WHERE id = %s FOR UPDATE", (session_id,)).fetchone()
        return self._session(row[0]) if row else None

    def put_pool(self, pool: Pool) -> None:
        doc = json.dumps(pool.to_doc())
        if self._read_pools.get(pool.name, True):
            self.db.execute("INSERT INTO pools (name, doc) VALUES (%s, %s) "
                            "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc", (pool.name, doc))
        else:
            # read as missing: a plain insert, so that a pool another command created meanwhile is
            # refused (a unique violation, exit 5) instead of overwritten
            self.db.execute("INSERT INTO pools (name, doc) VALUES (%s, %s)", (pool.name, doc))
        self._read_pools[pool.name] = True

    def delete_pool(self, name: str) -> None:
        self.db.execute("DELETE FROM pools WHERE name = %s", (name,))

    def put_session(self, session: Session) -> None:
        self.db.execute(
            "INSERT INTO sessions (id, pool, feature, seat, seat_project, expires, node, clock_skew, doc) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, "
            "feature = excluded.feature, seat = excluded.seat, seat_project = excluded.seat_project, "
            "expires = excluded.expires, node = excluded.node, clock_skew = excluded.clock_skew, doc = excluded.doc",
            (session.id, session.pool, session.feature, session.seat, session.seat_project, session.expires,
             session.node, self.clock_skew, json.dumps(session.to_doc())),
        )

    def delete_session(self, session_id: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id = %s", (session_id,))

    def expired_sessions(self, now: float) -> list[Session]:
        # locked in one order: two commands reaping the same session take turns, and the second
        # no longer finds it (so it is ended, and journalled, once)
        rows = self.db.execute("SELECT doc FROM sessions WHERE expires IS NOT NULL AND expires <= %s "
                               "ORDER BY id FOR UPDATE", (now,))
        return [self._session(doc) for (doc,) in rows]

    def put_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM settings WHERE key = %s", (key,))
        else:
            self.db.execute("INSERT INTO settings (key, value) VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def append_event(self, event: dict[str, Any]) -> None:
        self.events.append(encode_event(event))
        if len(self.events) >= JOURNAL_BATCH:  # a long copy (migrate) stays in bounded memory
            self.write_journal()

    def write_journal(self) -> None:
        """Number and insert the events appended so far, under the journal lock (held until the commit).

        Taken as late as possible (at the commit, or when a batch is full): from then on, every other
        command that journals waits for this one's commit, so ``seq`` order is commit order.
        """
        if not self.events:
            return
        if self._next_seq is None:
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (JOURNAL_LOCK,))
            row = self.db.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()
            self._next_seq = int(row[0]) if row else 1
        first = self._next_seq
        with self.db.cursor() as cur:
            cur.executemany("INSERT INTO events (seq, doc) VALUES (%s, %s)",
                            [(first + i, doc) for i, doc in enumerate(self.events)])
        self._next_seq = first + len(self.events)
        self.events.clear()

    def journal(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        self.write_journal()
        return super().journal(since_seq)

    def clear_journal(self) -> None:
        """Drop every journal event (``migrate --force``): the next one appended is numbered 1."""
        self.events.clear()
        self.db.execute("SELECT pg_advisory_xact_lock(%s)", (JOURNAL_LOCK,))
        self.db.execute("DELETE FROM events")
        self._next_seq = 1


class PostgresStore(Store):
    """The state in the ``lictools`` schema of the PostgreSQL database a ``postgresql://`` URL names."""

    layout = "PostgreSQL"

    def __init__(self, url: str, lock_timeout: float, keep_open: bool = False) -> None:
        self.url = url
        self.location = redact(url)
        self.where = f"state {self.location}"
        self.lock_timeout = lock_timeout
        self.keep_open = keep_open
        try:
            self.params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error:
            raise UsageError(f"--state: {self.location} is not a valid PostgreSQL URL") from None
        self._db: psycopg.Connection[Any] | None = None

    # -- who and when ------------------------------------------------------------------
    def owner_uid(self) -> int | None:
        """None: a database has no owning account on the client hosts. Admins there are root and
        the members of the ``admin_group`` setting (lictools-postgres(7))."""
        return None

    def now(self) -> float:
        if pinned() is not None:
            return state_clock(lambda: None, self.location)
        with self._connection() as db:
            try:
                (now,) = db.execute("SELECT extract(epoch FROM now())::float8").fetchone()  # type: ignore[misc]
            except psycopg.Error as exc:
                raise self._translate(exc, db) from None
        return float(now)

    @property
    def server(self) -> str:
        """``host H port P`` of the server the URL (or PGHOST/PGPORT, or libpq's defaults) names."""
        host = str(self.params.get("host") or self.params.get("hostaddr") or os.environ.get("PGHOST")
                   or "/var/run/postgresql")
        port = str(self.params.get("port") or os.environ.get("PGPORT") or 5432)
        return f"host {host} port {port}"

    # -- connecting ----------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one transaction: the store's own (kept between the transactions of one
        process with ``keep_open``), or a fresh one while that is busy (a snapshot read inside another)."""
        db = self._db
        if db is None or db.closed or db.broken:
            db = self._db = self._open()
            own = False
        else:
            own = db.info.transaction_status != TransactionStatus.IDLE
            if own:
                db = self._open()
        try:
            yield db
        finally:
            if own:
                db.close()
            elif not self.keep_open:
                self.close()

    def _open(self) -> psycopg.Connection[Any]:
        wait_ms = max(1, round(self.lock_timeout * 1000))  # 0 would mean "wait forever" to PostgreSQL
        options = " ".join(filter(None, [
            str(self.params.get("options") or ""), f"-c search_path={SCHEMA}", f"-c lock_timeout={wait_ms}",
            # a statement that runs this long is stuck behind something else: exit 5 rather than hang a login
            f"-c statement_timeout={wait_ms + 30_000}",
        ]))
        try:
            return psycopg.connect(self.url, autocommit=True, options=options,
                                   connect_timeout=max(2, int(self.lock_timeout + 0.999)),
                                   application_name=str(self.params.get("application_name") or "lictools"))
        except psycopg.Error as exc:
            raise self._translate(exc, None) from None

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except psycopg.Error:
                pass
            self._db = None

    def _check_mark(self, mark: str | None) -> int:
        """The schema version from its comment; DamagedStateError for another program's or a newer schema."""
        if mark is None:
            return 0
        if not mark.startswith(MARK) or not mark[len(MARK):].isdigit():
            raise DamagedStateError(f"{self.where}: schema {SCHEMA} exists but is not a lictools state "
                                    "(another program's?); nothing was changed")
        version = int(mark[len(MARK):])
        if version > SCHEMA_VERSION:
            raise DamagedStateError(f"{self.where} has schema {version}, newer than this lictools "
                                    f"({SCHEMA_VERSION}); upgrade lictools")
        return version

    def _begin(self, db: psycopg.Connection[Any], statement: str) -> tuple[float, float, int]:
        """Start a transaction: (the command's time, client clock minus server clock, schema version)."""
        db.execute(statement)
        before = time.time()
        now, clock, mark, usable, role = db.execute(_STATE_QUERY).fetchone()  # type: ignore[misc]
        skew = (before + time.time()) / 2 - clock
        version = self._check_mark(mark)
        if version and not usable:  # its tables would look missing: say what is missing is a grant
            raise ForbiddenError(f"{self.where}: role {role} may not use schema {SCHEMA} (the owner can run "
                                 f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role} and grant the tables)")
        if pinned() is not None:
            now = state_clock(lambda: None, self.location)  # root's pin (exit 7 for anybody else)
        return now, skew, version

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._connection() as db:
            committing = False
            try:
                now, skew, version = self._begin(db, "BEGIN")
                if version == 0:
                    self._create(db)
                tx = PostgresTransaction(db, now, self.where, skew)
                yield tx
                tx.write_journal()
                committing = True
                db.execute("COMMIT")
            except psycopg.Error as exc:
                error = self._translate(exc, db, committing)
                _rollback(db)
                raise error from None
            except BaseException:
                _rollback(db)
                raise

    def _create(self, db: psycopg.Connection[Any]) -> None:
        """Create the schema and its tables in this transaction (a refused first command leaves nothing)."""
        db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        (mark,) = db.execute(f"SELECT obj_description(to_regnamespace('{SCHEMA}'), 'pg_namespace')").fetchone()  # type: ignore[misc]
        if self._check_mark(mark):
            return  # created by another command while this one waited
        db.execute(f"CREATE SCHEMA {SCHEMA}")
        db.execute(f"SET LOCAL search_path = {SCHEMA}")
        for statement in TABLES:
            db.execute(statement)
        db.execute(f"COMMENT ON SCHEMA {SCHEMA} IS '{MARK}{SCHEMA_VERSION}'")

    # -- reading -------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[tuple[psycopg.Connection[Any], float, int]]:
        """A REPEATABLE READ READ ONLY snapshot: (connection, its time, schema version); exit 4 without a state."""
        with self._connection() as db:
            try:
                now, _, version = self._begin(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if version == 0:
                    raise NotFoundError(f"no state at {self.location} (nothing was created; "
                                        "'lictools pool add' creates it)")
                yield db, now, version
            except psycopg.Error as exc:
                raise self._translate(exc, db) from None
            finally:
                _rollback(db)

    @contextmanager
    def read(self, include_expired: bool = False) -> Iterator[StateView]:
        with self._reading() as (db, now, _):
            yield PostgresView(db, now, self.where, None if include_expired else now)

    def read_journal(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        with self._reading() as (db, now, _):
            yield from PostgresView(db, now, self.where, None).journal(since_seq)

    # -- errors --------------------------------------------------------------------------
    def _translate(self, exc: psycopg.Error, db: psycopg.Connection[Any] | None,
                   committing: bool = False) -> LictoolsError:
        """A psycopg error as the exit code it means, in one line naming the server (never the password)."""
        # libpq's first line, without what this line says anyway ("connection to server on socket ... failed:")
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rpartition(" failed: ")[2]
        text = text.removeprefix("FATAL:").removeprefix("ERROR:").strip()
        at = f"the PostgreSQL server at {self.server}"
        lowered = text.lower()
        if isinstance(exc, (pg.LockNotAvailable, pg.QueryCanceled)):
            return BusyError(f"{self.where}: lock not obtained within {self.lock_timeout:g}s on {at}; nothing was changed")
        if isinstance(exc, (pg.DeadlockDetected, pg.SerializationFailure, pg.UniqueViolation)):
            return BusyError(f"{self.where}: another command changed the same rows at the same time on {at}; "
                             "nothing was changed, try again")
        if isinstance(exc, pg.InvalidCatalogName) or ("does not exist" in lowered and "database" in lowered):
            return NotFoundError(f"{at}: {text} (create it: README, 'Several hosts')")
        if isinstance(exc, (pg.InvalidPassword, pg.InvalidAuthorizationSpecification)) or \
                "authentication failed" in lowered or "no password supplied" in lowered or "pg_hba.conf" in lowered:
            return ForbiddenError(f"{at} refused the login: {text}")
        if isinstance(exc, pg.InsufficientPrivilege):
            return ForbiddenError(f"{self.where}: {text} (grant the role access: README, 'Several hosts')")
        if isinstance(exc, (pg.DiskFull, pg.ReadOnlySqlTransaction, pg.OutOfMemory)):
            return CannotWriteError(f"cannot write {self.where} on {at}: {text}; nothing was changed")
        if isinstance(exc, psycopg.OperationalError) or db is None or db.closed or db.broken:
            if committing:
                return BusyError(f"lost the connection to {at} while committing ({text}): the change may or may "
                                 "not have been made; check with 'lictools users'")
            if db is None:
                return BusyError(f"cannot reach {at} ({text}); nothing was changed")
            return BusyError(f"lost the connection to {at} ({text}); nothing was changed")
        return DamagedStateError(f"{self.where} on {at}: {text}; nothing was changed")

    # -- doctor --------------------------------------------------------------------------
    def check(self) -> list[tuple[str, str, str]]:
        with self._reading() as (db, now, version):
            server_version, role, database = db.execute(  # type: ignore[misc]
                "SELECT current_setting('server_version'), current_user, current_database()").fetchone()
            before = time.time()
            (clock,) = db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()  # type: ignore[misc]
            skew = (before + time.time()) / 2 - clock
            pools, sessions, events = db.execute(  # type: ignore[misc]
                "SELECT (SELECT count(*) FROM pools), (SELECT count(*) FROM sessions), (SELECT count(*) FROM events)"
            ).fetchone()
            view = PostgresView(db, now, self.where, None)
            bad = []
            for table, parse in (("pools", view._pool), ("sessions", view._session)):
                for (doc,) in db.execute(f"SELECT doc FROM {table}"):
                    try:
                        parse(doc)
                    except DamagedStateError as exc:
                        bad.append(exc.message)
            off = db.execute(
                "SELECT coalesce(node, '?'), count(*), max(clock_skew) FROM sessions WHERE abs(clock_skew) > %s "
                "GROUP BY node ORDER BY max(abs(clock_skew)) DESC", (NODE_CLOCK_TOLERANCE,)).fetchall()
            try:  # last: a journal row that is not JSON fails this query, and with it the snapshot
                backwards: int | None = db.execute(
                    "SELECT count(*) FROM (SELECT (doc::jsonb->>'ts')::float8 AS ts, "
                    "lag((doc::jsonb->>'ts')::float8) OVER (ORDER BY seq) AS before FROM events) t "
                    "WHERE ts < before - %s", (self.lock_timeout + 1,)).fetchone()[0]  # type: ignore[index]
            except psycopg.DataError:
                backwards = None
        rows = [("server", "ok", f"PostgreSQL {server_version} at {self.server}, database {database}, role {role}")]
        if bad:
            rows.append(("state", "fail", f"{len(bad)} row(s) of the wrong shape, first: {bad[0]}"))
        else:
            rows.append(("state", "ok", f"{self.location}: PostgreSQL (schema {version}), {pools} pool(s), "
                                        f"{sessions} session(s)"))
        verdict = "warn" if abs(skew) > NODE_CLOCK_TOLERANCE else "ok"
        rows.append(("clock", verdict, f"this host's clock is {_seconds(skew)} the server's (lictools times every "
                                       "lease by the server's clock)"))
        if off:
            shown = ", ".join(f"{node} {_seconds(s)} ({n} session(s))" for node, n, s in off[:5])
            rows.append(("nodes", "warn", f"{len(off)} node(s) whose clock disagrees with the server's by more than "
                                          f"{NODE_CLOCK_TOLERANCE:g}s: {shown}; leases are timed by the server, "
                                          "but the nodes' own logs will not line up (run NTP)"))
        else:
            rows.append(("nodes", "ok", "every session's node clock agrees with the server's"))
        if backwards is None:
            rows.append(("journal", "fail", f"{events} event(s); some are not valid JSON"))
        elif backwards:
            rows.append(("journal", "warn", f"{events} event(s); times go backwards {backwards} time(s) by more "
                                            "than a lock wait (the server's clock was set back)"))
        else:
            rows.append(("journal", "ok", f"{events} event(s) in the events table, times in order"))
        return rows

    def restore_backup(self) -> str:
        raise UsageError("doctor --restore restores a state file; a PostgreSQL state is restored with PostgreSQL's "
                         "own backups (pg_dump, point-in-time recovery)")


def _rollback(db: psycopg.Connection[Any]) -> None:
    """End the transaction open on ``db``, if any; a broken connection is closed (which discards it)."""
    if db.closed:
        return
    try:
        if db.info.transaction_status != TransactionStatus.IDLE:
            db.execute("ROLLBACK")
    except psycopg.Error:
        db.close()


def _seconds(skew: float) -> str:
    """``1.2s ahead of`` / ``0.3s behind`` for a client-minus-server clock difference."""
    return f"{abs(skew):.1f}s {'ahead of' if skew >= 0 else 'behind'}"
