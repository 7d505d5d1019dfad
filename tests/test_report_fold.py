"""The usage fold against a reference computed another way: random days driven through the real
engine, with the seats in use read from the state after every command (not from the journal) and
true denials found by brute force over every grant."""

from __future__ import annotations

import random

import pytest

from lictools import engine
from lictools.model import Request
from lictools.reports.usage import UsageFold
from lictools.stores.memory import MemoryTransaction, empty_document

T0 = 1_795_046_400.0
WINDOW = 300.0
FEATURES = {"cad": "solver", "web": "web"}


def simulate(seed: int, steps: int = 400):
    """Returns (events, levels, requests): ``levels[(pool, feature)]`` = [(t, in use, reserved unused)]
    read from the state after each command; ``requests`` = [(t, pool, feature, user, kind)]."""
    rng = random.Random(seed)
    tx = MemoryTransaction(empty_document(), T0)
    engine.add_pool(tx, "cad", "generic", {"solver": 3}, {"share": "user", "lease": "0"})
    engine.add_pool(tx, "web", "magic-xpa", {"web": 3}, {"lease": "0"})
    engine.reserve(tx, "web", "alpha", "web", 1)
    levels = {(p, f): [] for p, f in FEATURES.items()}
    requests = []

    def record(t: float) -> None:
        for pool, feature in FEATURES.items():
            pl = tx.get_pool(pool)
            usage = tx.seats_by_project(pool, feature)
            unused = sum(max(0, r - usage.get(p, 0)) for p, r in pl.reserved(feature).items())
            levels[(pool, feature)].append((t, sum(usage.values()), unused))

    record(T0)
    t = T0
    live: list[str] = []
    for i in range(steps):
        t += rng.choice([1, 30, 60, 120, 240, 299, 300, 301, 900])
        tx.now = t
        if live and rng.random() < 0.4:
            sid = live.pop(rng.randrange(len(live)))
            engine.release(tx, [sid])
        else:
            pool = rng.choice(list(FEATURES))
            user = rng.choice(["ann", "bob", "cy", "dee", "eve"])
            request = Request(pool=pool, feature=FEATURES[pool], session=f"s{i}", user=user,
                              host=rng.choice(["h1", "h2", "h3", "h4"]), node="n",
                              project=rng.choice(["alpha", "beta"]) if pool == "web" else None)
            outcome = engine.acquire(tx, request)
            kind = "deny" if not outcome.granted else ("share" if outcome.shared else "grant")
            requests.append((t, pool, FEATURES[pool], user, kind))
            if outcome.granted:
                live.append(request.session)
        record(t)
    return tx.events, levels, requests, t


def reference(levels, requests, pool, feature, since, until):
    """Peak, peak time, seat-seconds, reserved-unused seconds and request counts over [since, until]."""
    series = levels[(pool, feature)]
    at_since = [lv for lv in series if lv[0] <= since][-1]
    peak, peak_at = at_since[1], (since if at_since[1] else None)
    seat_s = unused_s = 0.0
    points = [(since, at_since[1], at_since[2])] + [lv for lv in series if since < lv[0] <= until]
    for (t, n, u), nxt in zip(points, points[1:] + [(until, None, None)]):
        seat_s += n * (nxt[0] - t)
        unused_s += u * (nxt[0] - t)
        if n > peak:
            peak, peak_at = n, t
    mine = [r for r in requests if r[1] == pool and since <= r[0] <= until]
    denials = [r for r in mine if r[4] == "deny"]
    served = [r for r in requests if r[1] == pool and r[4] != "deny"]
    true = [d for d in denials if not any(s[3] == d[3] and 0 <= s[0] - d[0] <= WINDOW for s in served)]
    counts = {k: sum(1 for r in mine if r[4] == k) for k in ("grant", "share")}
    return {"peak": peak, "peak_at": peak_at, "seat_s": seat_s, "unused_s": unused_s, "grants": counts["grant"],
            "shares": counts["share"], "denials": len(denials), "true_denials": len(true)}


@pytest.mark.parametrize("seed", range(8))
def test_fold_matches_the_state_and_a_brute_force_count(seed):
    events, levels, requests, end = simulate(seed)
    rng = random.Random(1000 + seed)
    since = T0 + rng.uniform(0, (end - T0) / 2)
    until = since + rng.uniform((end - since) / 4, end - since + 3600)
    fold = UsageFold(since, until, retry_window=WINDOW).feed(events).finish()
    rows = {(r["pool"], r["feature"]): r for r in fold.rows()}
    for pool, feature in FEATURES.items():
        want = reference(levels, requests, pool, feature, since, until)
        got = fold.lines[(pool, feature)].rows[0]
        assert (got.peak, got.peak_at) == (want["peak"], want["peak_at"]), (pool, seed)
        assert got.seat_seconds == pytest.approx(want["seat_s"], abs=1e-6), (pool, seed)
        assert got.unused_seconds == pytest.approx(want["unused_s"], abs=1e-6), (pool, seed)
        row = rows[(pool, feature)]
        assert {k: row[k] for k in ("grants", "shares", "denials", "true_denials")} == {
            k: want[k] for k in ("grants", "shares", "denials", "true_denials")}, (pool, seed)
        assert row["issued"] == 3
        assert row["utilisation"] == round(want["seat_s"] / (3 * (until - since)), 4)


@pytest.mark.parametrize("seed", range(4))
def test_groups_add_up_to_the_pool_and_buckets_to_the_window(seed):
    events, levels, requests, end = simulate(seed)
    since, until = T0, end + 600
    whole = {(r["pool"], r["feature"]): r for r in UsageFold(since, until).feed(events).finish().rows()}
    for by in ("user", "host", "project", "hour"):
        rows = UsageFold(since, until, by=by).feed(events).finish().rows()
        for key, total in whole.items():
            part = [r for r in rows if (r["pool"], r["feature"]) == key]
            for name in ("seat_hours", "grants", "shares", "denials", "true_denials"):
                assert sum(r[name] for r in part) == pytest.approx(total[name], abs=1e-3 * max(1, len(part))), (by, name)
            assert max(r["peak"] for r in part) <= total["peak"]
            if by == "hour":
                assert max(r["peak"] for r in part) == total["peak"]


def test_a_recharge_moves_the_seat_to_its_new_project():
    """Journal version 2 (main's engine) follows the end of a seat's last session of its project by a
    ``recharge`` when sessions of other projects still hold it; the fold charges the seat anew."""
    from lictools.timeutil import iso

    H = 3600.0
    tx = MemoryTransaction(empty_document(), T0)
    engine.add_pool(tx, "magic", "magic-xpa", {"web": 3}, {"lease": "0"})
    engine.reserve(tx, "magic", "alpha", "web", 2)
    tx.now = T0 + H
    for user, project in (("alice", "alpha"), ("bob", "beta")):  # one machine: bob shares alice's seat
        engine.acquire(tx, Request(pool="magic", feature="web", session=user, user=user, host="h1", node="n",
                                   project=project))
    seat = tx.events[-1]["seat"]
    tx.now = T0 + 2 * H
    engine.release(tx, ["alice"])
    events = list(tx.events)
    # as lictools.events.Recharge (journal version 2) writes it
    events.append({"v": 2, "event": "recharge", "time": iso(tx.now), "ts": tx.now, "pool": "magic",
                   "feature": "web", "seat": seat, "seat_project": "beta", "previous_project": "alpha",
                   "reason": "the last session of project alpha ended"})
    tx.events = []
    tx.now = T0 + 3 * H
    engine.release(tx, ["bob"])
    events += tx.events
    fold = UsageFold(T0, T0 + 4 * H, by="project").feed(events).finish()
    # alpha's 2 reserved seats: both unused [0,1h), one [1h,2h), both again from the recharge at 2h
    assert fold.lines[("magic", "web")].rows[0].unused_seconds == (2 + 1 + 2 * 2) * H
    rows = {r["group"]: r for r in fold.rows()}
    assert (rows["alpha"]["seat_hours"], rows["alpha"]["reserved_unused_hours"]) == (1.0, 7.0)
    assert (rows["beta"]["seat_hours"], rows["beta"]["peak"], rows["beta"]["peak_at"]) == (1.0, 1, iso(T0 + 2 * H))
