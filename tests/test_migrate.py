"""``lictools migrate --to TARGET``: a state copied whole into another store (issue 12).

What an admin checks: ``dump`` and ``journal`` print the same on both sides (SQLite -> JSON -> SQLite),
a non-empty target is refused (exit 2) unless ``--force``, a missing source is exit 4 and creates
nothing, the same state as source and target is exit 2.
"""

from __future__ import annotations

import json

import pytest

from lictools import engine
from lictools.model import Request
from lictools.stores.memory import MemoryStore
from lictools.stores.jsonfile import JsonFileStore
from lictools.stores.sqlite import SqliteStore
from lictools.stores.copy import copy_state

T0 = 1_795_000_000.0


def _busy_state(path, clock) -> SqliteStore:
    """A SQLite state with all a state holds: pools with licenses, reservations, policies and a queue waiter,
    live sessions (one detached), settings and groups, and a journal of a few hundred events."""
    store = SqliteStore(str(path), lock_timeout=5)
    with store.transaction() as tx:
        engine.add_pool(tx, "cad", "generic", {"solver": 3}, {"lease": "0", "share": "user"})
        engine.add_pool(tx, "gen", "genero", {"runtime": 40}, {"lease": "3600"})
        engine.reserve(tx, "gen", "alpha", "runtime", 2)
    with store.transaction() as tx:  # one commit (fast), its clock moved by hand: two hours of logins
        for i in range(120):  # about 220 events: grants, releases
            clock["now"] = tx.now = tx.now + 60
            engine.acquire(tx, Request("gen", "runtime", f"s{i}", f"u{i % 17}", f"h{i % 5}", "n1",
                                       client="gwc", project="alpha" if i % 3 == 0 else None))
            if i >= 30:
                engine.release(tx, [f"s{i - 30}"])
    with store.transaction() as tx:
        for user in ("ann", "bob", "cy", "dee"):
            engine.acquire(tx, Request("cad", "solver", f"cad-{user}", user, "ws1", "n1"))
        engine.acquire(tx, Request("cad", "solver", "waiting", "eve", "ws2", "n1"),
                       wait=engine.Wait(T0 + 10**6, 4242, 7, "n1"))
        engine.detach(tx, ["s100"])
    return store


@pytest.fixture
def busy(tmp_path, lt1, monkeypatch):
    clock = {"now": T0}
    for layout in (SqliteStore, JsonFileStore):  # every side sees the same sessions live
        monkeypatch.setattr(layout, "now", lambda self: clock["now"])
    source = tmp_path / "source.db"
    _busy_state(source, clock)
    monkeypatch.setenv("LICTOOLS_STATE", str(source))
    for args in (("group", "set", "designers", "ann", "bob"), ("policy", "add", "cad", "max", "1", "--user", "*"),
                 ("policy", "add", "cad", "include", "--group", "designers"), ("config", "admin_group", "0")):
        assert lt1(*args).code == 0, lt1(*args).err
    return source


def _both(lt1, *args: str, state) -> str:
    result = lt1("--state", str(state), *args)
    assert result.code == 0, result.err
    return result.out


def test_sqlite_to_json_to_sqlite_keeps_dump_and_journal(busy, tmp_path, lt1):
    middle, back = tmp_path / "copy.json", tmp_path / "back.db"
    first = lt1("--format", "json", "migrate", "--to", str(middle))
    assert first.code == 0, first.err
    counts = first.json()
    dump = json.loads(_both(lt1, "dump", state=busy))
    journal = _both(lt1, "journal", state=busy)
    assert counts["pools"] == 2 and counts["sessions"] == len(dump["sessions"]) == 33  # 30 runtime, 3 solver (dee denied)
    assert counts["waiters"] == 1 and counts["events"] == counts["last_seq"] == len(journal.splitlines())
    assert counts["events"] > 200 and counts["replaced"] is False
    assert lt1("--state", str(middle), "migrate", "--to", str(back)).code == 0
    for copy in (middle, back):
        assert json.loads(_both(lt1, "dump", state=copy)) == dump
        assert _both(lt1, "journal", state=copy) == journal
        assert _both(lt1, "--format", "json", "info", state=copy) == _both(lt1, "--format", "json", "info", state=busy)
    # what the copy holds is what it is: queue, policies, groups, a detached session, the reservation
    assert [w["session"] for w in dump["pools"][0]["queue"]] == ["waiting"]
    assert len(dump["pools"][0]["policies"]) == 2 and dump["groups"] == {"designers": ["ann", "bob"]}
    assert dump["settings"] == {"admin_group": "0"}
    assert any(s["session"] == "s100" and s["detached"] for s in dump["sessions"])
    # the copy is a working state: the next event continues the numbering
    assert lt1("--state", str(back), "release", "s119").code == 0
    assert json.loads(_both(lt1, "journal", "--since-seq", str(counts["last_seq"]), state=back))["seq"] == (
        counts["last_seq"] + 1)


@pytest.mark.parametrize("name", ["target.db", "target.json"])
def test_a_non_empty_target_is_refused_unless_force(busy, tmp_path, lt1, name):
    target = tmp_path / name
    for args in (("pool", "add", "old", "--product", "generic", "--license", "x=1"),
                 ("acquire", "old", "--feature", "x", "--session", "old-1")):
        assert lt1("--state", str(target), *args).code == 0
    before = _both(lt1, "dump", state=target), _both(lt1, "journal", state=target)
    refused = lt1("migrate", "--to", str(target))
    assert refused.code == 2 and refused.out == ""
    assert refused.err.strip() == (f"lictools: the target {target} is not empty (1 pool(s), 1 session(s), "
                                   "2 journal event(s)); give --force to replace its whole state")
    assert (_both(lt1, "dump", state=target), _both(lt1, "journal", state=target)) == before
    forced = lt1("--format", "json", "migrate", "--to", str(target), "--force")
    assert forced.code == 0, forced.err
    assert forced.json()["replaced"] is True
    assert _both(lt1, "dump", state=target) == _both(lt1, "dump", state=busy)
    assert _both(lt1, "journal", state=target) == _both(lt1, "journal", state=busy)


def test_a_target_with_only_a_journal_is_not_empty(busy, tmp_path, lt1):
    target = tmp_path / "t.db"
    lt1("--state", str(target), "pool", "add", "gone", "--product", "generic", "--license", "x=1")
    lt1("--state", str(target), "pool", "remove", "gone")
    refused = lt1("migrate", "--to", str(target))
    assert refused.code == 2 and "2 journal event(s)" in refused.err


def test_missing_source_is_exit_4_and_creates_nothing(tmp_path, lt1):
    target = tmp_path / "t.db"
    result = lt1("--state", str(tmp_path / "none.db"), "migrate", "--to", str(target))
    assert result.code == 4 and result.err.startswith("lictools: no state at")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_empty_target_name_is_refused_not_the_default_state(busy, lt1, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    result = lt1("migrate", "--to", "")
    assert result.code == 2 and result.err == "lictools: --to: give the path or URL of the state to copy into\n"
    assert not (tmp_path / "home").exists()


def test_same_source_and_target_is_refused(busy, lt1, tmp_path):
    before = _both(lt1, "journal", state=busy)
    for spelled in (str(busy), f"{tmp_path}/./{busy.name}"):
        result = lt1("migrate", "--to", spelled)
        assert result.code == 2 and "the source and the target are the same state" in result.err
    assert _both(lt1, "journal", state=busy) == before


def test_force_over_someone_elses_state_needs_an_admin(busy, tmp_path, lt1, monkeypatch):
    import os

    target = tmp_path / "t.db"
    lt1("--state", str(target), "pool", "add", "old", "--product", "generic", "--license", "x=1")
    lt1("--state", str(target), "config", "admin_group", "4243")
    with monkeypatch.context() as m:
        m.setattr(os, "geteuid", lambda: 65534)
        m.setattr(os, "getegid", lambda: 4242)
        m.setattr(os, "getgroups", lambda: [4242])
        result = lt1("migrate", "--to", str(target), "--force")
    assert result.code == 7 and "migrate --force over a state is an admin command" in result.err
    assert [p["name"] for p in json.loads(_both(lt1, "dump", state=target))["pools"]] == ["old"]


def test_a_journal_with_a_gap_is_not_renumbered(tmp_path):
    """The target numbers events itself: a source whose seq does not run 1, 2, 3 ... cannot be copied as it is."""
    source = MemoryStore(clock=lambda: T0)
    with source.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 1}, {})
        engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
    del source.journal[0]
    from lictools.errors import DamagedStateError

    with pytest.raises(DamagedStateError, match="seq 2 where 1 was due"):
        copy_state(source, SqliteStore(str(tmp_path / "t.db"), 5))
    assert not (tmp_path / "t.db").exists()


def test_a_memory_store_copies_into_a_file(tmp_path, lt1):
    """What simulate --keep-state does: a MemoryStore is a Store like any other."""
    source = MemoryStore(clock=lambda: T0)
    with source.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 2}, {"lease": "0"})
        engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
    copied = copy_state(source, SqliteStore(str(tmp_path / "t.db"), 5))
    assert (copied.pools, copied.sessions, copied.events) == (1, 1, 2)
    journal = [json.loads(line) for line in _both(lt1, "journal", state=tmp_path / "t.db").splitlines()]
    assert [(e["seq"], e["event"], e["ts"]) for e in journal] == [(1, "pool-add", T0), (2, "grant", T0)]


WRITER = """
import sys, itertools
from lictools import engine
from lictools.model import Request
from lictools.stores.sqlite import SqliteStore
store = SqliteStore(sys.argv[1], 30)
for i in itertools.count():
    with store.transaction() as tx:
        engine.acquire(tx, Request("p", "f", f"w{i}", "u", "h", "n"))
        if i >= 5:
            engine.release(tx, [f"w{i - 5}"])
    if i == 20:
        print("writing", flush=True)
"""


@pytest.mark.parametrize("name", ["copy.db", "copy.json"])
def test_a_copy_while_the_source_is_written_is_one_consistent_moment(tmp_path, lt1, name):
    """Writers go on during migrate (the source is read from a snapshot): the copy's state is what its own
    journal replays to, and its journal is the source's up to some event."""
    import subprocess
    import sys

    from lictools import replay
    from lictools.stores import open_store

    source = tmp_path / "source.db"
    assert lt1("--state", str(source), "pool", "add", "p", "--product", "generic", "--license", "f=10").code == 0
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        targets = []
        for i in range(3):
            target = tmp_path / f"{i}-{name}"
            assert lt1("--state", str(source), "migrate", "--to", str(target)).code == 0
            targets.append(target)
    finally:
        writer.kill()
        writer.wait()
    full = _both(lt1, "journal", state=source).splitlines()
    assert len(full) > len(_both(lt1, "journal", state=targets[-1]).splitlines()), "nothing was written meanwhile"
    for target in targets:
        copied = _both(lt1, "journal", state=target).splitlines()
        assert len(copied) > 20 and copied == full[:len(copied)]
        assert replay.compare(open_store(str(target), 5)) == []


@pytest.mark.parametrize("name", ["target.db", "target.json"])
def test_force_over_a_target_with_rotated_journal_files_is_refused(busy, tmp_path, lt1, name):
    """Its new journal would number from 1 again behind the old files: refused, the target unchanged."""
    target = tmp_path / name
    for args in (("pool", "add", "old", "--product", "generic", "--license", "x=1"),
                 ("acquire", "old", "--feature", "x", "--session", "old-1"), ("journal", "rotate")):
        assert lt1("--state", str(target), *args).code == 0
    before = _both(lt1, "dump", state=target), _both(lt1, "journal", state=target)
    refused = lt1("migrate", "--to", str(target), "--force")
    assert refused.code == 2 and refused.out == ""
    assert "rotated journal file(s)" in refused.err and len(refused.err.splitlines()) == 1
    assert (_both(lt1, "dump", state=target), _both(lt1, "journal", state=target)) == before


def test_a_file_state_goes_to_postgresql_and_back_unchanged(busy, tmp_path, lt1, pg_url, monkeypatch):
    """file -> PostgreSQL -> file: dump and journal equal on all three (the server's clock pinned to the source's)."""
    monkeypatch.setenv("LICTOOLS_NOW", repr(SqliteStore(str(busy), 5).now()))
    dump, journal = _both(lt1, "dump", state=busy), _both(lt1, "journal", state=busy)
    there = lt1("--format", "json", "migrate", "--to", pg_url)
    assert there.code == 0, there.err
    assert _both(lt1, "dump", state=pg_url) == dump
    assert _both(lt1, "journal", state=pg_url) == journal
    back = tmp_path / "back.json"
    assert lt1("--state", pg_url, "migrate", "--to", str(back)).code == 0
    assert (_both(lt1, "dump", state=back), _both(lt1, "journal", state=back)) == (dump, journal)
    # a non-empty database is refused like a file; --force replaces it (the journal restarts at 1)
    refused = lt1("--state", str(back), "migrate", "--to", pg_url)
    assert refused.code == 2 and "is not empty" in refused.err
    assert lt1("--state", str(back), "migrate", "--to", pg_url, "--force").code == 0
    assert _both(lt1, "journal", state=pg_url) == journal
