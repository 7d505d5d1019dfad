"""The command-line contract scripts depend on: exit codes, the lines they grep, JSON shapes."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest
from filelock import FileLock

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store



def setup_pool(lt, seats=2, *extra):
    r = lt("pool", "add", "demo", "--product", "generic", "--license", f"seats={seats}", *extra)
    assert r.code == 0, r.err


def test_demo_flow(lt):
    setup_pool(lt)
    a = lt("acquire", "demo", "--feature", "seats", "--user", "alice")
    b = lt("acquire", "demo", "--feature", "seats", "--user", "bob")
    assert a.code == 0 and b.code == 0
    session_a = a.out.strip()
    assert len(session_a.splitlines()) == 1 and session_a.isalnum()
    users = lt("--format", "json", "users")
    assert sorted(u for row in users.json() for u in row["users"]) == ["alice", "bob"]
    assert lt("release", session_a).code == 0
    info = lt("--format", "json", "info", "demo").json()
    assert info == [
        {"pool": "demo", "product": "generic", "feature": "seats", "issued": 2, "in_use": 1,
         "reserved": 0, "free": 1, "sessions": 1, "available": 1, "queued": 0}
    ]


def test_acquire_beyond_capacity_is_exit_3_with_one_line(lt):
    setup_pool(lt, 1)
    assert lt("acquire", "demo", "--feature", "seats").code == 0
    denied = lt("acquire", "demo", "--feature", "seats")
    assert denied.code == 3
    assert denied.out == ""
    assert len(denied.err.splitlines()) == 1 and denied.err.startswith("lictools: denied")


def test_retry_with_same_session_does_not_take_a_second_seat(lt):
    setup_pool(lt, 2)
    first = lt("--format", "json", "acquire", "demo", "--feature", "seats", "--session", "login-42")
    again = lt("--format", "json", "acquire", "demo", "--feature", "seats", "--session", "login-42")
    assert first.code == again.code == 0
    assert first.json()["seat"] == again.json()["seat"]
    info = lt("--format", "json", "info").json()[0]
    assert info["in_use"] == 1 and info["sessions"] == 1


def test_acquire_json_shape(lt):
    setup_pool(lt, 2, "--option", "share=user")
    doc = lt("--format", "json", "acquire", "demo", "--feature", "seats", "--user", "u1").json()
    assert {"session", "pool", "feature", "seat", "shared", "expires"} <= doc.keys()
    assert doc["pool"] == "demo" and doc["seat"] == "user=u1" and doc["shared"] is False
    assert doc["expires"].endswith("+00:00")
    shared = lt("--format", "json", "acquire", "demo", "--feature", "seats", "--user", "u1").json()
    assert shared["shared"] is True and shared["seat"] == "user=u1"


def test_release_unknown_session_is_exit_4(lt):
    setup_pool(lt)
    r = lt("release", "no-such-session")
    assert r.code == 4
    assert r.err == "lictools: unknown session no-such-session\n"


def test_refresh_unknown_is_exit_4_so_hooks_reacquire(lt):
    setup_pool(lt)
    sid = lt("acquire", "demo", "--feature", "seats").out.strip()
    assert lt("refresh", sid).code == 0
    assert lt("refresh", "gone").code == 4


def test_unknown_pool_is_exit_4(lt):
    r = lt("acquire", "nowhere")
    assert r.code == 4 and r.err.strip() == "lictools: unknown pool 'nowhere'"


def test_expiry_through_the_cli(lt, monkeypatch):
    setup_pool(lt, 1, "--option", "lease=60")
    monkeypatch.setenv("LICTOOLS_NOW", "2026-11-22T08:00:00+00:00")
    sid = lt("acquire", "demo", "--feature", "seats").out.strip()
    monkeypatch.setenv("LICTOOLS_NOW", "2026-11-22T08:01:00+00:00")
    reaped = lt("--format", "json", "gc").json()
    assert [r["session"] for r in reaped] == [sid]
    assert reaped[0]["expires"] == "2026-11-22T08:01:00+00:00"
    assert lt("refresh", sid).code == 4


def test_every_json_output_parses(lt):
    setup_pool(lt, 3, "--option", "share=user")
    sid = lt("acquire", "demo", "--feature", "seats").out.strip()
    for args in (
        ["pool", "list"], ["pool", "show", "demo"], ["info"], ["users"], ["gc"],
        ["acquire", "demo", "--feature", "seats", "--dry-run"],
        ["license", "add", "demo", "seats", "2", "--serial", "X1"],
        ["refresh", sid], ["detach", sid], ["dump"],
    ):
        r = lt("--format", "json", *args)
        assert r.code == 0, (args, r.err)
        json.loads(r.out)


def test_csv_columns_are_the_json_keys(lt):
    setup_pool(lt)
    lt("acquire", "demo", "--feature", "seats")
    rows = list(csv.DictReader(io.StringIO(lt("--format", "csv", "info").out)))
    # the columns scripts read keep their positions; keys added later come after them
    assert list(rows[0])[:8] == ["pool", "product", "feature", "issued", "in_use", "reserved", "free", "sessions"]
    assert list(rows[0]) == list(lt("--format", "json", "info").json()[0])
    assert rows[0]["in_use"] == "1"
    users = list(csv.DictReader(io.StringIO(lt("--format", "csv", "users").out)))
    assert list(users[0]) == list(lt("--format", "json", "users").json()[0])
    assert list(users[0])[:8] == ["pool", "feature", "seat", "users", "hosts", "sessions", "since", "expires"]


def test_license_add_idempotent_and_host_lock_warning(lt):
    setup_pool(lt, 0)
    assert lt("license", "add", "demo", "seats", "5", "--serial", "S1").code == 0
    again = lt("license", "add", "demo", "seats", "5", "--serial", "S1")
    assert again.code == 0 and "already loaded" in again.err
    foreign = lt("license", "add", "demo", "seats", "9", "--serial", "S2", "--host-lock", "some-other-machine")
    assert foreign.code == 0 and "not loaded" in foreign.err
    assert lt("--format", "json", "info").json()[0]["issued"] == 5


def test_remove_by_user(lt):
    setup_pool(lt, 3)
    lt("acquire", "demo", "--feature", "seats", "--user", "mallory")
    lt("acquire", "demo", "--feature", "seats", "--user", "mallory")
    lt("acquire", "demo", "--feature", "seats", "--user", "alice")
    r = lt("--format", "json", "remove", "--user", "mallory")
    assert r.code == 0 and len(r.json()) == 2
    assert lt("--format", "json", "info").json()[0]["in_use"] == 1


@pytest.mark.layouts("sqlite", "json")  # about files
def test_garbled_state_is_exit_6_and_left_unchanged(lt, state):
    setup_pool(lt)
    garbage = b"this is not a state file \x00\xff" * 20
    state.write_bytes(garbage)
    for args in (["info"], ["acquire", "demo", "--feature", "seats"], ["pool", "add", "x", "--product", "generic"]):
        r = lt(*args)
        assert r.code == 6
        assert str(state) in r.err and len(r.err.splitlines()) == 1
    assert state.read_bytes() == garbage


@pytest.mark.layouts("sqlite", "json")  # about files
def test_truncated_state_is_exit_6(lt, state):
    setup_pool(lt)
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3])
    before = state.read_bytes()
    assert lt("info").code == 6
    assert state.read_bytes() == before


@pytest.mark.layouts("sqlite", "json")  # about files
def test_newer_schema_is_exit_6(lt, state):
    setup_pool(lt)
    if state.suffix == ".json":
        doc = json.loads(state.read_text())
        doc["schema"] = 99
        state.write_text(json.dumps(doc))
    else:
        import sqlite3

        db = sqlite3.connect(state)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    before = state.read_bytes()
    r = lt("info")
    assert r.code == 6 and "newer" in r.err
    assert state.read_bytes() == before


@pytest.mark.layouts("sqlite", "json")  # about files
def test_state_files_are_private(lt, state):
    setup_pool(lt)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(state) + ".lock").st_mode) == 0o600


@pytest.mark.layouts("sqlite", "json")  # about files
def test_group_shared_folder_gives_group_access(lt, state):
    state.parent.mkdir(parents=True)
    state.parent.chmod(0o2770)
    setup_pool(lt)
    assert stat.S_IMODE(state.stat().st_mode) == 0o660


@pytest.mark.layouts("sqlite", "json")  # about files
def test_world_writable_folder_without_sticky_bit_is_refused(lt, state):
    state.parent.mkdir(parents=True)
    state.parent.chmod(0o777)
    r = lt("pool", "add", "p", "--product", "generic")
    assert r.code == 2 and "sticky" in r.err
    assert not state.exists()


@pytest.mark.layouts("sqlite", "json")  # about files
def test_lock_busy_is_exit_5_naming_the_lock(lt, state):
    setup_pool(lt)
    lock_path = str(state) + ".lock"
    holder = FileLock(lock_path, is_singleton=False, thread_local=False)
    # a real second process holds the lock while we try
    import subprocess
    import sys

    code = (
        "import sys, time, filelock; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
        "open(sys.argv[1], 'w').write('%d\\n' % __import__('os').getpid()); print('held', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, lock_path], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        r = lt("--lock-timeout", "0.3", "acquire", "demo", "--feature", "seats")
        assert r.code == 5
        assert lock_path in r.err and f"PID {proc.pid}" in r.err
    finally:
        proc.kill()
        proc.wait()
    del holder


@pytest.mark.parametrize(
    "args",
    [
        ["acquire"],
        ["acquire", "demo", "--pid", "-3"],
        ["acquire", "demo", "--pid", "99999999999999999999"],
        ["acquire", "demo", "--lease", "abc"],
        ["acquire", "demo", "--feature", "\x01\x02"],
        ["acquire", "demo", "--feature", "seats", "--user", "x" * 10_000],
        ["acquire", "demo", "--feature", "seats", "--session", "--user"],
        ["acquire", "d" * 10_000],
        ["pool", "add", "p\x1b[31m", "--product", "generic"],
        ["pool", "add", "p", "--product", "nope"],
        ["pool", "add", "p", "--product", "generic", "--license", "seats=-1"],
        ["pool", "add", "p", "--product", "generic", "--option", "lease"],
        ["license", "add", "demo", "seats", "1e9"],
        ["--format", "xml", "info"],
        ["--lock-timeout", "-1", "info"],
        ["no-such-command"],
        ["remove"],
    ],
)
def test_bad_input_is_exit_2_with_one_line(lt, args):
    setup_pool(lt)
    r = lt(*args)
    assert r.code == 2, (args, r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err


def test_real_process_has_no_traceback_and_exit_codes(ltp, state):
    assert ltp("pool", "add", "demo", "--product", "generic", "--license", "seats=1").code == 0
    ok = ltp("acquire", "demo", "--feature", "seats")
    assert ok.code == 0
    denied = ltp("acquire", "demo", "--feature", "seats")
    assert denied.code == 3 and "Traceback" not in denied.err
    bad = ltp("acquire", "demo", "--feature", "seats", "--user", "\x7f")
    assert bad.code == 2 and "Traceback" not in bad.err and len(bad.err.splitlines()) == 1
    assert ltp("release", ok.out.strip()).code == 0


def test_version_and_help(lt):
    assert lt("--version").out.startswith("lictools, version")
    helped = lt("--help")
    assert helped.code == 0 and "acquire" in helped.out and "Exit codes" in helped.out


def test_remove_reports_each_session_once(lt):
    setup_pool(lt, 3)
    sid = lt("acquire", "demo", "--feature", "seats", "--user", "mallory").out.strip()
    r = lt("--format", "json", "remove", sid, "--user", "mallory")
    assert r.code == 0 and [row["session"] for row in r.json()] == [sid]
    removals = [line for line in lt("journal").out.splitlines() if '"event":"remove"' in line]
    assert len(removals) == 1


def test_refresh_of_a_detached_session_says_so(lt):
    setup_pool(lt, 1, "--option", "linger=300")
    sid = lt("acquire", "demo", "--feature", "seats").out.strip()
    assert lt("detach", sid).code == 0
    r = lt("refresh", sid)
    assert r.code == 4 and "is detached" in r.err


def test_retry_with_a_new_lease_takes_it(lt):
    setup_pool(lt, 1)
    lt("acquire", "demo", "--feature", "seats", "--session", "s1", "--lease", "60")
    doc = lt("--format", "json", "acquire", "demo", "--feature", "seats", "--session", "s1", "--lease", "0").json()
    assert doc["expires"] is None


def test_pool_remove_json(lt):
    setup_pool(lt)
    r = lt("--format", "json", "pool", "remove", "demo")
    assert r.code == 0 and r.json() == {"pool": "demo", "removed": True, "sessions_removed": []}
