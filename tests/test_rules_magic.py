"""magic-xpa: every scenario of seed 003_e714fd6eb665695a.txt, with the seed sentence beside it."""

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
def make(threads: int = 0, ria: int = 0, web: int = 0, **options: str) -> MemoryTransaction:
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "m", "magic-xpa", {}, options)
    for feature, count in (("threads", threads), ("ria", ria), ("web", web)):
        if count:
            engine.add_license(tx, "m", feature, count, serial=f"{feature.upper()}-1")
    return tx


def client(tx, feature: str, host: str = "pc1", app: str | None = "A", project: str | None = None,
           session: str | None = None):
    request = Request(pool="m", feature=feature, session=session or SYSTEM.new_id(), user="u",
                      host=host, node="appsrv", app=app, project=project)
    return engine.acquire(tx, request)


def seats(tx, feature: str) -> list[str]:
    return sorted(row["seat"] for row in views.users(tx, "m", feature))


def test_rule_module_interface():
    rule = get_rule("magic-xpa")
    assert rule.FEATURES == ("threads", "ria", "web")
    assert rule.OPTIONS["version"].default == "4.0"
    assert rule.DEFAULT_LEASE == 3600
    doc = " ".join(rule.__doc__.split())
    assert "Multiple Web clients from the same machine consume one (Web) license" in doc
    with pytest.raises(UsageError):
        make(version="five")
    with pytest.raises(UsageError, match="--feature is required"):
        client(make(threads=1), None)


# --------------------------------------------------------------------------- floating
def test_floating_threads_and_users_shared_by_all_projects():
    """"The Magic xpa license mechanism is floating by nature (both for threads and users)" /
    "The licenses are available for use by all of the projects." """
    tx = make(threads=2)
    assert client(tx, "threads", project="Orders").granted
    assert client(tx, "threads", project="Billing").granted
    third = client(tx, "threads", project="Orders")
    assert not third.granted and "all 2 seat(s) are in use" in third.reason


def test_idle_project_licenses_are_used_by_other_projects():
    """"Therefore, when a particular project is idle, other projects can utilize its licenses
    (unless licenses are reserved ...)" """
    tx = make(ria=3)
    for host in ("pc1", "pc2", "pc3"):
        assert client(tx, "ria", host=host, project="Billing").granted
    assert tx.seats_in_use("m", "ria") == 3


def test_client_terminates_releases_the_license_to_the_space():
    """"When a new RIA or Web client connects, the worker will usually attempt to consume a license
    from the Space. When the RIA or Web client terminates, the worker will release a license back
    into the Space." """
    tx = make(web=1)
    first = client(tx, "web", host="pc1").session
    assert not client(tx, "web", host="pc2").granted
    engine.release(tx, [first.id])
    assert client(tx, "web", host="pc2").granted


def test_threads_one_seat_per_session():
    """A worker thread checks out a threads (ENT) license for the request it executes: one per session."""
    tx = make(threads=5)
    ids = [client(tx, "threads", host="pc1").session.id for _ in range(3)]
    assert seats(tx, "threads") == sorted(f"thread:{i}" for i in ids)


# --------------------------------------------------------------------------- loading per serial
def test_serial_loaded_once_whatever_the_number_of_servers():
    """"the Magic xpa server will check out (from the license file/server) and will write licenses
    to the Space only if that specific license feature (that is, a license feature with the same
    serial number) was not already written to the Space. In practice, only one Magic xpa server will
    write licenses to the Space, regardless of the number of Magic xpa servers started
    simultaneously" """
    tx = make()
    results = [engine.add_license(tx, "m", "ria", 25, serial="RIA-0042") for _ in range(3)]
    assert [r.status for r in results] == ["loaded", "already-loaded", "already-loaded"]
    assert tx.get_pool("m").issued("ria") == 25
    engine.add_license(tx, "m", "ria", 5, serial="RIA-0043")   # another serial adds
    assert tx.get_pool("m").issued("ria") == 30


def test_engine_that_loaded_may_stop_licenses_stay():
    """"It is not required that the Magic xpa engine that allocated the license continues to run.
    Once it sets the thread and user count in the Space, it is not needed anymore" """
    tx = make(threads=3)
    assert tx.get_pool("m").issued("threads") == 3   # nothing ties issued seats to a running loader


# --------------------------------------------------------------------------- same-machine grouping
@pytest.mark.parametrize("version", ["3.2", "4.0"])
def test_ria_clients_same_machine_same_application_one_license(version):
    """"Multiple RIA clients from the same machine accessing the same application consume one (RIA)
    license. Since version: 3.2" """
    tx = make(ria=5, version=version)
    outcomes = [client(tx, "ria", host="PC1", app="Orders") for _ in range(3)]
    assert [o.shared for o in outcomes] == [False, True, True]
    assert seats(tx, "ria") == ["ria:pc1/Orders"]
    client(tx, "ria", host="pc1", app="Billing")    # another application: another seat
    client(tx, "ria", host="pc2", app="Orders")     # another machine: another seat
    assert seats(tx, "ria") == ["ria:pc1/Billing", "ria:pc1/Orders", "ria:pc2/Orders"]


def test_ria_before_3_2_one_license_per_client():
    """Grouping RIA clients came with 3.2 ("Since version: 3.2"): under 3.1 each client takes one."""
    tx = make(ria=5, version="3.1")
    for _ in range(3):
        client(tx, "ria", host="pc1", app="Orders")
    assert tx.seats_in_use("m", "ria") == 3


def test_ria_without_app_cannot_be_grouped():
    tx = make(ria=5)
    client(tx, "ria", host="pc1", app=None)
    client(tx, "ria", host="pc1", app=None)
    assert tx.seats_in_use("m", "ria") == 2


def test_web_clients_same_machine_one_license_since_4_0():
    """"Multiple Web clients from the same machine consume one (Web) license. Since version: 4.0" """
    tx = make(web=5)
    for app in ("Orders", "Billing", "Orders"):
        client(tx, "web", host="pc1", app=app)
    client(tx, "web", host="pc2")
    assert seats(tx, "web") == ["web:pc1", "web:pc2"]


@pytest.mark.parametrize("version", ["3.1", "3.2"])
def test_web_before_4_0_one_license_per_client(version):
    tx = make(web=5, version=version)
    for _ in range(3):
        client(tx, "web", host="pc1")
    assert tx.seats_in_use("m", "web") == 3


def test_shared_machine_seat_is_granted_when_the_pool_is_full():
    tx = make(web=1)
    assert client(tx, "web", host="pc1").granted
    again = client(tx, "web", host="PC1", project="Billing")
    assert again.granted and again.shared and again.seat == "web:pc1"
    assert not client(tx, "web", host="pc2").granted


# --------------------------------------------------------------------------- reservations
def test_reserved_licenses_are_kept_for_the_critical_project():
    """"you should consider reserving a minimum fixed amount of license threads or users for
    critical projects that need to run continually." """
    tx = make(threads=3)
    engine.reserve(tx, "m", "Orders", "threads", 2)
    assert client(tx, "threads", project="Other").granted          # the one shared seat
    denied = client(tx, "threads", project="Other")
    assert not denied.granted
    assert "reserved for Orders" in denied.reason and "free seat(s) are reserved for other projects" in denied.reason
    assert client(tx, "threads", project="Orders").granted
    assert client(tx, "threads", project="Orders").granted
    assert tx.seats_in_use("m", "threads") == 3


def test_reserved_licenses_are_acquired_before_non_reserved_ones():
    """"Licenses reserved for a given project are acquired by workers in Magic xpa servers that serve
    that project before trying to acquire non-reserved licenses. Since version: 3.2" """
    tx = make(ria=3)
    engine.reserve(tx, "m", "Orders", "ria", 1)
    first = client(tx, "ria", host="pc1", project="Orders")
    assert "reserved for project Orders" in first.reason
    # Orders used its reservation, so the 2 shared seats are still free for others
    assert client(tx, "ria", host="pc2", project="Other").granted
    assert client(tx, "ria", host="pc3", project="Other").granted


def test_project_floats_beyond_its_reservation_into_shared_seats():
    tx = make(web=4)
    engine.reserve(tx, "m", "Orders", "web", 1)
    outcomes = [client(tx, "web", host=f"pc{i}", project="Orders") for i in range(4)]
    assert all(o.granted for o in outcomes)
    assert "shared seats" in outcomes[1].reason
    assert tx.seats_in_use("m", "web") == 4
    assert not client(tx, "web", host="pc9", project="Other").granted


def test_reservations_beyond_the_issued_count_are_refused():
    tx = make(threads=3)
    engine.reserve(tx, "m", "Orders", "threads", 2)
    with pytest.raises(UsageError, match="more than the 3 issued"):
        engine.reserve(tx, "m", "Billing", "threads", 2)


def test_info_shows_reserved_and_free():
    tx = make(ria=5)
    engine.reserve(tx, "m", "Orders", "ria", 2)
    client(tx, "ria", project="Orders")
    row = [r for r in views.info(tx, "m") if r["feature"] == "ria"][0]
    assert (row["issued"], row["in_use"], row["reserved"], row["free"]) == (5, 1, 2, 4)


# --------------------------------------------------------------------------- through the CLI


def test_cli_license_add_is_idempotent_per_serial(cli):
    assert cli("pool", "add", "m", "--product", "magic-xpa")[0] == 0
    code, out, err = cli("--format", "json", "license", "add", "m", "ria", "25", "--serial", "RIA-0042")
    assert code == 0 and json.loads(out)["status"] == "loaded" and err == ""
    code, out, err = cli("--format", "json", "license", "add", "m", "ria", "25", "--serial", "RIA-0042")
    assert code == 0 and json.loads(out)["status"] == "already-loaded"
    assert json.loads(out)["issued"] == 25
    assert len(err.splitlines()) == 1 and "already loaded" in err


def test_cli_host_locked_license_for_another_machine_is_not_loaded_exit_0(cli):
    """"In case that an engine uses a node-locked license that doesn't match its machine, that
    engine will not check-out from the license but will continue to start and process the
    requests; provided that other engines were able to check-out and load the required licenses
    into the space." """
    assert cli("pool", "add", "m", "--product", "magic-xpa")[0] == 0
    code, out, err = cli("--format", "json", "license", "add", "m", "web", "10", "--serial", "WEB-7",
                         "--host-lock", "some-other-machine.example")
    assert code == 0
    assert json.loads(out)["status"] == "not-loaded" and json.loads(out)["issued"] == 0
    assert len(err.splitlines()) == 1 and "not loaded" in err and "some-other-machine.example" in err
    # another engine (this machine, no lock) loads the licenses; requests are served
    assert cli("license", "add", "m", "web", "10", "--serial", "WEB-8")[0] == 0
    assert cli("acquire", "m", "--feature", "web", "--host", "pc1")[0] == 0
    info = json.loads(cli("--format", "json", "info", "m")[1])
    assert [(r["feature"], r["issued"], r["in_use"]) for r in info] == [("threads", 0, 0), ("ria", 0, 0), ("web", 10, 1)]


def test_cli_acquire_grouping_and_users_seat_keys(cli):
    assert cli("pool", "add", "m", "--product", "magic-xpa", "--license", "ria=2", "--license", "web=1")[0] == 0
    for _ in range(2):
        code, out, _ = cli("--format", "json", "acquire", "m", "--feature", "ria", "--host", "PC1", "--app", "Orders")
        assert code == 0
    assert json.loads(out)["seat"] == "ria:pc1/Orders" and json.loads(out)["shared"] is True
    rows = json.loads(cli("--format", "json", "users", "m")[1])
    assert [(r["feature"], r["seat"], len(r["sessions"])) for r in rows] == [("ria", "ria:pc1/Orders", 2)]
