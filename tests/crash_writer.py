"""The writer the crash harness kills (tests/test_crash.py): random operations through the engine.

    python tests/crash_writer.py STATE SEED OPS      # one writer
    python tests/crash_writer.py --server STATE      # a fork server: "RUN SEED" forks a writer
    python tests/crash_writer.py --setup STATE       # create the pools

Each operation is one store transaction, opened like the CLI opens it (``open_store(path)
.transaction()``, expired leases reaped first). The operation and its target are chosen from what
the previous transaction saw; the writer prints ``TRY <op> <target> #<n>`` before it opens the
store, and ``ACK <op> <target> <result> #<n>`` after the transaction committed (an operation
with nothing to act on is only acknowledged, as ``noop``). Every line is flushed at once,
so a SIGKILL leaves in the pipe exactly what happened: an operation with an ``ACK`` has landed; the
one ``TRY`` without an ``ACK`` may or may not have landed (killed before or after its commit).

The fork server imports lictools once and forks a writer per ``RUN SEED`` line on its stdin, so
a writer starts in a millisecond instead of the 60 ms of a fresh interpreter (more crashes in
the same time); each writer is still its own process, killed by the harness with SIGKILL. The
writers print on the server's stdout (one ``write`` per line, atomic on a pipe); ``WAIT PID``
makes the server reap the killed writer and print ``EXIT PID STATUS`` after everything it wrote.

Operations: ``acquire`` (lease 0, random user/host/project in one of the pools the harness set up),
``release``, ``refresh``, ``detach`` (kept for the pool's linger, or ended at linger 0),
``reserve`` (only reservations the current usage fits, see SKIP_RESERVATIONS_OVER_USAGE),
``share`` (pool-set of a random ``share=``), ``license-add`` and ``license-remove`` (never below
the seats in use).
"""

from __future__ import annotations

import os
import random
import sys

from lictools.admission import shared_used

HERE = os.path.dirname(os.path.abspath(__file__))

POOLS = {
    # name: (issued f seats, options)
    "ps": (4, {"share": "user,host", "linger": "1", "lease": "0"}),
    "pn": (3, {"share": "", "linger": "0", "lease": "0"}),
    "pr": (5, {"share": "user", "linger": "2", "lease": "0"}),
}
RESERVATIONS = {"pr": {"pa": 1}}
USERS = ("u1", "u2", "u3", "u4", "u5")
HOSTS = ("h1", "h2", "h3")
PROJECTS = (None, None, "pa", "pb")
SHARES = ("", "user", "host", "user,host", "project", "user,project")
WEIGHTS = {
    "acquire": 40,
    "release": 22,
    "refresh": 10,
    "detach": 10,
    "reserve": 6,
    "share": 3,
    "license-add": 3,
    "license-remove": 3,
}
MAX_LIVE = 40

SKIP_RESERVATIONS_OVER_USAGE = True
"""Make only reservations the current usage fits. One it does not fit evicts nobody, so the shared
use then stands above the new cap until sessions end; the harness checks that cap at the end and
would count that as oversold, while the property tests (tests/test_properties.py) check the real
rule step by step: no grant ever raises the shared use above the cap, nor seats above issued."""


def setup(path: str) -> None:
    """Create the pools (called by the harness before the first writer)."""
    from lictools import engine
    from lictools.stores import open_store

    with open_store(path, 10).transaction() as tx:
        for name, (seats, options) in POOLS.items():
            engine.add_pool(tx, name, "generic", {"f": seats}, dict(options))
        for pool, per_project in RESERVATIONS.items():
            for project, count in per_project.items():
                engine.reserve(tx, pool, project, "f", count)




def serve(path: str) -> int:
    """The fork server (see the module docstring)."""
    import lictools.engine  # noqa: F401  (imported once, before the forks)
    import lictools.stores.jsonfile  # noqa: F401
    import lictools.stores.sqlite  # noqa: F401

    sys.stdout.write("SERVER READY\n")
    sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["RUN"]:
            pid = os.fork()
            if pid == 0:
                try:
                    main([path, words[1], "1000000000"])
                finally:
                    os._exit(0)
        elif words[:1] == ["WAIT"]:
            pid, status = os.waitpid(int(words[1]), 0)
            sys.stdout.write(f"EXIT {pid} {status}\n")
            sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    path, seed, ops = argv[0], int(argv[1]), int(argv[2])
    from lictools import engine
    from lictools.errors import UsageError
    from lictools.model import Request
    from lictools.stores import open_store

    rng = random.Random(seed)
    out = sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    # what the last transaction saw: the targets of the next operation are chosen from it
    with open_store(path, 10).transaction() as tx:
        live = [(s.id, s.detached) for s in tx.find_sessions()]
        extras = {p.name: [lic.serial for lic in p.licenses if lic.serial.startswith("x")] for p in tx.list_pools()}
    say(f"READY {os.getpid()}")
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    for n in range(ops):
        kind = rng.choices(kinds, weights)[0]
        if len(live) > MAX_LIVE and kind == "acquire":
            kind = "release"
        pool_name = rng.choice(sorted(POOLS))
        target = "-"
        if kind == "acquire":
            target = f"w{seed}x{n}"
        elif kind in ("release", "refresh", "detach"):
            candidates = [sid for sid, detached in live if kind == "release" or not detached]
            target = rng.choice(candidates) if candidates else "-"
        elif kind == "reserve":
            target = f"{pool_name}/{rng.choice(('pa', 'pb'))}={rng.randint(0, 2)}"
        elif kind == "share":
            target = f"{pool_name}/share={rng.choice(SHARES)}"
        elif kind == "license-add":
            target = f"{pool_name}/x{seed}-{n}"
        elif kind == "license-remove" and extras.get(pool_name):
            target = f"{pool_name}/{rng.choice(extras[pool_name])}"
        result = "noop"
        if target != "-":
            say(f"TRY {kind} {target} #{n}")  # from here until ACK, a kill leaves it in flight
        with open_store(path, 10).transaction() as tx:
            engine.reap(tx)
            if target == "-":
                pass
            elif kind == "acquire":
                request = Request(
                    pool=pool_name, feature="f", session=target, user=rng.choice(USERS), host=rng.choice(HOSTS),
                    node="n1", project=rng.choice(PROJECTS), lease=0,
                )
                outcome = engine.acquire(tx, request)
                result = ("shared" if outcome.shared else "granted") if outcome.granted else "denied"
                result += f" {pool_name} {outcome.seat.replace(' ', '_') or '-'}"
            elif kind in ("release", "refresh", "detach"):
                session = tx.get_session(target)
                if session is None or (kind != "release" and session.detached):
                    result = "skipped"  # expired since (a detached session whose linger ended)
                elif kind == "release":
                    engine.release(tx, [target], actor="crash-writer")
                    result = "released"
                elif kind == "refresh":
                    engine.refresh(tx, [target])
                    result = "refreshed"
                else:
                    engine.detach(tx, [target])
                    result = "detached" if tx.get_session(target) else "ended"
            elif kind == "reserve":
                project, count = target.split("/")[1].split("=")
                count = int(count)
                pool = tx.get_pool(pool_name)
                reserved = {**pool.reserved("f"), project: count}
                reserved = {p: c for p, c in reserved.items() if c}
                usage = tx.seats_by_project(pool_name, "f")
                if SKIP_RESERVATIONS_OVER_USAGE and shared_used(usage, reserved) > pool.issued("f") - sum(reserved.values()):
                    result = "skipped"
                else:
                    try:
                        engine.reserve(tx, pool_name, project, "f", count)
                        result = "reserved"
                    except UsageError:
                        result = "refused"
            elif kind == "share":
                engine.set_pool_options(tx, pool_name, {"share": target.split("=", 1)[1]})
                result = "set"
            elif kind == "license-add":
                if tx.get_pool(pool_name).issued("f") < POOLS[pool_name][0] + 3:
                    engine.add_license(tx, pool_name, "f", 1, serial=target.split("/")[1])
                    result = "loaded"
                else:
                    result = "skipped"
            elif kind == "license-remove":
                serial = target.split("/")[1]
                pool = tx.get_pool(pool_name)
                usage = tx.seats_by_project(pool_name, "f")
                reserved = pool.reserved("f")
                count = sum(lic.count for lic in pool.licenses if lic.serial == serial)
                issued = pool.issued("f") - count
                if not count or sum(usage.values()) > issued or shared_used(usage, reserved) > issued - sum(reserved.values()):
                    result = "skipped"
                else:
                    try:
                        engine.remove_license(tx, pool_name, serial)
                        result = "removed"
                    except UsageError:
                        result = "refused"
            live = [(s.id, s.detached) for s in tx.find_sessions()]
            extras = {p.name: [lic.serial for lic in p.licenses if lic.serial.startswith("x")] for p in tx.list_pools()}
        say(f"ACK {kind} {target} {result} #{n}")
    say("DONE")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--setup":
        setup(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--server":
        sys.exit(serve(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
