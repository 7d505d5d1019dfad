#!/usr/bin/env python3
"""Journal rotation: does the size check slow ``acquire``, and what does a rotation cost? Medians and ratios.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/rotation_bench.py                  # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/rotation_bench.py --runs 9 --events 20000 --base main

1. whole-process ``lictools acquire`` (then an untimed ``release``) on a state holding ``--events``
   journal events, both layouts, three variants run interleaved (A, B, C, A, B, C ...):
   ``before``: the code of ``--base`` (a git revision, default the merge base with main: lictools
   without rotation), extracted with ``git archive``; ``unset``: this code, no
   ``journal_max_bytes``; ``checked``: this code with ``journal_max_bytes`` above the journal's
   size, so every write runs the size check and none rotates. Goal: ``checked`` within 1.05x of
   ``before``.
2. ``journal rotate`` of the same journals (whole process: seconds, events/s, compressed size),
   and ``journal`` reading every event before and after the rotation (events/s).

Everything runs with ``python -m lictools`` and PYTHONPATH set to the code under test, so the
variants start the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import run as suite  # noqa: E402  the suite's state builders and journal fillers


def code_of(rev: str, into: str) -> str:
    """``lictools/`` as it is at ``rev``, extracted under ``into``; the folder to put on PYTHONPATH."""
    os.makedirs(into)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "lictools"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def env_for(code: str, state: str) -> dict[str, str]:
    env = suite.clean_env(state)
    env["PYTHONPATH"] = code
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    return suite.run_timed([sys.executable, "-m", "lictools", *argv], env)


def build(path: str, events: int) -> None:
    suite.make_pool(path, 1_000_000)
    from lictools import engine

    with suite.new_store(path).transaction() as tx:
        engine.acquire(tx, suite.request("template-session"))
    (suite.fill_sqlite_journal if path.endswith(".db") else suite.fill_json_journal)(path, events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--base", default=None, help="git revision of the code before rotation (default: merge base with main)")
    args = parser.parse_args()
    base = args.base or subprocess.run(["git", "-C", ROOT, "merge-base", "HEAD", "main"], check=True,
                                       capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="lictools-rotbench-")
    try:
        before = code_of(base, os.path.join(tmp, "before"))
        variants = {"before": before, "unset": ROOT, "checked": ROOT}
        states = {}
        for layout in ("state.db", "state.json"):
            for name in variants:
                path = os.path.join(tmp, name, "s", layout) if name != "before" else os.path.join(tmp, "b", layout)
                build(path, args.events)
                states[(layout, name)] = path
            size = os.path.getsize(states[(layout, "checked")] + (".journal" if layout.endswith(".json") else ""))
            timed(["config", "journal_max_bytes", str(max(size * 4, 1 << 20))], env_for(ROOT, states[(layout, "checked")]))
        load = os.getloadavg()
        print(f"# journal rotation benchmark: {args.events:,} events, {args.runs} interleaved runs, base {base[:12]}, "
              f"load {load[0]:.2f} {load[1]:.2f} at start, {os.cpu_count()} CPUs")
        print("\n## 1. whole-process acquire (median ms, ratio to the code before rotation)")
        samples: dict[tuple[str, str], list[float]] = {k: [] for k in states}
        order = list(states)
        for i in range(args.runs + 1):
            for key in order if i % 2 else list(reversed(order)):
                env = env_for(variants[key[1]], states[key])
                t, out = timed(["acquire", suite.POOL, "--feature", suite.FEATURE], env)
                timed(["release", out.strip()], env)
                if i:  # the first round warms the page cache and the bytecode
                    samples[key].append(t)
        results = {}
        for layout in ("state.db", "state.json"):
            ref = statistics.median(samples[(layout, "before")])
            for name in variants:
                m = statistics.median(samples[(layout, name)])
                results[f"{layout} {name}"] = {"median_ms": round(m * 1000, 2), "ratio": round(m / ref, 3)}
                print(f"{layout:11} {name:8} {m * 1000:8.2f} ms  {m / ref:5.3f}x")
        print("\n## 2. journal rotate, and reading every event before and after it")
        for layout in ("state.db", "state.json"):
            env = env_for(ROOT, states[(layout, "unset")])
            t_read, out = timed(["journal"], env)
            count = out.count("\n")
            t_rot, out = timed(["--format", "json", "journal", "rotate"], env)
            done = json.loads(out)
            t_after, out = timed(["journal"], env)
            assert out.count("\n") == count, "rotation changed what journal prints"
            results[f"{layout} rotate"] = {"seconds": round(t_rot, 2), "events": done["events"],
                                           "events_per_s": round(done["events"] / t_rot),
                                           "compressed_bytes": done["bytes"],
                                           "read_before_per_s": round(count / t_read),
                                           "read_after_per_s": round(count / t_after)}
            print(f"{layout:11} rotate {done['events']:,} events in {t_rot:.2f}s ({done['events'] / t_rot:,.0f}/s), "
                  f"{done['bytes'] / 2**20:.1f} MiB compressed; journal reads {count / t_read:,.0f} events/s before, "
                  f"{count / t_after:,.0f}/s after")
        load = os.getloadavg()
        print(f"\n(load {load[0]:.2f} {load[1]:.2f} at the end)")
        print(json.dumps(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
