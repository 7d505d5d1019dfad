#!/usr/bin/env python3
"""Where the time of one ``lictools acquire`` goes: imports, Python work, fsyncs.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/profile_acquire.py            # all three parts
    .venv/bin/python benchmarks/profile_acquire.py --top 30   # longer listings

0. wall time by layer: bare interpreter, click, filelock, the floor, lictools' import, acquire.
1. ``python -X importtime``: the modules ``lictools acquire`` imports beyond the floor
   ``python -c "import click, filelock, platformdirs"`` (and those the floor imports that acquire
   does not), with their own import time, and the heaviest imports of both.
2. cProfile of ``acquire`` in one process: cold (imports included, like a fresh process) and warm
   (every module already imported: the work proper, which is mostly the store's commit).
3. ``strace -f -y`` (when installed): fsync/fdatasync calls per command and the file each one
   syncs, for both state layouts, plus the total system calls of acquire against the floor.

Numbers from one run are noisy; run.py gives the medians. docs/performance.md has the analysis.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PY = sys.executable
LICTOOLS = os.path.join(os.path.dirname(PY), "lictools")
FLOOR = [PY, "-c", "import click, filelock, platformdirs"]
ACQUIRE = ["acquire", "bench", "--feature", "seats"]


def env_for(state: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["LICTOOLS_STATE"] = state
    return env


def setup(folder: str) -> dict[str, str]:
    states = {"state.db": os.path.join(folder, "state.db"), "state.json": os.path.join(folder, "state.json")}
    for path in states.values():
        subprocess.run([LICTOOLS, "pool", "add", "bench", "--product", "generic", "--license", "seats=1000000",
                        "--option", "lease=0"], env=env_for(path), check=True, stdout=subprocess.DEVNULL)
        for _ in range(2):  # warm-up: .pyc files, WAL created once
            subprocess.run([LICTOOLS, *ACQUIRE], env=env_for(path), check=True, stdout=subprocess.DEVNULL)
    return states


# --------------------------------------------------------------------------- 0. layers of a run
def part_layers(state: str, runs: int) -> None:
    print(f"## 0. wall time by layer (median of {runs} interleaved fresh processes)\n")
    env = env_for(state)
    layers = [
        ("python -c pass (interpreter + site)", [PY, "-c", "pass"]),
        ("python -S -c pass (no site: no .pth files, no venv)", [PY, "-S", "-c", "pass"]),
        ("python -c 'import click'", [PY, "-c", "import click"]),
        ("python -c 'import filelock'", [PY, "-c", "import filelock"]),
        ("floor: import click, filelock, platformdirs", FLOOR),
        ("python -c 'import lictools.cli.main'", [PY, "-c", "import lictools.cli.main"]),
        ("lictools --version", [LICTOOLS, "--version"]),
        ("lictools acquire (state.db)", [LICTOOLS, *ACQUIRE]),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _ in layers}
    for i in range(runs + 1):
        for name, argv in layers:
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i:
                samples[name].append(time.perf_counter() - t0)
    for name, _ in layers:
        print(f"  {sorted(samples[name])[len(samples[name]) // 2] * 1000:7.1f} ms  {name}")
    print()


# --------------------------------------------------------------------------- 1. imports
def importtime(argv: list[str], env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """module -> (self us, cumulative us), from ``-X importtime``; the best of 5 runs per module."""
    best: dict[str, tuple[int, int]] = {}
    for _ in range(5):
        proc = subprocess.run([PY, "-X", "importtime", *argv], env=env, capture_output=True, text=True)
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
            if m:
                name, self_us, cum_us = m.group(4), int(m.group(1)), int(m.group(2))
                if name not in best or self_us < best[name][0]:
                    best[name] = (self_us, cum_us)
    return best


def part_imports(state: str, top: int) -> None:
    print("## 1. imports (python -X importtime, best of 5 per module)\n")
    env = env_for(state)
    floor = importtime(FLOOR[1:], env)
    acq = importtime([LICTOOLS, *ACQUIRE], env)
    extra = {k: v for k, v in acq.items() if k not in floor}
    missing = {k: v for k, v in floor.items() if k not in acq}
    total = lambda d: sum(v[0] for v in d.values()) / 1000  # noqa: E731
    print(f"floor:   {len(floor)} modules, {total(floor):.1f} ms of import (self times summed)")
    print(f"acquire: {len(acq)} modules, {total(acq):.1f} ms")
    print(f"imported by acquire only: {len(extra)} modules, {total(extra):.1f} ms")
    print(f"imported by the floor only: {len(missing)} modules, {total(missing):.1f} ms "
          f"({', '.join(sorted(missing)[:12])}{' ...' if len(missing) > 12 else ''})\n")
    print("acquire-only modules by own import time:")
    for name, (self_us, cum_us) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {self_us / 1000:6.2f} ms self {cum_us / 1000:6.2f} ms cumulative  {name}")
    print("\nheaviest imports of acquire (cumulative; top-level packages and lictools modules):")
    heads = {k: v for k, v in acq.items() if "." not in k or k.startswith("lictools")}
    for name, (self_us, cum_us) in sorted(heads.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {cum_us / 1000:6.2f} ms cumulative  {name}{'' if name in floor else '   (not in the floor)'}")
    print()


# --------------------------------------------------------------------------- 2. cProfile
def part_profile(state: str, top: int) -> None:
    print("## 2. cProfile of acquire in one process\n")
    code = f"""
import cProfile, io, pstats, sys, time
prof = cProfile.Profile()
t0 = time.perf_counter()
prof.enable()
from lictools.cli.main import run
t1 = time.perf_counter()
run({ACQUIRE!r})
prof.disable()
t2 = time.perf_counter()
# warm: every module is imported now
prof2 = cProfile.Profile()
t3 = time.perf_counter()
prof2.enable()
run({ACQUIRE!r})
prof2.disable()
t4 = time.perf_counter()
print(f"cold (fresh interpreter): import lictools.cli.main {{(t1 - t0) * 1000:.1f}} ms, run() {{(t2 - t1) * 1000:.1f}} ms"
      " (profiler on: inflated)", file=sys.stderr)
print(f"warm (modules imported):  run() {{(t4 - t3) * 1000:.1f}} ms", file=sys.stderr)
# cold: leave out the import machinery and builtins, so what remains names the code that costs;
# warm: keep builtins (sqlite3's execute and close are where the commit's fsyncs happen)
for title, p, key, keep in (("cold, by cumulative time", prof, "cumulative", r"^(?!<frozen)(?!{{)"),
                            ("warm, by own time", prof2, "tottime", r"^(?!<frozen)")):
    out = io.StringIO()
    pstats.Stats(p, stream=out).sort_stats(key).print_stats(keep, {top})
    text = out.getvalue()
    print(f"\\n### {{title}}\\n" + text[text.find("   ncalls"):], file=sys.stderr)
"""
    proc = subprocess.run([PY, "-c", code], env=env_for(state), capture_output=True, text=True)
    print(proc.stderr.replace(os.path.dirname(os.path.dirname(os.__file__)), "<stdlib>"))


# --------------------------------------------------------------------------- 3. strace
def strace(argv: list[str], env: dict[str, str], calls: str) -> str:
    out = tempfile.mktemp(prefix="lictools-strace-")
    try:
        subprocess.run(["strace", "-f", "-y", "-o", out, "-e", f"trace={calls}", *argv], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            return f.read()
    finally:
        if os.path.exists(out):
            os.unlink(out)


def part_strace(states: dict[str, str]) -> None:
    print("## 3. fsyncs per command (strace -f -y -e trace=fsync,fdatasync)\n")
    if not shutil.which("strace"):
        print("strace is not installed (apt-get install strace); skipped\n")
        return
    for layout, path in states.items():
        env = env_for(path)
        folder = os.path.dirname(path)
        for command in ("acquire", "release"):
            if command == "acquire":
                argv = [LICTOOLS, *ACQUIRE]
            else:
                sid = subprocess.run([LICTOOLS, *ACQUIRE], env=env, capture_output=True, text=True).stdout.strip()
                argv = [LICTOOLS, "release", sid]
            trace = strace(argv, env, "fsync,fdatasync")
            synced = re.findall(r"(fsync|fdatasync)\(\d+<([^>]*)>", trace)
            where = collections.Counter(os.path.relpath(p, folder) if p != folder else "(the folder)" for _, p in synced)
            listing = ", ".join(f"{n} x {name}" for name, n in where.items())
            print(f"{layout:10} {command:8} {len(synced)} syncs: {listing}")
    env = env_for(states["state.db"])
    for label, argv in (("floor", FLOOR), ("acquire", [LICTOOLS, *ACQUIRE])):
        trace = strace(argv, env, "all")
        calls = collections.Counter(m.group(1) for m in re.finditer(r"^\d+\s+(\w+)\(", trace, re.M))
        common = ", ".join(f"{name} {n}" for name, n in calls.most_common(6))
        print(f"\nsystem calls, {label}: {sum(calls.values())} ({common})")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=20, help="rows per listing")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per layer in part 0")
    args = parser.parse_args()
    if not os.access(LICTOOLS, os.X_OK):
        print(f"no lictools console script next to {PY}", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="lictools-profile-")
    try:
        os.chdir(folder)  # `python -c` puts the current folder first on sys.path: not a checkout
        states = setup(folder)
        part_layers(states["state.db"], args.runs)
        part_imports(states["state.db"], args.top)
        part_profile(states["state.db"], args.top)
        part_strace(states)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
