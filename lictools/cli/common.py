"""What every command module uses: the global settings, one transaction or snapshot, output, examples."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import click

from lictools.errors import NotFoundError
from lictools.model import Session
from lictools.stores.api import StateView, Transaction

READER_NICENESS = 10
"""How much a read-only command lowers its own CPU priority (see :func:`snapshot`)."""

PROCESS_EXITS_HARD = False
"""Set by the console script, whose process ends with os._exit: a store may then keep its SQLite
connection open to the end (no WAL checkpoint per command, and none outside the state lock)."""

if TYPE_CHECKING:
    from lictools.engine import Handled
    from lictools.stores.api import Store


class Settings:
    """The global options (``--state``, ``--format``, ``--lock-timeout``), and what the first reap ended."""

    def __init__(self, state: str | None, fmt: str, lock_timeout: float) -> None:
        self.state = state
        self.fmt = fmt
        self.lock_timeout = lock_timeout
        self.reaped: list[Session] = []
        self.store: Store | None = None


def settings() -> Settings:
    found = click.get_current_context().find_object(Settings)
    assert found is not None, "the lictools group sets the settings"
    return found


def store() -> Store:
    """The store of ``--state`` (opened once per command)."""
    s = settings()
    if s.store is None:
        from lictools.stores import open_store

        s.store = open_store(s.state, s.lock_timeout, keep_open=PROCESS_EXITS_HARD)
    return s.store


@contextmanager
def transaction() -> Iterator[Transaction]:
    """Open the state, reap expired leases, yield the transaction; commit on success."""
    from lictools import engine

    with store().transaction() as tx:
        settings().reaped = engine.reap(tx)
        yield tx


class _Discard(Exception):
    """Raised at the end of a trial transaction so that the store rolls every change back."""


@contextmanager
def trial_transaction() -> Iterator[Transaction]:
    """A transaction whose changes are all thrown away, for ``--dry-run``: nothing written, nothing created.

    On a state that does not exist yet it tries on an empty one in memory, so a dry run never
    leaves a new state file behind.
    """
    from lictools import engine

    target = store()
    try:
        with target.read():
            pass
    except NotFoundError:
        from lictools.stores.memory import MemoryStore

        target = MemoryStore(clock=target.now)
    try:
        with target.transaction() as tx:
            settings().reaped = engine.reap(tx)
            yield tx
            raise _Discard
    except _Discard:
        pass


@contextmanager
def snapshot() -> Iterator[StateView]:
    """The state as the next write's reap would leave it, read without the lock; exit 4 when there is none.

    For read-only commands: they neither wait for nor hold up writers, and create nothing. Run
    as a command of its own, the listing also yields the CPU to the commands it runs beside
    (nice 10): on a busy machine a 100,000-session ``users`` must not slow a login hook down.
    """
    import os

    if PROCESS_EXITS_HARD:
        try:
            os.nice(READER_NICENESS)
        except OSError:
            pass
    with store().read() as view:
        yield view


def require_admin(tx: StateView, action: str) -> None:
    """Exit 7 unless the caller is root, the state's owner or in its admin group."""
    from lictools.permissions import require_admin as check

    check(store().owner_uid(), tx.get_settings().get("admin_group"), action)


def caller_is_admin(tx: StateView) -> bool:
    """Root, the state's owner or a member of its admin group."""
    from lictools.permissions import is_admin

    return is_admin(store().owner_uid(), tx.get_settings().get("admin_group"))


def own_sessions_only(tx: Transaction) -> int | None:
    """The caller's uid when only their own sessions may be touched; None for an admin."""
    import os

    return None if caller_is_admin(tx) else os.geteuid()


def example(*lines: str) -> str:
    """An epilog block for ``--help`` that click prints as written."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)


def warn(message: str) -> None:
    click.echo(f"lictools: {message}", err=True)


def report_missing(missing: Iterable[str], detached: frozenset[str] = frozenset()) -> None:
    """One stderr line per id that was not found (or is detached); exit 4 when there was any."""
    lines = []
    for session_id in missing:
        shown = session_id if len(session_id) <= 64 and session_id.isprintable() else repr(session_id[:64]) + "..."
        if session_id in detached:
            lines.append(f"session {shown} is detached (its user agent went away) and ends at its timeout; acquire again")
        else:
            lines.append(f"unknown session {shown}")
    for line in lines[:-1]:
        warn(line)
    if lines:
        raise NotFoundError(lines[-1])


def end_sessions(
    action: Callable[..., Handled], ids: tuple[str, ...], verb: str, own_only: bool = True, must_match: bool = False,
) -> None:
    """Run release/detach/refresh/remove on ``ids`` and print one row per session handled.

    ``own_only``: a non-admin may only touch sessions their account acquired (exit 7 otherwise).
    ``must_match``: a selection (not ids) that matched nothing is exit 4, "no session matched".
    """
    from lictools.output import emit_rows
    from lictools.timeutil import iso

    with transaction() as tx:
        handled = action(tx, ids, uid=own_sessions_only(tx)) if own_only else action(tx, ids)
    ended = verb in ("released", "removed")
    rows = [
        {
            "session": s.id,
            "pool": s.pool,
            "feature": s.feature,
            "seat": s.seat,
            "user": s.user,
            "action": verb,
            "seat_freed": s.id in handled.freed,
            "expires": None if ended or s.id in handled.freed else iso(s.expires),
        }
        for s in handled.done
    ]
    fmt = settings().fmt
    if fmt == "table":
        for row in rows:
            freed = "seat freed" if row["seat_freed"] else "seat still held"
            until = f", until {row['expires']}" if row["expires"] else ""
            click.echo(f"{verb} {row['session']} ({row['pool']}/{row['feature']} seat {row['seat']}: {freed}{until})")
    else:
        emit_rows(rows, ["session", "pool", "feature", "seat", "user", "action", "seat_freed", "expires"], fmt)
    for session in handled.kept:
        warn(f"kept session {session.id} ({session.user}): younger than --min-age, since {iso(session.started)}")
    report_missing(handled.missing, handled.detached)
    if must_match and not handled.done:
        young = f" ({len(handled.kept)} younger than --min-age kept)" if handled.kept else ""
        raise NotFoundError(f"no session matched{young}")
