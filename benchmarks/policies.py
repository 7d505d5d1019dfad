#!/usr/bin/env python3
"""What pool policies cost a login hook: whole-process ``lictools acquire`` with 10,000 live sessions,
a pool without policies (the baseline) against the same pool with policies, measured in one run.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/policies.py            # 15 interleaved runs per variant
    .venv/bin/python benchmarks/policies.py --runs 5

Three pools: no policies; an ``exclude`` and a ``reserve`` naming lictools groups (the groups are read
from the settings); the same plus ``max 2 --user '*'`` (each new seat reads the requester's sessions to
count their seats: the one policy whose cost grows with the live sessions). Each acquire is by a new user on a new host, so it needs a new seat and every
policy is asked. Medians and the ratio to the baseline; runs alternate (A, B, B, A ...), so load
on the machine hits both alike. Helpers come from benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as bench  # noqa: E402

SESSIONS = 10_000


VARIANTS = ("no policies", "exclude+reserve", "exclude+reserve+max")


def prepare(path: str, variant: str) -> None:
    from lictools import engine
    from lictools.model import Policy

    bench.make_pool(path, 1_000_000)
    bench.populate(path, SESSIONS)
    if variant == "no policies":
        return
    with bench.new_store(path).transaction() as tx:
        engine.set_group(tx, "contractors", ["mallory"])
        engine.set_group(tx, "designers", ["alice", "bob"])
        for policy in (Policy("exclude", "group", "contractors"), Policy("reserve", "group", "designers", bench.FEATURE, 10)):
            engine.add_policy(tx, bench.POOL, policy)
        if variant.endswith("max"):
            engine.add_policy(tx, bench.POOL, Policy("max", "user", "*", bench.FEATURE, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="lictools-bench-policies-") as tmp:
        states = {name: os.path.join(tmp, name.replace("+", "-").replace(" ", "-"), "state.db") for name in VARIANTS}
        for name, path in states.items():
            prepare(path, name)
        samples: dict[str, list[float]] = {name: [] for name in states}
        order = list(states)
        for i in range(args.runs + 1):
            for name in order if i % 2 else reversed(order):
                argv = bench.lt("acquire", bench.POOL, "--feature", bench.FEATURE, "--user", f"new{i:03d}",
                                "--host", f"new-host-{i:03d}")
                t, _ = bench.run_timed(argv, bench.clean_env(states[name]))
                if i:  # round 0 warms the page cache
                    samples[name].append(t)
    base = statistics.median(samples["no policies"])
    print(f"\nwhole-process acquire, {SESSIONS:,} live sessions, state.db, {args.runs} runs each")
    for name, values in samples.items():
        m = statistics.median(values)
        print(f"  {name:20s} median {m * 1000:7.1f} ms   {m / base:.2f}x the pool without policies")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
