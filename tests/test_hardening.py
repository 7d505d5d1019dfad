"""Permissions (exit 7), doctor and restore, symlinks, network filesystems, stale holders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lictools.stores import locking

from tests.conftest import ADMINS_GID, USERS_GID


@pytest.fixture
def pool(lt):
    """A pool created by this account (the state's owner, an admin)."""
    assert lt("pool", "add", "p", "--product", "generic", "--license", "seats=5").code == 0
    return lt


def test_user_may_acquire_and_release_own_session(pool, as_user):
    granted = as_user("acquire", "p", "--feature", "seats")
    assert granted.code == 0, granted.err
    assert as_user("release", granted.out.strip()).code == 0


def test_user_may_not_touch_another_accounts_session(pool, as_user):
    owner_session = pool("acquire", "p", "--feature", "seats").out.strip()
    for verb in ("release", "detach", "refresh"):
        r = as_user(verb, owner_session)
        assert r.code == 7, (verb, r.err)
        assert len(r.err.splitlines()) == 1 and "another account" in r.err
    assert pool("--format", "json", "info").json()[0]["in_use"] == 1
    assert pool("release", owner_session).code == 0, "the owner (an admin) may"


@pytest.mark.parametrize(
    "args",
    [
        ["remove", "--user", "root"],
        ["pool", "add", "q", "--product", "generic"],
        ["pool", "remove", "p", "--force"],
        ["pool", "set", "p", "--option", "lease=10"],
        ["license", "add", "p", "seats", "100"],
        ["license", "remove", "p", "initial-seats"],
        ["reserve", "p", "proj", "seats", "1"],
        ["config", "admin_group", "0"],
        ["doctor", "--restore", "--yes"],
    ],
)
def test_admin_commands_refused_for_users(pool, as_user, args):
    r = as_user(*args)
    assert r.code == 7, r.err
    assert len(r.err.strip().splitlines()) == 1
    assert pool("--format", "json", "info").json()[0]["issued"] == 5


def test_admin_group_members_may_run_admin_commands(pool, as_user):
    assert pool("config", "admin_group", str(ADMINS_GID)).code == 0
    assert as_user("license", "add", "p", "seats", "1", "--serial", "S9").code == 7
    r = as_user("license", "add", "p", "seats", "1", "--serial", "S9", groups=(USERS_GID, ADMINS_GID))
    assert r.code == 0, r.err
    owner_session = pool("acquire", "p", "--feature", "seats").out.strip()
    assert as_user("release", owner_session, groups=(USERS_GID, ADMINS_GID)).code == 0


def test_admin_group_must_exist(pool):
    r = pool("config", "admin_group", "no-such-group-here")
    assert r.code == 2


def test_unreadable_state_is_exit_7(pool, state, monkeypatch):
    real_open = os.open

    def deny(path, *args, **kwargs):
        if os.fspath(path) == str(state):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    r = pool("info")
    assert r.code == 7 and "permission denied" in r.err


def test_doctor_reports_and_restores(lt, state):
    assert lt("pool", "add", "p", "--product", "generic", "--license", "seats=2").code == 0
    assert lt("acquire", "p", "--feature", "seats").code == 0  # second write: a good copy exists
    healthy = lt("--format", "json", "doctor")
    assert healthy.code == 0
    checks = {row["check"]: row["status"] for row in healthy.json()}
    assert checks["state"] == "ok" and checks["backup"] == "ok" and checks["lock"] == "ok"

    state.write_bytes(b"garbled by hand")
    broken = lt("--format", "json", "doctor")
    assert broken.code == 6
    assert {r["check"]: r["status"] for r in json.loads(broken.out)}["state"] == "fail"
    refused = lt("doctor", "--restore")  # no terminal, no --yes
    assert refused.code == 2 and state.read_bytes() == b"garbled by hand"

    restored = lt("doctor", "--restore", "--yes")
    assert restored.code == 0 and "kept as" in restored.err
    kept = restored.err.split("kept as ", 1)[1].splitlines()[0].strip()
    assert open(kept, "rb").read() == b"garbled by hand"
    info = lt("--format", "json", "info")
    assert info.code == 0 and info.json()[0]["issued"] == 2


def test_symlinked_lock_is_refused(lt, state):
    assert lt("pool", "add", "p", "--product", "generic").code == 0
    lock = str(state) + ".lock"
    target = state.parent / "elsewhere"
    target.write_text("")
    os.unlink(lock)
    os.symlink(target, lock)
    r = lt("--lock-timeout", "0.5", "pool", "add", "q", "--product", "generic")
    assert r.code != 0 and "Traceback" not in r.err
    assert target.read_text() == ""
    assert lt("info").code == 0, "reads take no lock"


def test_symlinked_temp_file_is_not_followed(lt, state):
    """A symlink planted where the JSON layout writes its temp file is removed, not written through."""
    if state.suffix != ".json":
        pytest.skip("the SQLite layout writes no temp file per command")
    assert lt("pool", "add", "p", "--product", "generic").code == 0
    victim = state.parent / "victim"
    victim.write_text("precious")
    os.symlink(victim, f"{state}.tmp-{os.getpid()}")
    assert lt("pool", "add", "q", "--product", "generic").code == 0
    assert victim.read_text() == "precious"


def test_network_filesystem_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(locking, "filesystem_type", lambda path: "nfs4")
    warning = locking.network_filesystem_warning(str(tmp_path))
    assert warning and "nfs4" in warning and "PostgreSQL" in warning
    monkeypatch.setenv("LICTOOLS_NETWORK_FS_OK", "1")
    assert locking.network_filesystem_warning(str(tmp_path)) is None


def test_filesystem_type_reads_mountinfo(tmp_path):
    assert locking.filesystem_type(str(tmp_path)) not in (None, "")


def test_check_pids_pool_option_drops_dead_holders_on_every_command(lt):
    assert lt("pool", "add", "p", "--product", "generic", "--license", "seats=1", "--option", "check_pids=yes").code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert lt("acquire", "p", "--feature", "seats", "--pid", str(dead.pid)).code == 0
    # the holder's process is gone: the next command frees its seat before deciding
    assert lt("acquire", "p", "--feature", "seats", "--pid", str(os.getpid())).code == 0
    events = [json.loads(line) for line in lt("journal").out.splitlines()]
    assert any(e["event"] == "expire" and "is gone" in e.get("reason", "") for e in events)


def test_retrying_another_accounts_session_is_refused(pool, as_user):
    pool("acquire", "p", "--feature", "seats", "--session", "mine")
    r = as_user("acquire", "p", "--feature", "seats", "--session", "mine")
    assert r.code == 7 and "another account" in r.err


def test_an_id_given_twice_is_released_once(lt):
    """Found by the CLI fuzzer while this branch ran it: ``release s2 s2`` was an internal error (exit 1)."""
    lt("pool", "add", "g", "--product", "genero", "--license", "runtime=3")
    assert lt("acquire", "g", "--session", "s2").code == 0
    r = lt("release", "s2", "s2")
    assert (r.code, r.out.count("released s2")) == (0, 1), r.err
