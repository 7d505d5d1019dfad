"""Journal rotation (``journal rotate``, ``journal_max_bytes``): nothing lost, nothing doubled, every reader follows.

Every test runs on both layouts (the ``lt``/``store`` fixtures): SQLite keeps its newest event in
the ``events`` table and moves the rest; the JSON layout moves the whole ``<state>.journal``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from lictools import engine, replay
from lictools.errors import DamagedStateError, UsageError
from lictools.model import Request
from lictools.stores import rotation
from lictools.stores.jsonfile import JsonFileStore
from lictools.stores.memory import MemoryStore
from lictools.stores.sqlite import SqliteStore, SqliteTransaction
from tests.conftest import LICTOOLS, run_process
from tests.test_report import WHOLE_DAY, B, H, iso, office_day, ok, report


@pytest.fixture(params=["sqlite", "json"])
def store(request, tmp_path):
    """The file stores only: rotated files are theirs (a PostgreSQL state refuses ``journal rotate``,
    tests/test_postgres.py), so this module narrows the contract fixture of conftest."""
    if request.param == "json":
        return JsonFileStore(str(tmp_path / "state.json"), lock_timeout=5)
    return SqliteStore(str(tmp_path / "state.db"), lock_timeout=5)


def seqs(lt, *args: str) -> list[int]:
    r = lt("journal", *args)
    assert r.code == 0, r.err
    return [json.loads(line)["seq"] for line in r.out.splitlines()]


def rotated(state: Path) -> list[rotation.Segment]:
    return rotation.segments(str(state))


def rotate(lt) -> dict:
    r = lt("--format", "json", "journal", "rotate")
    assert r.code == 0, r.err
    return r.json()


def churn(lt, sessions: range) -> None:
    for i in sessions:
        ok(lt("acquire", "p", "--feature", "f", "--session", f"s{i}"))
        ok(lt("release", f"s{i}"))


@pytest.fixture
def pool(lt, clock):
    ok(lt("pool", "add", "p", "--product", "generic", "--license", "f=5"))
    return lt


# --------------------------------------------------------------------------- known answers
def test_report_gives_the_known_answers_after_a_rotation(lt, clock, state):
    office = office_day(lt, clock)
    window = ("--since", iso(B), "--until", iso(B + 8 * H))
    assert report(office, *window) == [WHOLE_DAY]
    done = rotate(lt)
    assert done["rotated"] and done["first_seq"] == 1 and os.path.basename(done["file"]).startswith(state.name)
    assert report(office, *window) == [WHOLE_DAY]
    by_user = report(office, *window, "--by", "user")
    rotate(lt)  # nothing new on the JSON layout, one more event on SQLite: still the same answers
    assert report(office, *window, "--by", "user") == by_user


def test_rotating_by_size_during_the_day_keeps_the_known_answers(lt, clock, state, monkeypatch):
    monkeypatch.setattr(rotation, "MIN_MAX_BYTES", 600)
    office = office_day(lt, clock, first=(("config", "journal_max_bytes", "600"),))
    files = rotated(state)
    assert len(files) >= 3, files  # writes rotated the journal by themselves, several times
    assert [f.first for f in files] == [1] + [f.last + 1 for f in files[:-1]]  # in order, no hole, no overlap
    assert report(office, "--since", iso(B), "--until", iso(B + 8 * H)) == [WHOLE_DAY]
    everything = seqs(lt)
    assert everything == list(range(1, everything[-1] + 1))


def test_simulate_and_metrics_read_across_rotated_files(lt, clock, state):
    office = office_day(lt, clock)
    simulated = office("--format", "json", "simulate", "--from-journal", "--license", "solver=1")
    metrics = office("metrics", "--recount")
    assert simulated.code == 0 and metrics.code == 0, simulated.err + metrics.err
    rotate(lt)
    assert office("--format", "json", "simulate", "--from-journal", "--license", "solver=1").out == simulated.out
    assert office("metrics", "--recount").out == metrics.out
    assert 'lictools_denials_total{pool="cad",feature="solver"} 3' in metrics.out


# --------------------------------------------------------------------------- reading across the boundary
def test_journal_since_seq_across_rotated_files(pool, state):
    churn(pool, range(3))
    first = rotate(pool)
    churn(pool, range(3, 5))
    second = rotate(pool)
    churn(pool, range(5, 7))
    assert first["rotated"] and second["rotated"] and second["first_seq"] == first["last_seq"] + 1
    everything = seqs(pool)
    assert everything == list(range(1, 16))  # pool-add + 7 grants + 7 releases
    for since in range(0, 17):
        assert seqs(pool, "--since-seq", str(since)) == everything[since:], since


def test_rotation_output_and_nothing_to_rotate(pool, state):
    assert rotate(pool)["rotated"] is (state.suffix == ".json")  # one event: SQLite keeps its newest
    again = pool("--format", "json", "journal", "rotate")
    assert again.code == 0 and again.json() == {"rotated": False, "file": None, "first_seq": None,
                                                 "last_seq": None, "events": 0, "bytes": 0}
    assert pool("journal", "rotate").out == "nothing to rotate\n"
    churn(pool, range(2))
    text = pool("journal", "rotate")
    assert text.code == 0 and text.out.startswith("rotated events ") and ".jsonl.gz (" in text.out


def test_rotated_files_are_gzip_json_lines_named_by_their_seqs(pool, state):
    churn(pool, range(2))
    done = rotate(pool)
    import gzip

    path = Path(done["file"])
    assert path.name == f"{state.name}.journal.{done['first_seq']:012d}-{done['last_seq']:012d}.jsonl.gz"
    lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert [e["seq"] for e in lines] == list(range(done["first_seq"], done["last_seq"] + 1))
    assert done["events"] == len(lines) and done["bytes"] == path.stat().st_size
    assert path.stat().st_mode & 0o777 == state.stat().st_mode & 0o777


def test_a_snapshot_taken_before_a_rotation_reads_what_it_saw(store, clock):
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 5}, {})
        engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
    with store.read() as view:
        store.rotate_journal()
        with store.transaction() as tx:
            engine.release(tx, ["a"])
        store.rotate_journal()
        seen = [e["seq"] for e in view.journal()]
        assert seen == [1, 2]
        assert [e["seq"] for e in view.journal(1)] == [2]
    assert [e["seq"] for e in store.read_journal()] == [1, 2, 3]
    assert len(rotation.segments(store.path)) == 2
    assert replay.compare(store) == []  # the state rebuilt from the rotated history is the state


def test_reading_rotated_files_keeps_memory_bounded(tmp_path):
    """Ten times the events in rotated files, about the same peak memory: files are streamed, never held."""
    import tracemalloc

    peaks = []
    for size in (2_000, 20_000):
        store = JsonFileStore(str(tmp_path / f"s{size}" / "state.json"), lock_timeout=5)
        os.makedirs(store.folder)
        per_file = size // 4
        for first in range(1, size + 1, per_file):
            events = ({"v": 2, "event": "grant", "ts": 1_800_000_000.0 + seq, "session": f"s{seq}", "seq": seq}
                      for seq in range(first, first + per_file))
            rotation.write_segment(store, events, first, first + per_file - 1)
        tracemalloc.start()
        count = sum(1 for _ in rotation.chained(store, 0, None, lambda: None, lambda after: iter(())))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == size
    assert peaks[1] < peaks[0] * 1.5, peaks


# --------------------------------------------------------------------------- crashes and damage
def test_a_crash_before_the_events_leave_the_live_journal_loses_and_doubles_nothing(store, clock, monkeypatch):
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 5}, {})
        for session in "abc":
            engine.acquire(tx, Request("p", "f", session, "u", "h", "n"))

    def crash(*args, **kwargs):
        raise OSError(5, "simulated crash")

    with monkeypatch.context() as m:
        if isinstance(store, SqliteStore):
            m.setattr(SqliteTransaction, "forget_events", crash)  # the file is written, the rows stay
        else:
            m.setattr(JsonFileStore, "_replace", crash)  # the file is written, the state still counts the journal
        with pytest.raises(Exception):
            store.rotate_journal()
    assert len(rotation.segments(store.path)) == 1
    assert [e["seq"] for e in store.read_journal()] == [1, 2, 3, 4]
    with store.transaction() as tx:
        engine.release(tx, ["a"])
    store.rotate_journal()  # overlaps the first file: readers skip what they already gave
    assert [e["seq"] for e in store.read_journal()] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in store.read_journal(2)] == [3, 4, 5]
    assert all(status != "fail" for _, status, _ in store.check()), store.check()


def test_json_crash_after_the_state_before_the_new_journal(tmp_path, clock, monkeypatch):
    store = JsonFileStore(str(tmp_path / "state.json"), lock_timeout=5)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 5}, {})
        engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
    with monkeypatch.context() as m:
        m.setattr(JsonFileStore, "_fresh_journal", lambda self: (_ for _ in ()).throw(OSError(5, "crash")))
        with pytest.raises(Exception):
            store.rotate_journal()
    old_journal = os.stat(store.journal_path)
    assert old_journal.st_size > 0  # the old lines are still there, beyond what the state commits
    assert [e["seq"] for e in store.read_journal()] == [1, 2]
    with store.transaction() as tx:
        engine.release(tx, ["a"])
    assert not os.path.samestat(os.stat(store.journal_path), old_journal)  # a new file, not cut in place
    assert [e["event"] for e in store.read_journal()] == ["pool-add", "grant", "release"]
    assert [e["seq"] for e in store.read_journal()] == [1, 2, 3]


def test_a_hole_is_refused_and_the_oldest_files_may_go(pool, state):
    for start in (0, 2, 4):
        churn(pool, range(start, start + 2))
        rotate(pool)
    files = rotated(state)
    assert len(files) == 3
    os.unlink(files[1].path)
    r = pool("journal")
    assert r.code == 6 and "hole" in r.err and f"events {files[1].first} to {files[1].last}" in r.err
    assert pool("report").code == 6
    doctor = pool("--format", "json", "doctor")
    row = next(c for c in doctor.json() if c["check"] == "rotated")
    assert doctor.code != 0 and row["status"] == "fail", row
    os.unlink(files[0].path)  # now only the oldest are gone: reports start at the first event kept
    assert seqs(pool)[0] == files[2].first
    rows = {c["check"]: c for c in pool("--format", "json", "doctor").json()}
    assert rows["rotated"]["status"] == "warn" and f"events before {files[2].first} were removed" in rows["rotated"]["detail"]
    assert rows["replay"]["status"] == "warn" and f"starts at event {files[2].first}" in rows["replay"]["detail"]


def test_doctor_warns_when_the_journal_stays_over_its_limit(pool, state, monkeypatch):
    from lictools.stores.filestore import FileStore

    monkeypatch.setattr(rotation, "MIN_MAX_BYTES", 600)
    monkeypatch.setattr(FileStore, "schedule_rotation", lambda self: None)  # as if every rotation failed
    assert pool("config", "journal_max_bytes", "600").code == 0
    churn(pool, range(3))
    row = next(c for c in pool("--format", "json", "doctor").json() if c["check"] == "rotated")
    assert row["status"] == "warn" and "larger than journal_max_bytes" in row["detail"], row
    rotate(pool)
    row = next(c for c in pool("--format", "json", "doctor").json() if c["check"] == "rotated")
    assert row["status"] == "ok", row


def test_a_damaged_rotated_file_is_exit_6(pool, state):
    churn(pool, range(2))
    path = Path(rotate(pool)["file"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    r = pool("journal")
    assert r.code == 6 and str(path) in r.err and "Traceback" not in r.err


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another account needs root")
def test_a_rotated_file_of_another_account_or_a_symlink_is_refused(pool, state, tmp_path):
    churn(pool, range(2))
    path = Path(rotate(pool)["file"])
    os.chown(path, 65534, 65534)  # written by another account, in a folder only we may write
    r = pool("journal")
    assert r.code == 6 and "not lictools' own" in r.err and "uid 65534" in r.err
    assert pool("report").code == 6
    os.chown(path, 0, 0)
    copy = tmp_path / "elsewhere.jsonl.gz"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)
    r = pool("journal")
    assert r.code == 6 and "symbolic link" in r.err
    row = next(c for c in pool("--format", "json", "doctor").json() if c["check"] == "rotated")
    assert row["status"] == "fail" and "symbolic link" in row["detail"]


def test_rotation_never_writes_through_a_symlink_at_its_name(pool, state, tmp_path):
    churn(pool, range(2))  # 5 events: SQLite moves 1 to 4 (it keeps the newest), JSON 1 to 5
    victim = tmp_path / "victim"
    victim.write_text("precious")
    name = Path(rotation.segment_path(str(state), 1, 5 if state.suffix == ".json" else 4))
    name.symlink_to(victim)
    done = rotate(pool)
    assert done["file"] == str(name)
    assert victim.read_text() == "precious" and not name.is_symlink()
    assert seqs(pool) == [1, 2, 3, 4, 5]


def test_restoring_an_older_sqlite_copy_sets_later_rotated_files_aside(cli, tmp_path, clock):
    state = tmp_path / "state.db"
    assert cli("pool", "add", "p", "--product", "generic", "--license", "f=5")[0] == 0  # the good copy is taken
    for i in range(3):
        assert cli("acquire", "p", "--feature", "f", "--session", f"s{i}")[0] == 0
    assert cli("journal", "rotate")[0] == 0  # events 1 to 3: newer than the good copy's only event
    assert cli("doctor", "--restore", "--yes")[0] == 0
    assert cli("acquire", "p", "--feature", "f", "--session", "after")[0] == 0
    code, out, err = cli("journal")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(e["seq"], e["event"]) for e in events] == [(1, "pool-add"), (2, "grant")], err
    assert events[1]["session"] == "after"
    assert rotated(state) == [] and list(tmp_path.glob("state.db.damaged-*.journal.*.jsonl.gz"))


# --------------------------------------------------------------------------- the command
def test_journal_rotate_on_a_missing_state_is_exit_4_and_creates_nothing(lt, state):
    r = lt("journal", "rotate")
    assert r.code == 4 and str(state) in r.err
    assert not state.parent.exists() or not any(state.parent.iterdir())


def test_journal_rotate_is_an_admin_command(pool, as_user, state, monkeypatch):
    churn(pool, range(1))
    monkeypatch.delenv("LICTOOLS_NOW")  # only the owner may pin the clock
    r = as_user("journal", "rotate")
    assert r.code == 7 and "journal rotate is an admin command" in r.err
    assert rotated(state) == []


def test_journal_max_bytes_setting(pool, state):
    assert pool("config", "journal_max_bytes", "64M").code == 0
    rows = pool("--format", "json", "config", "journal_max_bytes").json()
    assert [(r["key"], r["value"]) for r in rows] == [("journal_max_bytes", str(64 << 20))]
    for bad in ("lots", "10", "5T", "1.5G"):
        r = pool("config", "journal_max_bytes", bad)
        assert r.code == 2 and r.err.startswith("lictools: journal_max_bytes: "), (bad, r.err)
    assert pool("config", "journal_max_bytes", "").code == 0
    assert pool("--format", "json", "config", "journal_max_bytes").json()[0]["value"] is None


def test_a_store_without_rotation_says_so():
    with pytest.raises(UsageError, match="journal rotation is not available on this store"):
        MemoryStore().rotate_journal()


# --------------------------------------------------------------------------- racing processes
RACERS = 4
ROUNDS = 6


def test_acquire_and_release_racing_rotations_lose_no_event(state, monkeypatch):
    """Real processes acquire and release while others rotate (on demand and by size): every seq once."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=100").code == 0
    assert run_process("config", "journal_max_bytes", "4k").code == 0  # writes rotate by themselves too
    env = dict(os.environ, LICTOOLS_LOCK_TIMEOUT="120")
    script = ('for i in $(seq ' + str(ROUNDS) + '); do id=$("$@" acquire p --feature f) || exit 1; echo "$id"; '
              '"$@" release "$id" >/dev/null || exit 1; done')
    rotator = 'for i in $(seq 8); do "$@" journal rotate >/dev/null || exit 1; done'
    procs = [subprocess.Popen(["bash", "-c", script, "racer", *LICTOOLS], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(RACERS)]
    procs.append(subprocess.Popen(["bash", "-c", rotator, "rotator", *LICTOOLS], env=env, stdout=subprocess.PIPE,
                                  text=True))
    store = SqliteStore(str(state), 5) if state.suffix == ".db" else JsonFileStore(str(state), 5)
    reads = 0
    while any(p.poll() is None for p in procs):  # a reader racing them: every read has every seq once
        got = [e["seq"] for e in store.read_journal()]
        assert got == list(range(1, len(got) + 1))
        reads += 1
    outputs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), outputs
    sessions = sorted(line for out in outputs[:RACERS] for line in out.split())
    assert len(sessions) == RACERS * ROUNDS
    _wait_for_background_rotations(state)
    events = list(store.read_journal())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sorted(e["session"] for e in events if e["event"] == "grant") == sessions
    assert sorted(e["session"] for e in events if e["event"] == "release") == sessions
    assert len(rotated(state)) >= 2 and reads > 0
    doctor = run_process("--format", "json", "doctor")
    rows = {c["check"]: c for c in json.loads(doctor.out)}
    # (a write in the last instant may have left the journal over its limit until the next write: a warning)
    assert rows["rotated"]["status"] != "fail" and rows["replay"]["status"] == "ok", rows


def _wait_for_background_rotations(state: Path) -> None:
    """A write that outgrew journal_max_bytes started a rotation in a process of its own: let it end."""
    import fcntl

    deadline = time.monotonic() + 60
    fd = os.open(f"{state}.rotate.lock", os.O_RDWR)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "a background rotation did not end"
                time.sleep(0.05)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- real accounts on a group-shared state
@pytest.mark.parametrize("layout", ["db", "json"])
def test_real_accounts_members_rotate_by_size_and_cannot_slip_a_file_in(accounts, layout):
    """A member's writes rotate the shared journal (root reads the member's file: the folder's group); a member
    who swaps a rotated file for a symlink to a root-only file, or for a file of another group, gets it refused."""
    import gzip

    folder = accounts.folder(f"rotate-{layout}")
    state = folder / f"state.{layout}"
    env = {"LICTOOLS_STATE": str(state)}
    assert accounts.run("root", "pool", "add", "p", "--product", "generic", "--license", "f=50", env=env).code == 0
    assert accounts.run("root", "config", "journal_max_bytes", "4k", env=env).code == 0
    for _ in range(10):
        got = accounts.run("bob", "acquire", "p", "--feature", "f", env=env)
        assert got.code == 0, got.err
        assert accounts.run("bob", "release", got.out.strip(), env=env).code == 0
    deadline = time.monotonic() + 60
    while not any(os.lstat(s.path).st_uid == accounts.uid("bob") for s in rotated(state)):
        assert time.monotonic() < deadline, "bob's writes never rotated the journal"
        time.sleep(0.05)
    _wait_for_background_rotations(state)
    read = accounts.run("root", "journal", env=env)
    assert read.code == 0, read.err
    assert [json.loads(line)["seq"] for line in read.out.splitlines()] == list(range(1, 23))

    newest = rotated(state)[-1]
    original = Path(newest.path).read_bytes()
    secret = gzip.decompress(original).replace(b'"event":"', b'"note":"TOP-SECRET","event":"', 1)
    victim = accounts.base / "victim-rotate" / f"secret-{layout}.gz"
    victim.parent.mkdir(mode=0o700, exist_ok=True)
    victim.write_bytes(gzip.compress(secret))
    victim.chmod(0o600)
    copy = accounts.base / f"copy-{layout}.gz"
    copy.write_bytes(original)
    copy.chmod(0o644)

    def as_bob(code: str) -> None:
        proc = accounts.popen("bob", [accounts.python, "-c", code], stderr=subprocess.PIPE, text=True)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()

    as_bob(f"import os; os.unlink({newest.path!r}); os.symlink({str(victim)!r}, {newest.path!r})")
    r = accounts.run("root", "journal", env=env)
    assert r.code == 6 and "symbolic link" in r.err and "TOP-SECRET" not in r.out, (r.code, r.err)
    assert accounts.run("root", "report", env=env).code == 6
    as_bob(f"import os, shutil; os.unlink({newest.path!r}); shutil.copy({str(copy)!r}, {newest.path!r}); "
           f"os.chown({newest.path!r}, -1, os.getgid())")  # bob's own group, not the folder's
    r = accounts.run("root", "journal", env=env)
    assert r.code == 6 and "not lictools' own" in r.err, (r.code, r.err)
