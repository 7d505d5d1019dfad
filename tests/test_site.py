"""``lictools apply SITE.toml`` and ``lictools export`` (issue 13): idempotent, all or nothing, --dry-run,
what the file leaves out, and export | apply = no change. Both state layouts (the ``lt`` fixture).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from lictools import replay
from lictools.stores import open_store

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "site" / "site.toml"

BASE = """
[groups]
designers = ["alice", "bob"]

[pools.cad]
product = "generic"
licenses = { seat = 10 }
options = { share = "user,host" }
reservations = { projectA = { seat = 2 } }

[[pools.cad.policies]]
kind = "max"
user = "alice"
count = 1
"""


def write(tmp_path: Path, text: str, name: str = "site.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def snapshot(lt) -> tuple[str, int]:
    """The whole state and the journal's length: what 'nothing changed' compares."""
    return lt("dump").out, len(lt("journal").out.splitlines())


def test_sample_site_file_applies_once_then_no_change(lt, state):
    first = lt("apply", str(SAMPLE))
    assert first.code == 0, first.err
    assert "+ pool cad: generic" in first.out and "+ policy cad RESERVE 3 solver GROUP designers" in first.out
    second = lt("apply", str(SAMPLE))
    assert (second.code, second.out) == (0, "no change\n")
    assert lt("--format", "json", "apply", str(SAMPLE)).json()["changes"] == []
    info = {(r["pool"], r["feature"]): r for r in lt("--format", "json", "info").json()}
    assert info["cad", "solver"]["issued"] == 15 and info["cad", "solver"]["reserved"] == 5
    assert lt("acquire", "cad", "--feature", "solver", "--user", "mallory").code == 3  # EXCLUDE contractors
    assert replay.compare(open_store(str(state), 5)) == []


def test_apply_creates_the_state(tmp_path, monkeypatch, lt):
    fresh = tmp_path / "new" / "state.db"
    monkeypatch.setenv("LICTOOLS_STATE", str(fresh))
    assert lt("apply", write(tmp_path, BASE)).code == 0
    assert fresh.exists()


def test_dry_runs_on_a_missing_state_create_nothing(tmp_path, monkeypatch, lt):
    fresh = tmp_path / "new" / "state.db"
    fresh.parent.mkdir()
    monkeypatch.setenv("LICTOOLS_STATE", str(fresh))
    dry = lt("apply", write(tmp_path, BASE), "--dry-run")
    assert dry.code == 0 and "+ pool cad: generic; share=user,host" in dry.out
    assert lt("reserve", "cad", "p", "seat", "1", "--dry-run").code == 4     # no pool cad: nothing was made
    assert lt("acquire", "cad", "--dry-run").code == 4
    assert sorted(p.name for p in fresh.parent.iterdir()) == []


def test_a_dry_run_acquire_ends_no_expired_lease(lt, monkeypatch):
    assert lt("pool", "add", "p", "--product", "generic", "--license", "seat=1").code == 0
    assert lt("acquire", "p", "--feature", "seat", "--session", "old", "--lease", "60").code == 0
    monkeypatch.setenv("LICTOOLS_NOW", str(time.time() + 120))
    assert lt("--format", "json", "acquire", "p", "--feature", "seat", "--dry-run").json()["granted"] is True   # the lease is over
    events = [json.loads(line)["event"] for line in lt("journal").out.splitlines()]
    assert "expire" not in events and events.count("grant") == 1


def test_dry_run_shows_the_difference_and_changes_nothing(lt, tmp_path):
    path = write(tmp_path, BASE)
    before = snapshot(lt)
    dry = lt("apply", path, "--dry-run")
    assert dry.code == 0 and "dry run" in dry.err
    assert dry.out.splitlines() == [
        "+ group designers: alice, bob",
        "+ pool cad: generic; share=user,host",
        "+ license cad initial-seat: seat=10",
        "+ reservation cad projectA seat: 2",
        "+ policy cad MAX 1 USER alice",
    ]
    assert snapshot(lt) == before
    assert lt("apply", path).out == dry.out
    changed = write(tmp_path, BASE.replace("seat = 10", "seat = 12").replace("count = 1", "count = 2"), "b.toml")
    doc = lt("--format", "json", "apply", changed, "--dry-run").json()
    assert doc["dry_run"] is True and doc["changed"] is False
    assert [c["text"] for c in doc["changes"]] == [
        "~ license cad initial-seat: seat=10 -> seat=12",
        "~ policy cad max user alice: MAX 1 USER alice -> MAX 2 USER alice",
    ]
    assert lt("apply", changed, "--dry-run").code == 0 and lt("--format", "json", "info").json()[0]["issued"] == 10


def test_export_then_apply_is_no_change(lt, tmp_path):
    assert lt("apply", str(SAMPLE)).code == 0
    lt("license", "add", "cad", "viewer", "3", "--serial", "V-9", "--host-lock", "localhost")
    lt("license", "add", "cad", "viewer", "1")  # an anonymous serial
    lt("pool", "add", "magic", "--product", "magic-xpa", "--license", "ria=4", "--option", "version=3.2")
    lt("reserve", "magic", "Orders", "ria", "1")
    lt("config", "admin_group", "0")
    exported = lt("export")
    assert exported.code == 0 and exported.out.startswith("# lictools site file")
    path = write(tmp_path, exported.out, "exported.toml")
    before = snapshot(lt)
    again = lt("apply", path)
    assert (again.code, again.out) == (0, "no change\n"), again.out + again.err
    assert snapshot(lt) == before
    assert lt("export", "--output", str(tmp_path / "out.toml")).code == 0
    assert (tmp_path / "out.toml").read_text().split("\n", 1)[1] == exported.out.split("\n", 1)[1]
    doc = lt("--format", "json", "export").json()
    assert doc["pools"]["magic"]["options"] == {"version": "3.2"} and doc["settings"] == {"admin_group": "0", "journal_max_bytes": ""}


def test_export_applied_to_an_empty_state_rebuilds_the_configuration(lt, tmp_path, monkeypatch):
    assert lt("apply", str(SAMPLE)).code == 0
    lt("license", "add", "cad", "viewer", "3", "--serial", "V-9")
    exported = write(tmp_path, lt("export").out)
    config = lt("--format", "json", "export").json()
    monkeypatch.setenv("LICTOOLS_STATE", str(tmp_path / "other" / "state.json"))
    assert lt("apply", exported).code == 0
    assert lt("--format", "json", "export").json() == config


@pytest.mark.parametrize("text, key", [
    ("[pools.cad]\nproduct = 'generic'\nlicences = { seat = 1 }\n", "pools.cad.licences: unknown key"),
    ("[pools.cad]\nlicenses = { seat = 1 }\n", "pools.cad.product: missing"),
    ("[pools.cad]\nproduct = 'nope'\n", "pools.cad.product: unknown product 'nope'"),
    ("[pools.cad]\nproduct = 'generic'\nlicenses = { seat = -1 }\n", "pools.cad.licenses.seat:"),
    ("[pools.cad]\nproduct = 'generic'\nlicenses = { seat = 'ten' }\n", "pools.cad.licenses.seat:"),
    ("[pools.g]\nproduct = 'genero'\nlicenses = { seat = 1 }\n", "pools.g.licenses.seat: unknown feature"),
    ("[pools.g]\nproduct = 'genero'\nreservations = { p = { seat = 1 } }\n", "pools.g.reservations.p.seat: unknown feature"),
    ("[pools.cad]\nproduct = 'generic'\noptions = { colour = 'red' }\n", "pools.cad.options.colour: unknown option"),
    ("[pools.cad]\nproduct = 'generic'\n[[pools.cad.policies]]\nkind = 'max'\nuser = 'a'\n",
     "pools.cad.policies[0]: a max policy needs a count"),
    ("[pools.cad]\nproduct = 'generic'\n[[pools.cad.policies]]\nkind = 'limit'\nuser = 'a'\n",
     "pools.cad.policies[0]: unknown policy kind 'limit'"),
    ("[pools.cad]\nproduct = 'generic'\n[[pools.cad.policies]]\nkind = 'exclude'\ngroup = 'no-such-group-xyz'\n",
     "pools.cad.policies[0]: EXCLUDE GROUP no-such-group-xyz: no lictools group or Unix group"),
    ("[pools.cad]\nproduct = 'generic'\nlicenses = { seat = 1 }\nreservations = { p = { seat = 2 } }\n",
     "pools.cad.reservations.p.seat: reserving 2"),
    ("[settings]\nadmin_group = 'no-such-group-xyz'\n", "settings.admin_group: admin_group: no group"),
    ("[settings]\ncolour = 'red'\n", "settings.colour: unknown key"),
    ("[groups]\ndesigners = 'alice'\n", "groups.designers: expected an array"),
    ("[pools.cad\n", "not valid TOML"),
])
def test_a_file_that_does_not_validate_changes_nothing(lt, tmp_path, text, key):
    assert lt("apply", write(tmp_path, BASE, "base.toml")).code == 0
    before = snapshot(lt)
    path = write(tmp_path, text)
    result = lt("apply", path)
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lictools: {path}: ") and key in lines[0], result.err
    assert snapshot(lt) == before


def test_all_or_nothing_when_a_late_change_is_refused(lt, tmp_path):
    """The groups, the new pool and its license are applied before the reservation that does not fit:
    all of them are rolled back."""
    before = snapshot(lt)
    text = BASE + "\n[pools.late]\nproduct = 'generic'\nlicenses = { f = 1 }\nreservations = { p = { f = 5 } }\n"
    result = lt("apply", write(tmp_path, text))
    assert result.code == 2 and "pools.late.reservations.p.f" in result.err and "nothing changed" in result.err
    assert snapshot(lt) == before


def test_pools_the_file_does_not_declare_are_kept_unless_pruned(lt, tmp_path):
    path = write(tmp_path, BASE)
    lt("pool", "add", "other", "--product", "generic", "--license", "f=1")
    assert lt("apply", path).code == 0
    assert "other" in [p["pool"] for p in lt("--format", "json", "pool", "list").json()]
    session = lt("acquire", "other", "--feature", "f").out.strip()
    dry = lt("apply", path, "--prune", "--dry-run")
    assert dry.code == 2 and "pool 'other' has 1 live session(s)" in dry.err
    refused = lt("apply", path, "--prune")
    assert refused.code == 2 and "--prune removes it" in refused.err
    forced = lt("apply", path, "--prune", "--force")
    assert forced.code == 0 and "- pool other (generic; 1 live session(s) removed)" in forced.out
    removed = [json.loads(line) for line in lt("journal").out.splitlines() if json.loads(line).get("session") == session]
    assert removed[-1]["event"] == "remove"
    assert lt("apply", path, "--prune").out == "no change\n"


def test_a_key_left_out_leaves_that_aspect_alone(lt, tmp_path):
    assert lt("apply", write(tmp_path, BASE)).code == 0
    lt("reserve", "cad", "projectB", "seat", "1")
    lt("policy", "add", "cad", "exclude", "--user", "lori")
    only_product = write(tmp_path, "[pools.cad]\nproduct = 'generic'\n", "short.toml")
    assert lt("apply", only_product).out == "no change\n"
    # the same keys given empty: the whole aspect is what they say (nothing)
    emptied = write(tmp_path, "[pools.cad]\nproduct = 'generic'\nreservations = {}\npolicies = []\noptions = {}\n", "e.toml")
    out = lt("apply", emptied).out.splitlines()
    assert "- reservation cad projectA seat (2)" in out and "- reservation cad projectB seat (1)" in out
    assert "- policy cad EXCLUDE USER lori" in out and "~ option cad share: user,host -> -" in out
    assert lt("--format", "json", "pool", "show", "cad").json()["reservations"] == {}


def test_a_license_count_change_keeps_the_reservations(lt, tmp_path, state):
    """10 -> 4 seats with 2 reserved: the serial is unloaded and loaded again in one transaction."""
    assert lt("apply", write(tmp_path, BASE)).code == 0
    smaller = write(tmp_path, BASE.replace("seat = 10", "seat = 4"), "smaller.toml")
    assert lt("apply", smaller).out == "~ license cad initial-seat: seat=10 -> seat=4\n"
    too_small = write(tmp_path, BASE.replace("seat = 10", "seat = 1"), "tiny.toml")
    r = lt("apply", too_small)
    assert r.code == 2 and "pools.cad.licenses.seat" in r.err and "fewer than the 2 reserved" in r.err
    # seats move from a reservation to more licenses in one file: decreases first, increases after
    moved = BASE.replace("seat = 10", "seat = 2").replace("projectA = { seat = 2 }", "projectB = { seat = 2 }")
    assert lt("apply", write(tmp_path, moved, "moved.toml")).code == 0
    assert replay.compare(open_store(str(state), 5)) == []


def test_a_product_is_not_changed_in_place(lt, tmp_path):
    assert lt("apply", write(tmp_path, BASE)).code == 0
    r = lt("apply", write(tmp_path, '[pools.cad]\nproduct = "genero"\n', "g.toml"))
    assert r.code == 2 and "pools.cad.product" in r.err and "not changed in place" in r.err


def test_groups_the_file_does_not_list_are_removed(lt, tmp_path):
    assert lt("apply", write(tmp_path, BASE)).code == 0
    lt("group", "set", "extra", "x")
    out = lt("apply", write(tmp_path, BASE)).out
    assert out == "- group extra (x)\n"
    lt("group", "set", "extra", "x")
    lt("pool", "add", "other", "--product", "generic")
    lt("policy", "add", "other", "max", "1", "--group", "extra")
    r = lt("apply", write(tmp_path, BASE))
    assert r.code == 2 and "group extra is named by 1 policy" in r.err


def test_apply_is_an_admin_command(lt, as_user, tmp_path):
    assert lt("apply", write(tmp_path, BASE)).code == 0
    r = as_user("apply", write(tmp_path, BASE))
    assert r.code == 7 and len(r.err.strip().splitlines()) == 1
    assert as_user("export").code == 0


def test_apply_reads_stdin_and_refuses_a_missing_file(ltp, tmp_path):
    missing = ltp("apply", str(tmp_path / "nope.toml"))
    assert missing.code == 2 and "nope.toml" in missing.err
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "lictools", "apply", "-"], input=BASE, capture_output=True, text=True)
    assert proc.returncode == 0 and "+ pool cad: generic; share=user,host" in proc.stdout


def test_sample_applies_in_a_fresh_process_twice(ltp, tmp_path):
    copy = tmp_path / "site.toml"
    shutil.copy(SAMPLE, copy)
    assert ltp("apply", str(copy)).code == 0
    again = ltp("apply", str(copy))
    assert (again.code, again.out) == (0, "no change\n")
