"""What a site finds in its first week (issue "first week"): listings admins expect, removals like
fglWrt -x / -i and RLM's MINREMOVE, a PID reused by another process, and new-user friction.

The hooks that survive real logins are tests/test_hooks.py.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from lictools import engine
from lictools.cli.main import hoist_global_options
from lictools.model import Request
from lictools.stores.memory import MemoryStore

from tests.fakes import FakeHost

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

BOB = FakeHost(node="n", account=(1002, "ltbob"))


def pool(lt, seats=3, *extra):
    assert lt("pool", "add", "p", "--product", "generic", "--license", f"f={seats}", *extra).code == 0


# --------------------------------------------------------------------------- remove
def test_remove_user_without_sessions_is_exit_4(lt):
    """It exited 0 silently: a script could not tell that nothing was removed."""
    pool(lt)
    lt("acquire", "p", "--feature", "f", "--user", "alice")
    result = lt("remove", "--user", "nobody")
    assert result.code == 4
    assert result.err == "lictools: no session matched\n"
    assert lt("--format", "json", "info").json()[0]["in_use"] == 1


def test_remove_by_pid_like_fglwrt_x(lt):
    pool(lt)
    lt("acquire", "p", "--feature", "f", "--session", "a", "--pid", "5144")
    lt("acquire", "p", "--feature", "f", "--session", "b", "--pid", "5144", "--node", "other-node")
    lt("acquire", "p", "--feature", "f", "--session", "c", "--pid", "6000")
    gone = lt("--format", "json", "remove", "--pid", "5144")
    assert gone.code == 0 and [row["session"] for row in gone.json()] == ["a"]
    assert [row["session"] for row in lt("--format", "json", "remove", "--pid", "5144", "--node", "other-node").json()] == ["b"]
    assert lt("remove", "--pid", "5144").code == 4
    assert lt("remove", "--node", "x").code == 2  # --node without --pid


def test_remove_all_of_a_pool_like_fglwrt_i_asks_first(lt, monkeypatch):
    pool(lt)
    assert lt("pool", "add", "q", "--product", "generic", "--license", "f=1").code == 0
    for session in ("a", "b"):
        lt("acquire", "p", "--feature", "f", "--session", session)
    lt("acquire", "q", "--feature", "f", "--session", "q1")
    assert lt("remove", "--all").code == 2  # needs --pool
    refused = lt("remove", "--pool", "p", "--all")  # no terminal to ask on
    assert refused.code == 2 and "--yes" in refused.err
    assert lt("--format", "json", "info", "p").json()[0]["in_use"] == 2
    done = lt("--format", "json", "remove", "--pool", "p", "--all", "--yes")
    assert done.code == 0 and sorted(row["session"] for row in done.json()) == ["a", "b"]
    assert lt("--format", "json", "info", "q").json()[0]["in_use"] == 1


def test_remove_min_age_keeps_young_sessions(lt, clock):
    """RLM MINREMOVE: a license checked out for less than the minimum cannot be removed."""
    pool(lt)
    lt("acquire", "p", "--feature", "f", "--session", "old", "--host", "ws12")
    clock.advance(1000)
    lt("acquire", "p", "--feature", "f", "--session", "young", "--host", "ws12")
    result = lt("--format", "json", "remove", "--host", "ws12", "--min-age", "900")
    assert result.code == 0 and [row["session"] for row in result.json()] == ["old"]
    assert "kept session young" in result.err
    again = lt("remove", "--host", "ws12", "--min-age", "900")
    assert again.code == 4 and "no session matched (1 younger than --min-age kept)" in again.err


# --------------------------------------------------------------------------- listings
def test_info_available_excludes_reserved_seats(lt):
    assert lt("pool", "add", "m", "--product", "magic-xpa", "--license", "threads=3").code == 0
    assert lt("reserve", "m", "A", "threads", "2").code == 0
    lt("acquire", "m", "--feature", "threads", "--session", "t1")
    row = [r for r in lt("--format", "json", "info", "m").json() if r["feature"] == "threads"][0]
    assert (row["free"], row["available"]) == (2, 0), "the free seats are all reserved for A"
    assert lt("acquire", "m", "--feature", "threads").code == 3
    lt("release", "t1")
    row = [r for r in lt("--format", "json", "info", "m").json() if r["feature"] == "threads"][0]
    assert (row["free"], row["available"]) == (3, 1)
    table = lt("info", "m").out.splitlines()
    assert table[0].split() == ["pool", "product", "feature", "issued", "in_use", "reserved", "free", "available", "sessions", "queued"]


def test_users_sessions_one_line_per_checkout(lt):
    pool(lt, 5, "--option", "share=user")
    lt("acquire", "p", "--feature", "f", "--user", "alice", "--host", "ws1", "--session", "a1", "--pid", "77",
       "--client", "cad")
    lt("acquire", "p", "--feature", "f", "--user", "alice", "--host", "ws2", "--session", "a2")
    lt("acquire", "p", "--feature", "f", "--user", "bob", "--host", "ws1", "--session", "b1")
    rows = lt("--format", "json", "users", "--sessions").json()
    assert [r["session"] for r in rows] == ["a1", "a2", "b1"]
    first = rows[0]
    assert {k: first[k] for k in ("user", "host", "client", "pid", "seat")} == {
        "user": "alice", "host": "ws1", "client": "cad", "pid": 77, "seat": "user=alice"}
    assert first["since"] and first["refreshed"] and first["expires"] and isinstance(first["uid"], int)
    assert [r["session"] for r in lt("--format", "json", "users", "--sessions", "--user", "alice", "--host", "ws2").json()] == ["a2"]
    csv_rows = list(csv.DictReader(io.StringIO(lt("--format", "csv", "users", "--sessions", "--user", "bob").out)))
    assert [r["session"] for r in csv_rows] == ["b1"] and list(csv_rows[0]) == list(rows[0])
    table = lt("users", "--sessions").out.splitlines()
    assert table[0].split()[:8] == ["session", "pool", "feature", "user", "host", "node", "client", "pid"]


def test_users_filters_seats_by_user_and_host(lt):
    pool(lt, 5, "--option", "share=host")
    lt("acquire", "p", "--feature", "f", "--user", "alice", "--host", "ws1")
    lt("acquire", "p", "--feature", "f", "--user", "bob", "--host", "ws1")
    lt("acquire", "p", "--feature", "f", "--user", "carol", "--host", "ws2")
    rows = lt("--format", "json", "users", "--user", "bob").json()
    assert [(r["seat"], r["users"]) for r in rows] == [("host=ws1", ["alice", "bob"])]
    assert [r["seat"] for r in lt("--format", "json", "users", "--host", "ws2").json()] == ["host=ws2"]
    assert lt("--format", "json", "users", "--user", "nobody").json() == []


def test_a_long_session_list_keeps_the_table_row_short(lt):
    pool(lt, 1, "--option", "share=host")
    for n in range(40):
        lt("acquire", "p", "--feature", "f", "--host", "ws1", "--user", f"user{n:02d}", "--session", f"s{n:02d}")
    row = lt("users").out.splitlines()[2]
    assert len(row) < 200, row
    assert "(+37 more)" in row
    assert len(lt("--format", "json", "users").json()[0]["sessions"]) == 40


# --------------------------------------------------------------------------- a reused PID
def test_check_pids_treats_a_reused_pid_as_gone():
    host = FakeHost(node="n", alive={500: 1000})
    store = MemoryStore(clock=lambda: 1_800_000_000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 2}, {"lease": "0"})
        engine.acquire(tx, Request("p", "f", "s", "u", "n", "n", pid=500), host=host)
        assert tx.get_session("s").pid_start == 1000
        assert engine.drop_dead_processes(tx, host=host) == []
    host.alive[500] = 2000  # the login shell was killed; a new process got PID 500
    with store.transaction() as tx:
        dropped = engine.drop_dead_processes(tx, host=host)
    assert [s.id for s in dropped] == ["s"]
    expire = [e for e in store.read_journal() if e["event"] == "expire"][0]
    assert expire["reason"] == "process 500 is gone (the PID now belongs to a process started later)"


def test_pid_start_is_recorded_for_a_real_process(lt):
    import os

    pool(lt)
    lt("acquire", "p", "--feature", "f", "--session", "me", "--pid", str(os.getpid()))
    doc = [json.loads(line) for line in lt("journal").out.splitlines() if '"grant"' in line][0]
    with open(f"/proc/{os.getpid()}/stat") as f:
        assert doc["pid_start"] == int(f.read().rsplit(")", 1)[1].split()[19])


# --------------------------------------------------------------------------- new-user friction
@pytest.mark.parametrize("args, expected", [
    (["users", "--format", "json"], ["--format", "json", "users"]),
    (["info", "--format=csv", "p"], ["--format=csv", "info", "p"]),
    (["--state", "s.db", "users", "--lock-timeout", "3", "--feature", "f"],
     ["--lock-timeout", "3", "--state", "s.db", "users", "--feature", "f"]),
    (["release", "--", "--format"], ["release", "--", "--format"]),
])
def test_global_options_after_the_command_move_before_it(args, expected):
    assert hoist_global_options(args) == expected


def test_global_option_after_the_command_works(lt):
    pool(lt)
    result = lt("info", "--format", "json")
    assert result.code == 0 and result.json()[0]["pool"] == "p"


def test_mistyped_command_names_the_nearest(lt):
    result = lt("acquir", "p")
    assert result.code == 2
    assert result.err.splitlines() == ["lictools: no such command 'acquir'; did you mean 'acquire'? (see 'lictools --help')"]
    assert "did you mean 'release'" in lt("relese", "x").err


# --------------------------------------------------------------------------- claims (issue 15, item 5)
def _claims_pool(trust: str) -> MemoryStore:
    store = MemoryStore(clock=lambda: 1_800_000_000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 2}, {"share": "user", "trust_claims": trust})
        engine.add_pool(tx, "g", "genero", {"runtime": 2}, {"trust_claims": trust})
        engine.acquire(tx, Request("p", "f", "alice-1", "ltalice", "h", "n", uid=1001))
        engine.acquire(tx, Request("g", None, "alice-dvm", "ltalice", "h", "n", client="gwc", uid=1001))
    return store


def test_trust_claims_no_refuses_a_seat_in_someone_elses_name():
    """Bob claiming --user ltalice joined Alice's share=user seat for free, and users showed only Alice."""
    from lictools.errors import ForbiddenError

    store = _claims_pool("no")
    with store.transaction() as tx:
        with pytest.raises(ForbiddenError, match="you are ltbob, not ltalice"):
            engine.acquire(tx, Request("p", "f", "bob-1", "ltalice", "h", "n", uid=1002), host=BOB, admin=False)
        with pytest.raises(ForbiddenError, match="session alice-dvm belongs to another account"):
            engine.acquire(tx, Request("g", None, "bob-kid", "ltbob", "h", "n", parent="alice-dvm", uid=1002),
                           host=BOB, admin=False)
        assert engine.acquire(tx, Request("p", "f", "bob-2", "ltbob", "h", "n", uid=1002), host=BOB, admin=False).granted
        # an admin (the PAM hook runs as root) may still acquire in a user's name
        assert engine.acquire(tx, Request("p", "f", "pam-1", "ltalice", "h", "n", uid=0), host=BOB, admin=True).shared


def test_trust_claims_yes_is_the_default_and_takes_claims_as_given():
    store = _claims_pool("yes")
    with store.transaction() as tx:
        assert tx.get_pool("p").options["trust_claims"] == "yes"
        out = engine.acquire(tx, Request("p", "f", "bob-1", "ltalice", "h", "n", uid=1002), host=BOB, admin=False)
        assert out.granted and out.shared
        assert tx.get_session("bob-1").uid == 1002, "the real account is recorded whatever the claim"


def test_default_user_is_the_real_account_not_logname(lt, monkeypatch):
    import os
    import pwd

    pool(lt)
    monkeypatch.setenv("LOGNAME", "someone-else")
    monkeypatch.setenv("USER", "someone-else")
    lt("acquire", "p", "--feature", "f", "--session", "mine")
    [row] = lt("--format", "json", "users", "--sessions").json()
    assert row["user"] == pwd.getpwuid(os.getuid()).pw_name


def test_a_real_second_account_cannot_take_a_seat_in_anothers_name(accounts):
    """Issue 15 item 5 with real accounts: with trust_claims=no Bob cannot claim --user alice (exit 7)
    or join her Genero DVM with --parent; with the default, the claim is recorded beside his real uid."""
    folder = accounts.folder("claims")
    state = str(folder / "state.db")
    alice, bob = accounts.names["alice"], accounts.names["bob"]
    for name, product, lic, trust in (("strict", "generic", "f=2", "no"), ("open", "generic", "f=2", "yes"),
                                      ("g", "genero", "runtime=2", "no")):
        options = ["--option", f"trust_claims={trust}"] + (["--option", "share=user"] if product == "generic" else [])
        assert accounts.run("root", "--state", state, "pool", "add", name, "--product", product, "--license", lic,
                            *options).code == 0
    assert accounts.run("alice", "--state", state, "acquire", "strict", "--feature", "f").code == 0
    claimed = accounts.run("bob", "--state", state, "acquire", "strict", "--feature", "f", "--user", alice)
    assert claimed.code == 7 and f"you are {bob}, not {alice}" in claimed.err
    dvm = accounts.run("alice", "--state", state, "acquire", "g", "--client", "gwc").out.strip()
    child = accounts.run("bob", "--state", state, "acquire", "g", "--parent", dvm)
    assert child.code == 7 and "belongs to another account" in child.err
    assert accounts.run("bob", "--state", state, "acquire", "open", "--feature", "f", "--user", alice).code == 0
    rows = json.loads(accounts.run("root", "--state", state, "--format", "json", "users", "--sessions", "open").out)
    assert [(r["user"], r["uid"]) for r in rows] == [(alice, accounts.uid("bob"))]
