"""Real processes racing for the state lock: never oversell, never lose a grant."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import LICTOOLS, run_process

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

RACERS = 24
SEATS = 5


def test_racing_processes_get_exactly_the_issued_seats(state):
    assert run_process("pool", "add", "race", "--product", "generic", "--license", f"seats={SEATS}").code == 0
    env = dict(os.environ, LICTOOLS_LOCK_TIMEOUT="120")
    procs = [
        subprocess.Popen(
            LICTOOLS + ["acquire", "race", "--feature", "seats", "--user", f"user{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(RACERS)
    ]
    results = [(p.wait(timeout=180), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    winners = [out for code, out, _ in results if code == 0]
    losers = [err for code, _, err in results if code == 3]
    assert len(winners) == SEATS, results
    assert len(losers) == RACERS - SEATS, results
    assert all(err.startswith("lictools: denied") for err in losers)

    info = json.loads(run_process("--format", "json", "info", "race").out)
    assert info[0]["in_use"] == SEATS and info[0]["sessions"] == SEATS
    held = json.loads(run_process("--format", "json", "users", "race").out)
    assert sorted(s for row in held for s in row["sessions"]) == sorted(winners)

    journal = [json.loads(line) for line in run_process("journal").out.splitlines()]
    assert sum(e["event"] == "grant" for e in journal) == SEATS
    assert sum(e["event"] == "deny" for e in journal) == RACERS - SEATS
    assert max(e.get("in_use", 0) for e in journal) == SEATS


def test_racing_releases_and_acquires_keep_counts_consistent(state):
    assert run_process("pool", "add", "churn", "--product", "generic", "--license", "seats=3").code == 0
    script = (
        "for i in 1 2 3 4 5; do "
        "id=$(\"$@\" acquire churn --feature seats) && \"$@\" release \"$id\"; done; exit 0"
    )
    env = dict(os.environ, LICTOOLS_LOCK_TIMEOUT="120")
    procs = [subprocess.Popen(["bash", "-c", script, "racer", *LICTOOLS], env=env) for _ in range(6)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    info = json.loads(run_process("--format", "json", "info", "churn").out)
    assert info[0]["in_use"] == 0 and info[0]["sessions"] == 0
    journal = [json.loads(line) for line in run_process("journal").out.splitlines()]
    grants = sum(e["event"] == "grant" for e in journal)
    assert grants == sum(e["event"] == "release" for e in journal)
    assert max(e.get("in_use", 0) for e in journal) <= 3
