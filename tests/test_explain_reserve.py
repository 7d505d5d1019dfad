"""``lictools reserve`` (projectsStartup.xml import), ``lictools explain``, ``info users`` and dry-run reasons."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from lictools import engine
from lictools.rules.magic_xpa import MAX_RESERVATION_FILE as MAX_XML_BYTES
from lictools.rules.magic_xpa import parse_reservation_file as parse_projects_startup
from lictools.errors import UsageError
from lictools.explain import explain_ended, explain_session
from lictools.model import Request
from lictools.stores.memory import MemoryTransaction, empty_document

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

GOOD_XML = """<?xml version="1.0" encoding="utf-8"?>
<Projects CMDLineArgs="/LicenseName=MGENT1 /MaxConcurrentUsers=100">
  <Project Name="Orders"
           ReservedThreadsLicenses="2"
           ReservedRIAUsersLicenses="5"
           ReservedWebClientUsersLicenses="3">
    <Server host="appsrv1">
      <NumberOfInstances AdditionalOnDemand="1">1</NumberOfInstances>
      <NumberOfWorkers AdditionalOnDemand="0">4</NumberOfWorkers>
    </Server>
  </Project>
  <Project ApplicationPublicName="Billing" ReservedWebClientUsersLicenses="1"/>
</Projects>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Projects><Project Name="X" ReservedThreadsLicenses="1">&lol3;</Project></Projects>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Projects><Project Name="X" ReservedThreadsLicenses="1">&xxe;</Project></Projects>
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def magic(cli):
    assert cli("pool", "add", "m", "--product", "magic-xpa",
               "--license", "threads=4", "--license", "ria=10", "--license", "web=5")[0] == 0
    return cli


def reservations(cli, pool: str = "m") -> dict:
    return json.loads(cli("--format", "json", "pool", "show", pool)[1])["reservations"]


def write(tmp_path, text: str | bytes, name: str = "projectsStartup.xml") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


# --------------------------------------------------------------------------- parsing
def test_parse_the_three_attributes_and_both_name_forms():
    wanted, warnings = parse_projects_startup(GOOD_XML.encode())
    assert wanted == {
        "Orders": {"threads": 2, "ria": 5, "web": 3},
        "Billing": {"threads": 0, "ria": 0, "web": 1},
    }
    assert warnings == []


def test_parse_3x_reserved_users_licenses_maps_to_ria():
    wanted, _ = parse_projects_startup(b'<Projects><Project Name="Old" ReservedUsersLicenses="4" '
                                       b'ReservedThreadsLicenses="1"/></Projects>')
    assert wanted == {"Old": {"threads": 1, "ria": 4, "web": 0}}


def test_parse_4x_attribute_wins_over_3x_with_a_warning():
    wanted, warnings = parse_projects_startup(
        b'<Projects><Project Name="P" ReservedUsersLicenses="4" ReservedRIAUsersLicenses="2"/></Projects>')
    assert wanted["P"]["ria"] == 2
    assert len(warnings) == 1 and "ReservedUsersLicenses" in warnings[0]


def test_parse_application_public_name_element_and_namespace():
    xml = (b'<p:Projects xmlns:p="urn:x"><p:Project ReservedThreadsLicenses="1">'
           b'<p:ApplicationPublicName>Shop</p:ApplicationPublicName></p:Project></p:Projects>')
    assert parse_projects_startup(xml)[0] == {"Shop": {"threads": 1, "ria": 0, "web": 0}}


@pytest.mark.parametrize("xml, message", [
    (b"<Projects><Project Name='X'", "not well-formed"),
    (b"", "not well-formed"),
    (b"<Projects/>", "no Project element"),
    (b"<Projects><Project ReservedThreadsLicenses='1'/></Projects>", "no ApplicationPublicName or Name"),
    (b"<Projects><Project Name='X' ReservedThreadsLicenses='-1'/></Projects>", "whole number"),
    (b"<Projects><Project Name='X' ReservedThreadsLicenses='many'/></Projects>", "whole number"),
    (b"<Projects><Project Name='X'/><Project Name='X'/></Projects>", "appears twice"),
    (b"<Projects><Project Name='bad name!'/></Projects>", "not valid"),
    (BILLION_LAUGHS.encode(), "DTD"),
    (EXTERNAL_ENTITY.encode(), "DTD"),
    (b'<?xml version="1.0"?><!DOCTYPE Projects SYSTEM "http://example.invalid/x.dtd"><Projects/>', "DTD"),
])
def test_parse_refuses_bad_files(xml, message):
    with pytest.raises(UsageError, match=message):
        parse_projects_startup(xml)


def test_parse_refuses_oversized_data():
    with pytest.raises(UsageError, match="larger than"):
        parse_projects_startup(b"<Projects>" + b" " * MAX_XML_BYTES + b"</Projects>")


# --------------------------------------------------------------------------- reserve through the CLI
def test_reserve_from_projects_startup_xml(magic, tmp_path):
    code, out, err = magic("--format", "json", "reserve", "m", "--from", write(tmp_path, GOOD_XML))
    assert code == 0
    rows = json.loads(out)
    assert {(r["project"], r["feature"]): r["reserved"] for r in rows} == {
        ("Billing", "web"): 1, ("Orders", "threads"): 2, ("Orders", "ria"): 5, ("Orders", "web"): 3,
    }
    assert set(rows[0]) == {"pool", "project", "feature", "reserved", "issued", "shared"}
    web = [r for r in rows if r["feature"] == "web"][0]
    assert (web["issued"], web["shared"]) == (5, 1)
    assert reservations(magic) == {"Billing": {"web": 1}, "Orders": {"threads": 2, "ria": 5, "web": 3}}
    info = {r["feature"]: r for r in json.loads(magic("--format", "json", "info", "m")[1])}
    assert (info["web"]["reserved"], info["web"]["free"]) == (4, 5)
    # importing the same file again changes nothing
    before = reservations(magic)
    assert magic("reserve", "m", "--from", write(tmp_path, GOOD_XML))[0] == 0
    assert reservations(magic) == before


def test_reserve_from_stdin(magic, tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(GOOD_XML.encode())))
    assert magic("reserve", "m", "--from", "-")[0] == 0
    assert reservations(magic)["Orders"]["ria"] == 5


@pytest.mark.parametrize("content", [
    "<Projects><Project Name='X'",
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    "<Projects><Project Name='Orders' ReservedThreadsLicenses='x'/></Projects>",
], ids=["malformed", "billion-laughs", "external-entity", "bad-value"])
def test_reserve_from_bad_file_is_exit_2_and_changes_nothing(magic, tmp_path, content):
    assert magic("reserve", "m", "Keep", "ria", "1")[0] == 0
    before = reservations(magic)
    code, out, err = magic("reserve", "m", "--from", write(tmp_path, content))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("lictools: ")
    assert reservations(magic) == before


def test_reserve_from_oversized_file_is_exit_2(magic, tmp_path):
    path = write(tmp_path, b"<Projects>" + b" " * (MAX_XML_BYTES + 1) + b"</Projects>")
    code, out, err = magic("reserve", "m", "--from", path)
    assert code == 2 and "1 MiB" in err and len(err.splitlines()) == 1
    assert reservations(magic) == {}


def test_reserve_from_missing_file_is_exit_2(magic, tmp_path):
    code, _, err = magic("reserve", "m", "--from", str(tmp_path / "nope.xml"))
    assert code == 2 and len(err.splitlines()) == 1


def test_reserve_from_is_all_or_nothing(magic, tmp_path):
    """One project fits, the other pushes web past the 5 issued: nothing is imported."""
    xml = ("<Projects><Project Name='A' ReservedRIAUsersLicenses='2'/>"
           "<Project Name='B' ReservedWebClientUsersLicenses='6'/></Projects>")
    code, out, err = magic("reserve", "m", "--from", write(tmp_path, xml))
    assert code == 2 and "web: 6 reserved > 5 issued" in err
    assert reservations(magic) == {}


def test_reserve_from_moves_seats_between_projects(magic, tmp_path):
    """Decreases are applied first, so moving reservations never overshoots the issued count."""
    assert magic("reserve", "m", "A", "web", "4")[0] == 0
    assert magic("reserve", "m", "B", "web", "1")[0] == 0
    xml = "<Projects><Project Name='A' ReservedWebClientUsersLicenses='1'/><Project Name='B' ReservedWebClientUsersLicenses='4'/></Projects>"
    assert magic("reserve", "m", "--from", write(tmp_path, xml))[0] == 0
    assert reservations(magic) == {"A": {"web": 1}, "B": {"web": 4}}


def test_reserve_from_replace_and_dry_run(magic, tmp_path):
    assert magic("reserve", "m", "Legacy", "threads", "1")[0] == 0
    path = write(tmp_path, GOOD_XML)
    code, out, _ = magic("--format", "json", "reserve", "m", "--from", path, "--replace", "--dry-run")
    assert code == 0 and ("Legacy", "threads", 0) in {(r["project"], r["feature"], r["reserved"]) for r in json.loads(out)}
    assert reservations(magic) == {"Legacy": {"threads": 1}}          # dry run: nothing written
    assert magic("reserve", "m", "--from", path, "--replace")[0] == 0
    assert "Legacy" not in reservations(magic)
    assert magic("reserve", "m", "--from", path, "--dry-run")[0] == 0


def test_reserve_one_and_remove(magic):
    code, out, _ = magic("--format", "json", "reserve", "m", "Orders", "ria", "3")
    assert code == 0
    assert json.loads(out) == [{"pool": "m", "project": "Orders", "feature": "ria", "reserved": 3, "issued": 10, "shared": 7}]
    code, out, _ = magic("--format", "json", "reserve", "m", "Orders", "ria", "0")
    assert code == 0 and json.loads(out)[0]["reserved"] == 0
    assert reservations(magic) == {}
    # POOL alone lists
    magic("reserve", "m", "Orders", "web", "2")
    assert json.loads(magic("--format", "json", "reserve", "m")[1])[0]["reserved"] == 2


def test_reserve_errors_have_the_spec_exit_codes(magic):
    code, _, err = magic("reserve", "m", "Orders", "web", "6")
    assert code == 2 and "more than the 5 issued" in err and len(err.splitlines()) == 1
    assert magic("reserve", "m", "Orders", "seats", "1")[0] == 2       # unknown feature
    assert magic("reserve", "m", "Orders", "web", "many")[0] == 2
    assert magic("reserve", "m", "Orders", "web")[0] == 2
    assert magic("reserve", "nosuch", "Orders", "web", "1")[0] == 4
    assert magic("reserve", "m", "Orders", "web", "1", "--from", "x.xml")[0] == 2
    assert reservations(magic) == {}


def test_reserve_works_for_every_product(cli):
    assert cli("pool", "add", "batch", "--product", "aveva-batch", "--license", "dev=3")[0] == 0
    assert cli("reserve", "batch", "Plant1", "dev", "2")[0] == 0
    assert cli("acquire", "batch", "--feature", "dev", "--node", "X1", "--project", "Other")[0] == 0
    code, _, err = cli("acquire", "batch", "--feature", "dev", "--node", "X2", "--project", "Other")
    assert code == 3 and "reserved for Plant1" in err
    assert cli("acquire", "batch", "--feature", "dev", "--node", "X2", "--project", "Plant1")[0] == 0


# --------------------------------------------------------------------------- explain (engine level)
def make_tx():
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "batch", "aveva-batch", {"dev": 1, "mom": 1})
    return tx


def ask(tx, host: str, user: str, session: str):
    return engine.acquire(tx, Request(pool="batch", feature="dev", session=session, user=user, host=host,
                                      node="BMC1", terminal=True))


def test_explain_shared_seat_says_why_it_cost_nothing():
    tx = make_tx()
    ask(tx, "HOST1", "alice", "s1")
    ask(tx, "HOST1", "bob", "s2")
    doc = explain_session(tx, "s2")
    assert doc["live"] and doc["rule"] == "aveva-batch" and doc["seat"] == "HOST1_BMC1" and doc["shared"]
    assert "cost no new seat" in doc["cost"] and "even when the pool is full" in doc["cost"]
    assert [h["session"] for h in doc["holders"]] == ["s1", "s2"]
    assert (doc["issued"], doc["in_use"], doc["free"]) == (1, 1, 0)
    assert "<host>_<node>" in doc["why"]
    text = "\n".join(doc["lines"])
    for label in ("session", "pool", "rule", "seat", "why", "cost", "holders", "seats", "next", "lease", "after"):
        assert re.search(rf"^{label} +: ", text, re.M), label
    assert "stays held by 1 other session" in text
    assert "refused: all 1 seat(s) are in use" in text


def test_explain_own_seat_and_unknown():
    tx = make_tx()
    ask(tx, "HOST1", "alice", "s1")
    doc = explain_session(tx, "s1")
    assert not doc["shared"] and "opened seat HOST1_BMC1" in doc["cost"]
    assert "is freed" in doc["lines"][-1]
    assert explain_session(tx, "nope") is None
    assert explain_session(tx, "x" * 10_000) is None


def test_explain_ended_from_the_journal():
    tx = make_tx()
    ask(tx, "HOST1", "alice", "s1")
    ask(tx, "HOST2", "bob", "s2")                        # denied: the pool is full
    doc = explain_ended(tx.events, "s2")
    assert doc["event"] == "deny" and not doc["live"]
    assert "refused" in doc["lines"][0] and "HOST2_BMC1" in doc["lines"][1]
    assert "all 1 seat(s) are in use" in doc["reason"]
    engine.release(tx, ["s1"])
    doc = explain_ended(tx.events, "s1")
    assert doc["event"] == "release" and any("held seat HOST1_BMC1" in line for line in doc["lines"])
    assert explain_ended(tx.events, "never") is None


def test_explain_genero_child_names_its_root():
    tx = MemoryTransaction(empty_document(), now=1000.0)
    engine.add_pool(tx, "g", "genero", {"runtime": 2})
    base = dict(pool="g", feature=None, user="u", host="pc1", node="srv")
    engine.acquire(tx, Request(session="root", client="gwc", **base))
    engine.acquire(tx, Request(session="kid", parent="root", **base))
    engine.release(tx, ["root"])
    doc = explain_session(tx, "kid")
    assert doc["root"] == "root" and doc["seat"] == "dvm:root"
    assert any(line.startswith("root     : child of root DVM root") for line in doc["lines"])


# --------------------------------------------------------------------------- explain (CLI)
def test_cli_explain_live_json_and_table(cli):
    assert cli("pool", "add", "batch", "--product", "aveva-batch", "--license", "dev=1")[0] == 0
    cli("acquire", "batch", "--feature", "dev", "--terminal", "--host", "HOST1", "--node", "BMC1", "--session", "a1")
    cli("acquire", "batch", "--feature", "dev", "--terminal", "--host", "HOST1", "--node", "BMC1", "--session", "a2")
    code, out, err = cli("--format", "json", "explain", "a2")
    assert code == 0 and err == ""
    doc = json.loads(out)
    for key in ("session", "live", "pool", "product", "feature", "rule", "seat", "why", "shared", "cost",
                "holders", "issued", "in_use", "free", "reserved", "next_seat", "expires", "lines"):
        assert key in doc, key
    assert doc["seat"] == "HOST1_BMC1" and doc["shared"] is True
    code, out, _ = cli("explain", "a2")
    assert code == 0 and "seat     : HOST1_BMC1" in out.splitlines()
    code, out, _ = cli("--format", "csv", "explain", "a2")
    assert code == 0 and out.splitlines()[0].startswith("session,live,pool")


def test_cli_explain_denied_session_is_exit_4_with_the_reason(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")[0] == 0
    assert cli("acquire", "g", "--client", "gwc", "--session", "first")[0] == 0
    assert cli("acquire", "g", "--client", "gwc", "--session", "second")[0] == 3
    code, out, err = cli("explain", "second")
    assert code == 4
    assert "refused a seat" in out and "all 1 seat(s) are in use" in out and "dvm:second" in out
    assert len(err.splitlines()) == 1 and "was refused a seat" in err
    code, out, err = cli("--format", "json", "explain", "second")
    assert code == 4 and json.loads(out)["event"] == "deny"


def test_cli_explain_unknown_and_released(cli):
    assert cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")[0] == 0
    code, out, err = cli("explain", "no-such-session")
    assert code == 4 and out == "" and err == "lictools: unknown session no-such-session\n"
    cli("acquire", "g", "--session", "gone")
    cli("release", "gone")
    code, out, err = cli("explain", "gone")
    assert code == 4 and "released" in out and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- dry-run reasons, every rule
def test_dry_run_reasons_read_well_for_each_rule(cli):
    cli("pool", "add", "batch", "--product", "aveva-batch", "--license", "dev=1")
    cli("pool", "add", "g", "--product", "genero", "--license", "runtime=1")
    cli("pool", "add", "m", "--product", "magic-xpa", "--license", "web=1")
    cli("acquire", "batch", "--feature", "dev", "--terminal", "--host", "HOST1", "--node", "BMC1")
    cli("acquire", "g", "--client", "gdc", "--monitor", "M1")
    cli("acquire", "m", "--feature", "web", "--host", "pc1")
    cases = [
        (["batch", "--feature", "dev", "--terminal", "--host", "HOST1", "--node", "BMC1"], 0, "would share: shares seat HOST1_BMC1"),
        (["batch", "--feature", "dev", "--terminal", "--host", "HOST2", "--node", "BMC1"], 3, "would deny: denied: needs a new seat HOST2_BMC1"),
        (["g", "--client", "gdc", "--monitor", "M1"], 0, "would share: shares seat monitor:gdc:M1"),
        (["g", "--client", "gwc"], 3, "would deny: denied: needs a new seat dvm:"),
        (["m", "--feature", "web", "--host", "PC1"], 0, "would share: shares seat web:pc1"),
        (["m", "--feature", "web", "--host", "pc2"], 3, "would deny: denied: needs a new seat web:pc2"),
    ]
    for args, want, start in cases:
        code, out, err = cli("acquire", *args, "--dry-run")
        assert code == want, (args, err)
        assert out.startswith(start), out
        assert len(out.splitlines()) == 1
        if want == 3:
            assert "all 1 seat(s) are in use" in out and "no live session holds that key" in out
        else:
            assert "costs no new seat" in out
    # nothing was written by the dry runs
    assert [r["in_use"] for r in json.loads(cli("--format", "json", "info")[1]) if r["issued"]] == [1, 1, 1]


# --------------------------------------------------------------------------- info users / info
def test_info_users_for_every_product_and_admin_greps(cli):
    cli("pool", "add", "batch", "--product", "aveva-batch", "--license", "dev=2", "--license", "mom=1")
    cli("pool", "add", "m", "--product", "magic-xpa", "--license", "ria=3")
    cli("acquire", "batch", "--feature", "dev", "--terminal", "--host", "HOST1", "--node", "BMC1", "--pid", "77")
    cli("acquire", "m", "--feature", "ria", "--host", "pc1", "--app", "Orders")
    code, out, _ = cli("info", "users")
    assert code == 0
    users = re.findall(r"^Users +: [0-9]+/[0-9]+$", out, re.M)
    assert users == ["Users        : 1/2", "Users        : 0/1", "Users        : 0/0",
                     "Users        : 1/3", "Users        : 0/0"]
    assert "    Seat HOST1_BMC1" in out and "        Process Id 77" in out
    # without --pid the listing shows the process that ran acquire (here: this test's parent)
    assert "    Seat ria:pc1/Orders" in out and f"        Process Id {os.getppid()}" in out
    # the same as a shell script would run it
    proc = subprocess.run(
        f"{sys.executable} -m lictools info users 2>&1 | grep -E '^Users +: [0-9]+/[0-9]+$'",
        shell=True, capture_output=True, text=True, env=dict(os.environ),
    )
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 5


def test_info_plain_unchanged_and_pool_named_users(cli):
    cli("pool", "add", "users", "--product", "generic", "--license", "seats=2")
    cli("pool", "add", "other", "--product", "generic", "--license", "seats=1")
    code, out, _ = cli("--format", "json", "info", "--pool", "users")
    assert code == 0 and [r["pool"] for r in json.loads(out)] == ["users"]
    code, out, _ = cli("--format", "json", "info", "other")
    assert code == 0 and [r["pool"] for r in json.loads(out)] == ["other"]
    code, out, _ = cli("info", "users", "users")
    assert code == 0 and "Pool         : users" in out and "Pool         : other" not in out
    code, out, _ = cli("info", "users", "--pool", "users")
    assert code == 0 and "Pool         : users" in out
    code, out, _ = cli("info", "users")
    assert "Pool         : other" in out and "Pool         : users" in out
    assert cli("info", "users", "nosuch")[0] == 4
    assert cli("info", "a", "b")[0] == 2
    assert cli("info", "--stderr")[0] == 2
    code, out, _ = cli("--format", "csv", "info", "users")
    assert code == 0 and out.splitlines()[0] == "pool,feature,users,front_end,seat,session,pid,user,host,node,cx_mode"


# --------------------------------------------------------------------------- help and lazy imports
@pytest.mark.parametrize("command", [["reserve"], ["explain"], ["info"]])
def test_help_has_an_example(cli, command):
    code, out, _ = cli(*command, "--help")
    assert code == 0 and "Example:" in out and "lictools " in out


def test_acquire_does_not_load_xml_or_explain_modules(tmp_path):
    code = (
        "import sys\n"
        "from lictools.cli.main import run\n"
        "run(['pool', 'add', 'g', '--product', 'genero', '--license', 'runtime=1'])\n"
        "run(['acquire', 'g', '--client', 'gwc'])\n"
        "bad = [m for m in ('defusedxml', 'xml.etree.ElementTree', 'lictools.explain', 'lictools.cli.reserve',\n"
        "       'lictools.output.fglwrt', 'lictools.rules.aveva_batch', 'lictools.rules.magic_xpa') if m in sys.modules]\n"
        "print(bad)\n"
    )
    env = dict(os.environ, LICTOOLS_STATE=str(tmp_path / "s.db"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
