"""``lictools metrics``: Prometheus text that prometheus_client's own parser reads, with the right values."""

from __future__ import annotations

import os

import pytest

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is a test extra: pip install -e '.[test]'")

GAUGES = {"lictools_seats_issued", "lictools_seats_in_use", "lictools_seats_reserved", "lictools_seats_free",
          "lictools_sessions", "lictools_queued"}


def families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def value(fams: dict, name: str, **labels: str) -> float:
    """The sample of ``name`` (a counter's family drops ``_total``) with exactly these labels."""
    family = fams[name.removesuffix("_total")]
    found = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


def setup(lt) -> None:
    assert lt("pool", "add", "cad", "--product", "generic", "--license", "solver=2", "--option", "share=user").code == 0
    assert lt("pool", "add", "magic", "--product", "magic-xpa", "--license", "web=3").code == 0
    assert lt("reserve", "magic", "alpha", "web", "2").code == 0
    for user in ("alice", "alice", "bob"):
        assert lt("acquire", "cad", "--feature", "solver", "--user", user).code == 0
    assert lt("acquire", "cad", "--feature", "solver", "--user", "carol").code == 3
    assert lt("acquire", "cad", "--feature", "solver", "--user", "dave").code == 3
    assert lt("acquire", "magic", "--feature", "web", "--host", "h1", "--project", "alpha", "--user", "eve").code == 0


def test_exposition_parses_with_the_right_values(lt):
    setup(lt)
    r = lt("metrics")
    assert r.code == 0, r.err
    fams = families(r.out)
    assert {name for name in fams} == GAUGES | {"lictools_denials"}
    assert {n: fams[n].type for n in GAUGES} == {n: "gauge" for n in GAUGES}
    assert fams["lictools_denials"].type == "counter"
    assert all(fams[n].documentation for n in fams)
    cad = {"pool": "cad", "feature": "solver"}
    assert [value(fams, n, **cad) for n in ("lictools_seats_issued", "lictools_seats_in_use", "lictools_seats_reserved",
                                            "lictools_seats_free", "lictools_sessions", "lictools_denials_total")] == [
        2, 2, 0, 0, 3, 2]
    web = {"pool": "magic", "feature": "web"}
    assert [value(fams, n, **web) for n in ("lictools_seats_issued", "lictools_seats_in_use", "lictools_seats_reserved",
                                            "lictools_seats_free", "lictools_denials_total")] == [3, 1, 2, 2, 0]
    # every feature info lists (magic-xpa's threads and ria too), each labelled pool and feature
    assert {tuple(sorted(s.labels.items())) for s in fams["lictools_seats_issued"].samples} == {
        (("feature", f), ("pool", p)) for p, f in (("cad", "solver"), ("magic", "threads"), ("magic", "ria"), ("magic", "web"))}
    assert value(fams, "lictools_queued", **cad) == 0


def test_queued_gauge_counts_the_requests_waiting(lt, state):
    """lictools_queued: the requests waiting in a pool feature's queue (acquire --wait)."""
    import subprocess
    import sys
    import time

    assert lt("pool", "add", "q", "--product", "generic", "--license", "f=1").code == 0
    assert lt("acquire", "q", "--feature", "f").code == 0
    env = {**__import__("os").environ, "LICTOOLS_STATE": str(state)}
    waiter = subprocess.Popen([sys.executable, "-m", "lictools", "acquire", "q", "--feature", "f", "--wait", "60"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while value(families(lt("metrics").out), "lictools_queued", pool="q", feature="f") != 1:
            assert time.monotonic() < deadline, "the waiter never showed"
            time.sleep(0.05)
    finally:
        waiter.kill()
        waiter.wait()


def test_by_user_gauge(lt):
    setup(lt)
    fams = families(lt("metrics", "--by-user").out)
    assert {(s.labels["user"], s.value) for s in fams["lictools_user_seats_in_use"].samples} == {
        ("alice", 1), ("bob", 1), ("eve", 1)}
    assert "lictools_user_seats_in_use" not in lt("metrics").out


@pytest.mark.layouts("sqlite", "json")  # about files
def test_denial_counter_counts_new_denials_from_its_cache(lt, state):
    setup(lt)
    assert value(families(lt("metrics").out), "lictools_denials_total", pool="cad", feature="solver") == 2
    cache = state.parent / (state.name + ".metrics-cache")
    assert cache.is_file() and cache.stat().st_mode & 0o777 == 0o600
    for _ in range(3):
        assert lt("acquire", "cad", "--feature", "solver", "--user", "zoe").code == 3
    cached = value(families(lt("metrics").out), "lictools_denials_total", pool="cad", feature="solver")
    recount = value(families(lt("metrics", "--recount").out), "lictools_denials_total", pool="cad", feature="solver")
    assert cached == recount == 5


@pytest.mark.layouts("sqlite", "json")  # about files
def test_a_new_state_at_the_same_path_starts_the_count_again(lt, state):
    setup(lt)
    assert value(families(lt("metrics").out), "lictools_denials_total", pool="cad", feature="solver") == 2
    cache = state.parent / (state.name + ".metrics-cache")
    assert cache.is_file()
    for path in state.parent.iterdir():
        if path != cache:  # a new state where the old one was, beside the old cache
            path.unlink()
    assert lt("pool", "add", "cad", "--product", "generic", "--license", "solver=1").code == 0
    assert lt("acquire", "cad", "--feature", "solver").code == 0
    assert lt("acquire", "cad", "--feature", "solver").code == 3
    assert value(families(lt("metrics").out), "lictools_denials_total", pool="cad", feature="solver") == 1


def test_label_values_are_escaped():
    from lictools.metrics import exposition

    row = {"pool": 'we"ird\\pool', "feature": "f", "issued": 1, "in_use": 0, "reserved": 0, "free": 1, "sessions": 0, "queued": 0}
    text = exposition([row], {}, {('we"ird\\pool', "f", "line\nbreak"): 1})
    fams = families(text)
    assert fams["lictools_seats_issued"].samples[0].labels == {"pool": 'we"ird\\pool', "feature": "f"}
    assert fams["lictools_user_seats_in_use"].samples[0].labels["user"] == "line\nbreak"


def test_textfile_is_written_atomically_for_node_exporter(lt, tmp_path):
    setup(lt)
    folder = tmp_path / "textfile_collector"
    folder.mkdir()
    r = lt("metrics", "--textfile", str(folder))
    assert r.code == 0 and r.out == ""
    assert os.listdir(folder) == ["lictools.prom"]  # no temporary file left behind
    text = (folder / "lictools.prom").read_text()
    assert value(families(text), "lictools_seats_in_use", pool="cad", feature="solver") == 2
    assert (folder / "lictools.prom").stat().st_mode & 0o777 == 0o644
    missing = lt("metrics", "--textfile", str(tmp_path / "nope"))
    assert missing.code == 2 and len(missing.err.splitlines()) == 1


def test_metrics_runs_as_a_real_process(ltp, lt):
    setup(lt)
    r = ltp("metrics")
    assert r.code == 0, r.err
    assert value(families(r.out), "lictools_sessions", pool="cad", feature="solver") == 3
