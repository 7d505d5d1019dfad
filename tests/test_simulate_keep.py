"""``simulate --keep-state FILE`` and a repeated ``--product``: a small log with known answers.

Two AVEVA seats, three client nodes: carol is refused at 09:30 while alice and bob hold both; the kept
state holds that history (grants, the denial, releases, with the log's times) and the session still
running at the end, and its report says what the simulation said.
"""

from __future__ import annotations

import json

import pytest

LOG = """time,event,session,feature,user,host,node
2026-11-16T09:00:00+00:00,start,a,mom,alice,pc1,pc1
2026-11-16T09:10:00+00:00,start,b,mom,bob,pc2,pc2
2026-11-16T09:30:00+00:00,start,c,mom,carol,pc3,pc3
2026-11-16T10:00:00+00:00,stop,a,,,,
2026-11-16T10:05:00+00:00,start,d,runtime,dave,pc4,pc4
2026-11-16T11:00:00+00:00,stop,c,,,,
2026-11-16T12:00:00+00:00,stop,d,,,,
"""


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return path


@pytest.mark.parametrize("name", ["kept.db", "kept.json"])
def test_kept_state_holds_the_simulated_history(lt1, log, tmp_path, name):
    kept = tmp_path / name
    result = lt1("--format", "json", "simulate", str(log), "--product", "aveva-batch", "--product", "genero",
                 "--license", "mom=2", "--license", "runtime=1", "--keep-state", str(kept))
    assert result.code == 0, result.err
    rows = {r["feature"]: r for r in result.json()}
    assert (rows["mom"]["product"], rows["mom"]["peak"], rows["mom"]["denials"]) == ("aveva-batch", 3, 1)
    assert (rows["runtime"]["product"], rows["runtime"]["peak"], rows["runtime"]["denials"]) == ("genero", 1, 0)
    assert len(rows) == 2
    journal = [json.loads(line) for line in lt1("--state", str(kept), "journal").out.splitlines()]
    lines = [(e["time"][11:16], e["event"], e.get("pool"), e.get("session")) for e in journal]
    assert lines == [
        ("09:00", "pool-add", "aveva-batch", None), ("09:00", "pool-add", "genero", None),
        ("09:00", "grant", "aveva-batch", "a"), ("09:10", "grant", "aveva-batch", "b"),
        ("09:30", "deny", "aveva-batch", "c"), ("10:00", "release", "aveva-batch", "a"), ("10:05", "grant", "genero", "d"), ("12:00", "release", "genero", "d"),
    ]
    dump = json.loads(lt1("--state", str(kept), "dump").out)
    assert [(p["name"], p["licenses"][0]["count"]) for p in dump["pools"]] == [("aveva-batch", 2), ("genero", 1)]
    assert [s["session"] for s in dump["sessions"]] == ["b"]  # bob never stopped: running at the end
    report = lt1("--state", str(kept), "--format", "json", "report", "--since", "2026-11-16T09:00:00Z",
                 "--until", "2026-11-16T13:00:00Z").json()
    numbers = {r["feature"]: (r["peak"], r["denials"], r["seat_hours"]) for r in report}
    # a: 1 h, b: 09:10 to 13:00; d: 1 h 55 min
    assert numbers == {"mom": (2, 1, round(1 + 230 / 60, 4)), "runtime": (1, 0, round(115 / 60, 4))}


def test_keep_state_needs_a_capacity_per_feature_and_creates_nothing_without(lt1, log, tmp_path):
    kept = tmp_path / "kept.db"
    result = lt1("simulate", str(log), "--product", "aveva-batch", "--product", "genero", "--license", "mom=2",
                 "--keep-state", str(kept))
    assert result.code == 2 and "--keep-state keeps the site at the --license capacity: give --license runtime=N" in (
        result.err)
    assert not kept.exists()


def test_keep_state_refuses_an_existing_state_before_simulating(lt1, log, tmp_path):
    kept = tmp_path / "kept.db"
    assert lt1("--state", str(kept), "pool", "add", "p", "--product", "generic", "--license", "x=1").code == 0
    result = lt1("simulate", str(log), "--product", "aveva-batch", "--product", "genero", "--license", "mom=2",
                 "--license", "runtime=1", "--keep-state", str(kept))
    assert result.code == 2 and result.out == ""
    assert result.err.strip() == (f"lictools: the target {kept} is not empty (1 pool(s), 1 journal event(s)); "
                                  "--keep-state writes a new state: give a path with no state yet")


@pytest.mark.parametrize("extra", [["--compare"], ["--from-journal"]])
def test_keep_state_is_for_a_log_under_given_products(lt1, log, tmp_path, extra):
    args = ["simulate", *([str(log)] if extra == ["--compare"] else []), *extra, "--keep-state", str(tmp_path / "k.db")]
    result = lt1(*args)
    assert result.code == 2 and "--keep-state keeps a CSV log replayed under --product" in result.err


def test_a_row_no_product_takes_names_every_refusal(lt1, log):
    result = lt1("simulate", str(log), "--product", "genero", "--product", "magic-xpa")
    assert result.code == 2
    assert result.err.startswith("lictools: ") and "row 1 (line 2), column feature: unknown feature 'mom' for product genero" in (
        result.err)
    assert "for product magic-xpa" in result.err
    result = lt1("simulate", str(log), "--product", "genero", "--product", "magic-xpa", "--license", "mom=1")
    assert result.code == 2 and result.err.startswith("lictools: no --product given takes feature 'mom': ")


def test_a_feature_kept_under_two_rules_is_refused(lt1, log, tmp_path):
    """generic takes any feature: runtime would be kept in pool generic and in pool genero, one id in both."""
    kept = tmp_path / "kept.db"
    result = lt1("simulate", str(log), "--product", "generic", "--product", "aveva-batch", "--product", "genero",
                 "--license", "mom=2", "--license", "runtime=1", "--keep-state", str(kept))
    assert result.code == 2 and "feature mom is replayed under both aveva-batch and generic" in result.err
    assert not kept.exists()


def test_keep_state_with_an_empty_name_is_refused(lt1, log):
    result = lt1("simulate", str(log), "--product", "aveva-batch", "--license", "mom=2", "--keep-state", "")
    assert result.code == 2 and result.err == "lictools: --keep-state: give the path of the new state to write\n"
