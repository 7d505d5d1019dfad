"""Shared fixtures: a state file per test, the CLI in-process and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contextlib import contextmanager

import pytest

from lictools import engine
from lictools.cli.main import run
from lictools.stores.jsonfile import JsonFileStore
from lictools.stores.sqlite import SqliteStore

LICTOOLS = [sys.executable, "-m", "lictools"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


STATE_FILES = {"sqlite": "state.db", "json": "state.json"}


def pytest_generate_tests(metafunc):
    """Run every test using ``state`` on both file layouts, and on PostgreSQL too where its module says so.

    A module sets ``STATE_LAYOUTS = ("sqlite", "json", "postgres")`` when its tests are about what a
    user sees of any state; ``@pytest.mark.layouts("sqlite", "json")`` keeps one test to the files
    (it looks at files, modes, folders or the lock file).
    """
    if "state" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("layouts")
    layouts = marker.args if marker else getattr(metafunc.module, "STATE_LAYOUTS", ("sqlite", "json"))
    metafunc.parametrize("state", layouts, indirect=True)


@pytest.fixture
def state(request, tmp_path, monkeypatch) -> Path | str:
    """A fresh state (a path, or a PostgreSQL URL), exported as LICTOOLS_STATE."""
    if request.param == "postgres":
        path = request.getfixturevalue("pg_url")
    else:
        path = tmp_path / "lt" / STATE_FILES[request.param]
    monkeypatch.setenv("LICTOOLS_STATE", str(path))
    monkeypatch.delenv("LICTOOLS_FORMAT", raising=False)
    monkeypatch.delenv("LICTOOLS_NOW", raising=False)
    return path


@pytest.fixture
def lt(state, capsys):
    """Run lictools in this process: ``lt("acquire", "p")`` -> Result(code, out, err)."""

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


NOBODY = 65534
USERS_GID = 4242  # a group that may use the state
ADMINS_GID = 4243  # configured as admin_group


@pytest.fixture
def as_user(lt, monkeypatch):
    """Run lictools in-process as if uid 65534 with the given groups (the state stays owned by us).

    Switching accounts for real needs an interpreter every account can reach, which CI lacks
    (/root is 0700), so the identity calls are replaced instead.
    """

    def call(*args, groups=(USERS_GID,)):
        with monkeypatch.context() as m:
            m.setattr(os, "geteuid", lambda: NOBODY)
            m.setattr(os, "getegid", lambda: USERS_GID)
            m.setattr(os, "getgroups", lambda: list(groups))
            return lt(*args)

    return call


@pytest.fixture
def lt1(tmp_path, monkeypatch, capsys):
    """lictools in this process, on whatever LICTOOLS_STATE the test sets (not parametrized by layout)."""
    monkeypatch.delenv("LICTOOLS_NOW", raising=False)
    monkeypatch.delenv("LICTOOLS_FORMAT", raising=False)

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def run_process(*args: str, env: dict | None = None, timeout: float = 60) -> Result:
    """Run lictools as a real process with the current environment (plus ``env``)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(LICTOOLS + list(args), capture_output=True, text=True, env=full_env, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def ltp(state):
    """Run lictools as a real process against the test's state."""
    return run_process


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run lictools in-process against one SQLite state: ``cli("info")`` -> (code, out, err)."""
    monkeypatch.setenv("LICTOOLS_STATE", str(tmp_path / "state.db"))
    monkeypatch.delenv("LICTOOLS_FORMAT", raising=False)
    monkeypatch.delenv("LICTOOLS_NOW", raising=False)

    def call(*args: str):
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


CLOCK_START = 1_795_000_000.5


class Clock:
    """A clock the test moves by hand (the stores read LICTOOLS_NOW)."""

    def __init__(self, monkeypatch, start: float = CLOCK_START) -> None:
        self.monkeypatch = monkeypatch
        self.set(start)

    def set(self, t: float) -> None:
        self.t = t
        self.monkeypatch.setenv("LICTOOLS_NOW", repr(t))

    def advance(self, seconds: float) -> None:
        self.set(self.t + seconds)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL 15 cluster for the whole run (tests/pgcluster.py), removed at the end.

    Skipped, saying why, where none can be started; a failure instead with LICTOOLS_REQUIRE_POSTGRES=1 (CI).
    """
    from tests.pgcluster import REQUIRE_ENV, Cluster, why_not

    def unavailable(reason: str):
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL cluster: {reason}", pytrace=False)
        pytest.skip(f"no PostgreSQL cluster: {reason}")

    reason = why_not()
    if reason:
        unavailable(reason)
    try:
        cluster = Cluster()
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        unavailable(f"initdb/pg_ctl failed: {detail.strip()[-300:]}")
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a fresh, empty database in the test cluster."""
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "json", "postgres"])
def store(request, tmp_path):
    """Each store, on a fresh state (the contract every store must keep)."""
    if request.param == "postgres":
        from lictools.stores.postgres import PostgresStore

        made = PostgresStore(request.getfixturevalue("pg_url"), lock_timeout=5)
        yield made
        made.close()
        return
    if request.param == "json":
        yield JsonFileStore(str(tmp_path / "state.json"), lock_timeout=5)
    else:
        yield SqliteStore(str(tmp_path / "state.db"), lock_timeout=5)


@pytest.fixture
def tx(store, clock):
    """``with tx() as t:`` = one command's transaction, expired leases reaped first."""

    @contextmanager
    def open_tx():
        with store.transaction() as t:
            engine.reap(t)
            yield t

    return open_tx


@pytest.fixture(scope="session")
def accounts():
    """Throwaway accounts and a lictools they can run (tests/accounts.py); skipped unless root."""
    from tests.accounts import Accounts, why_not

    reason = why_not()
    if reason:
        pytest.skip(reason)
    import subprocess

    try:
        made = Accounts()
    except subprocess.CalledProcessError as exc:  # a container without a writable /etc, say
        pytest.skip(f"cannot create throwaway accounts here: {exc.cmd[0]}: {(exc.stderr or b'').decode().strip()}")
    try:
        yield made
    finally:
        made.remove()
