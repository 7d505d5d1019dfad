"""``lictools simulate``: small crafted logs whose answers are worked out by hand (one per rule), bad rows,
the site's own journal replayed, and the shipped week checked against an independent count.

Every hand-computed answer is in the test's docstring: the seats in use after each row, the peak the
rule needs (``needed``, first reached at ``peak_at``) and the requests refused at the capacity.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from lictools.cli.main import run

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

ROOT = Path(__file__).resolve().parent.parent
WEEK = ROOT / "examples" / "week.csv"
DAY = "2026-11-16T"


@pytest.fixture
def sim(tmp_path, monkeypatch, capsys):
    """Run ``lictools simulate`` in this process on a log written from ``text``: -> (code, out, err).

    LICTOOLS_STATE points at a file that must never appear: a simulation touches no state.
    """
    state = tmp_path / "never" / "state.db"
    monkeypatch.setenv("LICTOOLS_STATE", str(state))
    monkeypatch.chdir(tmp_path)  # messages name the log as given: log.csv
    monkeypatch.delenv("LICTOOLS_FORMAT", raising=False)

    def call(text: str | None, *args: str, name: str = "log.csv"):
        path = tmp_path / name
        if text is not None:
            path.write_text(text.lstrip("\n"), encoding="utf-8")
        capsys.readouterr()
        code = run(["simulate", name or str(path), *args])
        out, err = capsys.readouterr()
        assert not state.parent.exists(), "a simulation created a state"
        return code, out, err

    return call


def rows_of(sim, text: str, *args: str) -> list[dict]:
    code, out, err = sim(text, "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def pick(rows: list[dict], *keys: str) -> list[tuple]:
    return [tuple(row[k] for k in keys) for row in rows]


def at(hhmm: str) -> str:
    return f"{DAY}{hhmm}:00+00:00"


# --------------------------------------------------------------------------- one crafted log per rule
AVEVA = f"""
time,event,session,feature,user,host,node,terminal
{at("08:00")},start,s1,dev,ann,,BMC1,
{at("08:05")},start,s2,dev,bob,,bmc1,no
{at("08:10")},start,s3,mom,ann,,BMC1,
{at("08:15")},start,s4,dev,cid,HOST1,BMC1,yes
{at("08:20")},start,s5,dev,dan,HOST1,BMC1,yes
{at("08:25")},start,s6,dev,eve,HOST2,BMC1,yes
{at("08:30")},start,s7,dev,fay,,BMC2,
{at("08:35")},stop,s1,,,,,
{at("08:40")},stop,s2,,,,,
{at("08:45")},start,s8,dev,gus,HOST3,BMC1,yes
{at("08:50")},stop,s4,,,,,
{at("09:00")},stop,s5,,,,,
{at("09:00")},stop,s6,,,,,
{at("09:10")},stop,s7,,,,,
"""


def test_aveva_batch_device_ids_by_hand(sim):
    """Seed 000: one dev / mom seat per device ID, the node (BMC1) or HOST_NODE for a terminal session.

    dev seats in use, unlimited: 08:00 BMC1 (1); 08:05 bmc1 is device BMC1: shares (1); 08:15
    HOST1_BMC1 (2); 08:20 HOST1_BMC1 again, another user: shares (2); 08:25 HOST2_BMC1 (3); 08:30
    BMC2 (4: the peak, first reached at 08:30); 08:35 s2 still holds BMC1 (4); 08:40 BMC1 freed (3);
    08:45 HOST3_BMC1 (4 again, not a new peak time); 08:50 s5 holds HOST1_BMC1 (4); 09:00 (2); 09:10 (1).
    mom: one seat, BMC1, from 08:10 (a node with both kinds open holds one of each).
    At dev=3: 08:30 BMC2 is the fourth device: refused (1 denial); its stop at 09:10 ends nothing;
    08:45 HOST3_BMC1 is granted (BMC1 was freed at 08:40). s3 and s8 never stop: running at the end.
    """
    rows = rows_of(sim, AVEVA, "--product", "aveva-batch", "--license", "dev=3")
    assert pick(rows, "feature", "capacity", "needed", "peak_at", "denials", "peak", "requests", "running_at_end") == [
        ("dev", 3, 4, at("08:30"), 1, 4, 7, 1),
        ("mom", None, 1, at("08:10"), 0, 1, 1, 1),
    ]
    assert rows[0]["product"] == "aveva-batch" and rows[0]["pool"] is None
    assert (rows[0]["since"], rows[0]["until"]) == (at("08:00"), at("09:10"))
    # four devices: with four seats nobody is refused
    assert pick(rows_of(sim, AVEVA, "--product", "aveva-batch", "--license", "dev=4"), "feature", "denials") == [
        ("dev", 0), ("mom", 0)]


GENERO = f"""
time,event,session,user,host,client,monitor,parent
{at("08:00")},start,d1,ann,pc1,gdc,pc1:0,
{at("08:01")},start,d2,ann,pc1,gdc,pc1:0,
{at("08:02")},start,w1,bob,pc2,gwc,,
{at("08:03")},start,w2,bob,pc2,gwc,,
{at("08:04")},start,r1,bob,pc2,,,w1
{at("08:05")},detach,w2,,,,,
{at("08:06")},stop,w1,,,,,
{at("08:07")},start,w3,cid,pc3,gbc,,
{at("08:10")},start,w4,dan,pc4,gwc,,
{at("08:12")},start,r2,dan,pc4,,,w4
{at("08:14")},stop,r1,,,,,
{at("08:16")},stop,w3,,,,,
{at("08:20")},stop,d1,,,,,
{at("08:25")},stop,d2,,,,,
{at("08:30")},stop,w4,,,,,
"""


def test_genero_monitors_tabs_run_children_and_detach_by_hand(sim):
    """Seed 001: a GDC monitor is one seat whatever it runs; each browser tab (DVM) is one; a RUN child
    shares its root's seat; a closed user agent keeps the DVM until the USER_AGENT timeout.

    With user_agent_timeout=600: 08:00 monitor pc1:0 (1); 08:01 same monitor (1); 08:02 tab w1 (2);
    08:03 tab w2 (3); 08:04 r1 is RUN by w1: shares (3); 08:05 w2 detached: kept to 08:15 (3); 08:06 w1
    ends but r1 holds its seat (3); 08:07 w3 (4); 08:10 w4 (5: the peak, at 08:10); 08:12 r2 RUN by w4
    (5); 08:14 r1 ends: w1's seat freed (4); 08:15 w2's timeout (3); 08:16 w3 (2); 08:20 d2 still runs
    on the monitor (2); 08:25 (1); 08:30 w4 ends, r2 keeps the seat (1): r2 runs at the end.
    At runtime=4: 08:10 w4 is refused (1 denial); 08:12 r2, RUN by the refused w4, never started (no
    request, no denial); the stop of w4 at 08:30 ends nothing there.
    With the default timeout (300 s) w2 ends at 08:10, before w4 asks: the peak is 4, first at 08:07.
    """
    rows = rows_of(sim, GENERO, "--product", "genero", "--license", "runtime=4",
                   "--option", "user_agent_timeout=600", "--series")
    assert pick(rows, "feature", "needed", "peak_at", "denials", "requests", "running_at_end") == [
        ("runtime", 5, at("08:10"), 1, 8, 1)]
    assert rows[0]["series"] == [[at(t), n] for t, n in (
        ("08:00", 1), ("08:02", 2), ("08:03", 3), ("08:07", 4), ("08:10", 5), ("08:14", 4), ("08:15", 3),
        ("08:16", 2), ("08:25", 1))]
    rows = rows_of(sim, GENERO, "--product", "genero", "--license", "runtime=4")
    assert pick(rows, "needed", "peak_at", "denials") == [(4, at("08:07"), 0)]


MAGIC = f"""
time,event,session,feature,user,host,app,project
{at("08:00")},start,m1,web,ann,pc1,portal,beta
{at("08:01")},start,m2,web,ann,pc1,portal,beta
{at("08:02")},start,m3,web,bob,pc2,portal,beta
{at("08:03")},start,m4,web,cid,pc3,portal,beta
{at("08:04")},start,m5,web,dan,pc4,portal,alpha
{at("08:05")},stop,m1,,,,,
{at("08:06")},stop,m2,,,,,
{at("08:07")},start,m6,web,eve,pc5,portal,gamma
{at("08:08")},stop,m4,,,,,
{at("09:00")},start,r1,ria,ann,pc1,orders,beta
{at("09:00")},start,t1,threads,svc,srv,,beta
{at("09:00")},start,t2,threads,svc,srv,,beta
{at("09:01")},start,r2,ria,bob,PC1.corp.local,orders,beta
{at("09:01")},stop,t1,,,,,
{at("09:02")},start,r3,ria,ann,pc1,stock,beta
{at("09:02")},start,t3,threads,svc,srv,,alpha
{at("09:03")},start,r4,ria,cid,pc2,orders,beta
"""


def test_magic_xpa_grouping_and_reservations_by_hand(sim):
    """Seed 003: Web clients of one machine share a seat (4.0), RIA clients of one machine on one
    application (3.2), threads take one each; alpha has 2 web seats reserved.

    web, unlimited, with ``needed`` = seats in use + reserved seats their project leaves unused:
    08:00 pc1 for beta (in use 1, alpha's 2 unused: 3); 08:01 pc1 again (3); 08:02 pc2 (2; 4);
    08:03 pc3 (3; 5: the need, first at 08:03); 08:04 pc4 for alpha (4, alpha holds 1 of its 2: 5);
    08:05 m2 holds pc1; 08:06 pc1 freed (3; 4); 08:07 pc5 for gamma (4; 5); 08:08 pc3 freed (3; 4).
    So the peak in use is 4 but 5 seats are needed. At web=4 (2 shared, 2 for alpha): 08:03 beta
    would take a third shared seat while 2 are free but reserved: refused (1 denial); 08:04 alpha takes
    its reserved seat; 08:07 gamma takes the shared seat pc1 left. At web=5 nobody is refused.
    ria: 09:00 pc1/orders (1); 09:01 PC1.corp.local is machine pc1: shares (1); 09:02 pc1/stock (2);
    09:03 pc2/orders (3, first at 09:03). With version=3.1 (no grouping before 3.2): 4 at 09:03.
    threads: one per session: 09:00 two (2, first at 09:00); 09:01 (1); 09:02 (2).
    """
    args = ("--product", "magic-xpa", "--reserve", "alpha", "web", "2")
    rows = rows_of(sim, MAGIC, *args, "--license", "web=4")
    assert pick(rows, "feature", "capacity", "needed", "peak_at", "denials", "peak", "reserved") == [
        ("ria", None, 3, at("09:03"), 0, 3, 0),
        ("threads", None, 2, at("09:00"), 0, 2, 0),
        ("web", 4, 5, at("08:03"), 1, 4, 2),
    ]
    rows = rows_of(sim, MAGIC, *args, "--license", "web=5")
    assert pick(rows, "feature", "denials") == [("ria", 0), ("threads", 0), ("web", 0)]
    rows = rows_of(sim, MAGIC, "--product", "magic-xpa", "--option", "version=3.1", "--feature", "ria")
    assert pick(rows, "feature", "needed", "peak_at") == [("ria", 4, at("09:03"))]


GENERIC = f"""
time,event,session,user,host
{at("08:00")},start,g1,ann,pc1
{at("08:01")},start,g2,ann,pc1
{at("08:02")},start,g3,ann,pc2
{at("08:03")},start,g4,bob,pc1
{at("08:04")},detach,g3,,
{at("08:05")},start,g5,cid,pc3
{at("08:06")},stop,g1,,
{at("08:07")},stop,g2,,
{at("08:08")},stop,g4,,
{at("08:09")},stop,g5,,
"""


def test_generic_share_and_linger_by_hand(sim):
    """SPEC generic: the seat key is built from the ``share=`` attributes (none: one seat per session).

    share=user,host: 08:00 ann@pc1 (1); 08:01 ann@pc1 (1); 08:02 ann@pc2 (2); 08:03 bob@pc1 (3, first at
    08:03); 08:04 g3 detached, no linger: freed (2); 08:05 cid@pc3 (3); 08:06 g2 holds ann@pc1 (3);
    08:07 (2); 08:08 (1); 08:09 (0). At solver=2: 08:03 bob refused (1), his stop at 08:08 ends nothing.
    With linger=120 g3 keeps its seat to 08:06: 4 at 08:05.
    share= (empty): one seat per session: 08:03 four (first at 08:03); 08:04 (3); 08:05 (4).
    The log names no feature: the one --license feature is meant.
    """
    base = ("--product", "generic", "--license", "solver=2")
    rows = rows_of(sim, GENERIC, *base, "--option", "share=user,host")
    assert pick(rows, "feature", "needed", "peak_at", "denials", "running_at_end") == [
        ("solver", 3, at("08:03"), 1, 0)]
    rows = rows_of(sim, GENERIC, *base, "--option", "share=user,host", "--option", "linger=120")
    assert pick(rows, "needed", "peak_at") == [(4, at("08:05"))]
    assert pick(rows_of(sim, GENERIC, *base), "needed", "peak_at") == [(4, at("08:03"))]


def test_stop_after_ends_sessions_whose_stop_never_comes(sim):
    """s1 never stops. Without --stop-after it holds its seat to the end of the log: 09:00 s2 stops,
    s3 starts (s1, s3: 2); 09:00:30 s4 (3, first at 09:00:30); at the end s1, s3, s4 run.
    With --stop-after 3600 s1 ends at 09:00 (its lease, never refreshed): the need stays 2 (08:30)."""
    log = f"""
time,event,session
{at("08:00")},start,s1
{at("08:30")},start,s2
{at("09:00")},stop,s2
{at("09:00")},start,s3
{DAY}09:00:30+00:00,start,s4
"""
    base = ("--product", "generic", "--license", "x=5")
    assert pick(rows_of(sim, log, *base), "needed", "peak_at", "running_at_end") == [
        (3, f"{DAY}09:00:30+00:00", 3)]
    assert pick(rows_of(sim, log, *base, "--stop-after", "3600"), "needed", "peak_at", "running_at_end") == [
        (2, at("08:30"), 2)]


def test_compare_tries_every_rule_that_accepts_the_feature(sim):
    """The genero log under --compare: genero (5 at 08:10, as above with the 600 s timeout) and generic
    with share=user: ann, bob, cid, dan at 08:10 (4; the detached w2 is bob's, as is r1): 4 at 08:10.
    AVEVA (dev, mom) and Magic xpa (threads, ria, web) do not know the feature runtime."""
    rows = rows_of(sim, GENERO, "--compare", "--option", "share=user", "--option", "user_agent_timeout=600")
    assert pick(rows, "product", "feature", "needed", "peak_at") == [
        ("generic", "runtime", 4, at("08:10")), ("genero", "runtime", 5, at("08:10"))]


def test_compare_drops_a_rule_that_refuses_a_row(sim):
    """A GDC without --monitor is refused by genero (exit 2 with --product genero); --compare says so
    on stderr and compares the rules that accept the log."""
    log = f"time,event,session,user,client\n{at('08:00')},start,d1,ann,gdc\n"
    code, out, err = sim(log, "--compare", "--format", "json")
    assert code == 0
    assert [r["product"] for r in json.loads(out)] == ["generic"]
    assert err.startswith("lictools: genero is not compared for feature runtime: ") and "column monitor" in err
    code, out, err = sim(log, "--product", "genero")
    assert code == 2 and err.startswith("lictools: ") and "log.csv row 1 (line 2), column monitor: genero refuses" in err


# --------------------------------------------------------------------------- output formats
def test_table_csv_series_and_chart(sim):
    code, out, err = sim(GENERO, "--product", "genero", "--license", "runtime=4", "--series")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Simulated 15 client event(s) from {at('08:00')} to {at('08:30')}"
    assert lines[1].split() == ["product", "feature", "capacity", "needed", "peak_at", "denials", "peak",
                                "requests", "running_at_end"]
    assert lines[3].split() == ["genero", "runtime", "4", "4", at("08:07"), "0", "4", "8", "1"]
    assert "genero/runtime: seats in use with no capacity limit" in out
    code, out, err = sim(GENERO, "--product", "genero", "--format", "csv")
    assert out.splitlines()[0] == ("pool,product,feature,capacity,needed,peak_at,denials,peak,reserved,requests,"
                                   "running_at_end,since,until")
    code, out, err = sim(GENERO, "--product", "genero", "--format", "csv", "--series")
    assert out.splitlines()[:3] == ["pool,product,feature,time,in_use", f",genero,runtime,{at('08:00')},1",
                                    f",genero,runtime,{at('08:02')},2"]
    code, out, err = sim(GENERO, "--product", "genero", "--license", "runtime=3", "--chart")
    assert code == 0, err
    assert out.startswith(f"genero/runtime: needs 4 (first at {at('08:07')}), capacity 3: 1 denial(s)\n")
    assert "issued 3" in out and "x = denials" in out
    code, out, err = sim(GENERO, "--product", "genero", "--chart", "--format", "json")
    assert code == 2 and "--chart" in err


def test_charts_of_every_lane_share_the_logs_time_axis(sim):
    """The threads of the Magic log start at 09:00, the log at 08:00: every chart runs from 08:00 to 09:03."""
    code, out, err = sim(MAGIC, "--product", "magic-xpa", "--chart")
    assert code == 0, err
    axes = [line.split() for line in out.splitlines() if line.strip().endswith(" UTC")]
    assert axes == [["2026-11-16", "08:00", "2026-11-16", "09:03", "UTC"]] * 3


def test_standard_input(tmp_path):
    log = f"time,event,session\n{at('08:00')},start,a\n{at('08:01')},start,b\n"
    out = subprocess.run([sys.executable, "-m", "lictools", "--format", "json", "simulate", "-", "--product",
                          "generic", "--license", "x=1"], input=log, capture_output=True, text=True,
                         env={**os.environ, "LICTOOLS_STATE": str(tmp_path / "no.db")}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert pick(json.loads(out.stdout), "needed", "denials") == [(2, 1)]
    assert not (tmp_path / "no.db").exists()


# --------------------------------------------------------------------------- bad logs: exit 2, one line
BAD = [
    ("time,event,sesion,colour\n", "log.csv: unknown column(s) 'sesion', 'colour'; a log has the columns time, event, "
     "session, feature, user, host, node, terminal, app, project, client, parent, monitor"),
    ("time,session\n", "log.csv: the header has no event column (every row needs both)"),
    ("", "log.csv is empty: the first row must name the columns (time, event, session, feature, user, host, node, "
     "terminal, app, project, client, parent, monitor)"),
    ("time,event\n2026-13-01,start\n", "log.csv row 1 (line 2), column time: '2026-13-01' is neither epoch seconds "
     "nor an ISO 8601 time"),
    ("time,event\n,start\n", "log.csv row 1 (line 2), column time: empty; every row needs a time (ISO 8601 or epoch "
     "seconds)"),
    ("time,event\n1795000000,start\n1794999999,start\n", "log.csv row 2 (line 3), column time: 1794999999 is earlier "
     "than the row before; rows must be in time order (sort the log by time)"),
    ("time,event\n1795000000,begin\n", "log.csv row 1 (line 2), column event: 'begin' is not start, stop or detach"),
    ("time,event,session\n1795000000,stop,\n", "log.csv row 1 (line 2), column session: empty; a stop must name the "
     "session it ends"),
    ("time,event,terminal\n1795000000,start,maybe\n", "log.csv row 1 (line 2), column terminal: 'maybe' is not yes "
     "or no"),
    ("time,event,user\n1795000000,start,a\x01b\n", "log.csv row 1 (line 2), column user: the value must be 1 to 256 "
     "printable characters"),
    ("time,event,session\n1795000000,start,a b\n", "log.csv row 1 (line 2), column session: value 'a b' is not "
     "valid: use up to 128 letters, digits and . _ : @ + - (starting with a letter or digit)"),
    ("time,event\n1795000000,start,extra\n", "log.csv row 1 (line 2): 3 cells, but the header names 2 columns"),
    ("time,event,feature\n1795000000,start,web\n", "log.csv row 1 (line 2), column feature: unknown feature 'web' "
     "for product genero; known: runtime (--feature replays only the rows of the features given)"),
    ("time,event,client\n1795000000,start,vt100\n", "log.csv row 1 (line 2), column client: genero refuses the "
     "request: unknown --client 'vt100' for product genero; known: gdc, gjc, gdc-http, gdcax, gwc, gbc, gjc-http, "
     "gjc-applet, tui"),
    ("time,event,session,parent\n1795000000,start,c1,p1\n", "log.csv row 1 (line 2), column parent: genero refuses "
     "the request: unknown parent session p1: no DVM of its tree is running; acquire without "
     "--parent to take a seat of its own"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_log_is_exit_2_naming_the_row_and_column(sim, text, message):
    code, out, err = sim(text, "--product", "genero")
    assert (code, err) == (2, f"lictools: {message}\n")
    assert out == ""


def test_unreadable_logs_are_exit_2(sim, tmp_path):
    (tmp_path / "nul.csv").write_bytes(b"time,event\n1795000000,st\x00art\n")
    (tmp_path / "latin.csv").write_bytes(b"time,event,user\n1795000000,start,J\xf6rg\n")
    for name, message in (("nul.csv", "column event: 'st\\x00art' is not start"), ("latin.csv", "not UTF-8 text"),
                          ("missing.csv", "No such file or directory")):
        code, out, err = sim(None, "--product", "generic", "--license", "x=1", name=name)
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
    code, out, err = sim(None, "--product", "generic", name="")  # the folder itself
    assert code == 2 and "Is a directory" in err


@pytest.mark.parametrize("args, message", [
    (("--option", "lease=60"), "option lease does not apply to a simulation"),
    (("--option", "colour=red"), "unknown option 'colour' for genero"),
    (("--option", "user_agent_timeout=soon"), "option user_agent_timeout:"),
    (("--license", "web=3"), "unknown feature 'web' for product genero"),
    (("--license", "runtime=-1"), "--license runtime= '-1' is not a whole number"),
    (("--reserve", "alpha", "runtime", "3", "--license", "runtime=2"), "--reserve: 3 runtime seat(s) are reserved, "
     "more than the capacity --license runtime=2"),
    (("--pool", "p"), "--pool selects a pool of the journal"),
    (("--compare",), "--compare tries every product rule: drop --product"),
    (("--from-journal",), "give a log (EVENTS.csv, or - for standard input) or --from-journal, one of the two"),
])
def test_bad_options_are_exit_2(sim, args, message):
    code, out, err = sim(GENERO, "--product", "genero", *args)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_product_is_required_for_a_log(sim):
    code, out, err = sim(GENERO)
    assert (code, err) == (2, "lictools: --product is required (or --compare to try every product rule)\n")


def test_stops_naming_no_running_session_are_said(sim):
    log = f"time,event,session\n{at('08:00')},stop,early\n{at('08:01')},start,a\n{at('08:02')},detach,nobody\n"
    code, out, err = sim(log, "--product", "generic", "--license", "x=1")
    assert code == 0
    assert err.startswith("lictools: 2 stop/detach event(s) named no running session and ended nothing")


# --------------------------------------------------------------------------- the site's own journal
@pytest.fixture
def history(lt, clock):
    """A morning in pool ``g`` (genero, 2 issued), through the real CLI with a pinned clock.

    08:01 a (ann, tab) granted; 08:02 b (bob, tab) granted; 08:03 c (cid) DENIED; 08:04 a2 RUN by a:
    shares; 08:05 b detached (300 s: to 08:10); 08:06 a released (a2 holds the seat); 08:20 a2
    released; b's expiry is journaled by that command's reap.
    """
    def step(hhmm: str, *args: str, code: int = 0) -> None:
        from lictools.timeutil import parse_time

        clock.set(parse_time(at(hhmm)))
        r = lt(*args)
        assert r.code == code, r.err

    step("08:00", "pool", "add", "g", "--product", "genero", "--license", "runtime=2")
    step("08:01", "acquire", "g", "--session", "a", "--user", "ann", "--client", "gwc")
    step("08:02", "acquire", "g", "--session", "b", "--user", "bob", "--client", "gwc")
    step("08:03", "acquire", "g", "--session", "c", "--user", "cid", "--client", "gwc", code=3)
    step("08:04", "acquire", "g", "--session", "a2", "--user", "ann", "--parent", "a")
    step("08:05", "detach", "b")
    step("08:06", "release", "a")
    step("08:20", "release", "a2")
    return lt


def test_from_journal_replays_the_sites_own_history(history):
    """Under its own rule and capacity the replay gives back the day: 08:01 (1), 08:02 (2), 08:03 the
    refused c counts for the demand at that moment (3, first at 08:03) and is refused again (1 denial),
    then holds nothing (2); 08:10 b's timeout (1); 08:20 (0). Own capacity: the pool's 2 issued.
    At runtime=1 b and c are refused (2). Under generic with share=user, ann's a2 shares a: the same."""
    r = history("--format", "json", "simulate", "--from-journal", "--series")
    assert r.code == 0, r.err
    rows = r.json()
    assert pick(rows, "pool", "product", "feature", "capacity", "needed", "peak_at", "denials", "requests") == [
        ("g", "genero", "runtime", 2, 3, at("08:03"), 1, 4)]
    assert rows[0]["series"] == [[at(t), n] for t, n in (
        ("08:01", 1), ("08:02", 2), ("08:03", 3), ("08:03", 2), ("08:10", 1), ("08:20", 0))]
    r = history("--format", "json", "simulate", "--from-journal", "--pool", "g", "--compare",
                "--license", "runtime=1", "--option", "share=user")
    assert pick(r.json(), "product", "capacity", "needed", "denials") == [("generic", 1, 3, 2), ("genero", 1, 3, 2)]
    r = history("simulate", "--from-journal", "--pool", "nope")
    assert (r.code, r.err) == (4, "lictools: pool 'nope' does not appear in the journal\n")


def test_from_journal_reads_through_the_report_source(history, monkeypatch):
    """lictools.reports.source.journal_events is the one place that reads the journal (rotation will chain
    files there): simulate --from-journal goes through it."""
    from lictools.reports import source

    calls = []
    real = source.journal_events

    def spy(store, since_seq=0):
        calls.append(store)
        return real(store, since_seq)

    monkeypatch.setattr(source, "journal_events", spy)
    assert history("simulate", "--from-journal").code == 0
    assert len(calls) == 1


def test_replaying_a_journal_at_its_own_capacity_gives_back_its_own_denials():
    """A random fortnight driven through the real engine (grants, shares, denials, refreshes, leases that
    run out, detaches with a timeout, retried acquires that re-attach, removals, a reservation and a
    license change midway), replayed under each pool's own product and capacity: every admission
    decision is the same, so the denials are the journal's own deny events, per pool and feature, and
    the seats needed with no limit are at least the most the journal ever had in use."""
    from lictools import engine
    from lictools.model import Request
    from lictools.simulation.history import History
    from lictools.simulation.run import Simulation
    from lictools.stores.memory import MemoryStore

    rng = random.Random(7)
    now = [1_795_000_000.0]
    store = MemoryStore(clock=lambda: now[0])
    pools = {"g": ("genero", "runtime", 3), "m": ("magic-xpa", "web", 3), "c": ("generic", "solver", 2)}
    with store.transaction() as tx:
        engine.add_pool(tx, "g", "genero", {"runtime": 3}, {"lease": "900", "user_agent_timeout": "600"})
        engine.add_pool(tx, "m", "magic-xpa", {"web": 3}, {"lease": "900"})
        engine.add_pool(tx, "c", "generic", {"solver": 2}, {"lease": "900", "share": "user", "linger": "120"})
    live: list[str] = []
    for step in range(3000):
        now[0] += rng.expovariate(1 / 60)
        with store.transaction() as tx:
            engine.reap(tx)
            if step == 1000:
                engine.reserve(tx, "m", "alpha", "web", 2)
            if step == 2000:
                engine.add_license(tx, "g", "runtime", 2, serial="more")
            roll = rng.random()
            live = [s for s in live if tx.get_session(s) is not None]
            if roll < 0.45 or not live:
                pool = rng.choice(list(pools))
                user = rng.randrange(14)
                sid = f"s{step}"
                parent = rng.choice([s for s in live if s.startswith("g")] or [None]) if pool == "g" else None
                request = Request(pool, pools[pool][1], ("g" if pool == "g" else "") + sid, f"u{user}", f"pc{user % 9}",
                                  "srv", client="gwc" if pool == "g" else None, project=rng.choice(["alpha", "beta"]),
                                  parent=parent if rng.random() < 0.3 else None)
                if engine.acquire(tx, request).granted:
                    live.append(request.session)
            elif roll < 0.7:
                engine.release(tx, [live.pop(rng.randrange(len(live)))])
            elif roll < 0.8:
                engine.detach(tx, [rng.choice(live)])
            elif roll < 0.95:
                engine.refresh(tx, [rng.choice(live)])
            elif roll < 0.98:
                session = tx.get_session(rng.choice(live))
                assert session is not None
                engine.acquire(tx, Request(session.pool, session.feature, session.id, session.user, session.host,
                                           session.node))
            else:
                engine.remove(tx, [rng.choice(live)])
    journal = list(store.journal)
    denied: dict[tuple, int] = {}
    most: dict[tuple, int] = {}
    for event in journal:
        key = (event.get("pool"), event.get("feature"))
        if event["event"] == "deny":
            denied[key] = denied.get(key, 0) + 1
        if "in_use" in event:
            most[key] = max(most.get(key, 0), event["in_use"])
    kinds = {e["event"] for e in journal} | {"reattached" for e in journal if e.get("reattached")}
    assert sum(denied.values()) > 100 and {"expire", "detach", "recharge", "remove", "reattached"} <= kinds
    history = History(iter(journal))
    simulation = Simulation(pools=history.pool).feed(history).finish()
    rows = simulation.rows()
    assert {(r["pool"], r["feature"]): r["denials"] for r in rows} == {k: denied.get(k, 0) for k in most}
    for row in rows:
        assert row["needed"] >= most[(row["pool"], row["feature"])]
        assert row["capacity"] == {"g": 5, "m": 3, "c": 2}[row["pool"]]


# --------------------------------------------------------------------------- the shipped week
def test_week_csv_is_what_its_script_generates(tmp_path):
    out = tmp_path / "week.csv"
    subprocess.run([sys.executable, str(ROOT / "examples" / "week.py"), str(out)], check=True, timeout=120,
                   capture_output=True)
    assert out.read_bytes() == WEEK.read_bytes()
    with WEEK.open(newline="") as f:
        rows = list(csv.DictReader(f))
    users = {r["user"] for r in rows if r["user"]}
    assert len([u for u in users if not u.startswith("svc-")]) == 200
    assert {r["feature"] for r in rows if r["feature"]} == {"dev", "mom", "runtime", "web", "ria", "threads"}


def independent_count(rows: list[dict], rule: str, capacity: float = float("inf")) -> tuple[int, int]:
    """(peak distinct seats, denials at ``capacity``) of one feature's rows, counted without lictools.

    A plain sweep: a session runs from its start to its stop, or until 300 s after a detach for genero
    (at once for the others); its seat key is worked out from the seed sentences directly: AVEVA the
    device (node, or HOST_NODE on a terminal server), Genero the monitor of a GDC or the root DVM,
    Magic the machine (web), machine and application (ria) or the session (threads), generic with
    share=user,host the user and client host. A session needing a new seat when ``capacity`` seats
    are held is refused, and so are the RUN children of refused sessions.
    """
    def key(row: dict, roots: dict) -> str:
        if rule == "generic":
            return f"{row['user']}@{row['host'] or row['node']}"
        if rule == "aveva-batch":
            return f"{row['host'].upper()}_{row['node'].upper()}" if row["terminal"] == "yes" else row["node"].upper()
        if rule == "genero":
            return roots[row["session"]]
        if row["feature"] == "web":
            return row["host"].lower()
        if row["feature"] == "ria":
            return f"{row['host'].lower()}/{row['app']}"
        return row["session"]

    running: dict[str, str] = {}   # session -> seat key
    seats: dict[str, int] = {}     # seat key -> sessions holding it
    roots: dict[str, str] = {}     # genero: session -> its seat (monitor, or its root DVM)
    refused: set[str] = set()
    timeouts: list[tuple[float, int, str]] = []
    linger = 300 if rule == "genero" else 0
    peak = denials = 0

    def end(session: str) -> None:
        seat = running.pop(session, None)
        if seat is not None:
            seats[seat] -= 1
            if not seats[seat]:
                del seats[seat]

    detached: dict[str, int] = {}
    for n, row in enumerate(rows):
        t = datetime.fromisoformat(row["time"]).timestamp()
        while timeouts and timeouts[0][0] <= t:
            _, mark, session = heapq.heappop(timeouts)
            if detached.get(session) == mark:
                end(session)
        session = row["session"]
        if row["event"] == "start":
            if row["parent"] in refused:
                refused.add(session)
                continue
            if rule == "genero":
                parent = row["parent"]
                if parent:
                    roots[session] = roots[parent]
                elif row["client"] in ("gdc", "gjc"):
                    roots[session] = f"monitor:{row['monitor']}"
                else:
                    roots[session] = f"dvm:{session}"
            seat = key(row, roots)
            if seat not in seats and len(seats) >= capacity:
                refused.add(session)
                denials += 1
                continue
            running[session] = seat
            seats[seat] = seats.get(seat, 0) + 1
            peak = max(peak, len(seats))
        elif row["event"] == "stop":
            detached.pop(session, None)
            end(session)
        elif session in running:
            if linger:
                detached[session] = n
                heapq.heappush(timeouts, (t + linger, n, session))
            else:
                end(session)
    return peak, denials


def test_week_compare_against_an_independent_count(tmp_path, monkeypatch, capsys):
    """``simulate examples/week.csv --compare`` runs every feature under its vendor's rule and under
    generic share=user,host; each row's ``needed`` equals a plain sweep of the log (independent_count),
    and so do the denials at capacities a few seats below what the vendor rule needs."""
    monkeypatch.setenv("LICTOOLS_STATE", str(tmp_path / "never.db"))
    with WEEK.open(newline="") as f:
        rows = list(csv.DictReader(f))
    feature_of: dict[str, str] = {}
    by_feature: dict[str, list[dict]] = {}
    for row in rows:
        if row["event"] == "start":
            feature_of[row["session"]] = row["feature"]
        by_feature.setdefault(feature_of[row["session"]], []).append(row)
    vendor = {"dev": "aveva-batch", "mom": "aveva-batch", "runtime": "genero", "web": "magic-xpa", "ria": "magic-xpa",
              "threads": "magic-xpa"}
    capacity = {f: independent_count(by_feature[f], vendor[f])[0] - 3 for f in vendor}
    capsys.readouterr()
    args = ["--format", "json", "simulate", str(WEEK), "--compare", "--option", "share=user,host"]
    assert run(args + [f"--license={f}={n}" for f, n in sorted(capacity.items())]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted((r["feature"], r["product"]) for r in result) == sorted(
        [(f, vendor[f]) for f in vendor] + [(f, "generic") for f in vendor])
    for row in result:
        expected = independent_count(by_feature[row["feature"]], row["product"], capacity[row["feature"]])
        assert (row["needed"], row["denials"]) == (independent_count(by_feature[row["feature"]], row["product"])[0],
                                                    expected[1]), row
        assert row["requests"] == sum(1 for r in by_feature[row["feature"]] if r["event"] == "start")
        assert row["capacity"] == capacity[row["feature"]]
    genero = next(r for r in result if r["product"] == "genero")
    assert genero["running_at_end"] == 3  # the three DVMs that hang on Wednesday
    assert genero["denials"] > 0 and genero["needed"] > genero["capacity"]
    assert not (tmp_path / "never.db").exists()


def test_simulate_is_not_on_the_login_hook_path():
    """acquire, refresh, detach and release load no simulation module."""
    script = """
import sys
import lictools.cli.acquire, lictools.cli.release, lictools.cli.refresh, lictools.cli.detach, lictools.engine
print(sorted(m for m in sys.modules if m.startswith("lictools.simulation") or m == "lictools.cli.simulate"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_memory_holds_the_live_sessions_not_the_log(monkeypatch):
    """Ten times the rows, about the same peak memory: the log is streamed and nothing per row is kept.

    What ended sessions leave behind (refused ids, where a session started) is swept every
    SWEEP_EVERY events; the test sweeps every 256 so that both logs are measured past many sweeps."""
    import tracemalloc

    from lictools.simulation import run as simulation_run
    from lictools.simulation.clientlog import read_log
    from lictools.simulation.run import Simulation

    monkeypatch.setattr(simulation_run, "SWEEP_EVERY", 256)

    def log(cycles: int):
        yield "time,event,session,user\n"
        for i in range(cycles):
            t = 1_795_000_000 + i * 60
            for k in range(3):
                yield f"{t + k},start,s{i}-{k},u{k}\n"
            for k in range(3):
                yield f"{t + 10 + k},{'detach' if k == 2 else 'stop'},s{i}-{k},\n"

    peaks = []
    for cycles in (300, 3000):
        tracemalloc.start()
        simulation = Simulation("genero", licenses={"runtime": 2}, chart=True)
        simulation.feed(read_log(log(cycles), "log")).finish()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert simulation.rows()[0]["denials"] == cycles
    assert peaks[1] < peaks[0] * 1.5, peaks
