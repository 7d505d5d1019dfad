#!/usr/bin/env python3
"""Benchmark of ``lictools simulate``: client events per second on the shipped week, and memory on long logs.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/simulate_bench.py                 # 5 runs each, a 10-week log
    .venv/bin/python benchmarks/simulate_bench.py --runs 3 --weeks 20

What it measures, whole process (``lictools ... simulate ...`` started anew each time), medians of
``--runs``: events/s = client events (CSV rows, or journal events) / wall time; events/CPU-s = the
same over the child's user + system time (what other load on the machine does not take away); peak
memory = the child's own maximum RSS (``wait4``).

- ``examples/week.csv`` (20,065 rows, 200 users, six features) under one rule and feature, under
  ``--compare`` (12 lanes: each feature under its vendor's rule and generic), and under ``--compare``
  with a capacity for every feature (a second replay per lane counts the denials).
- The same week repeated ``--weeks`` times (session ids renamed, times moved a week each time): the
  rate should hold and the peak memory stay that of one week (the log is streamed).
- ``--from-journal --compare``: a journal written by the real engine running the week at its
  vendors' rules and capacities (stored in a ``state.db``, as ``report_bench.py`` stores its own).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report_bench import LICTOOLS, run_child, write_states  # noqa: E402  (the same timing and state writing)

WEEK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "week.csv")
CAPACITY = {"dev": 20, "mom": 18, "runtime": 85, "web": 24, "ria": 28, "threads": 9}
"""A few seats below what each vendor rule needs for the week: the capacity replays refuse some."""
VENDOR = {"dev": "aveva-batch", "mom": "aveva-batch", "runtime": "genero", "web": "magic-xpa", "ria": "magic-xpa",
          "threads": "magic-xpa"}


def repeat_week(path: str, weeks: int) -> int:
    """Write the week ``weeks`` times in a row to ``path``; returns the rows written."""
    from datetime import datetime, timedelta

    with open(WEEK, newline="") as f:
        rows = list(csv.DictReader(f))
    count = 0
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for week in range(weeks):
            shift = timedelta(days=7 * week)
            for row in rows:
                moved = dict(row, time=(datetime.fromisoformat(row["time"]) + shift).isoformat(),
                             session=f"{row['session']}w{week}", parent=f"{row['parent']}w{week}" if row["parent"] else "")
                writer.writerow(moved)
                count += 1
    return count


def week_journal(folder: str) -> int:
    """A state.db whose journal is the week run by the real engine (pools av, ge, mx); returns its events."""
    from datetime import datetime

    from lictools import engine
    from lictools.errors import NotFoundError
    from lictools.model import Request
    from lictools.stores.memory import MemoryTransaction, empty_document

    pools = {"aveva-batch": "av", "genero": "ge", "magic-xpa": "mx"}
    doc = empty_document()
    tx = MemoryTransaction(doc, 1_794_787_200.0)
    for product, pool in pools.items():
        engine.add_pool(tx, pool, product, {f: n for f, n in CAPACITY.items() if VENDOR[f] == product}, {"lease": "0"})
    with open(WEEK, newline="") as f:
        for row in csv.DictReader(f):
            tx.now = datetime.fromisoformat(row["time"]).timestamp()
            engine.reap(tx)
            session = row["session"]
            if row["event"] == "start":
                pool = pools[VENDOR[row["feature"]]]
                request = Request(
                    pool, row["feature"], session, row["user"] or "x", row["host"] or None, row["node"] or "srv",
                    terminal=row["terminal"] == "yes", app=row["app"] or None, project=row["project"] or None,
                    parent=row["parent"] or None, client=row["client"] or None, monitor=row["monitor"] or None)
                try:
                    engine.acquire(tx, request)
                except NotFoundError:
                    pass  # a RUN child of a refused DVM: it never ran
            elif row["event"] == "stop":
                engine.release(tx, [session])
            else:
                engine.detach(tx, [session])
    events = [{**e, "seq": i} for i, e in enumerate(tx.events, 1)]
    write_states(folder, doc, events)
    return len(events)


def measure(cmd: list[str], events: int, runs: int, env: dict[str, str]) -> str:
    walls, rss, cpus = [], [], []
    for _ in range(runs):
        wall, mb, _, cpu = run_child(cmd, env)
        walls.append(wall)
        rss.append(mb)
        cpus.append(cpu)
    m = statistics.median(walls)
    return f"{m:.2f} | {events / m:,.0f} | {events / statistics.median(cpus):,.0f} | {max(rss):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:  # in a child process: the measuring parent stays small (a child's peak RSS counts
        # its parent's pages at fork time)
        with open(os.path.join(args.prepare, "sizes"), "w") as f:
            f.write(f"{repeat_week(os.path.join(args.prepare, 'weeks.csv'), args.weeks)} {week_journal(args.prepare)}")
        return
    folder = tempfile.mkdtemp(prefix="lictools-simulate-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_")}
    env["LICTOOLS_STATE"] = os.path.join(folder, "never.db")
    licenses = [f"--license={f}={n}" for f, n in CAPACITY.items()]
    compare = ["--compare", "--option", "share=user,host"]
    try:
        with open(WEEK) as f:
            week_rows = sum(1 for _ in f) - 1
        subprocess.run([sys.executable, __file__, "--prepare", folder, "--weeks", str(args.weeks)], check=True)
        with open(os.path.join(folder, "sizes")) as f:
            long_rows, journal_events = (int(n) for n in f.read().split())
        long_log = os.path.join(folder, "weeks.csv")
        print(f"# simulate benchmark ({args.runs} runs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]})\n")
        print("| log | command | median s | events/s | events/CPU-s | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        cases = [
            ("week", week_rows, [WEEK, "--product", "genero", "--feature", "runtime", "--license", "runtime=85"],
             "--product genero --feature runtime --license runtime=85"),
            ("week", week_rows, [WEEK, *compare], "--compare (12 lanes)"),
            ("week", week_rows, [WEEK, *compare, *licenses], "--compare, a capacity per feature (24 replays)"),
            (f"{args.weeks} weeks", long_rows, [long_log, *compare, *licenses], "the same"),
        ]
        for label, events, extra, shown in cases:
            cmd = [LICTOOLS, "--format", "json", "simulate", *extra]
            print(f"| {label} ({events:,} rows) | {shown} | {measure(cmd, events, args.runs, env)} |")
        state = os.path.join(folder, "state.db")
        cmd = [LICTOOLS, "--state", state, "--format", "json", "simulate", "--from-journal", *compare]
        print(f"| journal of the week ({journal_events:,} events) | --from-journal --compare | "
              f"{measure(cmd, journal_events, args.runs, env)} |")
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
