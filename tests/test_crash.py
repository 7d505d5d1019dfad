"""Crash harness: writers killed with SIGKILL at random moments, for both state layouts.

tests/crash_writer.py runs random operations through the engine (one store transaction each,
like the CLI) and prints ``TRY`` inside the transaction and ``ACK`` after its commit. This test
starts it, waits until it runs, kills it with SIGKILL after a random few to 100 ms, and starts it
again, over and over. After every crash it checks:

- the state loads (no DamagedStateError, exit 6);
- the journal since the last crash holds exactly the events of the acknowledged operations, in
  order (plus ``expire`` events of detached sessions reaped on the way, and the ``recharge`` of a seat
  whose charged project's last session an operation ended), then at most the events of
  the one operation that was in flight: that is how we know whether it landed;
- the JSON layout's uncommitted journal tail (bytes beyond ``journal_bytes``), when there is one,
  belongs to that in-flight operation, which did not land;
- the live sessions are exactly those the acknowledged (and landed in-flight) operations left:
  every acknowledged grant whose release was not acknowledged is present (lost = 0), and no
  session exists that nobody was granted;
- seats in use <= issued for every pool feature, and shared seats used <= issued - reservations
  (oversold = 0), unless the journal audit finds the excess was forced (a grouped seat kept by clients
  of projects without a free reserved seat after its charged project left: lictools-products(7));
- every few crashes and at the end: replaying the journal gives the state (replay.compare == []),
  with no grant the counting rules would have refused.

The numbers go to stdout (``pytest -s``) and to ``crash-stats.json`` in the test's tmp dir.
Bounded in time: LICTOOLS_CRASH_SECONDS per layout (default 12; at least MIN_CRASHES crashes
are run), LICTOOLS_CRASHES crashes at most (default 400); the seed is fixed per commit (tests/seeds.py)
and LICTOOLS_CRASH_SEED replays another run (kill times still vary with the machine's speed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from lictools import replay
from lictools.cli.main import run
from lictools.stores import open_store
from tests.seeds import commit_seed

HERE = Path(__file__).resolve().parent
WRITER = HERE / "crash_writer.py"
SECONDS = float(os.environ.get("LICTOOLS_CRASH_SECONDS", "12"))
MAX_CRASHES = int(os.environ.get("LICTOOLS_CRASHES", "400"))
MIN_CRASHES = min(100, MAX_CRASHES)


def _crash_dir(tmp_path: Path) -> Path:
    """Where the states live: tmpfs when there is one (LICTOOLS_CRASH_DIR overrides).

    SIGKILL kills the process, not the machine: what a process wrote is in the page cache and
    survives it whether or not it was fsynced, so a disk adds only fsync time (about 25 ms per
    operation on the CI disk, against 3 ms on tmpfs), that is fewer operations per crash.
    """
    base = os.environ.get("LICTOOLS_CRASH_DIR") or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else "")
    if not base:
        return tmp_path
    import tempfile

    return Path(tempfile.mkdtemp(prefix="lictools-crash-", dir=base))


@dataclass
class Stats:
    layout: str
    operations_acknowledged: int = 0
    operations_tried: int = 0
    crashes: int = 0
    in_flight_landed: int = 0
    in_flight_not_landed: int = 0
    uncommitted_tails_seen: int = 0
    journal_events: int = 0
    grants_acknowledged: int = 0
    lost_grants: int = 0
    phantom_sessions: int = 0
    oversold: int = 0
    replay_checks: int = 0
    replay_differences: int = 0
    final_live_sessions: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def _writer_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LICTOOLS_NOW", None)  # the real clock: detached sessions expire after their linger
    return env


RIDE_ALONG = ("expire", "recharge")
"""Events a transaction may add besides its operation's own: a reap, and the recharge after an end."""


def _parse(line: str) -> tuple[str, str, str, str]:
    """``TRY op target #n`` / ``ACK op target result... #n`` -> (verb, op, target, result)."""
    parts = line.split()
    verb, op, target = parts[0], parts[1], parts[2]
    result = " ".join(parts[3:-1]) if verb == "ACK" else ""
    return verb, op, target, result


def _expected_kinds(op: str, result: str | None) -> tuple[str, ...]:
    """Journal events an operation leaves: () when it changed nothing."""
    first = (result or "").split(" ")[0]
    if op == "acquire":
        return {"granted": ("grant",), "shared": ("share",), "denied": ("deny",)}.get(first, ("grant", "share", "deny"))
    if result is not None and first in ("noop", "skipped", "refused"):
        return ()
    return {
        "release": ("release",), "refresh": ("refresh",), "detach": ("detach",), "reserve": ("reserve",),
        "share": ("pool-set",), "license-add": ("license-add",), "license-remove": ("license-remove",),
    }[op]


def _matches(op: str, target: str, result: str | None, event: dict) -> bool:
    kinds = _expected_kinds(op, result)
    if event.get("event") not in kinds:
        return False
    if op in ("acquire", "release", "refresh", "detach"):
        if event.get("session") != target:
            return False
        if op == "detach" and result in ("detached", "ended"):
            return ("expires" in event) == (result == "detached")
        return True
    if op == "reserve":
        return f"{event['pool']}/{event['project']}={event['count']}" == target
    if op == "share":
        return f"{event['pool']}/share={event['options'].get('share', '')}" == target
    return f"{event['pool']}/{event['serial']}" == target


class Harness:
    """Keeps what the writers acknowledged and checks the state after every crash."""

    def __init__(self, path: Path, stats: Stats) -> None:
        self.path = str(path)
        self.errors = str(path) + ".writer-stderr"
        self.store = open_store(self.path, 10)
        self.stats = stats
        self.seq = 0
        # session -> detached? for the sessions the journal (aligned with the ACKs) says are live
        self.expected: dict[str, bool] = {}
        # acknowledged grants not (acknowledged or landed) ended; value: detached?
        self.acked_live: dict[str, bool] = {}
        self.expired: set[str] = set()
        self.crash_index = 0
        # operations that did not land since the last commit: the JSON tail can only be theirs
        self.unlanded: list[tuple[str, str]] = []

    def fail(self, message: str) -> None:
        self.stats.failures.append(f"crash {self.crash_index}: {message}")

    # -- one writer life ----------------------------------------------------------------
    def start_server(self) -> None:
        """The fork server: imports lictools once, forks one writer process per crash cycle."""
        with open(self.errors, "ab") as err:
            self.server = subprocess.Popen(
                [sys.executable, str(WRITER), "--server", self.path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=_writer_env(),
            )
        self._expect("SERVER READY")

    def stop_server(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=10)
        self.server.stdout.close()

    def _send(self, line: str) -> None:
        self.server.stdin.write(line.encode() + b"\n")
        self.server.stdin.flush()

    def _line(self) -> str:
        line = self.server.stdout.readline().decode()
        if not line:
            raise AssertionError(f"the writer server died: {Path(self.errors).read_text()[-3000:]}")
        return line.rstrip("\n")

    def _expect(self, prefix: str) -> str:
        line = self._line()
        if not line.startswith(prefix):
            raise AssertionError(f"expected {prefix!r} from the writer, got {line!r}")
        return line

    def cycle(self, rng: random.Random, seed: int) -> None:
        """Fork a writer, let it run a few to 100 ms, SIGKILL it, collect what it printed."""
        self.crash_index += 1
        self._send(f"RUN {seed}")
        pid = int(self._expect("READY").split()[1])
        time.sleep(rng.uniform(0.002, 0.1))
        os.kill(pid, signal.SIGKILL)
        self._send(f"WAIT {pid}")
        lines = []
        while True:
            line = self._line()
            if line.startswith(f"EXIT {pid} "):
                status = int(line.split()[2])
                break
            lines.append(line)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            raise AssertionError(f"writer {pid} ended by itself ({status}): {Path(self.errors).read_text()[-3000:]}")
        self.stats.crashes += 1
        self.after_crash(lines)

    # -- checks after a crash -------------------------------------------------------------
    def after_crash(self, lines: list[str]) -> None:
        acked: list[tuple[str, str, str]] = []
        in_flight: tuple[str, str] | None = None
        for line in lines:
            if not line.strip() or line == "DONE":
                continue
            verb, op, target, result = _parse(line)
            if verb == "TRY":
                in_flight = (op, target)
                self.stats.operations_tried += 1
            else:
                acked.append((op, target, result))
                if in_flight and in_flight != (op, target):
                    self.fail(f"ACK {op} {target} after TRY {in_flight}")
                if in_flight is None:
                    self.stats.operations_tried += 1  # a no-op acknowledged without TRY
                in_flight = None
        self.stats.operations_acknowledged += len(acked)

        # the state loads, and the journal since the last crash lines up with the ACKs
        try:
            with self.store.transaction() as tx:
                new = list(self.store.read_journal(self.seq))
                pools = tx.list_pools()
                sessions = {s.id: s for s in tx.find_sessions()}
                usage = {(p.name, f): tx.seats_by_project(p.name, f) for p in pools for f in ("f",)}
        except Exception as exc:  # DamagedStateError or worse: the state does not load
            self.fail(f"state does not load: {type(exc).__name__}: {exc}")
            return
        if new:
            self.seq = new[-1]["seq"]
        self.stats.journal_events += len(new)
        landed = self.align(acked, in_flight, new)
        if new:
            self.unlanded = []  # a commit cut any older uncommitted tail
        if in_flight is not None and not landed:
            self.unlanded.append(in_flight)

        # the JSON layout's tail beyond journal_bytes: from the last in-flight operation that did
        # not land (no commit since, or it would have been cut)
        tail, partial = replay.pending_events(self.store)
        if tail or partial:
            self.stats.uncommitted_tails_seen += 1
            own = [ev for ev in tail if ev.get("event") not in RIDE_ALONG]
            if own and not any(all(_matches(*op, None, ev) for ev in own) for op in self.unlanded):
                self.fail(f"uncommitted journal tail {tail} is not from an operation that did not land {self.unlanded}")
        for event in new:  # the sessions the journal says are live, now that it matches the ACKs
            kind, sid = event["event"], event.get("session")
            if kind in ("grant", "share"):
                self.expected[sid] = False
            elif kind in ("release", "expire", "remove") or (kind == "detach" and "expires" not in event):
                self.expected.pop(sid, None)
            elif kind == "detach":
                self.expected[sid] = True

        # live sessions: exactly what acknowledged and landed operations left
        for sid, detached in list(self.acked_live.items()):
            if sid not in sessions:
                if detached and sid in self.expired:
                    del self.acked_live[sid]
                    continue
                self.stats.lost_grants += 1
                self.fail(f"acknowledged grant {sid} is missing from the state")
                del self.acked_live[sid]
        for sid in sessions.keys() - self.expected.keys():
            self.stats.phantom_sessions += 1
            self.fail(f"session {sid} is in the state but no landed grant made it")
        for sid in self.expected.keys() - sessions.keys():
            self.fail(f"session {sid} should be live (journal and ACKs) but is not in the state")
        for sid in self.expected.keys() & sessions.keys():
            if self.expected[sid] != sessions[sid].detached:
                self.fail(f"session {sid}: detached {sessions[sid].detached} in the state, {self.expected[sid]} by the journal")

        # seats: never more than issued, shared never beyond issued - reservations
        for pool in pools:
            for (name, feature), per_project in usage.items():
                if name != pool.name:
                    continue
                issued, reserved = pool.issued(feature), pool.reserved(feature)
                in_use = sum(per_project.values())
                cap = issued - sum(reserved.values())
                over_shared = replay.shared_used(per_project, reserved) > max(0, cap)
                if in_use > issued or (over_shared and self._audit_violations()):
                    self.stats.oversold += 1
                    self.fail(f"{name}/{feature}: {in_use} seats in use ({per_project}), issued {issued}, reserved {reserved}")

    def align(self, acked: list[tuple[str, str, str]], in_flight: tuple[str, str] | None, new: list[dict]) -> bool:
        """Match the new events with the acknowledged operations; decide if the in-flight one landed."""
        ops = [e for e in new if e["event"] not in RIDE_ALONG]
        i = 0
        for op, target, result in acked:
            kinds = _expected_kinds(op, result)
            if not kinds:
                continue
            if i >= len(ops) or not _matches(op, target, result, ops[i]):
                self.fail(f"acknowledged {op} {target} ({result}) has no journal event (next: {ops[i:i + 1]}); "
                          f"acknowledged: {acked}; in flight: {in_flight}; new events: {new}")
                return False
            i += 1
            self.apply_ack(op, target, result)
        landed = False
        if in_flight is not None:
            rest = ops[i:]
            if len(rest) == 1 and _matches(*in_flight, None, rest[0]):
                landed = True
                i += 1
            if landed:
                self.stats.in_flight_landed += 1
                self.apply_landed(*in_flight, rest[0])
            else:
                self.stats.in_flight_not_landed += 1
        if i != len(ops):
            self.fail(f"journal events nobody acknowledged or tried: {ops[i:]}")
        for event in new:
            if event["event"] == "expire":
                self.expired.add(event["session"])
                if event["session"] in self.acked_live and not self.acked_live[event["session"]]:
                    self.fail(f"session {event['session']} (lease 0, not detached) expired: {event}")
        return landed

    def apply_ack(self, op: str, target: str, result: str) -> None:
        first = result.split(" ")[0]
        if op == "acquire" and first in ("granted", "shared"):
            self.stats.grants_acknowledged += 1
            self.acked_live[target] = False
        elif op == "release" or (op == "detach" and result == "ended"):
            self.acked_live.pop(target, None)
        elif op == "detach" and target in self.acked_live:
            self.acked_live[target] = True

    def apply_landed(self, op: str, target: str, event: dict) -> None:
        """The in-flight operation landed: its caller never heard, but the state changed."""
        if op == "release" or (op == "detach" and "expires" not in event):
            self.acked_live.pop(target, None)
        elif op == "detach" and target in self.acked_live:
            self.acked_live[target] = True

    def _audit_violations(self) -> list[str]:
        """The journal audit's violations (the reservation invariant among them)."""
        violations = replay.replay(list(self.store.read_journal())).violations
        for v in violations[:5]:
            self.fail(f"audit: {v}")
        return violations

    def replay_check(self) -> None:
        diffs = replay.compare(self.store)
        self.stats.replay_checks += 1
        self.stats.replay_differences += len(diffs)
        for d in diffs[:20]:
            self.fail(f"replay: {d}")
        if any("oversold" in d for d in diffs):
            self.stats.oversold += sum("oversold" in d for d in diffs)


def run_layout(base: Path, layout: str, seconds: float, seed: int) -> Stats:
    stats = Stats(layout)
    path = base / layout / f"state.{layout}"
    path.parent.mkdir(parents=True)
    subprocess.run([sys.executable, str(WRITER), "--setup", str(path)], check=True, env=_writer_env())
    harness = Harness(path, stats)
    harness.seq = max((e["seq"] for e in harness.store.read_journal()), default=0)  # the setup's events
    rng = random.Random(seed)
    start = time.monotonic()
    harness.start_server()
    try:
        while stats.crashes < MAX_CRASHES and (time.monotonic() - start < seconds or stats.crashes < MIN_CRASHES):
            harness.cycle(rng, rng.randrange(1 << 30))
            if stats.crashes % 25 == 0:
                harness.replay_check()
            if stats.failures:
                break
    finally:
        harness.stop_server()
    harness.replay_check()
    # the state loads through the CLI too (no exit 6) and info shows every pool
    with contextlib.redirect_stdout(io.StringIO()):
        code = run(["--state", str(path), "--format", "json", "info"])
    if code != 0:
        stats.failures.append(f"lictools info exits {code} after the crashes")
    stats.final_live_sessions = len(harness.expected)
    stats.seconds = round(time.monotonic() - start, 2)
    return stats


def test_crash_harness(tmp_path, capsys):
    seed = int(os.environ.get("LICTOOLS_CRASH_SEED", commit_seed()))  # the same kill times for a commit
    all_stats = []
    base = _crash_dir(tmp_path)
    try:
        for layout in ("db", "json"):
            all_stats.append(run_layout(base, layout, SECONDS, seed))
    finally:
        if base != tmp_path:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    totals = {
        "seed": seed,
        "state_dir": str(base),
        "operations_acknowledged": sum(s.operations_acknowledged for s in all_stats),
        "operations_tried": sum(s.operations_tried for s in all_stats),
        "crashes": sum(s.crashes for s in all_stats),
        "lost_grants": sum(s.lost_grants for s in all_stats),
        "oversold": sum(s.oversold for s in all_stats),
        "layouts": [asdict(s) for s in all_stats],
    }
    report = tmp_path / "crash-stats.json"
    report.write_text(json.dumps(totals, indent=1))
    with capsys.disabled():
        print()
        for s in all_stats:
            print(
                f"crash harness [{s.layout}]: {s.operations_acknowledged} operations acknowledged "
                f"({s.operations_tried} tried), {s.crashes} crashes (in flight: {s.in_flight_landed} landed, "
                f"{s.in_flight_not_landed} not), {s.uncommitted_tails_seen} uncommitted journal tails, "
                f"{s.journal_events} journal events, {s.grants_acknowledged} grants acknowledged, "
                f"lost grants {s.lost_grants}, phantom sessions {s.phantom_sessions}, oversold {s.oversold}, "
                f"replay checks {s.replay_checks} (differences {s.replay_differences}), {s.seconds} s"
            )
        print(f"crash harness totals: {json.dumps({k: v for k, v in totals.items() if k != 'layouts'})} -> {report}")
    failures = [f for s in all_stats for f in s.failures]
    assert not failures, f"crash seed {seed} (LICTOOLS_CRASH_SEED={seed} replays it)\n" + "\n".join(failures[:30])
    assert totals["crashes"] >= 2 * MIN_CRASHES
    assert totals["lost_grants"] == 0 and totals["oversold"] == 0
    assert all(s.operations_acknowledged > 0 for s in all_stats)
