"""``acquire --wait``: a FIFO queue (FlexNet and RLM queue checkouts), recorded in the state.

Waiters are granted in arrival order when a seat frees, in the transaction that frees it, so nobody
arriving later can take that seat first; a waiter whose time runs out leaves the queue denied; a
waiter whose process is gone leaves it at the next command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lictools import engine, replay
from lictools.model import Policy, Request
from lictools.stores.memory import MemoryStore

from tests.conftest import LICTOOLS, run_process
from tests.fakes import FakeHost

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

T0 = 1_800_000_000.0


def machine() -> FakeHost:
    """Node n1, where the waiting processes 100-103 run (started at tick 7)."""
    return FakeHost(alive={pid: 7 for pid in (100, 101, 102, 103)})


@pytest.fixture
def world():
    clock = {"now": T0}
    store = MemoryStore(clock=lambda: clock["now"])
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 1}, {"lease": "0"})
    return store, clock


def req(session: str, user: str = "u", **kw) -> Request:
    return Request("p", "f", session, user, "h", "n1", **kw)


def wait(pid: int, seconds: float = 600) -> engine.Wait:
    return engine.Wait(T0 + seconds, pid, 7, "n1")


def test_waiters_get_freed_seats_in_arrival_order(world):
    store, clock = world
    host = machine()
    with store.transaction() as tx:
        assert engine.acquire(tx, req("holder")).granted
        first = engine.acquire(tx, req("w1"), wait=wait(100), host=host)
        second = engine.acquire(tx, req("w2"), wait=wait(101), host=host)
        assert (first.granted, first.queued, second.queued) == (False, 1, 2)
        again = engine.acquire(tx, req("w2"), wait=wait(101), host=host)
        assert again.queued == 2, "asking again keeps its place"
    with store.transaction() as tx:
        engine.release(tx, ["holder"])
        assert tx.get_session("w1") is not None and tx.get_session("w2") is None
        late = engine.acquire(tx, req("late"))
        assert not late.granted, "the freed seat went to the first waiter, not to a late arrival"
        assert tx.seats_in_use("p", "f") == 1
    with store.transaction() as tx:
        engine.release(tx, ["w1"])
        assert tx.get_session("w2") is not None
        assert tx.get_pool("p").queue == []
    kinds = [(e["event"], e.get("session"), e.get("reason")) for e in store.read_journal()
             if e["event"] in ("queue", "dequeue", "grant")]
    assert kinds == [("grant", "holder", None), ("queue", "w1", "all 1 seat(s) are in use"),
                     ("queue", "w2", "all 1 seat(s) are in use"), ("grant", "w1", None), ("dequeue", "w1", "granted"),
                     ("grant", "w2", None), ("dequeue", "w2", "granted")]
    assert replay.compare(store) == []


def test_a_waiter_that_may_not_take_the_freed_seat_keeps_its_place(world):
    """MAX 1 for alice: her waiting request cannot take a second seat, so the next waiter gets it."""
    store, _ = world
    with store.transaction() as tx:
        engine.add_license(tx, "p", "f", 1)
        engine.add_policy(tx, "p", Policy("max", "user", "alice", count=1))
        assert engine.acquire(tx, req("a1", user="alice")).granted
        assert engine.acquire(tx, req("b1", user="bob")).granted
        assert engine.acquire(tx, req("a2", user="alice"), wait=wait(100)).queued == 1
        assert engine.acquire(tx, req("c1", user="carol"), wait=wait(101)).queued == 2
    with store.transaction() as tx:
        engine.release(tx, ["b1"])
        assert tx.get_session("c1") is not None and tx.get_session("a2") is None
        assert [w.session for w in tx.get_pool("p").queue] == ["a2"]
    with store.transaction() as tx:
        engine.release(tx, ["a1"])
        assert tx.get_session("a2") is not None
    assert replay.compare(store) == []


def test_time_out_leaves_the_queue_denied(world):
    store, clock = world
    with store.transaction() as tx:
        engine.acquire(tx, req("holder"))
        engine.acquire(tx, req("w1"), wait=wait(100, seconds=60))
    clock["now"] = T0 + 61
    with store.transaction() as tx:
        engine.reap(tx, machine())
        assert tx.get_pool("p").queue == []
    tail = [(e["event"], e.get("reason", "")[:24]) for e in store.read_journal()][-2:]
    assert tail == [("dequeue", "timed out"), ("deny", "waited 61 s in the queue")]
    assert replay.compare(store) == []


def test_a_waiter_whose_process_is_gone_leaves_at_the_next_command(world):
    store, _ = world
    host = machine()
    with store.transaction() as tx:
        engine.acquire(tx, req("holder"))
        engine.acquire(tx, req("w1"), wait=wait(100))
        engine.acquire(tx, req("w2"), wait=engine.Wait(T0 + 600, 100, 7, "another-node"))
    del host.alive[100]
    with store.transaction() as tx:
        engine.reap(tx, host)
        assert [w.session for w in tx.get_pool("p").queue] == ["w2"], "a waiter on another node is not checked here"
    assert [e["reason"] for e in store.read_journal() if e["event"] == "dequeue"] == ["waiter gone"]


def test_refused_by_exclude_never_waits(world):
    store, _ = world
    with store.transaction() as tx:
        engine.add_policy(tx, "p", Policy("exclude", "user", "mallory"))
        out = engine.acquire(tx, req("m1", user="mallory"), wait=wait(100))
        assert not out.granted and out.queued is None and out.policy is not None
        assert tx.get_pool("p").queue == []


def test_a_license_loaded_serves_the_queue_at_the_next_command(world):
    store, _ = world
    with store.transaction() as tx:
        engine.acquire(tx, req("holder"))
        engine.acquire(tx, req("w1"), wait=wait(100))
        engine.add_license(tx, "p", "f", 1)
    with store.transaction() as tx:
        engine.reap(tx, machine())
        assert tx.get_session("w1") is not None
    assert replay.compare(store) == []


def test_removing_the_pool_empties_its_queue(world):
    store, _ = world
    with store.transaction() as tx:
        engine.acquire(tx, req("holder"))
        engine.acquire(tx, req("w1"), wait=wait(100))
        engine.remove_pool(tx, "p", force=True)
    assert [(e["event"], e.get("reason")) for e in store.read_journal()][-3:] == [
        ("dequeue", "removed"), ("remove", "pool removed"), ("pool-remove", None)]
    assert replay.compare(store) == []


# --------------------------------------------------------------------------- the CLI, with real processes
def test_cli_queue_is_shown_by_info_users_and_metrics(lt):
    assert lt("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    assert lt("acquire", "p", "--feature", "f", "--session", "holder").code == 0
    assert lt("acquire", "p", "--feature", "f", "--session", "w", "--wait", "0.2").code == 3
    assert lt("--format", "json", "info").json()[0]["queued"] == 0, "timed out: left the queue"
    denials = [json.loads(line) for line in lt("journal").out.splitlines() if '"deny"' in line]
    assert denials[-1]["session"] == "w" and denials[-1]["reason"].startswith("waited")


def _waiters(env) -> list[dict]:
    return json.loads(run_process("--format", "json", "users", "--queued", env=env).out)


def test_ten_processes_wait_for_one_seat_and_get_it_in_their_order(state):
    """Issue 13: 10 processes wait for 1 seat in a known order; seats freed one by one go to them in that
    order, with nothing granted beyond the issued count and no waiter left behind."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    assert run_process("acquire", "p", "--feature", "f", "--session", "holder").code == 0
    env = dict(os.environ, LICTOOLS_STATE=str(state))
    procs = []
    for n in range(10):
        procs.append(subprocess.Popen([*LICTOOLS, "acquire", "p", "--feature", "f", "--session", f"w{n}", "--wait", "300"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 60
        while len(_waiters(env)) < n + 1:  # the next one starts once this one waits: a known order
            assert time.monotonic() < deadline, f"w{n} never queued"
            time.sleep(0.05)
    assert [w["session"] for w in _waiters(env)] == [f"w{n}" for n in range(10)]
    holder = "holder"
    for n in range(10):
        assert run_process("release", holder).code == 0
        info = json.loads(run_process("--format", "json", "info", "p").out)[0]
        assert info["in_use"] == 1 and info["queued"] == 9 - n, info
        out, err = procs[n].communicate(timeout=60)
        assert procs[n].returncode == 0 and out.strip() == f"w{n}", err
        holder = f"w{n}"
    assert run_process("release", holder).code == 0
    assert _waiters(env) == []
    grants = [json.loads(line)["session"] for line in run_process("journal").out.splitlines() if '"grant"' in line]
    assert grants == ["holder"] + [f"w{n}" for n in range(10)]


def test_a_killed_waiter_leaves_the_queue(state):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    assert run_process("acquire", "p", "--feature", "f", "--session", "holder").code == 0
    env = dict(os.environ, LICTOOLS_STATE=str(state))
    proc = subprocess.Popen([*LICTOOLS, "acquire", "p", "--feature", "f", "--session", "w", "--wait", "300"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _waiters(env):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    assert run_process("gc").code == 0
    assert _waiters(env) == []
    assert run_process("release", "holder").code == 0
    assert json.loads(run_process("--format", "json", "info", "p").out)[0]["in_use"] == 0, "no seat for a dead waiter"
