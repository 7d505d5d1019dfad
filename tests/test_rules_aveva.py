"""aveva-batch: every scenario of seed 000_913904e4552ffb47.txt, with the seed sentence beside it."""

from __future__ import annotations

import json

import pytest

from lictools import engine, views
from lictools.host import SYSTEM
from lictools.errors import UsageError
from lictools.model import Request
from lictools.rules import get_rule
from lictools.stores.memory import MemoryTransaction, empty_document


# --------------------------------------------------------------------------- helpers
def make(dev: int = 5, mom: int = 5, **options: str) -> MemoryTransaction:
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "batch", "aveva-batch", {"dev": dev, "mom": mom}, options)
    return tx


def ask(tx, feature: str, node: str = "BMC1", host: str | None = None, terminal: bool = False,
        user: str = "alice", session: str | None = None, app: str | None = None):
    request = Request(pool="batch", feature=feature, session=session or SYSTEM.new_id(), user=user,
                      host=host or node, node=node, terminal=terminal, app=app)
    return engine.acquire(tx, request)


def seats(tx, feature: str) -> list[str]:
    return sorted(row["seat"] for row in views.users(tx, "batch", feature))


def later(tx: MemoryTransaction, seconds: float) -> MemoryTransaction:
    """The same state, ``seconds`` later, with expired leases reaped."""
    nxt = MemoryTransaction(tx.doc, now=tx.now + seconds)
    engine.reap(nxt)
    return nxt


# --------------------------------------------------------------------------- the rule module
def test_rule_module_interface():
    rule = get_rule("aveva-batch")
    assert rule.NAME == "aveva-batch"
    assert rule.FEATURES == ("dev", "mom")
    assert rule.DEFAULT_LEASE == 1200
    assert rule.OPTIONS["refresh_interval"].default == "300"
    assert rule.OPTIONS["server_refresh_interval"].default == "86400"
    assert rule.OPTIONS["device_case"].default == "upper"
    # the docstring quotes the seed sentences it implements
    doc = " ".join(rule.__doc__.split())
    assert "HOST1_BMC1" in doc and "5 minutes and 24 hours respectively" in doc


def test_feature_is_required():
    tx = make()
    with pytest.raises(UsageError):
        ask(tx, None)
    with pytest.raises(UsageError):
        ask(tx, "runtime")


# --------------------------------------------------------------------------- seed scenarios
def test_one_dev_license_for_all_dev_clients_of_a_node():
    """"A single Development Client connection license is consumed for all development client
    applications (including automation servers), which are opened from the same node." """
    tx = make()
    outcomes = [ask(tx, "dev", app=app) for app in ("IDE", "Recipe Editor", "automation server")]
    assert all(o.granted for o in outcomes)
    assert [o.shared for o in outcomes] == [False, True, True]
    assert seats(tx, "dev") == ["BMC1"]
    assert tx.seats_in_use("batch", "dev") == 1


def test_one_mom_license_for_all_runtime_clients_of_a_node_any_product():
    """"A single MOM Client connection license is consumed for all runtime client applications,
    which are opened from the same node. These runtime client applications can be from any of the
    products such as Batch Management, MES, or Skelta BPM." """
    tx = make()
    for app in ("Batch Management", "MES", "Skelta BPM"):
        assert ask(tx, "mom", app=app).granted
    assert seats(tx, "mom") == ["BMC1"]
    assert tx.seats_in_use("batch", "mom") == 1


def test_dev_and_mom_are_counted_separately():
    """"... then a maximum of one Development client connection license for development clients
    and one MOM client connection license for runtime clients are consumed." """
    tx = make()
    ask(tx, "dev")
    ask(tx, "mom")
    ask(tx, "dev")
    assert seats(tx, "dev") == ["BMC1"] and seats(tx, "mom") == ["BMC1"]
    assert tx.seats_in_use("batch", "dev") == 1 and tx.seats_in_use("batch", "mom") == 1


def test_terminal_server_session_device_id_is_host_underscore_node():
    """"When you launch a terminal server session on a machine where development and/or runtime
    clients are installed, a AVEVA Batch Management Development Client connection license or a MOM
    client connection license is consumed for each terminal server session. The Device ID in the
    license server is displayed in the following format: HOST1_BMC1" """
    tx = make()
    dev = ask(tx, "dev", host="HOST1", terminal=True)
    mom = ask(tx, "mom", host="HOST1", terminal=True)
    assert dev.seat == "HOST1_BMC1" and mom.seat == "HOST1_BMC1"
    assert seats(tx, "dev") == ["HOST1_BMC1"] and seats(tx, "mom") == ["HOST1_BMC1"]


@pytest.mark.parametrize("second_user", ["alice", "bob"], ids=["same-user", "different-user"])
def test_two_ts_sessions_same_host_one_dev_and_one_mom(second_user):
    """"If you launch two Terminal Server sessions to the same machine from the same host (either
    with same user/different user), then a maximum of one Development client connection license
    for development clients and one MOM client connection license for runtime clients are consumed." """
    tx = make()
    for user in ("alice", second_user):
        ask(tx, "dev", host="HOST1", terminal=True, user=user)
        ask(tx, "mom", host="HOST1", terminal=True, user=user)
    assert tx.seats_in_use("batch", "dev") == 1
    assert tx.seats_in_use("batch", "mom") == 1
    assert seats(tx, "dev") == seats(tx, "mom") == ["HOST1_BMC1"]


@pytest.mark.parametrize("second_user", ["alice", "bob"], ids=["same-user", "different-user"])
def test_ts_sessions_from_host1_and_host2_take_two_licenses(second_user):
    """"If you use development client of BMC1 by launching Terminal Server session of BMC1 from
    HOST1, and Terminal Server session of BMC1 from HOST2 (either with same user/different user),
    then two client connection licenses are consumed as follows: HOST1_BMC1 HOST2_BMC1" """
    tx = make()
    ask(tx, "dev", host="HOST1", terminal=True, user="alice")
    ask(tx, "dev", host="HOST2", terminal=True, user=second_user)
    assert tx.seats_in_use("batch", "dev") == 2
    assert seats(tx, "dev") == ["HOST1_BMC1", "HOST2_BMC1"]


@pytest.mark.parametrize("second_user", ["alice", "bob"], ids=["same-user", "different-user"])
def test_ts_sessions_from_host1_twice_take_one_license(second_user):
    """"If you use development client of BMC1 by launching Terminal Server session of BMC1 from
    HOST1 and Terminal Server session of BMC1 from HOST1 (either with same user/different user),
    then one client connection license is consumed as follows: HOST1_BMC1" """
    tx = make()
    first = ask(tx, "dev", host="HOST1", terminal=True, user="alice")
    second = ask(tx, "dev", host="HOST1", terminal=True, user=second_user)
    assert (first.shared, second.shared) == (False, True)
    assert tx.seats_in_use("batch", "dev") == 1
    assert seats(tx, "dev") == ["HOST1_BMC1"]


def test_several_clients_inside_one_ts_session_take_one_license():
    """"Only one client license is consumed whenever more than one development client or more
    than one run time client is connected on a Terminal Server session." """
    tx = make()
    for app in ("IDE", "Recipe Editor", "Batch Display"):
        ask(tx, "dev", host="HOST1", terminal=True, app=app)
    for app in ("MES client", "Batch View"):
        ask(tx, "mom", host="HOST1", terminal=True, app=app)
    assert seats(tx, "dev") == ["HOST1_BMC1"] and seats(tx, "mom") == ["HOST1_BMC1"]


def test_each_ts_session_from_different_hosts_consumes_a_license():
    """"Each Terminal Server session consumes a client connection license, irrespective of whether
    it is launched by the same user or a different user from different host machines." """
    tx = make()
    for host in ("HOST1", "HOST2", "HOST3"):
        ask(tx, "mom", host=host, terminal=True, user="alice")
    assert seats(tx, "mom") == ["HOST1_BMC1", "HOST2_BMC1", "HOST3_BMC1"]


def test_console_and_ts_session_on_one_node_are_two_devices():
    """The node's own clients have device ID BMC1, a TS session from HOST1 has HOST1_BMC1."""
    tx = make()
    ask(tx, "dev")
    ask(tx, "dev", host="HOST1", terminal=True)
    assert seats(tx, "dev") == ["BMC1", "HOST1_BMC1"]


def test_remote_client_device_id_is_its_own_node():
    """"Remote clients communicate with the Security Manager in the Batch Management Server machine."
    A remote (non terminal server) client is counted on its own node; --host does not change it."""
    tx = make()
    assert ask(tx, "dev", node="BMC2", host="SERVER").seat == "BMC2"


def test_dev_license_released_with_the_last_dev_client_of_the_node():
    """"A Development Client connection license gets released on closing the last development
    client in a particular node." """
    tx = make()
    a = ask(tx, "dev", host="HOST1", terminal=True).session
    b = ask(tx, "dev", host="HOST1", terminal=True).session
    engine.release(tx, [a.id])
    assert seats(tx, "dev") == ["HOST1_BMC1"]
    engine.release(tx, [b.id])
    assert seats(tx, "dev") == [] and tx.seats_in_use("batch", "dev") == 0


def test_mom_license_released_with_the_last_runtime_client_on_that_node():
    """"An MOM Client connection license gets released on closing the last runtime client on that node." """
    tx = make()
    ids = [ask(tx, "mom", app=app).session.id for app in ("Batch Management", "MES")]
    dev = ask(tx, "dev").session.id
    engine.release(tx, ids[:1])
    assert seats(tx, "mom") == ["BMC1"]
    engine.release(tx, ids[1:])
    assert seats(tx, "mom") == []
    assert seats(tx, "dev") == ["BMC1"]  # the dev seat of the node is not touched
    assert tx.get_session(dev) is not None


def test_refresh_every_five_minutes_keeps_the_seat_missing_refreshes_frees_it():
    """"A timer refreshes the connection license for active development and runtime client
    connections, at an interval of five minutes." / "The SecMngr service refreshes the client
    connections at an interval of 5 minutes and 24 hours respectively." (read: clients every 5
    minutes, the server license every 24 hours). Default lease 1200 s = 20 minutes without refresh."""
    tx = make()
    pool = tx.get_pool("batch")
    assert pool.options["refresh_interval"] == "300"
    assert pool.options["server_refresh_interval"] == "86400"
    assert pool.options["lease"] == "1200"
    kept = ask(tx, "dev", host="HOST1", terminal=True).session.id
    lost = ask(tx, "dev", host="HOST2", terminal=True).session.id
    t = tx
    for _ in range(5):  # 25 minutes, refreshing every 5
        t = later(t, 300)
        refreshed, missing, *_ = engine.refresh(t, [kept])
        assert missing == [] and len(refreshed) == 1
    assert t.get_session(kept) is not None
    assert t.get_session(lost) is None  # 1200 s without a refresh: reclaimed
    assert seats(t, "dev") == ["HOST1_BMC1"]


def test_refresh_options_are_checked():
    with pytest.raises(UsageError):
        make(refresh_interval="soon")
    tx = make(refresh_interval="120", server_refresh_interval="43200")
    assert tx.get_pool("batch").options["refresh_interval"] == "120"


# --------------------------------------------------------------------------- device names
def test_device_case_upper_by_default_windows_names_ignore_case():
    tx = make()
    assert ask(tx, "dev", node="bmc1", host="host1", terminal=True).seat == "HOST1_BMC1"
    assert ask(tx, "dev", node="BMC1", host="Host1", terminal=True).shared
    assert seats(tx, "dev") == ["HOST1_BMC1"]


def test_device_case_keep():
    tx = make(device_case="keep")
    ask(tx, "dev", node="bmc1", host="host1", terminal=True)
    ask(tx, "dev", node="BMC1", host="HOST1", terminal=True)
    assert seats(tx, "dev") == ["HOST1_BMC1", "host1_bmc1"]


def test_device_domain_is_stripped_but_addresses_are_kept():
    tx = make()
    assert ask(tx, "dev", node="bmc1.plant.example", host="host1.corp.example", terminal=True).seat == "HOST1_BMC1"
    assert ask(tx, "dev", node="BMC1", host="10.13.200.120", terminal=True).seat == "10.13.200.120_BMC1"
    tx2 = make(device_domain="keep")
    assert ask(tx2, "dev", node="bmc1.plant.example").seat == "BMC1.PLANT.EXAMPLE"
    with pytest.raises(UsageError):
        make(device_case="lower")


# --------------------------------------------------------------------------- full pool
def test_shared_seat_is_granted_even_when_the_pool_is_full():
    """A session whose device already holds a seat joins it: a full pool only refuses new devices."""
    tx = make(dev=1)
    assert ask(tx, "dev", host="HOST1", terminal=True, user="alice").granted
    second = ask(tx, "dev", host="HOST1", terminal=True, user="bob")
    assert second.granted and second.shared and second.seat == "HOST1_BMC1"
    third = ask(tx, "dev", host="HOST2", terminal=True)
    assert not third.granted and third.seat == "HOST2_BMC1"
    assert "HOST2_BMC1" in third.reason and "all 1 seat(s) are in use" in third.reason
    assert seats(tx, "dev") == ["HOST1_BMC1"]


# --------------------------------------------------------------------------- through the CLI


def test_cli_terminal_sessions_and_users_listing(cli):
    assert cli("pool", "add", "batch", "--product", "aveva-batch", "--license", "dev=2", "--license", "mom=2")[0] == 0
    code, out, _ = cli("--format", "json", "acquire", "batch", "--feature", "dev", "--terminal",
                       "--host", "HOST1", "--node", "BMC1", "--user", "alice")
    assert code == 0
    grant = json.loads(out)
    assert grant["seat"] == "HOST1_BMC1" and grant["shared"] is False
    code, out, _ = cli("--format", "json", "acquire", "batch", "--feature", "dev", "--terminal",
                       "--host", "HOST1", "--node", "BMC1", "--user", "bob")
    assert code == 0 and json.loads(out)["shared"] is True
    assert cli("acquire", "batch", "--feature", "dev", "--terminal", "--host", "HOST2", "--node", "BMC1",
               "--user", "carol")[0] == 0
    code, out, err = cli("acquire", "batch", "--feature", "dev", "--node", "BMC1")
    assert code == 3 and out == "" and len(err.splitlines()) == 1 and err.startswith("lictools: denied")
    rows = json.loads(cli("--format", "json", "users", "batch")[1])
    assert [(r["seat"], r["users"]) for r in rows] == [("HOST1_BMC1", ["alice", "bob"]), ("HOST2_BMC1", ["carol"])]
    info = json.loads(cli("--format", "json", "info", "batch")[1])
    assert [(r["feature"], r["issued"], r["in_use"], r["free"]) for r in info] == [("dev", 2, 2, 0), ("mom", 2, 0, 2)]
    code, out, _ = cli("info", "users", "batch")
    assert code == 0
    assert "    Seat HOST1_BMC1" in out.splitlines() and "    Seat HOST2_BMC1" in out.splitlines()
    assert "Users        : 2/2" in out.splitlines()
