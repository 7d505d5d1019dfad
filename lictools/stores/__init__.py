"""Pick the store for a ``--state`` target, the way platformdirs picks its platform class.

- ``postgresql://...`` (or ``postgres://``): the shared PostgreSQL store (the ``postgres`` extra: psycopg);
- a path ending in ``.json``: the human-readable JSON file store;
- any other path: the SQLite file store (the default, fast with many sessions).
"""

from __future__ import annotations

import os

from lictools.errors import UsageError
from lictools.stores.api import Store

STATE_ENV = "LICTOOLS_STATE"


def default_state_path() -> str:
    """``state.db`` under this user's platformdirs state folder.

    Refused (exit 2) when that folder does not exist yet and neither does the home folder it
    would be made in: a service account with ``HOME=/nonexistent`` must not get one created.
    """
    from platformdirs import user_state_dir

    path = os.path.join(user_state_dir("lictools", appauthor=False), "state.db")
    home = os.path.expanduser("~")
    if not os.path.isdir(os.path.dirname(path)) and not os.path.isdir(home):
        raise UsageError(f"the default state {path} would be made under {home}, which does not exist; "
                         "give --state or LICTOOLS_STATE")
    return path


def open_store(target: str | None, lock_timeout: float, keep_open: bool = False) -> Store:
    """The store for ``target`` (a path or URL); None means the default state file.

    ``keep_open``: keep the SQLite connection between transactions (a long-lived caller, or a
    CLI process that ends with os._exit and so never checkpoints outside the state lock).
    """
    target = target or default_state_path()
    if target.startswith(("postgresql://", "postgres://")):
        try:
            from lictools.stores.postgres import PostgresStore
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] != "psycopg":
                raise  # a module of lictools itself: a bug, not a missing extra
            raise UsageError("a postgresql:// state needs psycopg: pip install 'lictools[postgres]'") from None
        return PostgresStore(target, lock_timeout, keep_open)
    if "\x00" in target:
        raise UsageError("--state: the path contains a NUL character")
    try:
        target.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("--state: the path is not valid text (undecodable bytes)") from None
    if target.endswith(".json"):
        from lictools.stores.jsonfile import JsonFileStore

        return JsonFileStore(target, lock_timeout)
    from lictools.stores.sqlite import SqliteStore

    return SqliteStore(target, lock_timeout, keep_open)
