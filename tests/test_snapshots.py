"""Read-only commands read a snapshot: no lock, no waiting, no blocking writers, no expired seat counted.

Also the SQLite layout's seat counters (version 2, upgraded from version 1 by a write) and the
journal tail read from the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lictools import engine
from lictools.model import Request
from lictools.stores import open_store
from lictools.stores.sqlite import SqliteStore, TABLES
from tests.conftest import LICTOOLS, run_process

LOCK_HOLDER = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1], is_singleton=False)
lock.acquire()
print("LOCKED", flush=True)
sys.stdin.readline()
"""


def pool(lt, seats: int = 5, lease: int | None = None) -> None:
    extra = ["--option", f"lease={lease}"] if lease is not None else []
    assert lt("pool", "add", "p", "--product", "generic", "--license", f"f={seats}", *extra).code == 0


def test_an_expired_seat_is_never_counted_and_reading_reaps_nothing(lt, clock, state):
    pool(lt, lease=60)
    assert lt("acquire", "p", "--feature", "f", "--session", "short").code == 0
    assert lt("acquire", "p", "--feature", "f", "--session", "long", "--lease", "0").code == 0
    events = len(lt("journal").out.splitlines())
    clock.advance(61)
    info = lt("--format", "json", "info").json()[0]
    assert (info["in_use"], info["sessions"], info["free"]) == (1, 1, 4)
    assert [row["sessions"] for row in lt("--format", "json", "users").json()] == [["long"]]
    assert [s["session"] for s in lt("--format", "json", "dump").json()["sessions"]] == ["long"]
    assert lt("explain", "short").code == 4
    assert len(lt("journal").out.splitlines()) == events, "a read-only command wrote the journal"
    assert lt("gc").code == 0  # the next write reaps it, as the snapshot showed
    assert len(lt("journal").out.splitlines()) == events + 1


def test_reads_neither_wait_for_nor_take_the_state_lock(lt, state):
    pool(lt)
    assert lt("acquire", "p", "--feature", "f").code == 0
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, f"{state}.lock"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        for args in (["info"], ["users"], ["dump"], ["journal"], ["pool", "show", "p"], ["config"], ["info", "users"]):
            r = lt("--lock-timeout", "0", *args)
            assert r.code == 0, (args, r.err)
        assert lt("--lock-timeout", "0", "acquire", "p", "--feature", "f").code == 5
    finally:
        holder.kill()
        holder.wait()


def test_an_open_snapshot_does_not_block_a_writer_and_stays_consistent(lt, state):
    pool(lt)
    assert lt("acquire", "p", "--feature", "f", "--session", "first").code == 0
    store = open_store(str(state), 5)
    with store.read() as view:
        before = [s.id for s in view.find_sessions()]
        r = run_process("--lock-timeout", "5", "acquire", "p", "--feature", "f", "--session", "second", timeout=30)
        assert r.code == 0, r.err
        assert [s.id for s in view.find_sessions()] == before == ["first"]
        assert view.seats_in_use("p", "f") == 1 and view.count_sessions("p", "f") == 1
        assert [e["session"] for e in view.journal() if e["event"] == "grant"] == ["first"]
    with store.read() as view:
        assert sorted(s.id for s in view.find_sessions()) == ["first", "second"]


def test_journal_tail_is_read_from_the_end_with_the_right_numbers(lt, state):
    pool(lt, seats=1000)
    for i in range(60):
        assert lt("acquire", "p", "--feature", "f", "--session", f"s{i:03d}").code == 0
    whole = [json.loads(line) for line in lt("journal").out.splitlines()]
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))
    for since in (0, 1, 30, len(whole) - 10, len(whole) - 1, len(whole), len(whole) + 5):
        tail = [json.loads(line) for line in lt("journal", "--since-seq", str(since)).out.splitlines()]
        assert tail == whole[since:], since


def test_a_json_journal_that_disagrees_with_the_states_count_is_reported(lt1, tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    monkeypatch.setenv("LICTOOLS_STATE", str(state))
    pool(lt1)
    for i in range(5):
        assert lt1("acquire", "p", "--feature", "f").code == 0
    doc = json.loads(state.read_text())
    doc["seq"] += 3  # the count says 3 more events than there are lines
    state.write_text(json.dumps(doc))
    assert lt1("journal", "--since-seq", "4").code == 0  # numbered by the count, which doctor questions:
    doctor = {row["check"]: row for row in lt1("--format", "json", "doctor").json()}
    assert doctor["journal"]["status"] == "fail" and "counts 9" in doctor["journal"]["detail"]


# --------------------------------------------------------------------------- counters
def version_1_state(path: Path) -> None:
    """A state as lictools wrote it before the seat counters (schema 1), with two sessions on one seat."""
    from lictools.stores.memory import MemoryTransaction, empty_document

    memory = MemoryTransaction(empty_document(), 1_795_000_000.0)
    engine.add_pool(memory, "p", "generic", {"f": 5}, {"share": "user"})
    for sid, user, host in (("a1", "alice", "h1"), ("a2", "alice", "h2"), ("b1", "bob", "h1")):
        engine.acquire(memory, Request("p", "f", sid, user, host, "n1", lease=0))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA application_id = {0x4C494354}")
    db.execute("PRAGMA user_version = 1")
    for statement in TABLES:
        db.execute(statement)
    for name, doc in memory.doc["pools"].items():
        db.execute("INSERT INTO pools VALUES (?, ?)", (name, json.dumps(doc)))
    for sid, doc in memory.doc["sessions"].items():
        db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (sid, doc["pool"], doc["feature"], doc["seat"], doc["seat_project"], doc["expires"], json.dumps(doc)))
    for event in memory.events:
        db.execute("INSERT INTO events (doc) VALUES (?)", (json.dumps(event),))
    db.close()


def test_a_version_1_state_is_read_as_it_is_and_upgraded_by_the_next_write(lt1, tmp_path, monkeypatch):
    lt = lt1
    state = tmp_path / "state.db"
    monkeypatch.setenv("LICTOOLS_STATE", str(state))
    version_1_state(state)
    info = lt("--format", "json", "info").json()[0]
    assert (info["in_use"], info["sessions"]) == (2, 3)
    assert sqlite3.connect(state).execute("PRAGMA user_version").fetchone()[0] == 1, "a read upgraded the file"
    assert lt("release", "a1").code == 0
    db = sqlite3.connect(state)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert sorted(db.execute("SELECT seat, sessions FROM seats")) == [("user=alice", 1), ("user=bob", 1)]
    db.close()
    info = lt("--format", "json", "info").json()[0]
    assert (info["in_use"], info["sessions"]) == (2, 2)
    assert {r["check"]: r["status"] for r in lt("--format", "json", "doctor").json()}.get("counters", "ok") == "ok"


def test_seat_counters_follow_every_change(tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"), 5)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "magic-xpa", {"threads": 10}, {})
        engine.reserve(tx, "p", "pa", "threads", 2)
        for i, project in enumerate(["pa", "pa", None, "pb"]):
            engine.acquire(tx, Request("p", "threads", f"s{i}", "u", f"h{i}", "n", project=project))
        engine.release(tx, ["s0"])
        session = tx.get_session("s3")
        session.seat_project = None  # a changed charge moves the seat between projects
        tx.put_session(session)
    with store.read() as view:
        assert view.seats_by_project("p", "threads") == {"pa": 1, None: 2}
        assert view.count_sessions("p", "threads") == 3
        assert view.count_seat_sessions("p", "threads", view.get_session("s1").seat) == 1
    db = sqlite3.connect(tmp_path / "state.db")
    recounted = sorted(db.execute("SELECT coalesce(seat_project, ''), count(DISTINCT seat), count(*) FROM sessions "
                                  "GROUP BY coalesce(seat_project, '')"))
    assert sorted(db.execute("SELECT project, seats, sessions FROM usage")) == recounted


def test_a_reader_waits_out_a_checkpoint_that_is_still_extending_the_file(tmp_path):
    """A checkpoint (run by a writer under the lock) writes the header's new page count before the pages that
    extend the file; a reader, which takes no lock, must not call that moment a truncated state (exit 6)."""
    import threading

    from lictools.errors import DamagedStateError

    path = tmp_path / "state.db"
    store = SqliteStore(str(path), lock_timeout=5)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 3}, {})
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file, the WAL empty
    db.close()
    whole = path.read_bytes()
    assert len(whole) >= 3 * 4096
    os.truncate(path, len(whole) - 2 * 4096)  # the header counts two pages more than the file holds

    def finish_checkpoint():
        with open(path, "r+b") as f:
            f.seek(len(whole) - 2 * 4096)
            f.write(whole[-2 * 4096:])

    threading.Timer(0.3, finish_checkpoint).start()
    with store.read() as view:
        assert view.get_pool("p") is not None
    # a file that stays short is damaged: exit 6 once the wait (at most the lock timeout) is over
    os.truncate(path, len(whole) - 4096)
    started = time.monotonic()
    with pytest.raises(DamagedStateError, match="is truncated"):
        with SqliteStore(str(path), lock_timeout=0.5).read():
            pass
    assert time.monotonic() - started >= 0.5
