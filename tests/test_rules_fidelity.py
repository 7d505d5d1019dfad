"""Issue 10, rule fidelity round two: each test quotes the seed sentence or vendor fact it follows.

Item 3 (Genero ``explain`` on root DVMs) is covered by tests/test_write_path.py
(``test_explain_root_dvm_gives_its_own_reason``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lictools import engine, explain, replay, views
from lictools.errors import UsageError
from lictools.model import Request
from lictools.stores.memory import MemoryStore, MemoryTransaction, empty_document

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

REPO = Path(__file__).resolve().parent.parent


def journal(lt) -> list[dict]:
    return [json.loads(line) for line in lt("journal").out.splitlines()]


def magic(web: int = 0, threads: int = 0) -> MemoryTransaction:
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "m", "magic-xpa", {k: v for k, v in (("web", web), ("threads", threads)) if v}, {})
    return tx


def web(tx, session: str, host: str, project: str | None):
    return engine.acquire(tx, Request("m", "web", session, "u", host, "appsrv", project=project))


def charges(tx, feature: str = "web") -> dict[str, str | None]:
    """Seat -> the project it is charged to (every session of the seat agrees)."""
    out: dict[str, set] = {}
    for s in tx.find_sessions(pool="m", feature=feature):
        out.setdefault(s.seat, set()).add(s.seat_project)
    assert all(len(p) == 1 for p in out.values()), out
    return {seat: next(iter(p)) for seat, p in out.items()}


# --------------------------------------------------------------------------- item 1: reservations that hold
def test_reservation_keeps_protecting_its_project_after_it_leaves_a_grouped_seat(lt):
    """Seed 003: "you should consider reserving a minimum fixed amount of license threads or users for
    critical projects that need to run continually" and "Multiple Web clients from the same machine
    consume one (Web) license." The issue's reproduction, through the CLI on both layouts."""
    assert lt("pool", "add", "m", "--product", "magic-xpa", "--license", "web=2").code == 0
    assert lt("reserve", "m", "A", "web", "1").code == 0
    assert lt("acquire", "m", "--feature", "web", "--session", "a1", "--host", "pc1", "--project", "A").code == 0
    assert lt("acquire", "m", "--feature", "web", "--session", "b1", "--host", "pc1", "--project", "B").code == 0
    assert lt("release", "a1").code == 0
    # the seat web:pc1 is held by B's client alone: it is B's now, and B has no reservation
    recharge = [e for e in journal(lt) if e["event"] == "recharge"]
    assert len(recharge) == 1
    assert {k: recharge[0].get(k) for k in ("pool", "feature", "seat", "seat_project", "previous_project")} == {
        "pool": "m", "feature": "web", "seat": "web:pc1", "seat_project": "B", "previous_project": "A"}
    assert recharge[0]["v"] == 2
    rows = json.loads(lt("--format", "json", "users", "m").out)
    assert [(r["seat"], r["project"]) for r in rows] == [("web:pc1", "B")]
    denied = lt("--format", "json", "acquire", "m", "--feature", "web", "--session", "b2", "--host", "pc3",
                "--project", "B")
    assert denied.code == 3 and "shared seat(s) are in use" in denied.json()["reason"]
    granted = lt("--format", "json", "acquire", "m", "--feature", "web", "--session", "a2", "--host", "pc2",
                 "--project", "A")
    assert granted.code == 0 and "reserved for project A" in granted.json()["reason"]
    assert lt("doctor").code == 0


def test_a_seat_is_recharged_to_a_holder_whose_reservation_has_room_first():
    """Seed 003: "Licenses reserved for a given project are acquired by workers ... before trying to
    acquire non-reserved licenses": a grouped seat left by its project counts against the reservation
    of a project still holding it, when that reservation has room, before the shared seats."""
    tx = magic(web=3)
    engine.reserve(tx, "m", "A", "web", 1)
    engine.reserve(tx, "m", "C", "web", 1)
    web(tx, "a1", "pc1", "A")
    web(tx, "b1", "pc1", "B")          # oldest remaining holder, but B has no reservation
    web(tx, "c1", "pc1", "C")          # C's reservation has room
    engine.release(tx, ["a1"])
    assert charges(tx) == {"web:pc1": "C"}
    # the shared seat is still free for B elsewhere, and C's reservation is in use
    assert web(tx, "b2", "pc2", "B").granted
    engine.release(tx, ["c1"])         # C leaves too: B is the only holder left
    assert charges(tx) == {"web:pc1": "B", "web:pc2": "B"}


def test_a_grouped_seat_kept_by_a_project_without_reservation_is_the_vendor_forced_exception():
    """SPEC.md: a session whose seat key is in use always joins it, even in a full pool; seed 003: "When
    the RIA or Web client terminates, the worker will release a license back into the Space" (the
    grouped license goes back only with its last client). So when the reserved project leaves a seat
    that another project's client still holds, that seat stays in use beyond every reservation: the
    one case where seats beyond reservations may exceed issued minus the unused reservations. Every
    new seat beyond a reservation is then refused until the excess is gone, and the reserved project
    gets the next seat that frees."""
    store = MemoryStore(clock=lambda: 1000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "m", "magic-xpa", {"web": 2}, {})
        engine.reserve(tx, "m", "A", "web", 1)
        assert web(tx, "b0", "pc9", "B").granted          # the one shared seat
        assert web(tx, "a1", "pc1", "A").granted          # A's reserved seat
        assert web(tx, "b1", "pc1", "B").shared           # joins A's seat: costs nothing
        engine.release(tx, ["a1"])
        assert charges(tx) == {"web:pc9": "B", "web:pc1": "B"}
        refused = web(tx, "a2", "pc2", "A")
        assert not refused.granted
        assert "project A has 0 of its 1 reserved seat(s) in use" in refused.reason
        assert "other projects hold 2 seat(s) beyond their reservations, where 1 are shared" in refused.reason
        engine.release(tx, ["b0"])
        assert not web(tx, "b3", "pc5", "B").granted      # still beyond: no shared seat for B
        assert web(tx, "a3", "pc2", "A").granted          # A gets the seat that freed
    recharge = [e for e in store.read_journal() if e["event"] == "recharge"]
    assert len(recharge) == 1 and "beyond" in recharge[0]["reason"]
    state = replay.replay(store.read_journal())
    assert state.problems == [] and state.violations == []


def test_replay_audit_flags_a_seat_left_charged_to_a_project_that_left_it():
    """The journal audit checks the reservation invariant: a v2 journal whose recharge is missing (the
    old behaviour) is a violation; so is a recharge to a project that does not hold the seat, and one
    beyond the reservations when a holder's reservation had room."""
    store = MemoryStore(clock=lambda: 1000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "m", "magic-xpa", {"web": 3}, {})
        engine.reserve(tx, "m", "A", "web", 1)
        engine.reserve(tx, "m", "B", "web", 1)
        web(tx, "a1", "pc1", "A")
        web(tx, "c1", "pc1", "C")
        web(tx, "b1", "pc1", "B")
        engine.release(tx, ["a1"])
    events = store.read_journal()
    recharge = [e for e in events if e["event"] == "recharge"]
    assert [e["seat_project"] for e in recharge] == ["B"]          # B's reservation had room
    assert replay.replay(events).violations == []

    stale = replay.replay([e for e in events if e["event"] != "recharge"])
    assert len(stale.violations) == 1 and "stayed charged to project A" in stale.violations[0], stale.violations

    def tampered(project):
        return [dict(e, seat_project=project) if e["event"] == "recharge" else e for e in events]

    beyond = replay.replay(tampered("C"))
    assert any("although project B had a reserved seat free" in v for v in beyond.violations), beyond.violations
    stranger = replay.replay(tampered("Z"))
    assert any("is not the project of a session holding seat" in p for p in stranger.problems), stranger.problems


# --------------------------------------------------------------------------- item 2: a true denial reason
def test_full_pool_denial_says_the_reservation_is_in_use_by_its_own_project(lt):
    """Seed 003: "Licenses reserved for a given project are acquired by workers ... before trying to
    acquire non-reserved licenses": a project that holds its reserved seat and asks for one more is
    refused because the shared seats are full, not because others took its reservation."""
    assert lt("pool", "add", "m", "--product", "magic-xpa", "--license", "threads=2").code == 0
    assert lt("reserve", "m", "A", "threads", "1").code == 0
    assert lt("acquire", "m", "--feature", "threads", "--session", "a1", "--project", "A").code == 0
    assert lt("acquire", "m", "--feature", "threads", "--session", "b1", "--project", "B").code == 0
    denied = lt("--format", "json", "acquire", "m", "--feature", "threads", "--session", "a2", "--project", "A")
    assert denied.code == 3
    expected = ("all 2 seat(s) are in use: project A uses its 1 reserved seat(s) itself "
                "and the 1 shared seat(s) are in use")
    reason = denied.json()["reason"]
    assert expected in reason and "before the reservation was made" not in reason
    deny = [e for e in journal(lt) if e["event"] == "deny"][0]
    assert deny["reason"] == expected
    why = lt("--format", "json", "explain", "a2")
    assert why.code == 4 and why.json()["reason"] == expected


def test_denial_when_others_hold_the_reservation_since_before_it_was_made():
    """The other full-pool case: the reservation was made while other projects held every seat."""
    tx = magic(threads=2)
    engine.acquire(tx, Request("m", "threads", "b1", "u", "h", "n", project="B"))
    engine.acquire(tx, Request("m", "threads", "b2", "u", "h", "n", project="B"))
    engine.reserve(tx, "m", "A", "threads", 1)
    refused = engine.acquire(tx, Request("m", "threads", "a1", "u", "h", "n", project="A"))
    assert not refused.granted
    assert "project A has 0 of its 1 reserved seat(s) in use" in refused.reason
    assert "the next seat that frees is kept for projects below their reservation, such as A" in refused.reason


# --------------------------------------------------------------------------- items 4 and 6: machine names
class DeadPids:
    """A host named ``vm`` where no process runs."""

    def __init__(self, node: str = "vm") -> None:
        self.name = node

    def login_user(self) -> str:
        return "admin"

    def account(self) -> tuple[int, str]:
        return 0, "root"

    def node(self) -> str:
        return self.name

    def pid_alive(self, pid: int) -> bool:
        return False

    def new_id(self) -> str:
        return "x"

    def caller_pid(self) -> int:
        return 1


def test_check_pids_checks_sessions_of_this_node_however_its_name_is_written():
    """vendors.md 1.6: "fglWrt -u: sync real vs registered users list on *this* machine"; seed 000's
    device IDs name machines by their Windows computer name (case-insensitive, no DNS domain)."""
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "g", "genero", {"runtime": 9}, {"lease": "0"})
    for sid, node in (("upper", "VM"), ("fqdn", "vm.corp.local"), ("exact", "vm"), ("other", "vm2"),
                      ("address", "10.0.0.7")):
        engine.acquire(tx, Request("g", None, sid, "u", "h", node, client="gwc", pid=4242))
    dropped = engine.drop_dead_processes(tx, host=DeadPids())
    assert sorted(s.id for s in dropped) == ["exact", "fqdn", "upper"]
    assert engine.drop_dead_processes(tx, host=DeadPids("10.0.0.7")) != []


def test_cli_gc_check_pids_reaps_a_dead_dvm_whose_node_differs_in_case(lt):
    import socket

    node = os.uname().nodename
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=2").code == 0
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert lt("acquire", "g", "--session", "dead", "--node", node.upper() + ".example.invalid",
              "--pid", str(proc.pid), "--client", "gwc").code == 0
    assert lt("acquire", "g", "--session", "alive", "--node", node.swapcase(), "--pid", str(os.getpid()),
              "--client", "gwc").code == 0
    rows = json.loads(lt("--format", "json", "gc", "--check-pids").out)
    assert [r["session"] for r in rows] == ["dead"], socket.gethostname()


def test_remove_host_matches_the_machine_the_way_device_ids_name_it(lt):
    """Seed 000: "The Device ID in the license server is displayed in the following format: HOST1_BMC1":
    host1.corp.local and HOST1 are the same device host, so remove --host HOST1 frees that device."""
    assert lt("pool", "add", "b", "--product", "aveva-batch", "--license", "dev=3").code == 0
    for sid, host in (("fq", "host1.corp.local"), ("low", "host1"), ("ten", "HOST10")):
        assert lt("acquire", "b", "--feature", "dev", "--session", sid, "--terminal", "--host", host,
                  "--node", "BMC1").code == 0
    rows = json.loads(lt("--format", "json", "users", "b").out)
    assert [(r["seat"], sorted(r["sessions"])) for r in rows] == [("HOST10_BMC1", ["ten"]), ("HOST1_BMC1", ["fq", "low"])]
    removed = lt("--format", "json", "remove", "--host", "HOST1")
    assert removed.code == 0 and sorted(r["session"] for r in removed.json()) == ["fq", "low"]
    assert [r["seat"] for r in json.loads(lt("--format", "json", "users", "b").out)] == ["HOST10_BMC1"]


# --------------------------------------------------------------------------- item 5: --terminal needs --host
@pytest.mark.parametrize("host", [None, "", "   "])
def test_terminal_session_without_a_client_host_is_refused(lt, host):
    """Seed 000: "Each Terminal Server session consumes a client connection license" and its device ID
    is "HOST1_BMC1" (client host, node): without the client host there is no device ID, and counting
    it as the node (BMC1_BMC1) would make every such session share one seat."""
    assert lt("pool", "add", "b", "--product", "aveva-batch", "--license", "dev=3").code == 0
    args = ["acquire", "b", "--feature", "dev", "--terminal", "--node", "BMC1"]
    if host is not None:
        args += ["--host", host]
    result = lt(*args)
    assert result.code == 2 and result.out == "" and len(result.err.splitlines()) == 1
    assert "--terminal" in result.err and "--host" in result.err
    assert json.loads(lt("--format", "json", "info", "b").out)[0]["in_use"] == 0


def test_host_still_defaults_to_the_node_without_terminal(lt):
    """SPEC.md section 3: --host defaults to this node."""
    node = os.uname().nodename
    assert lt("pool", "add", "m", "--product", "magic-xpa", "--license", "web=2").code == 0
    assert lt("pool", "add", "b", "--product", "aveva-batch", "--license", "dev=2").code == 0
    assert lt("acquire", "m", "--feature", "web", "--session", "w").code == 0
    assert lt("acquire", "b", "--feature", "dev", "--session", "d", "--host", "").code == 0
    sessions = {s["session"]: s for s in json.loads(lt("dump").out)["sessions"]}
    assert sessions["w"]["host"] == node and sessions["d"]["host"] == node


# --------------------------------------------------------------------------- item 7: Genero monitor keys
def genero(**options: str) -> MemoryTransaction:
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "g", "genero", {"runtime": 9}, options)
    return tx


def gdc(tx, sid: str, monitor: str, node: str, client: str = "gdc"):
    return engine.acquire(tx, Request("g", None, sid, "u", "pc1", node, client=client, monitor=monitor))


def test_node_relative_monitor_addresses_are_scoped_by_node():
    """Seed 001: "one license is consumed per GDC monitor, no matter the number of applications
    launched"; vendors.md 1.8: FGLSERVER is "host:display". localhost:1 on app1 and localhost:1 on app2
    are two ssh-forwarded GDC monitors; a front-end id (FrontEndId2) names one monitor everywhere."""
    tx = genero()
    assert not gdc(tx, "a", "localhost:1", "app1").shared
    assert not gdc(tx, "b", "localhost:1", "app2").shared
    assert gdc(tx, "c", "localhost:1", "APP1.corp.local").shared          # the same node
    assert not gdc(tx, "d", "127.0.0.1:0", "app1").shared
    assert not gdc(tx, "e", ":2", "app1").shared
    assert not gdc(tx, "f", "{f3619311}", "app1").shared
    assert gdc(tx, "g", "{f3619311}", "app2").shared                      # one GDC, two servers: one seat
    assert not gdc(tx, "h", "10.0.0.5:0", "app1").shared
    assert gdc(tx, "i", "10.0.0.5:0", "app2").shared                      # a real address is global
    keys = {s.id: s.seat for s in tx.find_sessions(pool="g")}
    assert keys["a"] == "monitor:gdc:localhost:1@APP1" and keys["f"] == "monitor:gdc:{f3619311}"


def test_gdc_and_gjc_on_one_address_are_two_monitors():
    """Seed 001: "one license is consumed per GDC monitor ... This is also true for GJC ... versus GJC in
    other connection modes": a GDC monitor and a GJC are two front ends."""
    tx = genero()
    assert not gdc(tx, "a", "{fe}", "app1").shared
    assert not gdc(tx, "b", "{fe}", "app1", client="gjc").shared
    assert tx.seats_in_use("g", "runtime") == 2


def test_monitor_scope_option():
    tx = genero(monitor_scope="global")                                   # lictools before issue 10
    gdc(tx, "a", "localhost:1", "app1")
    assert gdc(tx, "b", "localhost:1", "app2").shared
    tx = genero(monitor_scope="node")                                     # every monitor per server
    gdc(tx, "a", "{fe}", "app1")
    assert not gdc(tx, "b", "{fe}", "app2").shared
    with pytest.raises(UsageError):
        genero(monitor_scope="everywhere")


def test_a_monitor_seat_opened_with_the_old_key_is_still_joined_by_its_own_front_end():
    """Live sessions keyed before the change (``monitor:<ID>``) stay countable: a new DVM of the same
    front end joins their seat; one of another front end (another node's localhost) does not."""
    from lictools.apply import commit

    tx = genero()
    old = {"event": "grant", "v": 1, "time": "", "ts": 1000.0, "pool": "g", "feature": "runtime", "session": "old",
           "user": "u", "host": "pc1", "node": "app1", "client": "gdc", "monitor": "localhost:1",
           "seat": "monitor:localhost:1", "root": "old", "lease": 3600}
    commit(tx, old)
    joined = gdc(tx, "new", "localhost:1", "app1")
    assert joined.shared and joined.seat == "monitor:localhost:1"
    assert not gdc(tx, "elsewhere", "localhost:1", "app2").shared
    why = explain.explain_session(tx, "old")["why"]
    assert "pool options changed" not in why and "cannot rebuild" not in why


def test_blank_monitor_is_refused():
    """Seed 001: one license "per GDC monitor": a blank --monitor names no monitor (vendors.md 1.8:
    FGLSERVER is host:display)."""
    tx = genero()
    with pytest.raises(UsageError, match="--monitor"):
        gdc(tx, "a", " ", "app1")


# --------------------------------------------------------------------------- item 8: the fglWrt listing
AWK_PATTERN = re.compile(r"^\s*GUI Server [0-9.:]+ - Process Id [0-9]+")


def t100_users(text: str) -> list[tuple[int, int]]:
    """What the T100 / TIPTOP login code reads: the ``Users`` line's in-use and maximum counts."""
    found = []
    for line in text.splitlines():
        if line.startswith("Users"):
            used, _, most = line.split(":", 1)[1].strip().partition("/")
            found.append((int(used), int(most)))
    return found


def test_info_users_prints_the_front_end_address_and_the_dvm_pid(lt):
    """vendors.md 1.3: fglWrt prints "GUI Server 127.0.0.1:0 - Process Id 5144" under the FrontEndId2 in
    direct mode, "GUI Server 127.0.0.1:47274" then "Process Id 5596" through the GAS; public parsers
    match "^\\s*GUI Server [0-9.:]+ - Process Id [0-9]+"."""
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=5").code == 0
    assert lt("pool", "add", "other", "--product", "genero", "--license", "runtime=3").code == 0
    lt("acquire", "g", "--client", "gdc", "--monitor", "10.0.0.5:0", "--host", "10.0.0.5", "--user", "user1",
       "--pid", "5144", "--session", "s1")
    lt("acquire", "g", "--client", "gdc", "--monitor", "10.0.0.7:0", "--host", "ws7", "--user", "user2",
       "--session", "s2")                                    # no --pid: the acquiring process's parent
    lt("acquire", "g", "--client", "gwc", "--host", "10.0.0.6", "--user", "user3", "--pid", "5596", "--session", "s3")
    out = lt("info", "users", "--pool", "g").out
    lines = out.splitlines()
    assert "        GUI Server 10.0.0.5:0 - Process Id 5144" in lines
    assert f"        GUI Server 10.0.0.7:0 - Process Id {os.getppid()}" in lines
    assert "    GUI Server 10.0.0.6" in lines and "        Process Id 5596" in lines
    assert "Process Id -" not in out
    # the awk parser: each matching line is followed by the details of that DVM's user
    matched = [i for i, line in enumerate(lines) if AWK_PATTERN.match(line)]
    users = [next(l.split(": ")[1] for l in lines[i + 1:] if "user-name:" in l) for i in matched]
    assert users == ["user1", "user2"]
    assert t100_users(out) == [(3, 5)]
    # the same from a shell, as a script runs it
    proc = subprocess.run(f"{sys.executable} -m lictools info users --pool g 2>&1 | grep -cE "
                          "'^\\s*GUI Server [0-9.:]+ - Process Id [0-9]+'",
                          shell=True, capture_output=True, text=True, env=dict(os.environ))
    assert proc.stdout.strip() == "2"
    # without a pool, one Users line per pool feature
    assert t100_users(lt("info", "users").out) == [(3, 5), (0, 3)]


def test_caller_pid_is_shown_but_never_checked_by_gc(lt):
    """vendors.md 1.6: fglWrt -u drops sessions whose process is gone; lictools checks --pid only, so
    the PID shown for a session acquired without --pid (its caller's parent) never frees a seat."""
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=5", "--option", "check_pids=yes").code == 0
    assert lt("acquire", "g", "--client", "gwc", "--session", "s").code == 0
    doc = json.loads(lt("dump").out)["sessions"][0]
    assert doc["pid"] is None and doc["caller_pid"] == os.getppid()
    assert json.loads(lt("--format", "json", "gc", "--check-pids").out) == []
    assert json.loads(lt("--format", "json", "info", "g").out)[0]["in_use"] == 1


def test_fglwrt_front_end_gives_exactly_one_users_line(ltp, state):
    """vendors.md 1.3: "fglWrt -a info users 2>&1|grep Users" (scripts expect one Users line)."""
    assert ltp("pool", "add", "g", "--product", "genero", "--license", "runtime=5").code == 0
    assert ltp("pool", "add", "h", "--product", "genero", "--license", "runtime=2").code == 0
    assert ltp("acquire", "g", "--client", "gwc").code == 0
    env = dict(os.environ, LICTOOLS_FGLWRT_POOL="g", LICTOOLS_BIN=f"{sys.executable} -m lictools")
    proc = subprocess.run(["bash", str(REPO / "examples" / "fglWrt"), "-a", "info", "users"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert t100_users(proc.stdout) == [(1, 5)]
    proc = subprocess.run(["bash", str(REPO / "examples" / "fglWrt"), "-u"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- item 9: smaller ones
def test_magic_web_grouping_strips_the_domain_like_host_lock():
    """Seed 003: "Multiple Web clients from the same machine consume one (Web) license": pc1 and
    pc1.corp.local are one machine (as --host-lock compares them)."""
    tx = magic(web=3)
    assert web(tx, "a", "pc1", None).seat == "web:pc1"
    assert web(tx, "b", "PC1.corp.local", None).shared
    assert tx.seats_in_use("m", "web") == 1


def test_magic_seat_opened_with_a_domain_in_its_key_is_still_joined():
    from lictools.apply import commit

    tx = magic(web=3)
    commit(tx, {"event": "grant", "v": 1, "time": "", "ts": 1000.0, "pool": "m", "feature": "web", "session": "old",
                "user": "u", "host": "pc1.corp.local", "node": "n", "seat": "web:pc1.corp.local", "lease": 3600})
    assert web(tx, "new", "pc1.corp.local", None).seat == "web:pc1.corp.local"


@pytest.mark.parametrize("version,web_grouped,ria_grouped", [
    ("4.13", True, True), ("4.0", True, True), ("3.9", False, True), ("3.2", False, True), ("3.1", False, False),
    ("10", True, True),
])
def test_magic_version_is_any_version_grouped_by_the_thresholds(version, web_grouped, ria_grouped):
    """Seed 003: RIA grouping "Since version: 3.2", Web grouping "Since version: 4.0"."""
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "m", "magic-xpa", {"web": 5, "ria": 5}, {"version": version})
    for sid in ("w1", "w2"):
        engine.acquire(tx, Request("m", "web", sid, "u", "pc1", "n"))
    for sid in ("r1", "r2"):
        engine.acquire(tx, Request("m", "ria", sid, "u", "pc1", "n", app="Orders"))
    assert tx.seats_in_use("m", "web") == (1 if web_grouped else 2)
    assert tx.seats_in_use("m", "ria") == (1 if ria_grouped else 2)


@pytest.mark.parametrize("version", ["four", "4.", "", "4.0.0.0.0", "4.x"])
def test_magic_version_must_be_a_version(version):
    with pytest.raises(UsageError):
        engine.add_pool(MemoryTransaction(empty_document(), now=1.0), "m", "magic-xpa", {}, {"version": version})


def test_aveva_lease_not_longer_than_the_refresh_interval_warns(lt):
    """Seed 000: "A timer refreshes the connection license ... at an interval of five minutes": a lease
    that is not longer than the refresh interval ends between two refreshes."""
    added = lt("pool", "add", "b", "--product", "aveva-batch", "--option", "lease=120")
    assert added.code == 0 and len(added.err.splitlines()) == 1
    assert "lease 120 s" in added.err and "refresh_interval 300 s" in added.err
    changed = lt("pool", "set", "b", "--option", "lease=1200")
    assert changed.code == 0 and changed.err == ""
    changed = lt("pool", "set", "b", "--option", "refresh_interval=1200")
    assert changed.code == 0 and "lease 1200 s" in changed.err
    assert lt("pool", "set", "b", "--option", "lease=0").err == ""      # never expires: nothing to warn


def test_blank_monitor_is_exit_2_on_the_cli(lt):
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=2").code == 0
    result = lt("acquire", "g", "--client", "gdc", "--monitor", " ")
    assert result.code == 2 and len(result.err.splitlines()) == 1


def test_acquire_help_names_no_product(lt):
    """Product knowledge lives in the rule modules: acquire's help stays product-neutral."""
    text = lt("acquire", "--help").out.lower()
    for name in ("genero", "aveva", "magic", "gdc", "fglserver"):
        assert name not in text, name


def test_views_listing_json_has_the_front_end_address():
    tx = genero()
    engine.acquire(tx, Request("g", None, "s", "u", "10.0.0.5", "app1", client="gdc", monitor="10.0.0.5:0",
                               pid=7, caller_pid=99))
    block = views.listing(tx, "g")[0]
    session = block["front_ends"][0]["sessions"][0]
    assert (session["address"], session["pid"], session["caller_pid"]) == ("10.0.0.5:0", 7, 99)


def test_explain_says_which_project_a_recharged_seat_counts_for():
    tx = magic(web=2)
    web(tx, "a1", "pc1", "A")
    web(tx, "b1", "pc1", "B")
    engine.release(tx, ["a1"])
    doc = explain.explain_session(tx, "b1")
    assert doc["seat_project"] == "B" and "the seat counts for project B" in doc["cost"]


# --------------------------------------------------------------------------- the man page says every choice
def test_products_page_documents_every_choice_and_option():
    """Done means (issue 10): products(7) says, for every choice, what lictools does and which option changes it."""
    from lictools.rules import RULES, get_rule, rule_options

    raw = (REPO / "man" / "man7" / "lictools-products.7").read_text().replace("\\-", "-")
    page = " ".join(raw.split())
    for product in RULES:
        for option in rule_options(get_rule(product)):
            assert f".B {option}" in raw, option
    for phrase in ("recharge", "monitor_scope", "node-relative", "caller", "--terminal", "MACHINE NAMES",
                   "counts beyond the reservations", "4.13", "refresh_interval", "exactly one", "RESERVATION INVARIANT"):
        assert phrase in page, phrase


def test_sqlite_seat_counters_follow_a_recharge(tmp_path, clock):
    """The SQLite layout counts seats per project with triggers: a recharge must move the seat's charge
    (the crash harness found a reservation overrun when only the sessions' own counts moved)."""
    import sqlite3

    from lictools.stores.sqlite import RECOUNT, SqliteStore

    store = SqliteStore(str(tmp_path / "state.db"), 5)
    with store.transaction() as tx:
        engine.add_pool(tx, "m", "magic-xpa", {"web": 3}, {})
        engine.reserve(tx, "m", "A", "web", 1)
        for session, project in (("a1", "A"), ("b1", "B"), ("c1", "C")):
            engine.acquire(tx, Request("m", "web", session, "u", "pc1", "n", project=project))
    with store.transaction() as tx:
        engine.release(tx, ["a1"])  # the grouped seat web:pc1 is re-charged to B (or C)
        counted = tx.seats_by_project("m", "web")
    db = sqlite3.connect(str(tmp_path / "state.db"))
    db.execute("BEGIN")
    for statement in RECOUNT:
        db.execute(statement)
    recounted = {(p or None): n for p, n in db.execute("SELECT project, seats FROM usage WHERE seats > 0")}
    db.rollback()
    db.close()
    assert counted == recounted and sum(counted.values()) == 1 and "A" not in counted, (counted, recounted)
