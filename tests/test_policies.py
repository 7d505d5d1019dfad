"""Pool policies (issue 13): MAX per user, group or host, INCLUDE / EXCLUDE, RESERVE, lictools groups.

Each keyword: a refused request exits 3 with one stderr line naming the policy, ``acquire --dry-run``
and ``explain`` name it, and the ``deny`` journal line carries it under ``policy`` (a capacity denial
has no ``policy`` key). Both state layouts (the ``lt`` fixture).
"""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest

from lictools import replay
from lictools.stores import open_store

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store


@pytest.fixture
def cad(lt):
    """A generic pool of 3 solver seats, one seat per user (share=user), and a lictools group."""
    assert lt("pool", "add", "cad", "--product", "generic", "--license", "solver=3", "--option", "share=user").code == 0
    assert lt("group", "set", "designers", "alice", "bob").code == 0
    return lt


def acquire(lt, user, *more, session=None):
    args = ["acquire", "cad", "--feature", "solver", "--user", user, *more]
    return lt(*args, *(["--session", session] if session else []))


def denials(lt):
    return [json.loads(line) for line in lt("journal").out.splitlines() if json.loads(line)["event"] == "deny"]


def refused_by(result, policy_text):
    """Exit 3, one stderr line that names the policy."""
    assert result.code == 3, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and f"denied by policy {policy_text}:" in lines[0], result.err
    return lines[0]


def journal_clean(state):
    store = open_store(str(state), 5)
    assert replay.compare(store) == []


# --------------------------------------------------------------------------- MAX
def test_max_per_user_refuses_a_new_seat_and_names_the_policy(cad, state):
    assert cad("policy", "add", "cad", "max", "1", "--user", "carol").code == 0
    cad("pool", "set", "cad", "--option", "share=")  # one seat per session: carol's second session needs a seat
    assert acquire(cad, "carol", session="c1").code == 0
    line = refused_by(acquire(cad, "carol", session="c2"), "MAX 1 USER carol")
    assert "user carol already holds 1 solver seat(s)" in line
    dry = cad("acquire", "cad", "--feature", "solver", "--user", "carol", "--dry-run")
    assert dry.code == 3 and dry.out.startswith("would deny: denied by policy MAX 1 USER carol:")
    doc = cad("--format", "json", "acquire", "cad", "--feature", "solver", "--user", "carol", "--dry-run").json()
    assert doc["granted"] is False and doc["policy"] == {"kind": "max", "user": "carol", "count": 1}
    (deny,) = denials(cad)
    assert deny["session"] == "c2" and deny["policy"] == {"kind": "max", "user": "carol", "count": 1}
    explained = cad("explain", "c2")
    assert explained.code == 4 and "policy   : MAX 1 USER carol" in explained.out
    assert cad("--format", "json", "explain", "c2").json()["policy"]["kind"] == "max"
    assert acquire(cad, "dave").code == 0, "others are not limited"
    journal_clean(state)


def test_max_never_refuses_joining_a_held_seat(cad):
    """A share costs no seat (SPEC.md section 1): MAX counts seats, so it does not refuse one."""
    cad("pool", "set", "cad", "--option", "share=host")
    assert cad("policy", "add", "cad", "max", "0", "--user", "carol").code == 0
    assert acquire(cad, "bob", "--host", "ws1").code == 0
    joined = cad("--format", "json", "acquire", "cad", "--feature", "solver", "--user", "carol", "--host", "ws1")
    assert joined.code == 0 and joined.json()["shared"] is True
    refused_by(acquire(cad, "carol", "--host", "ws2"), "MAX 0 USER carol")


def test_max_every_user_counts_each_user_on_their_own(cad):
    cad("pool", "set", "cad", "--option", "share=user,host")
    assert cad("policy", "add", "cad", "max", "1", "--user", "*", "--feature", "solver").code == 0
    assert acquire(cad, "alice", "--host", "ws1").code == 0
    assert acquire(cad, "bob", "--host", "ws1").code == 0
    line = refused_by(acquire(cad, "alice", "--host", "ws2"), "MAX 1 solver USER *")
    assert "user alice already holds 1" in line
    assert acquire(cad, "alice", "--host", "ws1").code == 0, "the same user and host share the seat"


def test_max_per_group_counts_the_whole_groups_seats(cad):
    assert cad("policy", "add", "cad", "max", "2", "--group", "designers").code == 0
    assert acquire(cad, "alice").code == 0
    assert acquire(cad, "bob").code == 0
    cad("pool", "set", "cad", "--option", "share=user,host")  # so that bob's next session needs a seat
    line = refused_by(acquire(cad, "bob", "--host", "another-host"), "MAX 2 GROUP designers")
    assert "group designers already holds 2 solver seat(s)" in line
    assert acquire(cad, "carol").code == 0, "carol is not in the group"


def test_max_per_host(cad):
    cad("pool", "set", "cad", "--option", "share=user,host")
    assert cad("policy", "add", "cad", "max", "1", "--host", "kiosk").code == 0
    assert acquire(cad, "alice", "--host", "KIOSK.corp.example").code == 0
    refused_by(acquire(cad, "bob", "--host", "kiosk"), "MAX 1 HOST kiosk")
    assert acquire(cad, "bob", "--host", "ws9").code == 0


# --------------------------------------------------------------------------- INCLUDE / EXCLUDE
def test_exclude_refuses_even_joining_a_held_seat(cad, state):
    """FlexNet checks EXCLUDE on every checkout: an excluded user gets nothing, not even a share."""
    cad("pool", "set", "cad", "--option", "share=host")
    assert cad("policy", "add", "cad", "exclude", "--user", "lori").code == 0
    assert acquire(cad, "bob", "--host", "ws1").code == 0
    line = refused_by(acquire(cad, "lori", "--host", "ws1", session="l1"), "EXCLUDE USER lori")
    assert "user lori may not use solver" in line
    (deny,) = denials(cad)
    assert deny["policy"] == {"kind": "exclude", "user": "lori"}
    assert "EXCLUDE USER lori" in cad("explain", "l1").out
    journal_clean(state)  # a denial of a held seat by EXCLUDE is no violation


def test_include_admits_only_those_it_names(cad):
    assert cad("policy", "add", "cad", "include", "--group", "designers", "--feature", "solver").code == 0
    assert acquire(cad, "alice").code == 0
    line = refused_by(acquire(cad, "carol"), "INCLUDE solver GROUP designers")
    assert "user carol" in line and "not among them" in line
    assert cad("policy", "add", "cad", "include", "--user", "carol").code == 0
    assert acquire(cad, "carol").code == 0, "a second INCLUDE widens the list"


def test_exclude_supersedes_include(cad):
    assert cad("policy", "add", "cad", "include", "--group", "designers").code == 0
    assert cad("policy", "add", "cad", "exclude", "--user", "bob").code == 0
    assert acquire(cad, "alice").code == 0
    refused_by(acquire(cad, "bob"), "EXCLUDE USER bob")


def test_include_unix_group(cad):
    """A group that is no lictools group is a Unix group: its listed members and those it is primary for."""
    me = pwd.getpwuid(os.getuid()).pw_name
    primary = grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name
    assert cad("policy", "add", "cad", "include", "--group", primary).code == 0
    assert acquire(cad, me).code == 0
    refused_by(acquire(cad, "no-such-user-xyz"), f"INCLUDE GROUP {primary}")


def test_lictools_group_shadows_a_unix_group_of_the_same_name(cad):
    me = pwd.getpwuid(os.getuid()).pw_name
    primary = grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name
    assert cad("group", "set", primary, "someone-else").code == 0
    assert cad("policy", "add", "cad", "exclude", "--group", primary).code == 0
    assert acquire(cad, me).code == 0, "the lictools group does not list this account"
    refused_by(acquire(cad, "someone-else"), f"EXCLUDE GROUP {primary}")


# --------------------------------------------------------------------------- RESERVE
def test_reserve_keeps_seats_for_a_user_and_names_the_policy(cad, state):
    assert cad("policy", "add", "cad", "reserve", "2", "--user", "zed", "--feature", "solver").code == 0
    info = cad("--format", "json", "info").json()[0]
    assert (info["reserved"], info["available"]) == (2, 1)
    assert acquire(cad, "alice").code == 0
    line = refused_by(acquire(cad, "bob", session="b1"), "RESERVE 2 solver USER zed")
    assert "reserved for user zed" in line
    (deny,) = denials(cad)
    assert deny["policy"] == {"kind": "reserve", "user": "zed", "count": 2, "feature": "solver"}
    granted = cad("--format", "json", "acquire", "cad", "--user", "zed", "--feature", "solver").json()
    assert "reserved for user zed" in granted["reason"]
    users = cad("--format", "json", "users").json()
    zed = [row for row in users if row["users"] == ["zed"]][0]
    assert zed["reservation"] == "user=zed" and zed["project"] is None
    assert "charged to user zed" in cad("explain", granted["session"]).out
    journal_clean(state)


def test_a_policy_denial_and_a_capacity_denial_tell_apart(cad):
    """The journal reader's rule (journal(1)): a deny with ``policy`` was refused by that policy, one
    without it by capacity."""
    cad("policy", "add", "cad", "exclude", "--user", "lori")
    for user in ("u1", "u2", "u3"):
        assert acquire(cad, user).code == 0
    assert acquire(cad, "u4").code == 3  # the pool is full: capacity
    assert acquire(cad, "lori").code == 3  # EXCLUDE
    capacity, policy = denials(cad)
    assert "policy" not in capacity and capacity["reason"] == "all 3 seat(s) are in use"
    assert policy["policy"]["kind"] == "exclude"


def test_reserve_counts_with_project_reservations(cad, state):
    """One arithmetic (admission.py): project and policy reservations together never exceed the issued seats."""
    assert cad("reserve", "cad", "pa", "solver", "2").code == 0
    r = cad("policy", "add", "cad", "reserve", "2", "--group", "designers", "--feature", "solver")
    assert r.code == 2 and "more than the 3 issued" in r.err
    assert cad("policy", "add", "cad", "reserve", "1", "--group", "designers", "--feature", "solver").code == 0
    r = cad("reserve", "cad", "pb", "solver", "1")
    assert r.code == 2, "the policy's seat counts against the issued ones"
    assert acquire(cad, "carol").code == 3, "every seat is reserved: for pa and for the designers"
    assert acquire(cad, "alice").code == 0
    assert acquire(cad, "carol", "--project", "pa").code == 0
    journal_clean(state)


def test_a_seat_taken_from_a_reserve_policy_is_recharged_when_its_holder_leaves(cad, state):
    cad("pool", "set", "cad", "--option", "share=host")
    assert cad("policy", "add", "cad", "reserve", "1", "--user", "zed", "--feature", "solver").code == 0
    assert acquire(cad, "zed", "--host", "ws1", session="z").code == 0
    assert acquire(cad, "bob", "--host", "ws1", session="b").code == 0  # joins zed's seat
    assert cad("release", "z").code == 0
    recharge = [json.loads(line) for line in cad("journal").out.splitlines() if '"recharge"' in line]
    assert recharge and recharge[-1]["previous_project"] == "user=zed" and "seat_project" not in recharge[-1]
    assert acquire(cad, "zed", "--host", "ws2").code == 0, "zed's reserved seat is free again"
    journal_clean(state)


# --------------------------------------------------------------------------- administration
def test_policy_naming_an_unknown_group_is_refused(cad):
    r = cad("policy", "add", "cad", "max", "1", "--group", "no-such-group-xyz")
    assert r.code == 2 and "no lictools group or Unix group" in r.err and len(r.err.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["max", "--user", "a"], "needs a count"),
    (["exclude", "1", "--user", "a"], "takes no count"),
    (["include", "--user", "a", "--host", "h"], "exactly one of"),
    (["reserve", "1", "--user", "*", "--feature", "solver"], "only for max"),
    (["max", "1", "--user", "a", "--feature", "bad feature"], "feature"),
])
def test_bad_policies_are_usage_errors(cad, args, message):
    r = cad("policy", "add", "cad", *args)
    assert r.code == 2 and message in r.err, r.err


def test_policy_list_remove_and_idempotent_add(cad):
    assert cad("policy", "add", "cad", "max", "1", "--user", "a").code == 0
    again = cad("policy", "add", "cad", "max", "1", "--user", "a")
    assert again.code == 0 and "nothing changed" in again.err
    assert cad("policy", "add", "cad", "max", "2", "--user", "a").code == 0  # the count changes
    rows = cad("--format", "json", "policy", "list").json()
    assert rows == [{"pool": "cad", "kind": "max", "feature": None, "target": "user", "name": "a", "count": 2,
                     "policy": "MAX 2 USER a"}]
    assert cad("policy", "remove", "cad", "max", "--user", "a").code == 0
    assert cad("policy", "remove", "cad", "max", "--user", "a").code == 4
    assert cad("--format", "json", "policy", "list", "cad").json() == []


def test_group_remove_refused_while_a_policy_names_it(cad):
    cad("policy", "add", "cad", "max", "1", "--group", "designers")
    r = cad("group", "remove", "designers")
    assert r.code == 2 and "MAX 1 GROUP designers" in r.err
    cad("policy", "remove", "cad", "max", "--group", "designers")
    assert cad("group", "remove", "designers").code == 0
    assert cad("group", "list", "designers").code == 4


@pytest.mark.parametrize("args", [
    ["policy", "add", "cad", "max", "1", "--user", "a"],
    ["policy", "remove", "cad", "max", "--user", "a"],
    ["group", "set", "g", "a"],
    ["group", "remove", "designers"],
])
def test_policy_and_group_changes_are_admin_commands(cad, as_user, args):
    r = as_user(*args)
    assert r.code == 7 and len(r.err.strip().splitlines()) == 1


def test_users_may_list_policies_and_groups(cad, as_user):
    cad("policy", "add", "cad", "max", "1", "--user", "a")
    assert as_user("policy", "list").code == 0 and as_user("group", "list").code == 0


def test_policies_and_groups_are_state_that_replays_and_dumps(cad, state):
    cad("policy", "add", "cad", "max", "1", "--group", "designers")
    cad("policy", "add", "cad", "reserve", "1", "--host", "ws1", "--feature", "solver")
    doc = cad("dump").json()
    assert doc["pools"][0]["policies"] == [
        {"kind": "max", "group": "designers", "count": 1},
        {"kind": "reserve", "host": "ws1", "count": 1, "feature": "solver"},
    ]
    assert doc["groups"] == {"designers": ["alice", "bob"]}
    kinds = {json.loads(line)["event"] for line in cad("journal").out.splitlines()}
    assert {"policy-add", "group-set"} <= kinds
    journal_clean(state)
    # a state that says otherwise than its journal is found out
    store = open_store(str(state), 5)
    with store.transaction() as tx:
        pool = tx.get_pool("cad")
        pool.policies = pool.policies[:1]
        tx.put_pool(pool)
        tx.put_setting("group:designers", json.dumps(["alice"]))
    diffs = replay.compare(store)
    assert any("policies" in d for d in diffs) and any("group:designers" in d for d in diffs), diffs



@pytest.mark.layouts("sqlite", "json")  # about files
def test_a_pool_document_written_before_policies_loads_on_both_layouts(lt, state):
    """Both stores keep a pool as a JSON document: one without ``policies`` (an older lictools) reads as none."""
    import sqlite3

    lt("pool", "add", "old", "--product", "generic", "--license", "f=1")
    if state.suffix == ".json":
        doc = json.loads(state.read_text())
        del doc["pools"]["old"]["policies"]
        state.write_text(json.dumps(doc))
    else:
        with sqlite3.connect(state) as db:
            db.execute("UPDATE pools SET doc = json_remove(doc, '$.policies') WHERE name = 'old'")
        db.close()
    assert lt("--format", "json", "policy", "list", "old").json() == []
    assert lt("policy", "add", "old", "max", "1", "--user", "a").code == 0
    assert lt("dump").json()["pools"][0]["policies"] == [{"kind": "max", "user": "a", "count": 1}]
