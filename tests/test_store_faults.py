"""The state file as hostile or failing input (issue 15 items 6-14, issue 14's read-only commands).

Odd files where the state, journal or good copy should be (FIFOs, directories, symlinks,
sparse giants), well-formed contents of the wrong shape, truncation, a lock file deleted while
held, a full disk, a read-only mount, clocks set back, files left by killed writers, a missing
home folder. Each answer must be the documented exit code with one stderr line, quickly, and
the state unchanged. Mount-based tests need root and skip otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LICTOOLS, run_process

READ_ONLY_COMMANDS = [
    ["info"], ["info", "users"], ["users"], ["dump"], ["journal"], ["explain", "s1"], ["pool", "list"],
    ["pool", "show", "p"], ["config"], ["doctor"],
]


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.endswith("\n")


@pytest.fixture
def granted(lt1, tmp_path, monkeypatch):
    """``granted(name)``: a state ``tmp_path/name`` with pool p and one session; returns (run, path)."""

    def make(name: str):
        state = tmp_path / name
        monkeypatch.setenv("LICTOOLS_STATE", str(state))
        make_pool(lt1)
        assert lt1("acquire", "p", "--feature", "f").code == 0
        return lt1, state

    return make


def make_pool(lt, seats: int = 5) -> None:
    r = lt("pool", "add", "p", "--product", "generic", "--license", f"f={seats}")
    assert r.code == 0, r.err


# --------------------------------------------------------------------------- issue 14: nothing created
@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=" ".join)
def test_read_only_commands_on_a_missing_state_create_nothing(tmp_path, args):
    state = tmp_path / "nonexistent" / "dir" / "s.db"
    r = run_process("--state", str(state), *args)
    assert r.code == 4 and one_line(r.err) and str(state) in r.err, (r.code, r.err)
    assert not (tmp_path / "nonexistent").exists()


def test_a_missing_home_folder_is_not_created_for_the_default_state(tmp_path):
    home = tmp_path / "no-such-home"
    env = {"HOME": str(home), "LICTOOLS_STATE": "", "XDG_STATE_HOME": ""}
    r = run_process("pool", "add", "p", "--product", "generic", env=env)
    assert r.code == 2 and one_line(r.err) and str(home) in r.err, (r.code, r.err)
    assert not home.exists()


# --------------------------------------------------------------------------- item 7: not regular files
def test_a_fifo_at_the_state_path_is_refused_not_waited_on(state):
    state.parent.mkdir(parents=True)
    os.mkfifo(state)
    for args in (["info"], ["acquire", "p", "--feature", "f"], ["users"]):
        r = run_process(*args, timeout=20)
        assert r.code == 6 and one_line(r.err) and "not a regular file (a FIFO)" in r.err, (args, r.code, r.err)
    doctor = run_process("--format", "json", "doctor", timeout=20)
    assert doctor.code == 6 and "FIFO" in doctor.err


def test_a_fifo_at_the_journal_and_good_copy_paths_is_refused(lt, state):
    make_pool(lt)
    assert lt("acquire", "p", "--feature", "f").code == 0
    for suffix in (".journal", ".bak"):
        path = Path(f"{state}{suffix}")
        if suffix == ".journal" and state.suffix != ".json":
            continue
        if path.exists():
            path.unlink()
        os.mkfifo(path)
    checks = {row["check"]: row for row in json.loads(run_process("--format", "json", "doctor", timeout=20).out)}
    assert checks["backup"]["status"] == "fail" and "FIFO" in checks["backup"]["detail"]
    if state.suffix == ".json":
        r = run_process("journal", timeout=20)
        assert r.code == 6 and "FIFO" in r.err and one_line(r.err)
        assert checks["journal"]["status"] == "fail"


@pytest.mark.parametrize("args", [["pool", "remove", "inf", "--force"], ["info"], ["acquire", "p"]])
def test_a_directory_as_the_state_is_refused(tmp_path, args):
    r = run_process("--state", str(tmp_path), *args, timeout=20)
    assert r.code == 6 and one_line(r.err) and "not a regular file (a directory)" in r.err, (r.code, r.err)
    assert not Path(f"{tmp_path}.lock").exists()


@pytest.mark.parametrize("target", ["/", "/dev/null"])
def test_the_root_folder_or_a_device_as_the_state_creates_no_lock_file(target):
    lock = Path(target.rstrip("/") + ".lock") if target != "/" else Path("/.lock")
    existed = lock.exists()
    try:
        for args in (["info"], ["pool", "add", "p", "--product", "generic"]):
            r = run_process("--state", target, *args, timeout=20)
            assert r.code == 6 and one_line(r.err), (args, r.code, r.err)
        assert lock.exists() == existed, f"{lock} was created"
    finally:
        if lock.exists() and not existed:
            lock.unlink()


def test_a_journal_symlinked_to_another_file_is_not_read(lt, state, tmp_path):
    if state.suffix != ".json":
        pytest.skip("the SQLite layout keeps its journal inside the state")
    make_pool(lt)
    secret = tmp_path / "private" / "other.journal"
    secret.parent.mkdir(mode=0o700)
    secret.write_text('{"event": "TOP-SECRET"}\n' * 1000)
    journal = Path(f"{state}.journal")
    journal.unlink()
    journal.symlink_to(secret)
    r = lt("journal")
    assert r.code == 6 and "TOP-SECRET" not in r.out and "symbolic link" in r.err, (r.code, r.err)


def test_a_huge_sparse_json_state_is_refused_without_reading_it(tmp_path):
    state = tmp_path / "state.json"
    with open(state, "wb") as f:
        f.truncate(12 << 30)  # 12 GiB of nothing

    def limit_memory():  # 512 MiB: reading the file whole would fail with MemoryError (exit 1)
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    proc = subprocess.run(LICTOOLS + ["--state", str(state), "info"], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit_memory)
    assert proc.returncode == 6 and one_line(proc.stderr) and "larger than" in proc.stderr, (proc.returncode, proc.stderr)


# --------------------------------------------------------------------------- item 8: well-formed, wrong shape
JSON_DAMAGE = {
    "pool-is-a-string": lambda doc: doc["pools"].__setitem__("p", "x"),
    "session-is-null": lambda doc: doc["sessions"].__setitem__(next(iter(doc["sessions"])), None),
    "expires-soon": lambda doc: next(iter(doc["sessions"].values())).__setitem__("expires", "soon"),
    "journal-bytes-negative": lambda doc: doc.__setitem__("journal_bytes", -5),
    "count-is-a-float": lambda doc: doc["pools"]["p"]["licenses"][0].__setitem__("count", 2.5),
    "options-hold-a-list": lambda doc: doc["pools"]["p"]["options"].__setitem__("lease", [1]),
}


@pytest.mark.parametrize("damage", sorted(JSON_DAMAGE) + ["expires-nan", "count-infinity", "deep-nesting"])
def test_json_state_of_the_wrong_shape_is_exit_6_and_unchanged(granted, damage):
    lt, state = granted("state.json")
    doc = json.loads(state.read_text())
    if damage in JSON_DAMAGE:
        JSON_DAMAGE[damage](doc)
        text = json.dumps(doc)
    elif damage == "expires-nan":
        next(iter(doc["sessions"].values()))["expires"] = "@NAN@"
        text = json.dumps(doc).replace('"@NAN@"', "NaN")
    elif damage == "count-infinity":
        doc["pools"]["p"]["licenses"][0]["count"] = "@INF@"
        text = json.dumps(doc).replace('"@INF@"', "Infinity")
    else:
        text = json.dumps(doc).replace('"options": {', '"nested": ' + "[" * 100_000 + "]" * 100_000 + ', "options": {', 1)
    state.write_text(text)
    before = state.read_bytes()
    for args in (["info"], ["acquire", "p", "--feature", "f"], ["users"]):
        r = lt(*args)
        assert r.code == 6 and one_line(r.err) and "nothing was changed" in r.err, (args, r.code, r.err)
    assert state.read_bytes() == before
    doctor = lt("--format", "json", "doctor")
    assert doctor.code == 6 and {r["check"]: r["status"] for r in doctor.json()}["state"] == "fail"


@pytest.mark.parametrize("table,doc", [("sessions", "not json"), ("sessions", '{"id": 5}'), ("pools", '{"name": "p"}'),
                                       ("pools", "[" * 50_000 + "]" * 50_000)])
def test_sqlite_rows_of_the_wrong_shape_are_exit_6_and_doctor_says_so(granted, table, doc):
    lt, state = granted("state.db")
    db = sqlite3.connect(state)
    db.execute(f"UPDATE {table} SET doc = ?", (doc,))
    db.commit()
    db.close()
    r = lt("users" if table == "sessions" else "info")
    assert r.code == 6 and one_line(r.err), (r.code, r.err)
    doctor = lt("--format", "json", "doctor")
    assert doctor.code == 6
    assert {row["check"]: row["status"] for row in doctor.json()}["state"] == "fail"


# --------------------------------------------------------------------------- item 9: truncation
@pytest.mark.parametrize("cut", [1, 100, 4095, 4096])
def test_a_truncated_sqlite_state_is_refused_and_not_written(granted, cut):
    lt, state = granted("state.db")
    assert not Path(f"{state}-wal").exists(), "in-process commands checkpoint: the file alone is the state"
    with open(state, "r+b") as f:
        f.truncate(state.stat().st_size - cut)
    before = state.read_bytes()
    r = lt("acquire", "p", "--feature", "f")
    assert r.code == 6 and "truncated" in r.err and one_line(r.err), (r.code, r.err)
    assert state.read_bytes() == before
    assert lt("doctor").code == 6


# --------------------------------------------------------------------------- item 6: the lock file deleted
HOLDER = """
import sys
from lictools import engine
from lictools.model import Request
from lictools.stores import open_store

with open_store(sys.argv[1], 30).transaction() as tx:
    engine.reap(tx)
    assert engine.acquire(tx, Request("p", "f", "held", "u", "h", "n")).granted
    print("HOLDING", flush=True)
    sys.stdin.readline()
print("ACK", flush=True)
"""


def test_deleting_the_lock_file_while_it_is_held_loses_no_acknowledged_grant(lt, state):
    make_pool(lt)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        Path(f"{state}.lock").unlink()
        other = subprocess.Popen(LICTOOLS + ["--lock-timeout", "30", "acquire", "p", "--feature", "f", "--session", "other"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # it finds a fresh lock file: does it commit beside the holder?
        holder.stdin.write("\n")
        holder.stdin.flush()
        acked = {"held"} if holder.stdout.readline().strip() == "ACK" else set()
        out, err = other.communicate(timeout=60)
        if other.returncode == 0:
            acked.add("other")
    finally:
        holder.kill()
        holder.wait()
    live = {s["session"] for s in lt("--format", "json", "dump").json()["sessions"]}
    assert acked <= live, f"acknowledged {sorted(acked)}, live {sorted(live)} ({err.strip()})"


def test_doctor_fails_when_the_journal_has_a_grant_the_state_lacks(lt, state):
    make_pool(lt)
    assert lt("acquire", "p", "--feature", "f", "--session", "kept").code == 0
    if state.suffix == ".json":
        before = json.loads(state.read_text())
        assert lt("acquire", "p", "--feature", "f", "--session", "lost").code == 0
        after = json.loads(state.read_text())
        before["journal_bytes"], before["seq"] = after["journal_bytes"], after["seq"]
        state.write_text(json.dumps(before))  # the grant of "lost" is journaled, the state lacks it
    else:
        assert lt("acquire", "p", "--feature", "f", "--session", "lost").code == 0
        db = sqlite3.connect(state)
        db.execute("DELETE FROM sessions WHERE id = 'lost'")
        db.commit()
        db.close()
    r = lt("--format", "json", "doctor")
    assert r.code == 6, r.err
    replay = {row["check"]: row for row in r.json()}["replay"]
    assert replay["status"] == "fail" and "lost" in replay["detail"]


# --------------------------------------------------------------------------- item 12: clocks set back
def test_doctor_reports_journal_times_going_backwards(lt, clock):
    make_pool(lt)
    assert lt("acquire", "p", "--feature", "f").code == 0
    clock.advance(-3600)  # the system clock was set back an hour
    assert lt("acquire", "p", "--feature", "f").code == 0
    r = lt("--format", "json", "doctor")
    journal = {row["check"]: row for row in r.json()}["journal"]
    assert journal["status"] == "warn" and "backwards" in journal["detail"], journal


# --------------------------------------------------------------------------- item 13: leftovers
def test_temporary_files_of_killed_writers_are_listed_and_cleaned(lt, state):
    make_pool(lt)
    assert lt("acquire", "p", "--feature", "f").code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = [Path(f"{state}.tmp-{dead.pid}"), Path(f"{state}.bak.tmp-{dead.pid}-wal"), Path(f"{state}.new-{dead.pid}-0a1b2c3d")]
    running = Path(f"{state}.tmp-{os.getpid()}-0a1b2c3d")
    for path in gone + [running]:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    fresh = Path(f"{state}.tmp-{dead.pid}-ffffffff")
    fresh.write_bytes(b"x")  # gone, but too young to be sure it is not in flight elsewhere
    rows = {row["check"]: row for row in lt("--format", "json", "doctor").json()}
    assert rows["leftovers"]["status"] == "warn" and "5 temporary file(s)" in rows["leftovers"]["detail"]
    bak = Path(f"{state}.bak")
    if bak.exists() and state.suffix == ".db":
        os.utime(bak, (0, 0))  # the SQLite layout tidies when it takes its next good copy
    assert lt("acquire", "p", "--feature", "f").code == 0
    assert not any(path.exists() for path in gone), [p.name for p in gone if p.exists()]
    assert running.exists() and fresh.exists()


# --------------------------------------------------------------------------- items 10, 11: full, read-only
@pytest.fixture
def mount(tmp_path):
    """``mount(args, target)``: mount something for the test (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small or read-only filesystem needs root")
    mounted = []

    def do(args: list[str], target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount here: {r.stderr.strip()}")
        mounted.append(target)
        return target

    yield do
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def fill(folder: Path, leave_kib: int) -> None:
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_kib * 1024))


@pytest.mark.parametrize("layout", ["db", "json"])
@pytest.mark.parametrize("leave_kib", [0, 16, 48])
def test_a_full_disk_is_exit_8_never_damaged_never_a_signal(tmp_path, mount, layout, leave_kib):
    disk = mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], tmp_path / "disk")
    state = disk / "lt" / f"state.{layout}"
    env = {"LICTOOLS_STATE": str(state)}
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1000", env=env).code == 0
    assert run_process("acquire", "p", "--feature", "f", env=env).code == 0
    time.sleep(0.5)  # the good copy, taken in the background
    fill(disk, leave_kib)
    before = {p.name: p.read_bytes() for p in state.parent.iterdir() if p.suffix in (".db", ".json")}
    r = run_process("acquire", "p", "--feature", "f", env=env)
    assert r.code == 8 and one_line(r.err) and "no space left" in r.err, (r.code, r.err)
    assert {p.name: p.read_bytes() for p in state.parent.iterdir() if p.suffix in (".db", ".json")} == before
    assert run_process("info", env=env).code == 0, "reading a full disk works"
    doctor = run_process("--format", "json", "doctor", env=env)
    rows = {row["check"]: row for row in json.loads(doctor.out)}
    assert rows["space"]["status"] == "fail" and rows["state"]["status"] == "ok"
    assert doctor.code == 8 and "restore" not in doctor.err, doctor.err
    (disk / "filler").unlink()
    assert run_process("acquire", "p", "--feature", "f", env=env).code == 0


@pytest.mark.parametrize("layout", ["db", "json"])
@pytest.mark.parametrize("closed", [True, False], ids=["checkpointed", "with-wal"])
def test_a_read_only_mount_reads_and_refuses_writes_with_exit_8(tmp_path, mount, lt1, monkeypatch, layout, closed):
    lt = lt1
    source = tmp_path / "src"
    state = source / f"state.{layout}"
    monkeypatch.setenv("LICTOOLS_STATE", str(state))
    if closed:  # in-process commands close their SQLite connection: no WAL left
        make_pool(lt)
        assert lt("acquire", "p", "--feature", "f").code == 0
    else:  # commands run as processes leave the WAL for the next one
        assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=5").code == 0
        assert run_process("acquire", "p", "--feature", "f").code == 0
    time.sleep(0.3)
    ro = mount(["--bind", "-o", "ro", str(source)], tmp_path / "ro")
    env = {"LICTOOLS_STATE": str(ro / state.name)}
    for args in (["info"], ["users"], ["dump"], ["journal"], ["pool", "list"]):
        r = run_process(*args, env=env)
        assert r.code == 0, (args, r.code, r.err)
    assert json.loads(run_process("--format", "json", "info", env=env).out)[0]["in_use"] == 1
    r = run_process("acquire", "p", "--feature", "f", env=env)
    assert r.code == 8 and "read-only" in r.err and one_line(r.err), (r.code, r.err)


# --------------------------------------------------------------------------- item 14: terminal control
def test_error_lines_show_control_characters_escaped(tmp_path):
    weird = str(tmp_path / "x\r\x1b[2J") + "/s.db"
    (tmp_path / "x\r\x1b[2J").write_text("a file where a folder should be")
    r = run_process("--state", weird, "pool", "add", "p", "--product", "generic")
    assert r.code != 0 and one_line(r.err)
    assert "\r" not in r.err and "\x1b" not in r.err and "\\r\\x1b[2J" in r.err, repr(r.err)


def test_writes_leave_no_descriptor_open(lt, state):
    """A long-lived caller (a service, the benchmark) runs many transactions: none may leak a descriptor."""
    make_pool(lt, seats=1000)
    assert lt("acquire", "p", "--feature", "f").code == 0
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        bak = Path(f"{state}.bak")
        if bak.exists():
            os.utime(bak, (0, 0))  # a good copy on every write, too
        assert lt("acquire", "p", "--feature", "f").code == 0
        assert lt("info").code == 0
    assert len(os.listdir("/proc/self/fd")) <= before + 2
