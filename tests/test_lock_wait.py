"""Waiting for the state lock: as long as it changes hands, and exit 5 naming a holder that keeps it.

``--lock-timeout`` bounds how long one holder may keep the lock while a command waits (a login
storm hands it on every few milliseconds), not the whole wait. How the wait costs nothing is
measured in benchmarks/run.py (the herd), never here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lictools.stores.locking import lock_holder
from tests.conftest import LICTOOLS, run_process

HOLD = """
import sys, time
from lictools import engine
from lictools.model import Request
from lictools.stores import open_store

with open_store(sys.argv[1], 120).transaction() as tx:
    engine.reap(tx)
    print("HOLDING", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holder(state, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD, str(state), str(seconds)], stdout=subprocess.PIPE, text=True)


def setup(lt) -> None:
    assert lt("pool", "add", "p", "--product", "generic", "--license", "f=50").code == 0


def test_a_stopped_holder_is_exit_5_naming_it(lt, state):
    setup(lt)
    stuck = holder(state, 600)
    try:
        assert stuck.stdout.readline().strip() == "HOLDING"
        os.kill(stuck.pid, signal.SIGSTOP)
        started = time.monotonic()
        r = run_process("--lock-timeout", "2", "acquire", "p", "--feature", "f", timeout=60)
        waited = time.monotonic() - started
    finally:
        os.kill(stuck.pid, signal.SIGKILL)
        stuck.wait()
    assert r.code == 5 and r.err.count("\n") == 1, (r.code, r.err)
    assert f"PID {stuck.pid} (stopped)" in r.err and "--lock-timeout" in r.err, r.err
    assert waited < 30


def test_a_lock_that_keeps_changing_hands_is_waited_for_beyond_the_timeout(lt, state):
    """Five holders of 0.8 s each, queued: a waiter with --lock-timeout 1.5 gets its turn after ~4 s."""
    setup(lt)
    chain = []
    try:
        for _ in range(5):
            chain.append(holder(state, 0.8))
            if len(chain) == 1:
                assert chain[0].stdout.readline().strip() == "HOLDING"
            time.sleep(0.1)  # let each queue before the next
        started = time.monotonic()
        r = run_process("--lock-timeout", "1.5", "acquire", "p", "--feature", "f", timeout=120)
        waited = time.monotonic() - started
    finally:
        for proc in chain:
            proc.kill()
            proc.wait()
    assert r.code == 0, (r.code, r.err)
    assert waited > 1.5, f"the waiter got the lock after {waited:.1f}s: the chain of holders did not hold it up"


def test_lock_timeout_zero_tries_once(lt, state):
    setup(lt)
    stuck = holder(state, 600)
    try:
        assert stuck.stdout.readline().strip() == "HOLDING"
        r = run_process("--lock-timeout", "0", "acquire", "p", "--feature", "f", timeout=30)
    finally:
        stuck.kill()
        stuck.wait()
    assert r.code == 5 and f"PID {stuck.pid}" in r.err


def test_the_holder_is_recorded_in_the_lock_file(lt, state):
    setup(lt)
    stuck = holder(state, 600)
    try:
        assert stuck.stdout.readline().strip() == "HOLDING"
        assert lock_holder(f"{state}.lock") == str(stuck.pid)
    finally:
        stuck.kill()
        stuck.wait()


def test_many_waiters_all_get_their_turn(lt, state):
    """40 processes at once against a slow holder: every one answered, none busy."""
    setup(lt)
    first = holder(state, 2)
    assert first.stdout.readline().strip() == "HOLDING"
    procs = [subprocess.Popen(LICTOOLS + ["--lock-timeout", "10", "acquire", "p", "--feature", "f"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(40)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    first.wait()
    assert [code for code, _ in results].count(0) == 40, results
    info = lt("--format", "json", "info").json()[0]
    assert info["in_use"] == 40
