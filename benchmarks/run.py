#!/usr/bin/env python3
"""lictools benchmark suite (issue 5): medians and ratios, each against a baseline measured in the same run.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/run.py                 # everything: 4-7 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick         # fewer runs: 1-2 minutes (benchmark 3 is most of it)
    .venv/bin/python benchmarks/run.py --only 1,3      # some benchmarks only
    .venv/bin/python benchmarks/run.py --json out.json # also write every number as JSON
    .venv/bin/python benchmarks/run.py --markdown r.md # and the tables as Markdown (for docs/performance.md)
    .venv/bin/python benchmarks/run.py --tmp /srv/x    # put the temporary states on another disk (--keep: keep them)

Benchmarks (docs/performance.md explains the method and the goals):

1. whole-process ``lictools acquire`` / ``release`` vs the floor ``python -c "import click, filelock, platformdirs"``
2. ``acquire`` with 0, 1,000 and 10,000 live sessions, SQLite (state.db) and JSON (state.json) layouts
3. 200 processes started at once acquiring from a pool of 50 seats vs 200 floor processes
4. the engine in one process: durable acquire+release pairs/s vs a bare write-fsync-rename-fsync loop
5. ``acquire`` with 1,000,000 journal events vs an empty journal, both layouts
6. the herd: N processes released at one instant through a pipe (N = 200 and 1,000), default settings,
   per-process latency percentiles and CPU, vs N floor processes released the same way
7. 100,000 live sessions (state.db): acquire vs an empty state, while the good copy is due, while ``users`` runs
8. ``journal --since-seq`` for the last 10 of 10,000,000 events: peak memory, both layouts

No absolute thresholds: a machine that is twice as slow gives the same ratios. Runs of the
things compared are interleaved (A, B, A, B ...) so drift (other load, CPU frequency, page cache)
hits both sides alike. Everything happens in fresh temporary folders (``--tmp`` picks where:
that is the disk being measured); they are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

PY = sys.executable
BIN_DIR = os.path.dirname(PY)
LICTOOLS = os.path.join(BIN_DIR, "lictools")
FLOOR = [PY, "-c", "import click, filelock, platformdirs"]
POOL = "bench"
FEATURE = "seats"

# (runs for the full suite, runs with --quick)
PLAN = {
    "runs1": (31, 9),  # whole-process runs per variant, benchmark 1
    "runs2": (15, 7),  # per state size and layout, benchmark 2
    "reps3": (2, 1),  # bursts of 200 per variant, benchmark 3 (--quick: state.db only)
    "blocks4": (5, 3),  # timed blocks per variant, benchmark 4
    "block4_s": (2.0, 0.5),  # seconds per block, benchmark 4
    "runs5": (15, 9),  # per journal size and layout, benchmark 5
    "events5": (1_000_000, 1_000_000),
    "herd": ((200, 5), (1000, 2)),  # (processes, releases) of benchmark 6; --quick: 200 x 2 only
    "runs7": (15, 7),  # per variant, benchmark 7
    "sessions7": (100_000, 100_000),
    "events8": (10_000_000, 1_000_000),
}

RESULTS: dict[str, Any] = {"benchmarks": {}}


# --------------------------------------------------------------------------- small helpers
def plan(key: str, quick: bool) -> Any:
    if key == "herd":
        return ((200, 2),) if quick and not PLAN.get("herd_fixed") else PLAN[key]
    return PLAN[key][1 if quick else 0]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def clean_env(state: str | None = None) -> dict[str, str]:
    """The caller's environment without LICTOOLS_* settings, plus the state under test.

    PYTHONDONTWRITEBYTECODE is dropped too: with it every run would compile lictools from
    source (an editable install has no .pyc files until a run writes them), which no user of an
    installed lictools pays, while the floor's click, filelock and platformdirs come precompiled.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_") and k != "PYTHONDONTWRITEBYTECODE"}
    if state:
        env["LICTOOLS_STATE"] = state
    return env


def run_timed(argv: list[str], env: dict[str, str], expect: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Run one fresh process; return (wall seconds, stdout). A surprising exit code stops the suite;
    an expected exit 5 (busy) is a result, given as the stdout ``"exit 5"``."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in expect:
        raise SystemExit(f"benchmark command failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stderr}")
    return elapsed, "exit 5" if proc.returncode == 5 else proc.stdout


def lt(*args: str) -> list[str]:
    """argv of the console script, the way a login hook runs it."""
    return [LICTOOLS, *args]


def lt_m(*args: str) -> list[str]:
    return [PY, "-m", "lictools", *args]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def record(bench: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    RESULTS["benchmarks"][bench] = {"rows": rows, **extra}


MARKDOWN: list[str] = []
"""The report again as Markdown (``--markdown``), for docs/performance.md."""


def say(text: str, md: str | None = None) -> None:
    """Print a line of the report and keep it (or ``md``) for the Markdown copy."""
    print(text)
    sys.stdout.flush()
    if md is None and text.startswith("\n## "):
        md = "\n### " + text[4:]
    MARKDOWN.append(text if md is None else md)


def print_table(headers: list[str], rows: list[list[Any]], left: int = 1) -> None:
    """A plain-text table; the first ``left`` columns are left-aligned, the others right-aligned."""
    MARKDOWN.append("")
    MARKDOWN.append("| " + " | ".join(headers) + " |")
    MARKDOWN.append("|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|")
    for row in rows:
        MARKDOWN.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    MARKDOWN.append("")
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    sys.stdout.flush()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# --------------------------------------------------------------------------- machine
def filesystem_of(path: str) -> str:
    """``ext4 on /dev/vda (mounted at /)``: the mount holding ``path``, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        return "unknown"
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_describe() -> str:
    """The commit of the lictools being measured (the one imported), and whether it has local changes."""
    import lictools

    here = os.path.dirname(os.path.abspath(lictools.__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True)
        if head.returncode:
            return "not a git checkout"
        return head.stdout.strip() + (" (lictools/ modified)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def machine(tmp: str) -> dict[str, Any]:
    import lictools

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()} ({PY})",
        "os": f"{platform.system()} {platform.release()}",
        "tmp": tmp,
        "filesystem": filesystem_of(tmp),
        "sqlite": sqlite3.sqlite_version,
        "lictools": f"{lictools.__version__} from {os.path.dirname(lictools.__file__)}, commit {git_describe()}",
    }
    return info


# --------------------------------------------------------------------------- state setup (in-process engine)
def new_store(path: str):
    from lictools.stores import open_store

    return open_store(path, 120.0)


def make_pool(path: str, seats: int, lease: str = "0") -> None:
    from lictools import engine

    with new_store(path).transaction() as tx:
        engine.add_pool(tx, POOL, "generic", {FEATURE: seats}, {"lease": lease})


def request(session: str, user: str = "alice", host: str = "ws001", lease: int | None = None):
    from lictools.model import Request

    return Request(pool=POOL, feature=FEATURE, session=session, user=user, host=host, node="node1", lease=lease)


def populate(path: str, n: int) -> None:
    """Add ``n`` live sessions (lease 0: they never expire) in one transaction.

    The first goes through ``engine.acquire`` (so it is exactly what a grant stores); the rest
    are copies with their own id, seat, user and host put straight into the store: granting
    10,000 one by one through the engine would cost O(n^2) scans in the JSON layout.
    """
    from lictools import engine

    if n == 0:
        return
    with new_store(path).transaction() as tx:
        first = engine.acquire(tx, request("pre-000000", lease=0)).session
        template = first.to_doc()
        for i in range(1, n):
            sid = f"pre-{i:06d}"
            tx.put_session(type(first).from_doc({
                **template, "id": sid, "seat": sid, "user": f"user{i % 700:03d}", "host": f"ws{i % 1300:04d}",
                "started": first.started + i * 1e-3, "refreshed": first.refreshed + i * 1e-3,
            }))


def state_layouts(folder: str) -> dict[str, str]:
    return {"sqlite": os.path.join(folder, "state.db"), "json": os.path.join(folder, "state.json")}


# --------------------------------------------------------------------------- 1. whole-process acquire / release
def bench1(tmp: str, quick: bool) -> None:
    say("\n## 1. whole-process acquire and release vs the floor `python -c \"import click, filelock, platformdirs\"`")
    runs = plan("runs1", quick)
    states = state_layouts(os.path.join(tmp, "b1"))
    for path in states.values():
        make_pool(path, 1_000_000)
    envs = {k: clean_env(p) for k, p in states.items()}
    floor_env = clean_env()

    # a round: floor, then acquire with each invocation, then release what was acquired
    samples: dict[str, list[float]] = {}
    names = [
        "floor",
        "acquire (lictools, state.db)",
        "acquire (python -m lictools, state.db)",
        "release (lictools, state.db)",
        "release (python -m lictools, state.db)",
        "acquire (lictools, state.json)",
        "release (lictools, state.json)",
    ]
    for name in names:
        samples[name] = []

    def one_round(keep: bool) -> None:
        def timed(name: str, argv: list[str], env: dict[str, str]) -> str:
            t, out = run_timed(argv, env)
            if keep:
                samples[name].append(t)
            return out.strip()

        timed("floor", FLOOR, floor_env)
        a = timed(names[1], lt("acquire", POOL, "--feature", FEATURE), envs["sqlite"])
        b = timed(names[2], lt_m("acquire", POOL, "--feature", FEATURE), envs["sqlite"])
        timed(names[3], lt("release", a), envs["sqlite"])
        timed(names[4], lt_m("release", b), envs["sqlite"])
        c = timed(names[5], lt("acquire", POOL, "--feature", FEATURE), envs["json"])
        timed(names[6], lt("release", c), envs["json"])

    one_round(keep=False)  # warm-up: .pyc files, page cache
    for _ in range(runs):
        one_round(keep=True)

    floor = median(samples["floor"])
    floor_min = min(samples["floor"])
    rows, table = [], []
    for name in names:
        m = median(samples[name])
        q1, q3 = quartiles(samples[name])
        ratio = m / floor
        min_ratio = min(samples[name]) / floor_min  # least disturbed run of each: a cross-check on noisy machines
        goal = name != "floor"
        met = ratio <= GOAL1
        rows.append({"name": name, "median_ms": m * 1000, "q1_ms": q1 * 1000, "q3_ms": q3 * 1000,
                     "min_ms": min(samples[name]) * 1000, "runs": len(samples[name]), "ratio_to_floor": ratio,
                     "min_ratio_to_floor": min_ratio, "goal": f"<= {GOAL1}x floor" if goal else None,
                     "met": met if goal else None})
        table.append([name, ms(m), f"{ms(q1)}-{ms(q3)}", ms(min(samples[name])), f"{ratio:.2f}x", f"{min_ratio:.2f}x",
                      verdict(met) if goal else "(baseline)"])
    say(f"{runs} interleaved runs each, fresh process per run; goal: median at most {GOAL1}x the floor's "
        "(the ratio of the fastest runs is a cross-check)")
    print_table(["command", "median ms", "IQR ms", "min ms", "vs floor", "min vs min", f"goal <= {GOAL1}x"], table)
    record("1", rows, runs=runs)


GOAL1 = 1.05
"""Issue 9: a whole-process acquire within 1.05x of the floor (issue 5 asked 1.15x)."""


# --------------------------------------------------------------------------- 2. live sessions
def bench2(tmp: str, quick: bool) -> None:
    say("\n## 2. acquire with 0, 1,000 and 10,000 live sessions in the state")
    runs = plan("runs2", quick)
    sizes = [0, 1_000, 10_000]
    states: dict[tuple[str, int], str] = {}
    t0 = time.perf_counter()
    for layout in ("sqlite", "json"):
        for n in sizes:
            path = state_layouts(os.path.join(tmp, f"b2-{n}"))[layout]
            make_pool(path, 1_000_000)
            populate(path, n)
            states[(layout, n)] = path
    say(f"(pre-populated 6 states in {time.perf_counter() - t0:.1f}s; {runs} interleaved runs each)")
    samples: dict[tuple[str, int], list[float]] = {k: [] for k in states}
    order = list(states)
    for i in range(runs + 1):
        for key in order if i % 2 else reversed(order):
            t, _ = run_timed(lt("acquire", POOL, "--feature", FEATURE), clean_env(states[key]))
            if i:  # round 0 is the warm-up
                samples[key].append(t)
    rows, table = [], []
    for layout in ("sqlite", "json"):
        base = median(samples[(layout, 0)])
        for n in sizes:
            m = median(samples[(layout, n)])
            ratio = m / base
            size = os.path.getsize(states[(layout, n)])
            goal = n == 10_000
            met = ratio <= 1.5
            rows.append({"name": f"acquire, {n:,} live sessions ({'state.db' if layout == 'sqlite' else 'state.json'})",
                         "layout": layout, "sessions": n, "median_ms": m * 1000, "ratio_to_empty": ratio,
                         "state_bytes": size, "goal": "<= 1.5x empty" if goal else None, "met": met if goal else None})
            table.append([f"{'state.db' if layout == 'sqlite' else 'state.json'}", f"{n:,}", ms(m), f"{size / 1024:,.0f}",
                          f"{ratio:.2f}x", verdict(met) if goal else ("(baseline)" if n == 0 else "")])
    print_table(["layout", "live sessions", "median ms", "state KiB", "vs empty", "goal 10,000 <= 1.5x"], table)
    record("2", rows, runs=runs)


# --------------------------------------------------------------------------- 3. 200 at once
def burst(argvs: list[list[str]], env: dict[str, str]) -> tuple[float, list[int], list[str]]:
    """Start every process without waiting, then wait for all; wall time from first start to last exit."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(a, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for a in argvs]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - t0
    errors = []
    for p in procs:
        err = p.stderr.read().decode(errors="replace").strip()
        p.stderr.close()
        if err:
            errors.append(err)
    return elapsed, codes, errors


def children_cpu() -> float:
    """User + system CPU seconds of every waited-for child so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench3(tmp: str, quick: bool) -> None:
    say("\n## 3. 200 processes started at once acquiring from a pool of 50 seats")
    reps = plan("reps3", quick)
    n, seats = 200, 50
    layouts = ("sqlite",) if quick else ("sqlite", "json")
    variants = ("floor", *layouts)
    samples: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    checks: list[dict[str, Any]] = []
    for rep in range(reps):
        for variant in variants if rep % 2 == 0 else tuple(reversed(variants)):
            if variant == "floor":
                c0 = children_cpu()
                t, codes, _ = burst([FLOOR] * n, clean_env())
                cpu["floor"].append(children_cpu() - c0)
                samples["floor"].append(t)
                continue
            path = state_layouts(os.path.join(tmp, f"b3-{rep}"))[variant]
            make_pool(path, seats, lease="0")
            env = clean_env(path)
            argv = lt("--lock-timeout", "120", "acquire", POOL, "--feature", FEATURE)
            c0 = children_cpu()
            t, codes, errors = burst([argv] * n, env)
            cpu[variant].append(children_cpu() - c0)
            samples[variant].append(t)
            _, out = run_timed(lt("--format", "json", "info", POOL), env)
            in_use = json.loads(out)[0]["in_use"]
            granted, denied = codes.count(0), codes.count(3)
            other = n - granted - denied
            checks.append({"layout": variant, "granted": granted, "denied": denied, "other_exit": other,
                           "in_use": in_use, "ok": granted == seats and denied == n - seats and in_use == seats})
            unexpected = [e for e in errors if "denied" not in e and "in use" not in e]
            if other or unexpected:
                print(f"  {variant}: unexpected exits/messages, e.g. {unexpected[:1] or errors[:1]}")
    floor = median(samples["floor"])
    rows, table = [], []
    table.append(["200 x floor", f"{floor:.2f}", f"{n / floor:.0f}", "1.00x", ms(median(cpu["floor"]) / n), "",
                  "(baseline)"])
    for variant in layouts:
        m = median(samples[variant])
        cpu_each = median(cpu[variant]) / n
        ratio = floor / m  # throughput ratio
        mine = [c for c in checks if c["layout"] == variant]
        exact = all(c["ok"] for c in mine)
        counts = "; ".join(f"{c['granted']} granted, {c['denied']} denied, in_use {c['in_use']}" for c in mine)
        met = ratio >= 0.8 and exact
        name = f"200 x acquire ({'state.db' if variant == 'sqlite' else 'state.json'})"
        rows.append({"name": name, "median_wall_s": m, "throughput_per_s": n / m, "ratio_to_floor": ratio,
                     "cpu_ms_per_process": cpu_each * 1000, "exact": exact, "checks": mine,
                     "goal": "throughput >= 0.8x floor and exactly 50 granted", "met": met})
        table.append([name, f"{m:.2f}", f"{n / m:.0f}", f"{ratio:.2f}x", ms(cpu_each),
                      "yes" if exact else f"NO ({counts})", verdict(met)])
    say(f"{reps} burst(s) per variant, interleaved; --lock-timeout 120; exit 0 = granted, 3 = denied"
          + ("; --quick: state.db only" if quick else ""))
    print_table(["burst", "wall s (median)", "procs/s", "throughput vs floor", "CPU ms/process",
                 "exactly 50/150, in_use 50", "goal >= 0.8x"], table)
    rows.insert(0, {"name": "200 x floor", "median_wall_s": floor, "throughput_per_s": n / floor,
                    "cpu_ms_per_process": median(cpu["floor"]) / n * 1000})
    record("3", rows, reps=reps)


# --------------------------------------------------------------------------- 4. engine in one process
def bench4(tmp: str, quick: bool) -> None:
    say("\n## 4. engine in one process: durable acquire+release pairs/s vs write-fsync-rename-fsync(folder)")
    from lictools import engine
    from lictools.stores import open_store

    blocks, block_s = plan("blocks4", quick), plan("block4_s", quick)
    folder = os.path.join(tmp, "b4")
    states = state_layouts(folder)
    for path in states.values():
        make_pool(path, 1_000_000)
    payload = json.dumps({"schema": 1, "pools": {}, "sessions": {f"s{i}": {"user": "u"} for i in range(40)}},
                         indent=1).encode()  # about 1 KiB, like a small state file
    target = os.path.join(folder, "bare.json")
    counter = [0]

    def bare_once() -> None:
        tmpname = f"{target}.tmp-{os.getpid()}"
        fd = os.open(tmpname, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmpname, target)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def pair(path: str, reuse: bool) -> Callable[[], None]:
        """One durable acquire and one durable release, each its own transaction (reap first, like the CLI).

        ``reuse``: one store object for the whole run (a long-lived process keeps its lock object
        and SQLite connection); otherwise a new store per transaction, as each CLI process has.
        """
        kept = open_store(path, 120.0, keep_open=True)

        def store():  # type: ignore[no-untyped-def]
            return kept if reuse else open_store(path, 120.0)

        def once() -> None:
            counter[0] += 1
            sid = f"b4-{counter[0]:08d}"
            s = store()
            with s.transaction() as tx:
                engine.reap(tx)
                out = engine.acquire(tx, request(sid))
                assert out.granted
            if not reuse:
                s.close()
            s = store()
            with s.transaction() as tx:
                engine.reap(tx)
                engine.release(tx, [sid])
            if not reuse:
                s.close()
        return once

    variants = {
        "bare loop": bare_once,
        "sqlite": pair(states["sqlite"], True),
        "json": pair(states["json"], True),
        "sqlite-new": pair(states["sqlite"], False),
        "json-new": pair(states["json"], False),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        for _ in range(3):
            fn()
    for b in range(blocks):
        for name in variants if b % 2 == 0 else reversed(list(variants)):
            fn = variants[name]
            count, t0 = 0, time.perf_counter()
            while True:
                fn()
                count += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= block_s:
                    break
            rates[name].append(count / elapsed)
    bare = median(rates["bare loop"])
    rows, table = [], [["bare write+fsync+rename+fsync(folder)", f"{bare:.0f}", f"{1000 / bare:.2f}", "1.00x",
                        "(baseline)"]]
    for name in ("sqlite", "json", "sqlite-new", "json-new"):
        m = median(rates[name])
        ratio = m / bare
        met = ratio >= 0.5
        layout = "state.db" if name.startswith("sqlite") else "state.json"
        how = "a new store per transaction, as CLI processes" if name.endswith("-new") else "one store"
        label = f"acquire+release pair ({layout}, {how})"
        rows.append({"name": label, "per_s": m, "ms_per_pair": 1000 / m, "ratio_to_bare": ratio,
                     "goal": ">= 0.5x bare loop", "met": met})
        table.append([label, f"{m:.0f}", f"{1000 / m:.2f}", f"{ratio:.2f}x", verdict(met)])
    say(f"{blocks} interleaved blocks of {block_s:g}s per variant; median of the block rates")
    print_table(["loop", "per second", "ms each", "vs bare", "goal >= 0.5x"], table)
    rows.insert(0, {"name": "bare loop", "per_s": bare})
    record("4", rows, blocks=blocks, block_s=block_s)


# --------------------------------------------------------------------------- 5. journal of 1,000,000 events
def fill_sqlite_journal(path: str, events: int) -> None:
    """Insert ``events`` rows shaped like real grant events straight into the ``events`` table."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        (template,) = db.execute("SELECT doc FROM events WHERE doc LIKE '%\"grant\"%' ORDER BY seq DESC LIMIT 1").fetchone()
        sid = json.loads(template)["session"]
        db.execute("BEGIN")
        db.executemany("INSERT INTO events (doc) VALUES (?)",
                       ((template.replace(sid, f"{i:016x}"),) for i in range(events)))
        db.execute("COMMIT")
    finally:
        db.close()


def fill_json_journal(path: str, events: int) -> None:
    """Append ``events`` lines to ``<state>.journal`` and record its length in ``journal_bytes``."""
    journal = path + ".journal"
    with open(journal, "rb") as f:
        lines = f.read().splitlines()
    template = next(line for line in reversed(lines) if b'"grant"' in line).decode()
    sid = json.loads(template)["session"]
    with open(journal, "ab") as f:
        chunk = []
        for i in range(events):
            chunk.append(template.replace(sid, f"{i:016x}"))
            if len(chunk) == 50_000:
                f.write(("\n".join(chunk) + "\n").encode())
                chunk = []
        if chunk:
            f.write(("\n".join(chunk) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())
    with open(path) as f:
        doc = json.load(f)
    doc["journal_bytes"] = os.path.getsize(journal)
    doc["seq"] = doc.get("seq", 0) + events
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def bench5(tmp: str, quick: bool) -> None:
    events = plan("events5", quick)
    say(f"\n## 5. journal cost: acquire with {events:,} events in the journal vs an empty journal")
    runs = plan("runs5", quick)
    states: dict[tuple[str, int], str] = {}
    t0 = time.perf_counter()
    for layout in ("sqlite", "json"):
        for n in (0, events):
            path = state_layouts(os.path.join(tmp, f"b5-{n}"))[layout]
            make_pool(path, 1_000_000)
            with new_store(path).transaction() as tx:  # one real grant: the template of the filler events
                from lictools import engine

                engine.acquire(tx, request("template-session"))
            if n:
                (fill_sqlite_journal if layout == "sqlite" else fill_json_journal)(path, n)
            states[(layout, n)] = path
    sizes = {k: sum(os.path.getsize(os.path.join(os.path.dirname(p), f)) for f in os.listdir(os.path.dirname(p))
                    if f.startswith(os.path.basename(p)))
             for k, p in states.items()}
    say(f"(journals written in {time.perf_counter() - t0:.1f}s; {runs} interleaved runs each)")
    samples: dict[tuple[str, int], list[float]] = {k: [] for k in states}
    order = list(states)
    for i in range(runs + 1):
        for key in order if i % 2 else reversed(order):
            t, _ = run_timed(lt("acquire", POOL, "--feature", FEATURE), clean_env(states[key]))
            if i:
                samples[key].append(t)
    rows, table = [], []
    for layout in ("sqlite", "json"):
        base = median(samples[(layout, 0)])
        for n in (0, events):
            m = median(samples[(layout, n)])
            ratio = m / base
            met = ratio <= 1.05
            rows.append({"name": f"acquire, {n:,} journal events ({'state.db' if layout == 'sqlite' else 'state.json'})",
                         "layout": layout, "events": n, "median_ms": m * 1000, "ratio_to_empty": ratio,
                         "bytes_on_disk": sizes[(layout, n)], "goal": "<= 1.05x empty" if n else None,
                         "met": met if n else None})
            table.append(["state.db" if layout == "sqlite" else "state.json (+ .journal)", f"{n:,}", ms(m),
                          f"{sizes[(layout, n)] / 2**20:,.1f}", f"{ratio:.2f}x",
                          verdict(met) if n else "(baseline)"])
    print_table(["layout", "journal events", "median ms", "MiB on disk", "vs empty", "goal <= 1.05x"], table)
    record("5", rows, runs=runs, events=events)



# --------------------------------------------------------------------------- 6. the herd
def _wait_blocked(pids: list[int], limit: float = 60.0) -> None:
    """Until every gate shell sleeps in its read (or ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                with open(f"/proc/{pid}/wchan", "rb") as f:
                    wchan = f.read()
            except OSError:
                waiting.discard(pid)
                continue
            if state == b"S" and b"pipe" in wchan:
                waiting.discard(pid)
        time.sleep(0.05)


class HoldWatch:
    """Samples ``<state>.lock`` every 5 ms during a herd: the longest time one holder kept it.

    (What ``--lock-timeout`` must allow: a holder starved of CPU by the herd starting up.)
    """

    def __init__(self, lock_path: str | None) -> None:
        self.lock_path, self.longest, self.stop = lock_path, 0.0, False

    def __enter__(self) -> "HoldWatch":
        import threading

        self.thread = threading.Thread(target=self.run, daemon=True)
        if self.lock_path:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop = True
        if self.lock_path:
            self.thread.join()

    def run(self) -> None:
        import fcntl

        last, since = None, time.monotonic()
        while not self.stop:
            try:
                fd = os.open(self.lock_path, os.O_RDONLY)
                try:
                    stamp = os.pread(fd, 32, 0)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                        held = False
                    except BlockingIOError:
                        held = True
                finally:
                    os.close(fd)
            except OSError:
                stamp, held = b"", False
            now = time.monotonic()
            if stamp != last or not held:
                last, since = stamp, now
            else:
                self.longest = max(self.longest, now - since)
            time.sleep(0.005)


def release_herd(argv: list[str], n: int, env: dict[str, str], err_path: str) -> dict[str, Any]:
    """Start ``n`` processes that block on one pipe, then release them at one instant by closing it.

    Each child is ``sh -c 'read _; exec "$@"'``: once every shell sleeps in its read, closing the
    pipe's write end wakes them all together and each execs the command. Latency is from the
    release to the child's exit (os.wait4 in completion order); CPU is the child's own user +
    system time (its rusage from wait4).
    """
    read_end, write_end = os.pipe()
    gate = ["sh", "-c", 'read _ ; exec "$@"', "sh", *argv]
    procs: dict[int, subprocess.Popen] = {}
    with open(err_path, "ab") as err:
        for _ in range(n):
            proc = subprocess.Popen(gate, stdin=read_end, stdout=subprocess.DEVNULL, stderr=err, env=env)
            procs[proc.pid] = proc
    os.close(read_end)
    _wait_blocked(list(procs))
    load = os.getloadavg()[0]
    with open("/proc/loadavg") as f:  # processes runnable right now (the 1-minute average still holds the last herd)
        runnable = int(f.read().split()[3].split("/")[0]) - 1
    state = env.get("LICTOOLS_STATE")
    with HoldWatch(state + ".lock" if state else None) as watch:
        t0 = time.monotonic()
        os.close(write_end)
        latencies, cpus, codes = [], [], []
        for _ in range(n):
            pid, status, usage = os.wait4(-1, 0)
            latencies.append(time.monotonic() - t0)
            code = os.waitstatus_to_exitcode(status)
            codes.append(code)
            cpus.append(usage.ru_utime + usage.ru_stime)
            if pid in procs:
                procs[pid].returncode = code
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(round(p / 100 * n + 0.5)) - 1)]

    return {"n": n, "wall_s": latencies[-1], "p50_s": pct(50), "p90_s": pct(90), "p99_s": pct(99),
            "cpu_ms_mean": 1000 * sum(cpus) / n, "cpu_ms_median": 1000 * median(cpus), "load_before": load,
            "runnable_before": runnable, "longest_hold_s": watch.longest,
            "exits": {str(c): codes.count(c) for c in sorted(set(codes))}}


def bench6(tmp: str, quick: bool) -> None:
    say("\n## 6. the herd: N processes released at one instant, default settings, 50 seats")
    seats = 50
    rows, table = [], []
    for n, reps in plan("herd", quick):
        for rep in range(reps):
            err_path = os.path.join(tmp, f"herd-{n}-{rep}.stderr")
            floor = release_herd(FLOOR, n, clean_env(), err_path)
            path = os.path.join(tmp, f"b6-{n}-{rep}", "state.db")
            make_pool(path, seats, lease="0")
            env = clean_env(path)
            mine = release_herd(lt("acquire", POOL, "--feature", FEATURE), n, env, err_path)
            _, out = run_timed(lt("--format", "json", "info", POOL), env)
            in_use = json.loads(out)[0]["in_use"]
            granted, denied, busy = (mine["exits"].get(str(c), 0) for c in (0, 3, 5))
            exact = granted == seats and denied == n - seats and in_use == seats
            wall_ratio = mine["wall_s"] / floor["wall_s"]
            p99_ratio = mine["p99_s"] / floor["p99_s"]
            cpu_ratio = mine["cpu_ms_mean"] / floor["cpu_ms_mean"]
            if n >= 1000:
                goal, met = "exactly 50 granted, 0 busy; wall and CPU <= 1.2x floor", (
                    exact and busy == 0 and wall_ratio <= 1.2 and cpu_ratio <= 1.2)
            else:
                goal, met = "0 busy; p99 <= 1.2x floor's p99", busy == 0 and p99_ratio <= 1.2
            rows.append({"name": f"herd of {n} (release {rep + 1})", "floor": floor, "lictools": mine,
                         "in_use": in_use, "exact": exact, "ratio_wall": wall_ratio, "ratio_p99": p99_ratio,
                         "ratio_cpu": cpu_ratio, "goal": goal, "met": met})
            for label, r in (("floor", floor), ("acquire", mine)):
                table.append([f"{n} x {label} #{rep + 1}", f"{r['load_before']:.0f} / {r['runnable_before']}",
                              f"{r['wall_s']:.1f}",
                              f"{r['p50_s']:.2f}", f"{r['p90_s']:.2f}", f"{r['p99_s']:.2f}", f"{r['cpu_ms_mean']:.0f}",
                              "" if label == "floor" else f"{granted}/{denied}/{busy}, in_use {in_use}",
                              "" if label == "floor" else f"{r['longest_hold_s']:.2f}",
                              "" if label == "floor" else f"{wall_ratio:.2f}x / {p99_ratio:.2f}x / {cpu_ratio:.2f}x",
                              "(baseline)" if label == "floor" else verdict(met)])
    say("each release: the floor herd, then lictools acquire (no --lock-timeout: the default); latency from the "
        "release to each exit; CPU per process = its own user+system time; load = the 1-minute load average "
        "(still counting the previous herd) / processes runnable at the release")
    print_table(["herd", "load / runnable", "wall s", "p50 s", "p90 s", "p99 s", "CPU ms/proc", "granted/denied/busy",
                 "longest hold s",
                 "wall / p99 / CPU vs floor", "goal"], table)
    record("6", rows)


# --------------------------------------------------------------------------- 7. 100,000 sessions
def _wait_for_copy(bak: str, limit: float = 120.0) -> float:
    """Seconds until the background good copy refreshed ``bak`` (its mtime was set to 0)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if os.stat(bak).st_mtime > 0:
                return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    return float("nan")


def bench7(tmp: str, quick: bool) -> None:
    n = plan("sessions7", quick)
    say(f"\n## 7. {n:,} live sessions (state.db): acquire vs empty, while the good copy is due, while `users` runs")
    runs = plan("runs7", quick)
    empty = os.path.join(tmp, "b7-empty", "state.db")
    big = os.path.join(tmp, "b7-big", "state.db")
    t0 = time.perf_counter()
    for path in (empty, big):
        make_pool(path, 1_000_000)
    populate(big, n)
    run_timed(lt("acquire", POOL, "--feature", FEATURE), clean_env(big))  # takes the first good copy
    _wait_for_copy(big + ".bak")
    say(f"(filled in {time.perf_counter() - t0:.1f}s; state {os.path.getsize(big) / 2**20:.0f} MiB; {runs} interleaved runs each)")
    names = ["empty state", f"{n:,} sessions", f"{n:,} sessions, good copy due", f"{n:,} sessions, users running"]
    samples: dict[str, list[float]] = {k: [] for k in names}
    copy_s: list[float] = []
    users_s: list[float] = []
    acquire = lt("acquire", POOL, "--feature", FEATURE)
    busy = 0

    def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:  # an older lictools may answer busy
        nonlocal busy
        t, out = run_timed(argv, env, expect=(0, 5))
        busy += out == "exit 5"
        return t, out

    for i in range(runs + 1):
        for name in names if i % 2 else list(reversed(names)):
            env = clean_env(empty if name == names[0] else big)
            if name == names[2]:
                os.utime(big + ".bak", (0, 0))
                t, _ = timed(acquire, env)
                copy_s.append(_wait_for_copy(big + ".bak"))
            elif name == names[3]:
                reader = subprocess.Popen(lt("users"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                r0 = time.perf_counter()
                time.sleep(0.2)  # well inside its read of the whole state
                t, _ = timed(acquire, env)
                reader.wait()
                users_s.append(time.perf_counter() - r0)
            else:
                t, _ = timed(acquire, env)
            if i:
                samples[name].append(t)
    plain = median(samples[names[1]])
    rows, table = [], []
    for name, base, goal in ((names[0], None, None), (names[1], names[0], 1.1), (names[2], names[1], 1.2),
                             (names[3], names[1], 1.2)):
        m = median(samples[name])
        ratio = m / median(samples[base]) if base else 1.0
        met = ratio <= goal if goal else None
        against = "empty" if base == names[0] else "plain"
        rows.append({"name": f"acquire, {name}", "median_ms": m * 1000, "ratio_to_base": ratio,
                     "goal": f"<= {goal}x {against}" if goal else None, "met": met})
        table.append([name, ms(m), f"{ratio:.2f}x" + (f" of {against}" if base else ""),
                      verdict(met) if goal else "(baseline)"])
    say(f"the good copy, taken in the background after the acquire answered: median {median(copy_s):.2f}s; "
        f"`users` alone: median {median(users_s):.2f}s; acquires answered busy (exit 5): {busy}")
    print_table(["acquire on", "median ms", "ratio", "goal"], table)
    record("7", rows, runs=runs, sessions=n, copy_s=median(copy_s), users_s=median(users_s), plain_ms=plain * 1000)


# --------------------------------------------------------------------------- 8. journal tail memory
def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """(peak resident MiB, stdout lines, seconds) of one process.

    Measured by ``/usr/bin/time``, which forks the command from its own small process: a child
    forked from this (large) benchmark process would start with our pages in its high-water mark.
    """
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile("r") as report:
        proc = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *argv], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        kib = int(report.read().split()[-1])
    return kib / 1024, proc.stdout.count(b"\n"), time.perf_counter() - t0


def bench8(tmp: str, quick: bool) -> None:
    events = plan("events8", quick)
    say(f"\n## 8. `journal --since-seq` for the last 10 of {events:,} events: peak memory")
    if not os.access("/usr/bin/time", os.X_OK):
        say("(skipped: /usr/bin/time measures the peak memory; apt-get install time)")
        return
    rows, table = [], []
    floor_rss, _, _ = peak_rss(FLOOR, clean_env())
    table.append(["floor", "", f"{floor_rss:.0f}", "", "", "(reference)"])
    for layout in ("sqlite", "json"):
        path = state_layouts(os.path.join(tmp, "b8"))[layout]
        make_pool(path, 1_000_000)
        with new_store(path).transaction() as tx:
            from lictools import engine

            engine.acquire(tx, request("template-session"))
        t0 = time.perf_counter()
        (fill_sqlite_journal if layout == "sqlite" else fill_json_journal)(path, events - 2)
        built = time.perf_counter() - t0
        env = clean_env(path)
        rss, lines, seconds = peak_rss(lt("journal", "--since-seq", str(events - 10)), env)
        name = "state.db" if layout == "sqlite" else "state.json (+ .journal)"
        met = rss < 50 and lines == 10
        rows.append({"name": f"journal tail, {name}", "rss_mib": rss, "lines": lines, "seconds": seconds,
                     "events": events, "goal": "< 50 MiB, 10 events", "met": met, "ratio_rss_to_floor": rss / floor_rss})
        table.append([name, f"{events:,}", f"{rss:.0f}", f"{lines}", f"{seconds:.2f}", verdict(met)])
        say(f"({name}: journal written in {built:.0f}s)")
        for f in os.listdir(os.path.dirname(path)):
            if f.startswith(os.path.basename(path)):
                os.unlink(os.path.join(os.path.dirname(path), f))
    print_table(["layout", "events", "peak RSS MiB", "lines", "seconds", "goal < 50 MiB"], table)
    record("8", rows, events=events, floor_rss_mib=floor_rss)


# --------------------------------------------------------------------------- main
BENCHES = {1: bench1, 2: bench2, 3: bench3, 4: bench4, 5: bench5, 6: bench6, 7: bench7, 8: bench8}


def summary() -> None:
    say("\n## Goals")
    goals = []
    for bench, data in RESULTS["benchmarks"].items():
        for row in data["rows"]:
            if row.get("met") is not None:
                ratio = next((row[k] for k in row if k.startswith("ratio_")), None)
                goals.append([bench, row["name"], row["goal"], f"{ratio:.2f}x" if ratio is not None else "",
                              verdict(row["met"])])
    print_table(["#", "measurement", "goal", "ratio", "result"], goals, left=3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, state.db only in benchmark 3: 1-2 minutes")
    parser.add_argument("--only", metavar="N[,N...]", help="run only these benchmarks (1-8)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown tables to FILE")
    parser.add_argument("--tmp", metavar="DIR", default=None, help="where the temporary states go (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--herd", metavar="NxR[,NxR]", help="herd sizes and releases for benchmark 6 (default 200x5,1000x2)")
    parser.add_argument("--events8", type=int, metavar="N", help="journal events for benchmark 8 (default 10,000,000)")
    args = parser.parse_args()

    if not os.access(LICTOOLS, os.X_OK):
        print(f"no lictools console script next to {PY}; run this with the interpreter of the environment "
              "lictools is installed in (e.g. .venv/bin/python benchmarks/run.py)", file=sys.stderr)
        return 2
    try:
        selected = sorted({int(x) for x in args.only.split(",")}) if args.only else sorted(BENCHES)
    except ValueError:
        parser.error("--only takes benchmark numbers 1-8, e.g. --only 1,6")
    if any(n not in BENCHES for n in selected):
        parser.error("--only takes benchmark numbers 1-8")

    if args.herd:
        PLAN["herd"] = tuple(tuple(int(x) for x in part.split("x")) for part in args.herd.split(","))  # type: ignore
        PLAN["herd_fixed"] = True
    if args.events8:
        PLAN["events8"] = (args.events8, args.events8)
    json_out = os.path.abspath(args.json) if args.json else None
    md_out = os.path.abspath(args.markdown) if args.markdown else None
    tmp = tempfile.mkdtemp(prefix="lictools-bench-", dir=args.tmp)
    os.chdir(tmp)  # `python -c` and `python -m` put the current folder first on sys.path: not a checkout
    RESULTS["machine"] = machine(tmp)
    RESULTS["quick"] = args.quick
    print("# lictools benchmarks" + (" (--quick)" if args.quick else ""))
    for key, value in RESULTS["machine"].items():
        say(f"{key:>13}: {value}", f"- {key}: {value}")
    started = time.perf_counter()
    try:
        for n in selected:
            t0 = time.perf_counter()
            BENCHES[n](tmp, args.quick)
            print(f"(benchmark {n}: {time.perf_counter() - t0:.0f}s)")
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            os.chdir(os.path.dirname(tmp))
            shutil.rmtree(tmp, ignore_errors=True)
    RESULTS["seconds"] = time.perf_counter() - started
    summary()
    print(f"\ntotal {RESULTS['seconds']:.0f}s")
    if md_out:
        with open(md_out, "w") as f:
            f.write("\n".join(MARKDOWN).strip() + f"\n\ntotal {RESULTS['seconds']:.0f}s\n")
        print(f"Markdown written to {md_out}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(RESULTS, f, indent=1)
            f.write("\n")
        print(f"results written to {json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
