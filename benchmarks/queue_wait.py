#!/usr/bin/env python3
"""What a process waiting in the queue (``acquire --wait``) costs in CPU while it waits.

A pool's only seat is held; ``lictools acquire --wait W`` then waits W seconds and times out. Its CPU
(user + system, from ``getrusage`` of the waited child) is measured for a short and a long W; the
difference, divided by the difference in W, is the CPU a waiter burns per second of waiting. The same
is done for the floor (``python -c "import click, filelock, platformdirs; time.sleep(W)"``), whose
difference is ~0: what a process that only sleeps costs. Medians of the runs; several waiters at
once show that hundreds of waiters would cost what they cost alone (they sleep, they do not spin).

    .venv/bin/python benchmarks/queue_wait.py             # W = 2 and 12 s, 3 runs, 1 and 10 waiters
    .venv/bin/python benchmarks/queue_wait.py --quick     # W = 1 and 5 s, 1 run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

LICTOOLS = [sys.executable, "-m", "lictools"]


def cpu_of(commands: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start the commands together, wait for all; the CPU seconds each used."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    used = []
    for proc in procs:
        _, _, usage = os.wait4(proc.pid, 0)
        used.append(usage.ru_utime + usage.ru_stime)
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    short, long_, runs = (1.0, 5.0, 1) if args.quick else (2.0, 12.0, 3)
    folder = tempfile.mkdtemp(prefix="lictools-queue-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_")}
    env["LICTOOLS_STATE"] = os.path.join(folder, "state.db")
    subprocess.run([*LICTOOLS, "pool", "add", "p", "--product", "generic", "--license", "f=1"], env=env, check=True,
                   capture_output=True)
    subprocess.run([*LICTOOLS, "acquire", "p", "--feature", "f", "--lease", "0"], env=env, check=True,
                   capture_output=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'what':<34}{'waiters':>8}{'CPU s, W=' + format(short, 'g'):>14}{'CPU s, W=' + format(long_, 'g'):>14}"
          f"{'CPU ms per s waiting':>22}")
    for count in (1, 10):
        for label, make in (
            ("lictools acquire --wait W", lambda w: [*LICTOOLS, "acquire", "p", "--feature", "f", "--wait", str(w)]),
            ("floor + sleep W", lambda w: [sys.executable, "-c",
                                           f"import click, filelock, platformdirs, time; time.sleep({w})"]),
        ):
            results = {}
            for w in (short, long_):
                per_run = [statistics.median(cpu_of([make(w)] * count, env)) for _ in range(runs)]
                results[w] = statistics.median(per_run)
            per_second = (results[long_] - results[short]) / (long_ - short) * 1000
            print(f"{label:<34}{count:>8}{results[short]:>14.3f}{results[long_]:>14.3f}{per_second:>22.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
