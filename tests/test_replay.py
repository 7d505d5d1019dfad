"""lictools.replay: the journal alone rebuilds the state, and compare() finds every difference.

Also the two engine gaps replay found, now fixed and kept as tests:
- a retried acquire changed a session without a journal event;
- a reservation the current usage did not fit let the project's grants exceed the issued seats.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from lictools import engine, replay
from lictools.model import Request
from lictools.stores.jsonfile import JsonFileStore
from lictools.stores.sqlite import SqliteStore

from tests.conftest import CLOCK_START

T0 = CLOCK_START


def req(session, pool="p", feature="f", user="alice", host="h1", node="n1", **kw) -> Request:
    return Request(pool=pool, feature=feature, session=session, user=user, host=host, node=node, **kw)


def test_every_event_kind_replays_to_the_state(store, tx, clock):
    with tx() as t:
        engine.add_pool(t, "p", "generic", {"f": 3}, {"share": "user", "linger": "30", "lease": "100"})
        engine.add_pool(t, "q", "generic", {"f": 1}, {})
        engine.add_license(t, "p", "f", 2, serial="S1")
        engine.add_license(t, "p", "g", 1)
        engine.remove_license(t, "p", "S1")
        engine.reserve(t, "p", "pa", "f", 1)
        engine.set_pool_options(t, "p", {"lease": "60"})
    with tx() as t:
        assert engine.acquire(t, req("a", project="pa")).granted
        assert engine.acquire(t, req("b")).shared
        assert engine.acquire(t, req("c", user="bob", lease=0, pid=42, app="x")).granted
        assert engine.acquire(t, req("d", user="carol", terminal=True)).granted
        assert not engine.acquire(t, req("e", user="dave")).granted  # 3 seats, all in use
        assert engine.acquire(t, req("q1", pool="q")).granted
    clock.advance(10)
    with tx() as t:
        engine.refresh(t, ["a", "c"])
        engine.detach(t, ["b"])  # linger 30: kept, detached
        engine.release(t, ["d"], actor="me")
    with tx() as t:
        engine.set_pool_options(t, "q", {"linger": "0"})
        engine.detach(t, ["q1"])  # linger 0: ended now
    clock.advance(45)  # b's linger ends
    with tx() as t:
        engine.remove(t, user="bob", actor="admin")
    assert replay.compare(store) == []
    st = replay.replay(store.read_journal())
    assert st.counts["expire"] == 1 and st.counts["deny"] == 1 and st.counts["detach"] == 2
    assert sorted(st.sessions) == ["a"]
    a = st.sessions["a"]
    assert (a["seat"], a["seat_project"], a["lease"], a["refreshed"]) == ("user=alice", "pa", 60, T0 + 10)
    assert a["expires"] == pytest.approx(T0 + 70)
    assert st.pools["p"].issued("f") == 3 and st.pools["p"].issued("g") == 1
    assert st.pools["p"].reservations == {"pa": {"f": 1}}
    with tx() as t:
        engine.remove_pool(t, "p", force=True, actor="admin")
    assert replay.compare(store) == []
    assert replay.replay(store.read_journal()).pools.keys() == {"q"}


def test_compare_names_what_differs(store, tx):
    with tx() as t:
        engine.add_pool(t, "p", "generic", {"f": 2}, {})
        engine.acquire(t, req("a"))
        engine.acquire(t, req("b"))
    assert replay.compare(store) == []
    # change the state behind the journal's back
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        db.execute("DELETE FROM sessions WHERE id = 'a'")
        row = db.execute("SELECT doc FROM sessions WHERE id = 'b'").fetchone()
        doc = json.loads(row[0])
        doc["user"] = "mallory"
        db.execute("UPDATE sessions SET doc = ? WHERE id = 'b'", (json.dumps(doc),))
        db.commit()
        db.close()
    elif not hasattr(store, "path"):  # PostgreSQL
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as db:
            db.execute("DELETE FROM lictools.sessions WHERE id = 'a'")
            db.execute("UPDATE lictools.sessions SET doc = jsonb_set(doc::jsonb, '{user}', '\"mallory\"')::text "
                       "WHERE id = 'b'")
    else:
        with open(store.path) as f:
            doc = json.load(f)
        del doc["sessions"]["a"]
        doc["sessions"]["b"]["user"] = "mallory"
        with open(store.path, "w") as f:
            json.dump(doc, f)
    diffs = replay.compare(store)
    assert any(d.startswith("session a: live in the journal") for d in diffs), diffs
    assert any("session b: user 'mallory' in the state, 'alice' in the journal" in d for d in diffs), diffs


def test_json_tail_beyond_journal_bytes_is_not_part_of_the_journal(tmp_path, clock):
    store = JsonFileStore(str(tmp_path / "state.json"), 5)
    with store.transaction() as t:
        engine.add_pool(t, "p", "generic", {"f": 1}, {})
    # a writer that crashed after appending its events, before its rename
    ghost = {"event": "grant", "pool": "p", "feature": "f", "seat": "x", "session": "x", "ts": T0, "lease": 0}
    with open(store.journal_path, "ab") as f:
        f.write(json.dumps(ghost).encode() + b"\n" + b'{"event":"rel')
    events, partial = replay.pending_events(store)
    assert events == [ghost] and partial == b'{"event":"rel'
    assert [e["event"] for e in store.read_journal()] == ["pool-add"]
    assert replay.compare(store) == []
    with store.transaction() as t:  # the next commit cuts the tail
        engine.acquire(t, req("a"))
    assert replay.pending_events(store) == ([], b"")
    assert [e["event"] for e in store.read_journal()] == ["pool-add", "grant"]
    assert replay.compare(store) == []


def test_json_journal_shorter_than_committed_is_reported(tmp_path, clock):
    store = JsonFileStore(str(tmp_path / "state.json"), 5)
    with store.transaction() as t:
        engine.add_pool(t, "p", "generic", {"f": 1}, {})
        engine.acquire(t, req("a"))
    size = os.path.getsize(store.journal_path)
    with open(store.journal_path, "r+b") as f:
        f.truncate(size - 10)
    diffs = replay.compare(store)
    assert any("the state says" in d and "committed" in d for d in diffs), diffs


def _ev(kind, ts=T0, **kw):
    return {"event": kind, "ts": ts, **kw}


def test_replay_flags_oversold_grants_and_wrong_denials():
    events = [
        _ev("pool-add", pool="p", product="generic", options={"lease": "0"}, issued={"f": 1}),
        _ev("grant", pool="p", feature="f", seat="k1", session="a", user="u", host="h", node="n", lease=0, in_use=1),
        _ev("grant", pool="p", feature="f", seat="k2", session="b", user="u", host="h", node="n", lease=0, in_use=2),
        _ev("deny", pool="p", feature="f", seat="k1", session="c", in_use=2),
        _ev("share", pool="p", feature="f", seat="k9", session="d", user="u", host="h", node="n", lease=0, in_use=3),
        _ev("release", pool="p", feature="f", seat="k1", session="zz", in_use=2),
        _ev("setting", key="admin_group", value="staff"),
    ]
    st = replay.replay(events)
    assert any("(grant b)" in v and "oversold" in v for v in st.violations), st.violations
    assert any("(deny c)" in v and "already held" in v for v in st.violations), st.violations
    assert any("(share d)" in p and "no live session holds" in p for p in st.problems), st.problems
    assert any("(release zz)" in p and "not live" in p for p in st.problems), st.problems
    assert st.ignored == {"setting": 1}


def test_reservations_are_respected_by_the_replay_check():
    events = [
        _ev("pool-add", pool="p", product="generic", options={"lease": "0"}, issued={"f": 2}),
        _ev("reserve", pool="p", feature="f", project="pa", count=1),
        _ev("grant", pool="p", feature="f", seat="k1", session="a", user="u", host="h", node="n", lease=0, in_use=1),
        # the shared seat is taken: only project pa may open another one
        _ev("grant", pool="p", feature="f", seat="k2", session="b", user="u", host="h", node="n", lease=0, in_use=2),
    ]
    assert any("(grant b)" in v for v in replay.replay(events).violations)
    events[-1]["project"] = events[-1]["seat_project"] = "pa"
    assert replay.replay(events).violations == []


# --------------------------------------------------------------------------- engine gaps found
def test_retried_acquire_is_journaled(store, tx, clock):
    with tx() as t:
        engine.add_pool(t, "p", "generic", {"f": 1}, {"linger": "300", "lease": "60"})
        engine.acquire(t, req("a"))
    with tx() as t:
        engine.detach(t, ["a"])
    clock.advance(20)
    with tx() as t:  # the client comes back with the same --session (and a new --lease)
        assert engine.acquire(t, req("a", lease=600)).retry
    assert replay.compare(store) == []


def test_reservation_after_full_pool_does_not_oversell(store, tx):
    with tx() as t:
        engine.add_pool(t, "p", "generic", {"f": 2}, {})
        engine.acquire(t, req("a", user="u1"))
        engine.acquire(t, req("b", user="u2"))
        engine.reserve(t, "p", "pa", "f", 2)  # accepted: 2 <= 2 issued
        outcome = engine.acquire(t, req("c", user="u3", project="pa"))
        in_use, issued = t.seats_in_use("p", "f"), t.get_pool("p").issued("f")
    assert in_use <= issued, f"{in_use} seats in use of {issued} issued: {outcome.reason}"


def test_damaged_json_journal_is_exit_6_not_an_internal_error(tmp_path, clock, capsys):
    from lictools.cli.main import run

    state = str(tmp_path / "state.json")
    assert run(["--state", state, "pool", "add", "p", "--product", "generic", "--license", "f=1"]) == 0
    assert run(["--state", state, "acquire", "p", "--feature", "f"]) == 0
    size = os.path.getsize(state + ".journal")
    with open(state + ".journal", "r+b") as f:
        f.truncate(size - 10)
    capsys.readouterr()
    assert run(["--state", state, "journal"]) == 6, capsys.readouterr().err
