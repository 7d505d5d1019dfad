"""The engine's logic, called directly, against every store (one contract suite)."""

from __future__ import annotations

import os
import subprocess

import pytest

from lictools import engine
from lictools.host import SYSTEM
from lictools.errors import NotFoundError, UsageError
from lictools.model import Request


def req(pool="p", feature="f", session="s1", user="alice", host="h1", node="n1", **kw) -> Request:
    return Request(pool=pool, feature=feature, session=session, user=user, host=host, node=node, **kw)


def make_pool(tx, seats=2, share="", name="p", **options):
    with tx() as t:
        engine.add_pool(t, name, "generic", {"f": seats}, {"share": share, **options})


def test_grants_up_to_issued_then_denies(tx, clock):
    make_pool(tx, seats=2)
    with tx() as t:
        assert engine.acquire(t, req(session="a")).granted
        assert engine.acquire(t, req(session="b")).granted
        denied = engine.acquire(t, req(session="c"))
    assert not denied.granted
    assert "all 2 seat(s) are in use" in denied.reason
    with tx() as t:
        assert t.seats_in_use("p", "f") == 2
        assert t.get_session("c") is None


def test_same_seat_key_shares_even_when_pool_is_full(tx):
    make_pool(tx, seats=1, share="user,host")
    with tx() as t:
        first = engine.acquire(t, req(session="a"))
        second = engine.acquire(t, req(session="b"))
        other = engine.acquire(t, req(session="c", user="bob"))
    assert first.granted and not first.shared
    assert second.granted and second.shared and second.seat == first.seat == "user=alice,host=h1"
    assert not other.granted
    with tx() as t:
        assert t.seats_in_use("p", "f") == 1


def test_retry_with_same_session_takes_no_second_seat(tx, clock):
    make_pool(tx, seats=3)
    with tx() as t:
        first = engine.acquire(t, req(session="hook-1"))
    clock.advance(100)
    with tx() as t:
        again = engine.acquire(t, req(session="hook-1"))
        assert again.retry and again.granted and again.seat == first.seat
        assert t.seats_in_use("p", "f") == 1
        assert again.session.expires == pytest.approx(clock.t + 3600)


def test_retry_naming_another_pool_is_a_usage_error(tx):
    make_pool(tx)
    make_pool(tx, name="q")
    with tx() as t:
        engine.acquire(t, req(session="x"))
        with pytest.raises(UsageError):
            engine.acquire(t, req(pool="q", session="x"))


def test_seat_freed_with_its_last_session(tx):
    make_pool(tx, seats=1, share="user")
    with tx() as t:
        engine.acquire(t, req(session="a"))
        engine.acquire(t, req(session="b"))
    with tx() as t:
        engine.release(t, ["a"])
        assert t.seats_in_use("p", "f") == 1
        assert not engine.acquire(t, req(session="c", user="bob")).granted
    with tx() as t:
        released, missing, *_ = engine.release(t, ["b", "nope"])
        assert [s.id for s in released] == ["b"] and missing == ["nope"]
        assert t.seats_in_use("p", "f") == 0
        assert engine.acquire(t, req(session="c", user="bob")).granted


def test_unknown_pool_is_not_found(tx):
    with tx() as t:
        with pytest.raises(NotFoundError):
            engine.acquire(t, req(pool="missing"))


def test_expired_lease_is_reaped_and_journaled(tx, clock, store):
    make_pool(tx, seats=1, lease="60")
    with tx() as t:
        engine.acquire(t, req(session="a"))
    clock.advance(59)
    with tx() as t:
        assert t.get_session("a") is not None
    clock.advance(1)
    with store.transaction() as t:
        reaped = engine.reap(t)
        assert [s.id for s in reaped] == ["a"]
        assert engine.acquire(t, req(session="b")).granted
    events = list(store.read_journal())
    expire = [e for e in events if e["event"] == "expire"]
    assert expire and expire[0]["session"] == "a" and expire[0]["in_use"] == 0


def test_lease_zero_never_expires(tx, clock):
    make_pool(tx, seats=1, lease="0")
    with tx() as t:
        grant = engine.acquire(t, req(session="a"))
        assert grant.session.expires is None
    clock.advance(10 * 365 * 86400)
    with tx() as t:
        assert t.get_session("a") is not None


def test_refresh_extends_and_reports_unknown(tx, clock):
    make_pool(tx, seats=1, lease="60")
    with tx() as t:
        engine.acquire(t, req(session="a"))
    clock.advance(50)
    with tx() as t:
        done, missing, *_ = engine.refresh(t, ["a", "ghost"])
        assert [s.id for s in done] == ["a"] and missing == ["ghost"]
    clock.advance(50)
    with tx() as t:
        assert t.get_session("a") is not None
    clock.advance(11)
    with tx() as t:
        done, missing, *_ = engine.refresh(t, ["a"])
        assert done == [] and missing == ["a"]


def test_detach_keeps_seat_until_linger_then_frees(tx, clock):
    make_pool(tx, seats=1, linger="300")
    with tx() as t:
        engine.acquire(t, req(session="a"))
        engine.detach(t, ["a"])
        assert t.get_session("a").detached
        done, missing, *_ = engine.refresh(t, ["a"])
        assert missing == ["a"], "a detached session cannot be refreshed back"
    clock.advance(299)
    with tx() as t:
        assert t.seats_in_use("p", "f") == 1
    clock.advance(1)
    with tx() as t:
        assert t.seats_in_use("p", "f") == 0


def test_detach_without_linger_frees_now(tx):
    make_pool(tx, seats=1)
    with tx() as t:
        engine.acquire(t, req(session="a"))
        engine.detach(t, ["a"])
        assert t.get_session("a") is None


def test_remove_by_user_and_host_is_journaled_with_actor(tx, store):
    make_pool(tx, seats=5)
    with tx() as t:
        engine.acquire(t, req(session="a", user="alice", host="h1"))
        engine.acquire(t, req(session="b", user="alice", host="h2"))
        engine.acquire(t, req(session="c", user="bob", host="h2"))
    with tx() as t:
        removed, _, *_ = engine.remove(t, user="alice", actor="admin")
        assert sorted(s.id for s in removed) == ["a", "b"]
        removed, _, *_ = engine.remove(t, host="h2", actor="admin")
        assert [s.id for s in removed] == ["c"]
    removals = [e for e in store.read_journal() if e["event"] == "remove"]
    assert len(removals) == 3 and all(e["by"] == "admin" for e in removals)


def test_license_add_is_idempotent_per_serial_and_skips_foreign_host_lock(tx):
    make_pool(tx, seats=0)
    with tx() as t:
        assert engine.add_license(t, "p", "f", 5, serial="S1").status == "loaded"
        assert engine.add_license(t, "p", "f", 5, serial="S1").status == "already-loaded"
        result = engine.add_license(t, "p", "f", 7, serial="S2", host_lock="elsewhere", this_host="here")
        assert result.status == "not-loaded"
        assert engine.add_license(t, "p", "f", 3, serial="S3", host_lock="HERE.example.com", this_host="here").status == "loaded"
        assert engine.get_pool(t, "p").issued("f") == 8


def test_reservations_reserved_first_then_shared(tx):
    make_pool(tx, seats=4)
    with tx() as t:
        engine.reserve(t, "p", "crit", "f", 2)
        with pytest.raises(UsageError):
            engine.reserve(t, "p", "other", "f", 3)  # 2 + 3 > 4 issued
        # shared = 4 - 2 = 2 seats for everybody else
        assert engine.acquire(t, req(session="a", project="web")).granted
        assert engine.acquire(t, req(session="b")).granted
        denied = engine.acquire(t, req(session="c", project="web"))
        assert not denied.granted and "reserved for crit" in denied.reason
        # crit still has its two reserved seats, and floats no further
        assert engine.acquire(t, req(session="d", project="crit")).granted
        assert engine.acquire(t, req(session="e", project="crit")).granted
        assert not engine.acquire(t, req(session="f", project="crit")).granted
        assert t.seats_in_use("p", "f") == 4


def test_journal_records_every_kind_with_in_use_after(tx, store, clock):
    make_pool(tx, seats=1, share="user", lease="60")
    with tx() as t:
        engine.acquire(t, req(session="a"))
        engine.acquire(t, req(session="b"))
        engine.acquire(t, req(session="c", user="bob"))
        engine.release(t, ["a"])
    clock.advance(61)
    with tx() as t:
        pass
    kinds = [(e["event"], e.get("session"), e.get("in_use")) for e in store.read_journal()]
    assert kinds == [
        ("pool-add", None, None),
        ("grant", "a", 1),
        ("share", "b", 1),
        ("deny", "c", 1),
        ("release", "a", 1),
        ("expire", "b", 0),
    ]
    grant = next(e for e in store.read_journal() if e["event"] == "grant")
    for key in ("time", "pool", "feature", "seat", "session", "user", "host", "in_use"):
        assert key in grant


def test_dry_run_changes_nothing(tx, store):
    make_pool(tx, seats=1)
    before = list(store.read_journal())
    with tx() as t:
        outcome = engine.acquire(t, req(session="a"), dry_run=True)
        assert outcome.granted and t.get_session("a") is None
    assert list(store.read_journal()) == before


def test_gc_check_pids_drops_dead_local_processes(tx):
    make_pool(tx, seats=3)
    dead = subprocess.Popen(["true"])
    dead.wait()
    node = SYSTEM.node()
    with tx() as t:
        engine.acquire(t, req(session="alive", node=node, pid=os.getpid()))
        engine.acquire(t, req(session="dead", node=node, pid=dead.pid))
        engine.acquire(t, req(session="remote", node="other-node", pid=dead.pid))
    with tx() as t:
        dropped = engine.drop_dead_processes(t)
        assert [s.id for s in dropped] == ["dead"]
        assert t.get_session("remote") is not None


def test_pool_remove_refuses_live_sessions_unless_forced(tx):
    make_pool(tx, seats=1)
    with tx() as t:
        engine.acquire(t, req(session="a"))
        with pytest.raises(UsageError):
            engine.remove_pool(t, "p")
        assert [s.id for s in engine.remove_pool(t, "p", force=True)] == ["a"]
        assert t.get_pool("p") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"session": "x" * 10_000},
        {"session": "a\nb"},
        {"user": "al\x00ice"},
        {"host": "h\x07st"},     # an empty --host is "not given" (the node), see test_rules_fidelity.py
        {"node": ""},
        {"pid": -5},
        {"lease": 10**12},
        {"project": "--all"},
    ],
)
def test_hostile_values_are_usage_errors(tx, bad):
    make_pool(tx)
    with tx() as t:
        with pytest.raises(UsageError):
            engine.acquire(t, req(**{"session": "ok", **bad}))


def test_options_are_checked(tx):
    with tx() as t:
        with pytest.raises(UsageError):
            engine.add_pool(t, "p", "generic", {}, {"lease": "-1"})
        with pytest.raises(UsageError):
            engine.add_pool(t, "p", "generic", {}, {"share": "colour"})
        with pytest.raises(UsageError):
            engine.add_pool(t, "p", "generic", {}, {"nonsense": "1"})
        with pytest.raises(UsageError):
            engine.add_pool(t, "p", "no-such-product")


def test_find_sessions_by_a_field_without_a_column(tx, store):
    """``find_sessions(user=...)`` answers the same on every store (SQLite matches it inside the document)."""
    make_pool(tx, seats=5)
    with tx() as t:
        for session, user in [("a", "alice"), ("b", "o'brien"), ("c", "alice"), ("d", "bob")]:
            assert engine.acquire(t, req(session=session, user=user)).granted
    with store.read() as view:
        assert [s.id for s in view.find_sessions(pool="p", feature="f", user="alice")] == ["a", "c"]
        assert [s.id for s in view.find_sessions(user="o'brien")] == ["b"]
        assert view.find_sessions(pool="p", user="carol") == []
        assert [s.id for s in view.find_sessions(host="h1", user="bob")] == ["d"]
