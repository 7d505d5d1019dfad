"""One local account against another on a group-shared state (issue 15), with real accounts.

A state folder shared by a group (2770) lets every member create, rename and delete names in
it. These tests run lictools as throwaway accounts (tests/accounts.py: root only, skipped
otherwise) and check that a member cannot:

- make root's lictools write through a symlink swapped in for a temporary file (the state being
  created, the good copy being taken), raced with inotify (tests/racer.py);
- make root's ``doctor --restore`` copy a root-only file into the shared state;
- become the state's owner (and so an admin) by writing the state;
- pin the clock for everyone with LICTOOLS_NOW.

Each race is tried a bounded number of times and must show the racer did swap names, so the
test proves something; the old code lost these races most of the time (docs/security.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

RACES = int(os.environ.get("LICTOOLS_RACES", "10"))
"""Tries per race (docs/security.md quotes runs with LICTOOLS_RACES=50)."""
RACER = Path(__file__).with_name("racer.py")


@pytest.fixture
def racer(accounts):
    """Start tests/racer.py as bob in a folder: ``racer(folder, mode, pattern, victim)``; stopped afterwards."""
    script = accounts.base / "racer.py"
    if not script.exists():
        shutil.copy(RACER, script)
        script.chmod(0o644)
    started = []

    def start(folder: Path, mode: str, pattern: str, victim: Path) -> subprocess.Popen:
        proc = accounts.popen("bob", [accounts.python, str(script), str(folder), mode, pattern, str(victim)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            proc.kill()
            pytest.skip(f"the racer cannot watch the folder (inotify): {line}{proc.stderr.read()}")
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def swaps(proc: subprocess.Popen) -> list[str]:
    proc.kill()
    out, _ = proc.communicate()
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("SWAPPED ")]


def victim_file(accounts, name: str, content: bytes = b"") -> Path:
    """A root-only file in a root-only folder: what a member must never get root to write or copy."""
    folder = accounts.base / f"victim-{name}"
    folder.mkdir(mode=0o700)
    path = folder / "victim"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def untouched(victim: Path, content: bytes = b"") -> bool:
    return victim.read_bytes() == content and sorted(p.name for p in victim.parent.iterdir()) == ["victim"]


def reset(victim: Path, content: bytes = b"") -> None:
    for path in victim.parent.iterdir():
        path.unlink()
    victim.write_bytes(content)
    victim.chmod(0o600)


def tally(capsys, race: str, tries: int, swapped: int, violations: int) -> None:
    with capsys.disabled():
        print(f"\nrace [{race}]: {tries} tries, the racer swapped a name in {swapped}, violations {violations}")


# --------------------------------------------------------------------------- item 1: temporary files
def test_creating_a_state_never_writes_through_a_swapped_symlink(accounts, racer, capsys):
    folder = accounts.folder("race-create")
    victim = victim_file(accounts, "create")
    proc = racer(folder, "created", r"s\d+\.db\.(new|tmp)-.*", victim)
    codes, written = [], 0
    for i in range(RACES):
        r = accounts.run("root", "--state", str(folder / f"s{i}.db"), "pool", "add", "p", "--product", "generic")
        codes.append((r.code, r.err))
        if not untouched(victim):
            written += 1
            reset(victim)
    swapped = swaps(proc)
    tally(capsys, "create", RACES, len({name.split(".db")[0] for name in swapped}), written)
    assert not written, f"root wrote {victim} through the racer's symlink in {written} of {RACES} tries"
    assert swapped, "the racer never swapped a name: this run proves nothing"
    # refused (exit 6) when the racer replaced the file: never a traceback
    unexpected = [(code, err) for code, err in codes if code not in (0, 6)]
    assert not unexpected, unexpected


def test_the_good_copy_is_never_written_through_a_swapped_symlink(accounts, racer, capsys):
    folder = accounts.folder("race-backup")
    state = folder / "s.db"
    assert accounts.run("root", "--state", str(state), "pool", "add", "p", "--product", "generic",
                        "--license", "f=1000").code == 0
    victim = victim_file(accounts, "backup")
    proc = racer(folder, "created", r"s\.db\.bak\.(tmp|new)-.*", victim)
    bak = Path(f"{state}.bak")
    written = 0
    for _ in range(RACES):
        if bak.exists():
            os.utime(bak, (0, 0))  # the copy is due
        r = accounts.run("root", "--state", str(state), "acquire", "p", "--feature", "f")
        assert r.code == 0, r.err
        # the copy is taken after the answer, in the background: wait until it is, or until the
        # racer swapped its temporary file (the copy then gives up)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not bak.exists() or bak.stat().st_mtime == 0):
            if any(p.is_symlink() for p in folder.iterdir()):
                time.sleep(0.2)
                break
            time.sleep(0.02)
        for link in folder.iterdir():
            if link.is_symlink():
                link.unlink()
        if not untouched(victim):
            written += 1
            reset(victim)
    time.sleep(0.3)
    swapped = swaps(proc)
    tally(capsys, "good copy", RACES, len(swapped), written)
    assert not written, f"root wrote {victim} through the racer's symlink in {written} of {RACES} tries"
    assert swapped, "the racer never swapped a name: this run proves nothing"


# --------------------------------------------------------------------------- item 2: doctor --restore
def test_restore_never_copies_a_swapped_in_file_into_the_state(accounts, racer, capsys):
    secret = b"TOP-SECRET root-only line\n" * 200
    victim = victim_file(accounts, "restore", secret)
    won, answers, leaked = 0, [], 0
    for i in range(RACES):
        folder = accounts.folder(f"race-restore-{i}")
        state = folder / "s.db"
        assert accounts.run("root", "--state", str(state), "pool", "add", "p", "--product", "generic").code == 0
        bak = Path(f"{state}.bak")
        deadline = time.monotonic() + 10
        while not bak.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bak.exists(), "no good copy was taken after the first write"
        state.write_bytes(b"garbled by a crash")
        for suffix in ("-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        # swap the good copy for a symlink right after its first, second or third close
        proc = racer(folder, "closed", f"s.db.bak#{1 + i % 3}", victim)
        r = accounts.run("root", "--state", str(state), "doctor", "--restore", "--yes")
        won += bool(swaps(proc))
        answers.append((r.code, r.err.strip()))
        leaked += b"TOP-SECRET" in state.read_bytes()
    tally(capsys, "restore", RACES, won, leaked)
    assert not leaked, f"root copied the root-only file into the shared state in {leaked} of {RACES} tries"
    assert won, "the racer never swapped the good copy: this run proves nothing"
    assert all(code in (0, 6) for code, _ in answers), answers


# --------------------------------------------------------------------------- item 3: the owner
@pytest.mark.parametrize("layout", ["db", "json"])
def test_writing_the_state_does_not_make_a_member_its_owner(accounts, layout):
    folder = accounts.folder(f"owner-{layout}")
    state = str(folder / f"state.{layout}")
    env = {"LICTOOLS_STATE": state}
    assert accounts.run("root", "pool", "add", "p", "--product", "generic", "--license", "f=5", env=env).code == 0
    assert accounts.run("root", "config", "admin_group", accounts.admins, env=env).code == 0
    alice = accounts.run("alice", "acquire", "p", "--feature", "f", env=env)
    assert alice.code == 0, alice.err
    bob = accounts.run("bob", "acquire", "p", "--feature", "f", env=env)  # bob wrote the state last
    assert bob.code == 0, bob.err
    for args in (["pool", "add", "q", "--product", "generic"], ["license", "add", "p", "f", "100"],
                 ["remove", alice.out.strip()], ["config", "admin_group", ""], ["pool", "remove", "p", "--force"]):
        r = accounts.run("bob", *args, env=env)
        assert r.code == 7, (args, r.code, r.err)
        assert len(r.err.splitlines()) == 1
    admin = accounts.run("admin", "license", "add", "p", "f", "1", "--serial", "S2", env=env)
    assert admin.code == 0, f"the admin group member lost its rights: {admin.err}"
    info = json.loads(accounts.run("root", "--format", "json", "info", env=env).out)
    assert info[0]["issued"] == 6 and info[0]["in_use"] == 2


def test_a_member_touching_a_fresh_path_creates_nothing_and_owns_nothing(accounts):
    folder = accounts.folder("fresh")
    env = {"LICTOOLS_STATE": str(folder / "state.db")}
    for args in (["info"], ["users"], ["dump"], ["journal"], ["pool", "list"]):
        r = accounts.run("bob", *args, env=env)
        assert r.code == 4 and str(folder / "state.db") in r.err, (args, r.code, r.err)
    assert list(folder.iterdir()) == []
    refused = accounts.run("bob", "pool", "add", "p", "--product", "generic", env=env)
    assert refused.code == 7, refused.err
    assert not (folder / "state.db").exists(), "a refused command left a state behind"
    assert accounts.run("root", "pool", "add", "p", "--product", "generic", env=env).code == 0


# --------------------------------------------------------------------------- item 4: LICTOOLS_NOW
def test_a_member_cannot_pin_the_clock_for_everybody(accounts):
    folder = accounts.folder("clock")
    env = {"LICTOOLS_STATE": str(folder / "state.db")}
    assert accounts.run("root", "pool", "add", "p", "--product", "generic", "--license", "f=5", env=env).code == 0
    held = accounts.run("alice", "acquire", "p", "--feature", "f", env=env)
    assert held.code == 0, held.err
    for args in (["info"], ["acquire", "p", "--feature", "f"], ["gc"], ["users"]):
        r = accounts.run("bob", *args, env={**env, "LICTOOLS_NOW": "2030-01-01"})
        assert r.code == 7 and len(r.err.splitlines()) == 1 and "LICTOOLS_NOW" in r.err, (args, r.code, r.err)
    users = json.loads(accounts.run("root", "--format", "json", "users", env=env).out)
    assert [s for row in users for s in row["sessions"]] == [held.out.strip()], "bob's pinned clock reaped alice"
    journal = accounts.run("root", "journal", env=env).out
    assert "2030-" not in journal


def test_the_states_owner_and_root_may_pin_the_clock(accounts):
    folder = accounts.folder("clock-owner", owner="alice")
    env = {"LICTOOLS_STATE": str(folder / "state.db"), "LICTOOLS_NOW": "2030-01-01T00:00:00+00:00"}
    made = accounts.run("alice", "pool", "add", "p", "--product", "generic", "--license", "f=1", env=env)
    assert made.code == 0, made.err
    granted = accounts.run("alice", "--format", "json", "acquire", "p", "--feature", "f", env=env)
    assert granted.code == 0 and json.loads(granted.out)["expires"].startswith("2030-01-01T01:00")
    assert accounts.run("root", "info", env=env).code == 0
    assert accounts.run("bob", "info", env=env).code == 7
