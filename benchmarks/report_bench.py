#!/usr/bin/env python3
"""Benchmark for issue 11: ``report`` over a journal of 1,000,000 events, and ``metrics`` against the floor.

Usage (with the interpreter of the environment lictools is installed in)::

    .venv/bin/python benchmarks/report_bench.py                  # 1,000,000 events, 5 runs each
    .venv/bin/python benchmarks/report_bench.py --events 200000 --runs 3
    .venv/bin/python benchmarks/report_bench.py --keep /tmp/rb   # keep (and reuse) the generated states

What it does:

1. **Generates** a journal with the real engine (``lictools.engine`` over an in-memory transaction
   whose clock moves by hand), so every event has the shape the engine writes: three pools
   (generic ``cad`` with ``share=user,host``, ``genero``, magic-xpa ``magic`` with a project
   reservation), 300 users acquiring, refreshing, releasing, letting leases expire and being denied,
   over simulated weeks. The events go into a ``state.db`` (events table) and a ``state.json``
   (``.journal`` file), the pools and live sessions beside them.
2. **report**: whole-process ``lictools --format json report`` on each layout; events/s = journal
   events / wall time (the goal), events/CPU-s = journal events / the child's user + system time
   (what a busy machine takes away from wall time); peak memory = the child's max RSS (``wait4``).
   Goals: at least 200,000 events/s and under 200 MB.
3. **metrics**: whole-process ``lictools metrics`` on the ``state.db`` against the floor
   ``python -c "import click, filelock, platformdirs"``, interleaved; goal: median at most 1.2x.

Medians of ``--runs`` runs; the load average is printed so a reader knows how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable
LICTOOLS = os.path.join(os.path.dirname(PY), "lictools")
FLOOR = [PY, "-c", "import click, filelock, platformdirs"]
START = 1_789_948_800.0  # 2026-09-21T00:00:00+00:00, a Monday


POOLS = {  # name: (product, feature, issued, options)
    "cad": ("generic", "solver", 60, {"share": "user,host", "lease": "1200"}),
    "genero": ("genero", "runtime", 90, {"lease": "1200"}),
    "magic": ("magic-xpa", "web", 40, {"lease": "1200"}),
}


def _setup(tx) -> None:
    from lictools import engine

    for name, (product, feature, issued, options) in POOLS.items():
        engine.add_pool(tx, name, product, {feature: issued}, options)
    engine.reserve(tx, "magic", "alpha", "web", 8)


def _request(pool: str, user: int, session: str):
    from lictools.model import Request

    product, feature, _, _ = POOLS[pool]
    return Request(
        pool=pool, feature=feature, session=session, user=f"u{user:03d}", host=f"h{user % 120:03d}",
        node="appsrv1", project=("alpha" if user % 5 == 0 else "beta") if pool == "magic" else None,
        client="gdc" if pool == "genero" else None, monitor=f"m{user:03d}" if pool == "genero" else None,
    )


def generate(events: int, mix: str, seed: int = 11) -> tuple[dict, list[dict]]:
    """Drive the real engine (in-memory transaction, clock moved by hand) until ``events`` events.

    ``realistic``: 300 users log in on weekdays around 08:00, hold one to three sessions of 30 min
    to 4 h, refresh every 5 min (AVEVA's Security Manager interval), retry a denial a few minutes
    later, and one session in ten dies without a release (its lease expires). ``churn``: no
    refreshes, every step a grant, share, release or denial (the costliest mix for the fold).
    """
    import heapq

    from lictools import engine
    from lictools.stores.memory import MemoryTransaction, empty_document

    rng = random.Random(seed)
    doc = empty_document()
    tx = MemoryTransaction(doc, START)
    _setup(tx)
    out: list[dict] = list(tx.events)
    tx.events = []
    users = 300
    pools = list(POOLS)
    if mix == "churn":
        held: dict[tuple[int, str], str] = {}
        t = START
        next_reap = t + 60
        while len(out) < events:
            t += rng.expovariate(1 / 4.0)
            tx.now = t
            if t >= next_reap:  # sessions dropped without a release expire, as a command's reap does
                engine.reap(tx)
                next_reap = t + 60
            user, pool = rng.randrange(users), rng.choice(pools)
            sid = held.pop((user, pool), None)
            if sid is not None and tx.get_session(sid) is not None and rng.random() < 0.9:
                engine.release(tx, [sid])
            else:
                request = _request(pool, user, f"s{len(out):09d}")
                if engine.acquire(tx, request).granted:
                    held[(user, pool)] = request.session
            out.extend(tx.events)
            tx.events = []
        return doc, out[:events]

    queue: list[tuple[float, int, str, int, str]] = []  # (time, tiebreak, action, user, pool or session)
    counter = 0

    def push(at: float, action: str, user: int, what: str) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(queue, (at, counter, action, user, what))

    day = 0
    next_reap = START + 60
    while len(out) < events:
        if not queue:  # plan the next working day: each user logs in to one to three pools
            day_start = START + day * 86400
            day += 1
            if (day - 1) % 7 >= 5:  # Saturday, Sunday: nobody
                continue
            for user in range(users):
                for pool in rng.sample(pools, rng.randint(1, 3)):
                    push(day_start + 8 * 3600 + rng.gauss(0, 3600), "login", user, pool)
            continue
        at, _, action, user, what = heapq.heappop(queue)
        while next_reap <= at:
            tx.now = next_reap
            engine.reap(tx)
            next_reap += 60
        tx.now = at
        if action == "login" or action.endswith("retry"):
            sid = f"s{counter:09d}"
            if engine.acquire(tx, _request(what, user, sid)).granted:
                end = at + rng.uniform(1800, 4 * 3600)
                crashes = rng.random() < 0.1
                push(at + 300, "refresh", user, sid + ("!" if crashes else "") + f"@{end}")
            elif action.count("retry") < 3:
                push(at + rng.uniform(120, 600), action + "retry", user, what)
        elif action == "refresh":
            sid, _, end = what.partition("@")
            crashes = sid.endswith("!")
            sid = sid.rstrip("!")
            if at >= float(end):
                if not crashes:
                    engine.release(tx, [sid])
            elif tx.get_session(sid) is not None:
                engine.refresh(tx, [sid])
                push(at + 300, "refresh", user, what)
        out.extend(tx.events)
        tx.events = []
    return doc, out[:events]


def write_states(folder: str, doc: dict, events: list[dict]) -> tuple[str, str]:
    """A ``state.db`` and a ``state.json`` holding the generated pools, sessions and journal."""
    from lictools.model import Pool, Session
    from lictools.stores.jsonfile import JsonFileStore
    from lictools.stores.sqlite import SqliteStore

    db_path = os.path.join(folder, "state.db")
    os.environ["LICTOOLS_NOW"] = repr(events[-1]["ts"])
    try:
        with SqliteStore(db_path, 10).transaction() as tx:
            for pool in doc["pools"].values():
                tx.put_pool(Pool.from_doc(pool))
            for session in doc["sessions"].values():
                tx.put_session(Session.from_doc(session))
        with JsonFileStore(os.path.join(folder, "state.json"), 10).transaction() as tx:
            tx.doc.update(json.loads(json.dumps(doc)))
            tx.dirty = True
    finally:
        del os.environ["LICTOOLS_NOW"]
    lines = [json.dumps(e, separators=(",", ":")) for e in events]
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany("INSERT INTO events (doc) VALUES (?)", ((line,) for line in lines))
    db.execute("COMMIT")
    db.close()
    json_path = os.path.join(folder, "state.json")
    with open(json_path + ".journal", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(json_path) as f:
        state = json.load(f)
    state["journal_bytes"] = os.path.getsize(json_path + ".journal")
    state["seq"] = len(lines)
    with open(json_path, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    return db_path, json_path


def run_child(cmd: list[str], env: dict) -> tuple[float, float, str, float]:
    """Run ``cmd``; wall seconds, its own peak RSS in MB (wait4), stdout, CPU seconds (user + system)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()}")
    return wall, usage.ru_maxrss / 1024, out.decode(), usage.ru_utime + usage.ru_stime


def generate_into(folder: str, events: int, mix: str) -> None:
    """Generate and write the states (run in a child process, so the measuring parent stays small:
    a child's peak RSS counts its parent's pages at fork time)."""
    import gc

    gc.disable()  # a million event dicts kept: the cyclic collector would rescan them over and over
    t0 = time.perf_counter()
    doc, journal = generate(events, mix)
    kinds: dict[str, int] = {}
    for e in journal:
        kinds[e["event"]] = kinds.get(e["event"], 0) + 1
    write_states(folder, doc, journal)
    span_days = (journal[-1]["ts"] - journal[0]["ts"]) / 86400
    with open(os.path.join(folder, f"generated-{mix}-{events}"), "w") as f:
        f.write(f"{mix} mix generated in {time.perf_counter() - t0:.0f}s, {span_days:.1f} simulated days: "
                + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])) + "\n")


def rotated_copies(folder: str, layouts: list[tuple[str, str]], env: dict) -> list[tuple[str, str]]:
    """Copies of the states whose journal ``journal rotate`` moved into a gzip file (made once, then reused)."""
    made = []
    target_dir = os.path.join(folder, "rotated")
    os.makedirs(target_dir, exist_ok=True)
    for label, path in layouts:
        target = os.path.join(target_dir, os.path.basename(path))
        if not os.path.exists(target):
            for suffix in ("", "-wal", ".journal"):
                if os.path.exists(path + suffix):
                    shutil.copy2(path + suffix, target + suffix)
            wall, _, out, _ = run_child([LICTOOLS, "--state", target, "--format", "json", "journal", "rotate"], env)
            done = json.loads(out)
            print(f"{label}: journal rotate moved {done['events']:,} events in {wall:.1f}s "
                  f"({done['bytes'] / 2**20:.0f} MiB compressed)")
        made.append((f"{label} (rotated)", target))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mix", choices=["realistic", "churn"], default="realistic",
                        help="realistic: mostly refreshes, as hooks write them; churn: no refreshes (worst case)")
    parser.add_argument("--keep", metavar="DIR", help="Keep the generated states in DIR and reuse them next time.")
    parser.add_argument("--rotated", action="store_true",
                        help="Also report from copies whose whole journal was first moved into gzip files (journal rotate).")
    parser.add_argument("--generate", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_into(args.generate, args.events, args.mix)
        return

    folder = os.path.join(args.keep or tempfile.mkdtemp(prefix="lictools-report-bench-"), f"{args.mix}-{args.events}")
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, f"generated-{args.mix}-{args.events}")
    db_path, json_path = os.path.join(folder, "state.db"), os.path.join(folder, "state.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICTOOLS_") and k != "PYTHONDONTWRITEBYTECODE"}
    print(f"# report / metrics benchmark ({args.events:,} events, {args.mix} mix, {args.runs} runs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]})")
    try:
        if not os.path.exists(marker):
            for name in ("state.db", "state.json", "state.json.journal"):
                if os.path.exists(os.path.join(folder, name)):
                    os.unlink(os.path.join(folder, name))
            subprocess.run([PY, __file__, "--generate", folder, "--events", str(args.events), "--mix", args.mix],
                           check=True)
        with open(marker) as f:
            print(f.read().strip())
        print(f"state.db {os.path.getsize(db_path) / 2**20:.0f} MiB, "
              f"state.json.journal {os.path.getsize(json_path + '.journal') / 2**20:.0f} MiB\n")

        print("| layout | command | median s | events/s | events/CPU-s | peak RSS MB | goal >= 200,000/s, < 200 MB |")
        print("|---|---|---|---|---|---|---|")
        layouts = [("state.db", db_path), ("state.json", json_path)]
        if args.rotated:
            layouts += rotated_copies(folder, layouts, env)
        for label, path in layouts:
            for extra in ([], ["--by", "day"], ["--by", "user"], ["--html", os.path.join(folder, "r.html")]):
                cmd = [LICTOOLS, "--state", path, "--format", "json", "report", *extra]
                walls, rss, cpus = [], [], []
                for _ in range(args.runs):
                    wall, mb, _, cpu = run_child(cmd, env)
                    walls.append(wall)
                    rss.append(mb)
                    cpus.append(cpu)
                m = statistics.median(walls)
                rate = args.events / m
                ok = "ok" if rate >= 200_000 and max(rss) < 200 else "MISSED"
                print(f"| {label} | report {' '.join(extra).replace(folder + '/', '')} | {m:.2f} | {rate:,.0f} "
                      f"| {args.events / statistics.median(cpus):,.0f} | {max(rss):.0f} | {ok} |")

        floor, metrics, info = [], [], []
        metrics_cmd = [LICTOOLS, "--state", db_path, "metrics"]
        info_cmd = [LICTOOLS, "--state", db_path, "--format", "json", "info"]
        run_child(metrics_cmd, env)  # warm-up: the first run counts every denial and fills the cache
        variants = (("floor", FLOOR, floor), ("metrics", metrics_cmd, metrics), ("info", info_cmd, info))
        for i in range(max(args.runs * 6, 21)):
            for _, cmd, bucket in variants[:: 1 if i % 2 else -1]:
                bucket.append(run_child(cmd, env)[0])
        f, m, n = statistics.median(floor), statistics.median(metrics), statistics.median(info)
        sessions = sqlite3.connect(db_path).execute("SELECT count(*) FROM sessions").fetchone()[0]
        print("\n| what | median ms | vs floor | goal |\n|---|---|---|---|")
        print(f"| floor `python -c \"import click, filelock, platformdirs\"` | {f * 1000:.1f} | 1.00x | |")
        print(f"| `lictools metrics` (state.db: {sessions} live sessions, {args.events:,} events) | {m * 1000:.1f} "
              f"| {m / f:.2f}x | <= 1.2x: {'ok' if m / f <= 1.2 else 'MISSED'} |")
        print(f"| `lictools --format json info` (same state; what metrics reads) | {n * 1000:.1f} | {n / f:.2f}x | |")
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            shutil.rmtree(os.path.dirname(folder), ignore_errors=True)


if __name__ == "__main__":
    main()
