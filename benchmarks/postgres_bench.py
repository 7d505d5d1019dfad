#!/usr/bin/env python3
"""The PostgreSQL store against the SQLite store, measured in the same run (issue 12; not a test).

Usage (with the interpreter of the environment lictools and its ``postgres`` extra are installed in)::

    .venv/bin/python benchmarks/postgres_bench.py           # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/postgres_bench.py --quick   # fewer runs, one burst each
    .venv/bin/python benchmarks/postgres_bench.py --json out.json

1. whole-process ``lictools acquire`` with 0 and 1,000 live sessions: PostgreSQL vs SQLite (state.db),
   runs interleaved; and the floors (``python -c "import click, filelock, platformdirs"``, the same plus
   ``import psycopg``) that show how much of a command is starting Python and importing the driver.
2. 200 processes started at once, alternating between two ``--node`` names, acquiring from a pool of
   50 seats: wall time, processes per second, CPU; exactly 50 must be granted.

The PostgreSQL server is a throwaway cluster (tests/pgcluster.py) on a Unix socket on this machine,
with fsync on (as durable as the SQLite store's fsync per commit); a real deployment adds the
network's round trips (14 per acquire). Method as in benchmarks/run.py: medians, ratios, no
absolute thresholds; docs/performance.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import run as suite  # noqa: E402  benchmarks/run.py: the shared helpers
from tests.pgcluster import Cluster, why_not  # noqa: E402

FLOOR_PG = [suite.PY, "-c", "import click, filelock, platformdirs, psycopg"]


def bench_acquire(states: dict[str, str], runs: int) -> list[dict[str, object]]:
    """Interleaved whole-process acquires on every state (and the two floors); one row per variant."""
    suite.say(f"\n## 1. acquire, whole process, 0 and 1,000 live sessions ({runs} interleaved runs each)")
    variants = {**{name: suite.lt("acquire", suite.POOL, "--feature", suite.FEATURE) for name in states},
                "floor": suite.FLOOR, "floor + psycopg": FLOOR_PG}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for i in range(runs + 1):
        for name in order if i % 2 else reversed(order):
            t, _ = suite.run_timed(variants[name], suite.clean_env(states.get(name)))
            if i:  # round 0 warms up
                samples[name].append(t)
    medians = {name: suite.median(xs) for name, xs in samples.items()}
    rows, table = [], []
    for name in order:
        m = medians[name]
        store, _, size = name.partition(" ")
        baseline = f"sqlite {size}" if store == "postgres" else None
        ratio = m / medians[baseline] if baseline else None
        q1, q3 = suite.quartiles(samples[name])
        rows.append({"name": name, "median_ms": m * 1000, "q1_ms": q1 * 1000, "q3_ms": q3 * 1000,
                     "ratio_to_sqlite": ratio, "goal": "<= 1.5x SQLite" if ratio else None,
                     "met": ratio <= 1.5 if ratio else None})
        table.append([name, suite.ms(m), f"{suite.ms(q1)}-{suite.ms(q3)}", f"{ratio:.2f}x" if ratio else "",
                      suite.verdict(ratio <= 1.5) if ratio else ""])
    suite.print_table(["variant", "median ms", "q1-q3 ms", "vs SQLite", "goal <= 1.5x"], table)
    return rows


def bench_burst(states: dict[str, str], reps: int) -> list[dict[str, object]]:
    """200 processes at once on two "hosts" for 50 seats, on each store; wall time and throughput."""
    n, seats = 200, 50
    suite.say(f"\n## 2. {n} processes at once, two --node names, {seats} seats ({reps} burst(s) per store)")
    rows, table = [], []
    for store, make in states.items():
        walls, cpus = [], []
        for rep in range(reps):
            state = make(rep)
            suite.make_pool(state, seats)
            argvs = [suite.lt("acquire", suite.POOL, "--feature", suite.FEATURE, "--user", f"u{i}",
                              "--node", ("host-a", "host-b")[i % 2]) for i in range(n)]
            c0 = suite.children_cpu()
            env = suite.clean_env(state)
            env["LICTOOLS_LOCK_TIMEOUT"] = "300"
            wall, codes, errors = suite.burst(argvs, env)
            cpus.append(suite.children_cpu() - c0)
            walls.append(wall)
            granted = codes.count(0)
            if granted != seats or codes.count(3) != n - seats:
                raise SystemExit(f"{store}: {granted} granted, exits {sorted(set(codes))}: {errors[:3]}")
        wall = suite.median(walls)
        rows.append({"name": f"burst {store}", "processes": n, "seats": seats, "median_wall_s": wall,
                     "processes_per_s": n / wall, "cpu_s": suite.median(cpus), "granted": seats})
        table.append([store, f"{wall:.2f}", f"{n / wall:.0f}", f"{suite.median(cpus):.1f}", f"{seats} of {n}"])
    suite.print_table(["store", "median wall s", "processes/s", "CPU s", "granted"], table)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="7 runs per variant, one burst per store")
    parser.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    tmp = tempfile.mkdtemp(prefix="lictools-pgbench-")
    cluster = Cluster(fsync=True)
    try:
        load = os.getloadavg()
        suite.say(f"# PostgreSQL store vs SQLite store ({os.cpu_count()} cores, load average {load[0]:.1f} "
                  f"at the start; PostgreSQL 15 with fsync on, Unix socket)")
        states: dict[str, str] = {}
        for n in (0, 1_000):
            sqlite_path = os.path.join(tmp, f"s{n}", "state.db")
            states[f"sqlite {n:,}"] = sqlite_path
            states[f"postgres {n:,}"] = cluster.new_database()
        for name, state in states.items():
            suite.make_pool(state, 1_000_000)
            suite.populate(state, int(name.split()[1].replace(",", "")))
        rows = bench_acquire(states, 7 if args.quick else 21)
        bursts = {"sqlite": lambda rep: os.path.join(tmp, f"burst{rep}", "state.db"),
                  "postgres": lambda rep: cluster.new_database()}
        rows += bench_burst(bursts, 1 if args.quick else 3)
        suite.say(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"rows": rows, "load_start": load, "load_end": os.getloadavg()}, out, indent=2)
    finally:
        cluster.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
