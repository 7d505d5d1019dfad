#!/usr/bin/env python3
"""Benchmark for ``lictools migrate``: copying a state with a long journal, between the two file layouts.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/migrate_bench.py                    # 200,000 events, 5 runs each
    .venv/bin/python benchmarks/migrate_bench.py --events 1000000 --runs 3 --keep /tmp/rb

The source states are the ones ``benchmarks/report_bench.py`` generates with the real engine (three
pools, 300 users, live sessions, a journal of ``--events`` events; ``--keep`` shares them with it).
Each row is whole-process ``lictools migrate`` into a new target (removed between runs): wall time
median, events copied per second, the child's peak memory (``wait4``), and the ratio to the baseline
measured in the same run, ``lictools journal > /dev/null`` on the same source (reading and printing
every event: what a copy cannot go below by much). The load average is printed so a reader knows
how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report_bench import LICTOOLS, PY, run_child  # noqa: E402  (the generator and the child timer)


def remove_state(path: str) -> None:
    for suffix in ("", ".journal", ".lock", ".bak", ".bak.lock", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="Keep the generated states in DIR and reuse them next time.")
    args = parser.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="lictools-migrate-bench-")
    folder = os.path.join(base, f"realistic-{args.events}")
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists(os.path.join(folder, f"generated-realistic-{args.events}")):
        subprocess.run([PY, os.path.join(os.path.dirname(__file__), "report_bench.py"), "--generate", folder,
                        "--events", str(args.events), "--mix", "realistic"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_")}
    print(f"# migrate benchmark ({args.events:,} events, {args.runs} runs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]})")
    print("\n| source -> target | median s | events/s | peak RSS MB | baseline `journal` s | vs baseline |")
    print("|---|---|---|---|---|---|")
    for source, target in (("state.db", "copy.db"), ("state.db", "copy.json"), ("state.json", "copy.db")):
        source_path, target_path = os.path.join(folder, source), os.path.join(folder, target)
        migrate = [LICTOOLS, "--state", source_path, "migrate", "--to", target_path]
        journal = [LICTOOLS, "--state", source_path, "journal"]
        walls, rss, baseline = [], [], []
        for _ in range(args.runs):  # interleaved: the baseline sees the same load
            remove_state(target_path)
            wall, mb, _, _ = run_child(migrate, env)
            walls.append(wall)
            rss.append(mb)
            baseline.append(run_child(journal, env)[0])
        remove_state(target_path)
        m, b = statistics.median(walls), statistics.median(baseline)
        print(f"| {source} -> {target} | {m:.2f} | {args.events / m:,.0f} | {max(rss):.0f} | {b:.2f} | {m / b:.2f}x |")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
