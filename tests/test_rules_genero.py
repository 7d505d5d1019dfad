"""genero: every scenario of seed 001_f4c482de6d79ae5e.txt, with the seed sentence beside it."""

from __future__ import annotations

import json
import re

import pytest

from lictools import engine, views
from lictools.host import SYSTEM
from lictools.errors import NotFoundError, UsageError
from lictools.model import Request
from lictools.rules import get_rule
from lictools.stores.memory import MemoryTransaction, empty_document

DENIAL = "-6017 User limit exceeded. Cannot run this program."


# --------------------------------------------------------------------------- helpers
def make(runtime: int = 10, **options: str) -> MemoryTransaction:
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "g", "genero", {"runtime": runtime}, options)
    return tx


def dvm(tx, client: str | None = "gwc", parent: str | None = None, monitor: str | None = None,
        host: str = "pc1", user: str = "alice", session: str | None = None, pool: str = "g"):
    request = Request(pool=pool, feature=None, session=session or SYSTEM.new_id(), user=user, host=host,
                      node="appsrv", client=client, parent=parent, monitor=monitor)
    return engine.acquire(tx, request)


def in_use(tx) -> int:
    return tx.seats_in_use("g", "runtime")


def seats(tx) -> list[str]:
    return sorted(row["seat"] for row in views.users(tx, "g"))


def later(tx: MemoryTransaction, seconds: float) -> MemoryTransaction:
    nxt = MemoryTransaction(tx.doc, now=tx.now + seconds)
    engine.reap(nxt)
    return nxt


# --------------------------------------------------------------------------- the rule module
def test_rule_module_interface():
    rule = get_rule("genero")
    assert rule.FEATURES == ("runtime",)
    assert rule.DEFAULT_LEASE == 3600
    assert rule.DETACH_OPTION == "user_agent_timeout"
    assert rule.OPTIONS["user_agent_timeout"].default == "300"
    assert rule.DENIAL_TEXT == DENIAL
    doc = " ".join(rule.__doc__.split())
    assert "RUN WITHOUT WAITING" in doc and "one license is consumed per GDC monitor" in doc


def test_feature_is_optional_runtime_is_the_only_one():
    tx = make()
    outcome = dvm(tx)
    assert outcome.granted and outcome.feature == "runtime"


# --------------------------------------------------------------------------- seed scenarios
def test_two_user_agents_two_dvms_two_licenses():
    """"This diagram shows two (2) User Agents connected to two (2) DVMs. (The connection is made
    via the Web server, fglccgi / fglcisapi, and gasd.) In this scenario, two (2) runtime licenses
    are used." """
    tx = make()
    a = dvm(tx, "gwc", user="alice", host="pc1")
    b = dvm(tx, "gwc", user="bob", host="pc2")
    assert in_use(tx) == 2
    assert seats(tx) == sorted([f"dvm:{a.session.id}", f"dvm:{b.session.id}"])


def test_two_browser_tabs_with_their_own_dvm_are_two_licenses():
    """"If you open two tabs in a browser, and each tab connects to its own DVM, then it is just as
    if two browsers were being used, and two (2) runtime licenses are used." """
    tx = make()
    dvm(tx, "gbc", host="pc1")
    dvm(tx, "gbc", host="pc1")
    assert in_use(tx) == 2


def test_two_user_agents_whose_apps_run_others_use_two_licenses():
    """"This diagram shows two (2) user agents connected to an application, which in turn calls
    other applications using the Genero BDL RUN command or the RUN WITHOUT WAITING statement. In
    this scenario, two (2) runtime licenses are used." """
    tx = make()
    roots = [dvm(tx, "gwc", host=h).session for h in ("pc1", "pc2")]
    for root in roots:
        dvm(tx, "gwc", parent=root.id)            # RUN
        dvm(tx, "gwc", parent=root.id)            # RUN WITHOUT WAITING
    assert in_use(tx) == 2
    assert seats(tx) == sorted(f"dvm:{r.id}" for r in roots)


def test_four_user_agents_on_two_pcs_four_dvms_four_licenses():
    """"This diagram shows four (4) user agents running on two (2) different PCs and connected to
    four (4) DVMs. In this scenario, four (4) runtime licenses are used." """
    tx = make()
    ids = [dvm(tx, "gwc", host=h).session.id for h in ("pc1", "pc1", "pc2", "pc2")]
    assert in_use(tx) == 4
    assert seats(tx) == sorted(f"dvm:{i}" for i in ids)


def test_four_user_agents_some_running_external_dvms_four_licenses():
    """"This diagram shows four (4) user agents running on two (2) different PCs and connected to
    four (4) DVMs, some of which are running external DVMs using the Genero BDL RUN command. In this
    scenario, four (4) runtime licenses are used." """
    tx = make()
    roots = [dvm(tx, "gwc", host=h).session for h in ("pc1", "pc1", "pc2", "pc2")]
    child = dvm(tx, "gwc", parent=roots[0].id)
    dvm(tx, "gwc", parent=roots[2].id)
    dvm(tx, "gwc", parent=child.session.id)       # a grandchild: RUN from a RUN child
    assert in_use(tx) == 4
    assert seats(tx) == sorted(f"dvm:{r.id}" for r in roots)


def test_run_child_uses_the_same_license_even_with_new_user_agents():
    """"For example, one license is used when an application is started from a User Agent. If within
    this application, a RUN or a RUN WITHOUT WAITING is executed, the same license is used, even if
    the first User Agent opens new User Agents." """
    tx = make()
    root = dvm(tx, "gwc").session
    child = dvm(tx, "gbc", parent=root.id, host="pc1")   # opens a new user agent: still the root's seat
    grandchild = dvm(tx, "gdc-http", parent=child.session.id)
    assert in_use(tx) == 1
    assert child.shared and grandchild.shared
    assert child.seat == grandchild.seat == f"dvm:{root.id}"
    # Seat.root: every session records its root DVM (a root records itself)
    assert tx.get_session(root.id).root == root.id
    assert tx.get_session(child.session.id).root == root.id
    assert tx.get_session(grandchild.session.id).root == root.id
    # a child takes its root's client kind
    assert tx.get_session(child.session.id).client == "gwc"


def test_application_started_in_another_user_agent_takes_a_new_license():
    """"If, however, an application is started in another User Agent (without RUN or RUN WITHOUT
    WAITING), a new license is used." """
    tx = make()
    dvm(tx, "gwc", user="alice")
    second = dvm(tx, "gwc", user="alice")
    assert not second.shared and in_use(tx) == 2


def test_front_ends_need_no_license_information_every_client_kind_is_accepted():
    """"The Genero Front End -- whether GWC, GDC-HTTP, GDCAX, or GJC -- does not require any
    additional license information." The DVM is what is counted; every front-end kind is accepted."""
    tx = make(20)
    for kind in ("gdc-http", "gdcax", "gwc", "gbc", "gjc-http", "gjc-applet", "tui", None):
        assert dvm(tx, kind).granted
    for kind in ("gdc", "gjc"):
        assert dvm(tx, kind, monitor=f"{kind}-monitor").granted
    assert in_use(tx) == 10


def test_dvm_shut_down_frees_the_license_immediately():
    """"A license is freed when the applications closes, or to be more exact, when the DVM is shut
    down. If the user exits the application by clicking on the cancel or exit button, the DVM is
    shut down and the license is immediately freed." """
    tx = make()
    root = dvm(tx, "gwc").session
    engine.release(tx, [root.id])
    assert in_use(tx) == 0


def test_closing_the_user_agent_keeps_the_license_until_user_agent_timeout():
    """"If, however, the user does not exit the application but instead closes the User Agent, the
    DVM continues to run until the application times out (the number of seconds is set for the
    USER_AGENT timeout). After the timeout period passes, the gasd closes the connection to the DVM,
    the DVM shuts down, and the license is freed." """
    tx = make()
    assert tx.get_pool("g").options["user_agent_timeout"] == "300"
    root = dvm(tx, "gwc").session
    engine.detach(tx, [root.id])
    assert later(tx, 299).get_session(root.id) is not None
    t = later(tx, 300)
    assert t.get_session(root.id) is None and in_use(t) == 0
    assert t.events[-1]["event"] == "expire" and t.events[-1]["reason"] == "detached session timed out"


def test_user_agent_timeout_option():
    tx = make(user_agent_timeout="60")
    root = dvm(tx, "gbc").session
    engine.detach(tx, [root.id])
    assert later(tx, 60).get_session(root.id) is None


def test_gdc_direct_mode_one_license_per_monitor():
    """"For the latter [GDC in rlogin, telnet or ssh], one license is consumed per GDC monitor, no
    matter the number of applications launched." """
    tx = make()
    for _ in range(3):
        dvm(tx, "gdc", monitor="M1")
    assert seats(tx) == ["monitor:gdc:M1"]
    dvm(tx, "gdc", monitor="M2", host="pc1")   # a second GDC instance on the same PC
    assert seats(tx) == ["monitor:gdc:M1", "monitor:gdc:M2"]


def test_gdc_http_and_gdcax_do_not_count_per_monitor():
    """"GDC-HTTP and GDCAX do not have the same license counting rules as the GDC has in other
    connection modes (rlogin, telnet or ssh)." """
    tx = make()
    for kind in ("gdc-http", "gdc-http", "gdcax"):
        dvm(tx, kind, monitor="M1")
    assert in_use(tx) == 3


def test_gjc_direct_per_monitor_gjc_http_and_applet_per_dvm():
    """"This is also true for GJC-HTTP and GJC Applet versus GJC in other connection modes." """
    tx = make()
    dvm(tx, "gjc", monitor="J1")
    dvm(tx, "gjc", monitor="J1")
    assert in_use(tx) == 1
    dvm(tx, "gjc-http", monitor="J1")
    dvm(tx, "gjc-applet", monitor="J1")
    assert in_use(tx) == 3


def test_direct_mode_requires_a_monitor():
    tx = make()
    with pytest.raises(UsageError, match="--monitor"):
        dvm(tx, "gdc")


def test_unknown_client_kind_is_a_usage_error():
    tx = make()
    with pytest.raises(UsageError, match="unknown --client"):
        dvm(tx, "netscape")


def test_child_of_a_direct_mode_dvm_takes_its_monitor_seat():
    tx = make()
    root = dvm(tx, "gdc", monitor="M1").session
    child = dvm(tx, None, parent=root.id)
    assert child.seat == "monitor:gdc:M1" and child.shared
    stored = tx.get_session(child.session.id)
    assert (stored.client, stored.monitor, stored.root) == ("gdc", "M1", root.id)


def test_denial_text_is_the_runtime_message():
    """vendors.md 1.5: "Pool exhausted -> DVM prints -6017 User limit exceeded. Cannot run this program." """
    tx = make(1)
    dvm(tx, "gwc")
    denied = dvm(tx, "gwc")
    assert not denied.granted and denied.denial_text == DENIAL
    assert "needs a new seat dvm:" in denied.reason and "all 1 seat(s) are in use" in denied.reason


# --------------------------------------------------------------------------- parents that went away
def test_child_joins_the_root_seat_after_the_parent_root_has_exited():
    tx = make(1)
    root = dvm(tx, "gwc").session
    first = dvm(tx, "gwc", parent=root.id).session
    engine.release(tx, [root.id])                 # the root exits, its child holds the seat
    late = dvm(tx, "gwc", parent=root.id)         # RUN WITHOUT WAITING issued before the exit
    assert late.granted and late.shared and late.seat == f"dvm:{root.id}"
    assert tx.get_session(late.session.id).root == root.id
    assert in_use(tx) == 1 and first.id in views.users(tx, "g")[0]["sessions"]


def test_child_joins_the_root_seat_after_an_intermediate_parent_has_exited():
    tx = make(1)
    root = dvm(tx, "gwc").session
    middle = dvm(tx, "gwc", parent=root.id).session
    dvm(tx, "gwc", parent=middle.id)
    engine.release(tx, [middle.id, root.id])      # only the grandchild still runs
    late = dvm(tx, "gwc", parent=middle.id)
    assert late.granted and late.seat == f"dvm:{root.id}"
    assert tx.get_session(late.session.id).root == root.id


def test_child_whose_parent_tree_is_gone_is_unknown_parent():
    tx = make()
    root = dvm(tx, "gwc").session
    engine.release(tx, [root.id])
    with pytest.raises(NotFoundError, match="unknown parent"):
        dvm(tx, "gwc", parent=root.id)
    with pytest.raises(NotFoundError):
        dvm(tx, "gwc", parent="never-existed")


def test_child_shares_even_when_the_pool_is_full():
    tx = make(1)
    root = dvm(tx, "gwc").session
    child = dvm(tx, "gwc", parent=root.id)
    assert child.granted and child.shared
    assert not dvm(tx, "gwc").granted


def test_child_of_a_detached_parent_still_shares():
    tx = make(1)
    root = dvm(tx, "gwc").session
    engine.detach(tx, [root.id])
    assert dvm(tx, "gwc", parent=root.id).shared


def test_parent_in_another_pool_is_refused():
    tx = make()
    engine.add_pool(tx, "g2", "genero", {"runtime": 2})
    other = dvm(tx, "gwc", pool="g2").session
    with pytest.raises(UsageError, match="pool g2"):
        dvm(tx, "gwc", parent=other.id)


def test_explain_reason_for_a_child_names_its_root():
    tx = make()
    root = dvm(tx, "gwc").session
    child = dvm(tx, "gwc", parent=root.id)
    assert f"root DVM {root.id}" in child.reason and "costs no new seat" in child.reason


# --------------------------------------------------------------------------- through the CLI


def test_cli_denial_prints_the_runtime_message(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")[0] == 0
    assert cli("acquire", "g", "--client", "gwc")[0] == 0
    code, out, err = cli("acquire", "g", "--client", "gwc")
    assert code == 3 and out == ""
    assert err == f"{DENIAL}\n"


def test_cli_unknown_parent_is_exit_4_and_missing_monitor_exit_2(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")[0] == 0
    code, _, err = cli("acquire", "g", "--parent", "gone-away")
    assert code == 4 and len(err.splitlines()) == 1 and "unknown parent" in err
    code, _, err = cli("acquire", "g", "--client", "gdc")
    assert code == 2 and len(err.splitlines()) == 1


def test_cli_info_users_is_the_fglwrt_layout(cli):
    """"To determine the number of licenses used, run "fglWrt -u" followed by "fglWrt -a info users"." """
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=5")[0] == 0
    root = cli("acquire", "g", "--client", "gdc", "--monitor", "{f3619311}", "--host", "10.0.0.5",
               "--user", "user1", "--pid", "5144")[1].strip()
    cli("acquire", "g", "--parent", root, "--pid", "5145")
    cli("acquire", "g", "--client", "gwc", "--host", "10.0.0.6", "--user", "user2", "--pid", "5596")
    cli("acquire", "g", "--client", "tui", "--user", "user3", "--pid", "772")
    code, out, err = cli("info", "users", "g")
    assert code == 0 and err == ""
    lines = out.splitlines()
    users = [l for l in lines if re.match(r"^Users +: [0-9]+/[0-9]+$", l)]
    assert users == ["Users        : 3/5"]
    for label in ("License", "Pool", "Product", "Type", "Users"):
        assert any(l.startswith(label.ljust(13) + ": ") for l in lines), label
    assert "    FrontEndId2: {f3619311}" in lines
    assert "        GUI Server 10.0.0.5 - Process Id 5144" in lines
    assert "        GUI Server 10.0.0.5 - Process Id 5145" in lines     # the RUN child, same front end
    assert "    GUI Server 10.0.0.6" in lines and "        Process Id 5596" in lines
    assert "    Terminal " in out and "        Process Id 772" in lines
    assert "            cx-mode: direct" in lines and "            cx-mode: gas" in lines
    assert "            user-name: user1" in lines
    pids = re.findall(r"Process Id ([0-9]+)", out)
    assert sorted(pids) == ["5144", "5145", "5596", "772"]
    # indentation is 4/8/12
    assert {len(l) - len(l.lstrip()) for l in lines if l.strip()} == {0, 4, 8, 12}


def test_cli_info_users_stderr_like_old_fglwrt(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=5")[0] == 0
    cli("acquire", "g", "--client", "gwc")
    code, out, err = cli("info", "users", "--stderr")
    assert code == 0 and out == ""
    assert re.search(r"^Users +: 1/5$", err, re.M)


def test_cli_info_users_json_shape(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=5")[0] == 0
    sid = cli("acquire", "g", "--client", "gdc", "--monitor", "M1", "--pid", "42")[1].strip()
    blocks = json.loads(cli("--format", "json", "info", "users")[1])
    assert len(blocks) == 1
    block = blocks[0]
    assert {k: block[k] for k in ("pool", "product", "feature", "users", "max")} == {
        "pool": "g", "product": "genero", "feature": "runtime", "users": 1, "max": 5}
    fe = block["front_ends"][0]
    assert (fe["kind"], fe["id"], fe["seat"]) == ("monitor", "M1", "monitor:gdc:M1")
    assert fe["sessions"][0]["session"] == sid and fe["sessions"][0]["pid"] == 42
    assert fe["sessions"][0]["cx_mode"] == "direct"


def test_cli_detach_then_gc_frees_after_user_agent_timeout(cli, monkeypatch):
    monkeypatch.setenv("LICTOOLS_NOW", "1000")
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")[0] == 0
    sid = cli("acquire", "g", "--client", "gwc")[1].strip()
    assert cli("detach", sid)[0] == 0
    monkeypatch.setenv("LICTOOLS_NOW", "1299")
    assert json.loads(cli("--format", "json", "info", "g")[1])[0]["in_use"] == 1
    monkeypatch.setenv("LICTOOLS_NOW", "1300")
    assert json.loads(cli("--format", "json", "info", "g")[1])[0]["in_use"] == 0

