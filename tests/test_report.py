"""``lictools report``: journals with known answers, built by driving the real CLI with a pinned clock.

Every number below is worked out by hand in the comments and checked to the unit, on both layouts
(the ``lt`` fixture runs each test on state.db and state.json).
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import pytest

from lictools.output.chart import render
from lictools.reports.usage import COLUMNS, UsageFold

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

B = 1_795_046_400.0  # 2026-11-19T00:00:00+00:00 (a Thursday)
H = 3600.0
M = 60.0


def iso(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def at(clock, t: float) -> None:
    clock.set(t)


def ok(result):
    assert result.code == 0, result.err
    return result


@pytest.fixture
def office(lt, clock):
    return office_day(lt, clock)


def office_day(lt, clock, first: tuple[tuple[str, ...], ...] = ()):
    """A day in pool ``cad`` (generic, share=user: one seat per user, 2 issued, leases never end).

    seats in use: 0 [0h,1h) 1 [1h,2h) 2 [2h,3h04) 1 [3h04,3h05) 2 [3h05,6h) 1 [6h,8h]
    ``first``: commands run right after the pool is made (say, a setting).
    """
    at(clock, B)
    ok(lt("pool", "add", "cad", "--product", "generic", "--license", "solver=2",
          "--option", "share=user", "--option", "lease=0"))
    for command in first:
        ok(lt(*command))

    def acquire(user: str, session: str, when: float, code: int = 0):
        at(clock, when)
        r = lt("acquire", "cad", "--feature", "solver", "--user", user, "--host", f"{user}-pc", "--session", session)
        assert r.code == code, r.err

    def release(session: str, when: float):
        at(clock, when)
        ok(lt("release", session))

    acquire("alice", "a1", B + 1 * H)             # grant, in use 1
    acquire("bob", "b1", B + 2 * H)               # grant, in use 2
    acquire("alice", "a2", B + 2 * H + 30 * M)    # share: alice's seat is in use
    acquire("carol", "c1", B + 3 * H, code=3)     # denied
    acquire("carol", "c2", B + 3 * H + 2 * M, code=3)  # denied again
    release("b1", B + 3 * H + 4 * M)              # in use 1
    acquire("carol", "c3", B + 3 * H + 5 * M)     # grant 300 s after her first denial: not true denials
    acquire("dave", "d1", B + 4 * H, code=3)      # denied, never served: a true denial
    release("a1", B + 5 * H)                      # alice's seat stays: a2 holds it
    release("a2", B + 6 * H)                      # in use 1 (carol)
    at(clock, B + 8 * H)
    return lt


def report(lt, *args: str) -> list[dict]:
    r = lt("--format", "json", "report", *args)
    assert r.code == 0, r.err
    return r.json()


# the office day's answer over [B, B+8h]:
# seat-seconds: 1*3600 + 2*3840 + 1*60 + 2*10500 + 1*7200 = 39540 -> 10.9833 h; issued 2 for 8 h = 57600
WHOLE_DAY = {
    "pool": "cad", "feature": "solver", "group": None,
    "peak": 2, "peak_at": iso(B + 2 * H), "seat_hours": 10.9833,
    "grants": 3, "shares": 1, "denials": 3, "true_denials": 1, "policy_denials": 0,
    "issued": 2, "utilisation": 0.6865, "reserved_unused_hours": 0.0,
    "since": iso(B), "until": iso(B + 8 * H),
}


def test_whole_day_known_answers(office):
    rows = report(office, "--since", iso(B), "--until", iso(B + 8 * H))
    assert rows == [WHOLE_DAY]
    assert list(rows[0]) == COLUMNS


def test_seats_held_at_since_count_from_since_and_relative_spans(office):
    # now is B+8h: --since 6h is B+2h; alice's seat (held since 1h) counts from 2h, bob's grant is at 2h
    rows = report(office, "--since", "6h")
    assert rows == report(office, "--since", iso(B + 2 * H), "--until", iso(B + 8 * H))
    row = rows[0]
    assert (row["peak"], row["peak_at"]) == (2, iso(B + 2 * H))
    assert row["seat_hours"] == round((39540 - 3600) / 3600, 4)  # 9.9833
    assert (row["grants"], row["shares"], row["denials"], row["true_denials"]) == (2, 1, 3, 1)
    assert row["utilisation"] == round(35940 / (2 * 6 * 3600), 4)  # 0.8319
    # seats still held at --until count to --until: carol's seat from 3h05 to 4h
    row = report(office, "--since", iso(B + 3 * H), "--until", iso(B + 4 * H))[0]
    assert row["seat_hours"] == round((2 * 240 + 60 + 2 * 3300) / 3600, 4)  # 1.9833
    assert report(office, "--since", "480m", "--until", "0h") == report(office, "--since", iso(B), "--until", iso(B + 8 * H))


def test_by_user_charges_each_seat_to_its_opener(office):
    rows = report(office, "--since", iso(B), "--until", iso(B + 8 * H), "--by", "user")
    by = {r["group"]: r for r in rows}
    assert sorted(by) == ["alice", "bob", "carol", "dave"]
    # alice opened her seat at 1h, shared it at 2h30, it was freed at 6h: 5 h; the share costs nothing
    assert {k: by["alice"][k] for k in ("peak", "peak_at", "seat_hours", "grants", "shares", "denials")} == {
        "peak": 1, "peak_at": iso(B + H), "seat_hours": 5.0, "grants": 1, "shares": 1, "denials": 0}
    assert by["alice"]["utilisation"] == round(5 * 3600 / 57600, 4)  # 0.3125 of the pool's issued hours
    assert by["bob"]["seat_hours"] == round(3840 / 3600, 4)  # 1.0667
    assert (by["carol"]["seat_hours"], by["carol"]["denials"], by["carol"]["true_denials"]) == (4.9167, 2, 0)
    assert (by["dave"]["peak"], by["dave"]["peak_at"], by["dave"]["denials"], by["dave"]["true_denials"]) == (0, None, 1, 1)
    assert sum(r["seat_hours"] for r in rows) == pytest.approx(10.9833, abs=2e-4)  # the groups add up to the pool
    assert all(r["issued"] == 2 and r["reserved_unused_hours"] is None for r in rows)
    hosts = report(office, "--since", iso(B), "--until", iso(B + 8 * H), "--by", "host")
    assert [(r["group"], r["seat_hours"]) for r in hosts] == [
        ("alice-pc", 5.0), ("bob-pc", 1.0667), ("carol-pc", 4.9167), ("dave-pc", 0.0)]


def test_by_hour_buckets(office):
    rows = report(office, "--since", iso(B), "--until", iso(B + 8 * H), "--by", "hour")
    assert [r["group"] for r in rows] == [iso(B + h * H) for h in range(8)]
    hour = {round((report_time(r["group"]) - B) / H): r for r in rows}
    assert (hour[0]["peak"], hour[0]["peak_at"], hour[0]["seat_hours"], hour[0]["utilisation"]) == (0, None, 0.0, 0.0)
    # 03:00-04:00: 2 seats held at the start (the peak, from the start), bob out 03:04-03:05
    assert {k: hour[3][k] for k in (
        "peak", "peak_at", "seat_hours", "grants", "shares", "denials", "true_denials", "issued")} == {
        "peak": 2, "peak_at": iso(B + 3 * H), "seat_hours": 1.9833, "grants": 1, "shares": 0,
        "denials": 2, "true_denials": 0, "issued": 2}
    assert (hour[4]["denials"], hour[4]["true_denials"]) == (1, 1)
    assert (hour[2]["shares"], hour[2]["grants"]) == (1, 1)
    assert (hour[3]["since"], hour[3]["until"]) == (iso(B + 3 * H), iso(B + 4 * H))
    assert sum(r["seat_hours"] for r in rows) == pytest.approx(10.9833, abs=5e-4)
    day = report(office, "--since", iso(B + 2 * H), "--until", iso(B + 8 * H), "--by", "day")
    assert [(r["group"], r["since"], r["seat_hours"]) for r in day] == [(iso(B), iso(B + 2 * H), 9.9833)]


def report_time(text: str) -> float:
    from lictools.timeutil import parse_time

    return parse_time(text)


def test_retry_window_decides_true_denials(office):
    # carol was served 300 s and 180 s after her denials: within 300 s both are retried, within 60 s neither
    assert report(office, "--since", iso(B), "--until", iso(B + 8 * H), "--retry-window", "60")[0]["true_denials"] == 3
    assert report(office, "--since", iso(B), "--until", iso(B + 8 * H), "--retry-window", "299")[0]["true_denials"] == 2


def test_a_grant_after_until_still_answers_a_denial_before_it(office):
    # carol's denials at 3h00/3h02, her grant at 3h05: a report ending at 3h03 still sees the grant
    row = report(office, "--since", iso(B), "--until", iso(B + 3 * H + 3 * M))[0]
    assert (row["denials"], row["true_denials"]) == (2, 0)


def test_reserved_unused_hours_and_by_project(lt, clock):
    # magic-xpa web: one seat per client machine; 3 issued, 2 reserved for project alpha
    at(clock, B)
    ok(lt("pool", "add", "magic", "--product", "magic-xpa", "--license", "web=3", "--option", "lease=0"))
    ok(lt("reserve", "magic", "alpha", "web", "2"))

    def acquire(host, project, session, when, code=0):
        at(clock, when)
        r = lt("acquire", "magic", "--feature", "web", "--host", host, "--project", project,
               "--user", f"{project}-user", "--session", session)
        assert r.code == code, r.err

    acquire("h1", "beta", "s1", B + 1 * H)               # the one shared seat: alpha's 2 stay unused
    acquire("h2", "alpha", "s2", B + 2 * H)              # from alpha's reservation: 1 unused
    acquire("h3", "beta", "s3", B + 2 * H + 30 * M, code=3)  # the free seat is alpha's: denied
    at(clock, B + 3 * H)
    ok(lt("release", "s1"))
    at(clock, B + 4 * H)
    ok(lt("release", "s2"))                              # 2 unused again
    at(clock, B + 5 * H)
    # unused reserved: 2 for [0,2h), 1 for [2h,4h), 2 for [4h,5h] = 4 + 2 + 2 = 8 h
    row = report(lt, "--since", iso(B), "--until", iso(B + 5 * H), "--feature", "web")[0]
    assert {k: row[k] for k in ("peak", "seat_hours", "grants", "denials", "true_denials", "issued",
                                "utilisation", "reserved_unused_hours")} == {
        "peak": 2, "seat_hours": 4.0, "grants": 2, "denials": 1, "true_denials": 1, "issued": 3,
        "utilisation": round(4 / 15, 4), "reserved_unused_hours": 8.0}
    projects = {r["group"]: r for r in report(lt, "--since", iso(B), "--until", iso(B + 5 * H), "--by", "project")}
    assert (projects["alpha"]["seat_hours"], projects["alpha"]["reserved_unused_hours"]) == (2.0, 8.0)
    assert (projects["beta"]["seat_hours"], projects["beta"]["reserved_unused_hours"]) == (2.0, 0.0)
    assert (projects["beta"]["denials"], projects["beta"]["true_denials"]) == (1, 1)


def test_issued_changes_and_by_feature_over_pools(lt, clock):
    at(clock, B)
    ok(lt("pool", "add", "east", "--product", "generic", "--license", "solver=2", "--option", "lease=0"))
    ok(lt("pool", "add", "west", "--product", "generic", "--license", "solver=3", "--option", "lease=0"))
    at(clock, B + 1 * H)
    ok(lt("acquire", "east", "--feature", "solver", "--session", "e1"))
    at(clock, B + 2 * H)
    ok(lt("acquire", "west", "--feature", "solver", "--session", "w1"))
    at(clock, B + 3 * H)
    ok(lt("release", "e1"))
    ok(lt("license", "add", "east", "solver", "2", "--serial", "more"))  # east: 4 issued from 3h
    at(clock, B + 4 * H)
    ok(lt("release", "w1"))
    at(clock, B + 6 * H)
    east = report(lt, "--since", iso(B), "--until", iso(B + 6 * H), "--pool", "east")
    # issued 2 for 3 h then 4 for 3 h = 18 issued-hours; 2 seat-hours; issued = the most at any time
    assert [(r["pool"], r["issued"], r["seat_hours"], r["utilisation"]) for r in east] == [("east", 4, 2.0, round(2 / 18, 4))]
    summed = report(lt, "--since", iso(B), "--until", iso(B + 6 * H), "--by", "feature")
    # one seat 1h-2h, two 2h-3h, one 3h-4h: peak 2 at 2h, 4 seat-hours; issued 5 then 7: 15 + 21 = 36
    assert [{k: r[k] for k in ("pool", "feature", "group", "peak", "peak_at", "seat_hours", "grants", "issued",
                               "utilisation")} for r in summed] == [
        {"pool": None, "feature": "solver", "group": "solver", "peak": 2, "peak_at": iso(B + 2 * H),
         "seat_hours": 4.0, "grants": 2, "issued": 7, "utilisation": round(4 / 36, 4)}]


def test_expired_and_removed_sessions_free_seats(lt, clock):
    at(clock, B)
    ok(lt("pool", "add", "cad", "--product", "generic", "--license", "solver=5", "--option", "lease=600"))
    ok(lt("acquire", "cad", "--feature", "solver", "--session", "x"))
    ok(lt("acquire", "cad", "--feature", "solver", "--session", "y"))
    at(clock, B + 1 * H)          # both leases ran out at 600 s; this command's reap journals two expires
    ok(lt("info"))
    at(clock, B + 2 * H)
    ok(lt("acquire", "cad", "--feature", "solver", "--session", "z", "--lease", "0"))
    at(clock, B + 3 * H)
    ok(lt("remove", "z"))
    at(clock, B + 4 * H)
    row = report(lt, "--since", iso(B), "--until", iso(B + 4 * H))[0]
    # the reap at 1h journals the expiries, but the seats were free from the lease's end at 600 s:
    # 2 * 600 s + 1 h (z, removed by an admin at 3h)
    assert (row["peak"], row["seat_hours"], row["grants"]) == (2, round((1200 + 3600) / 3600, 4), 3)
    hours = report(lt, "--since", iso(B), "--until", iso(B + 4 * H), "--by", "hour")
    assert [r["seat_hours"] for r in hours] == [round(1200 / 3600, 4), 0.0, 1.0, 0.0]


def test_a_lease_refreshed_then_left_to_expire_ends_at_its_last_refresh_plus_lease(lt, clock):
    at(clock, B)
    ok(lt("pool", "add", "cad", "--product", "generic", "--license", "solver=5", "--option", "lease=600"))
    ok(lt("acquire", "cad", "--feature", "solver", "--session", "x"))
    at(clock, B + 500)
    ok(lt("refresh", "x"))                # lease now ends at 1100 s
    at(clock, B + 10 * H)                 # nobody ran anything all night; this command's reap ends x
    ok(lt("gc"))
    row = report(lt, "--since", iso(B), "--until", iso(B + 10 * H), "--by", "user")[0]
    assert (row["seat_hours"], row["peak"]) == (round(1100 / 3600, 4), 1)


def test_table_csv_and_chart(office):
    office_until = ("--since", iso(B), "--until", iso(B + 8 * H))
    table = office("report", *office_until)
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0] == f"Usage from {iso(B)} to {iso(B + 8 * H)}"
    assert lines[1].split() == [c for c in COLUMNS if c not in ("since", "until")]
    assert lines[3].split()[:6] == ["cad", "solver", "-", "2", iso(B + 2 * H), "10.9833"]
    csv_out = office("--format", "csv", "report", *office_until)
    assert csv_out.out.splitlines()[0] == ",".join(COLUMNS)
    assert csv_out.out.splitlines()[1].startswith(f"cad,solver,,2,{iso(B + 2 * H)},10.9833,3,1,3,1,0,2,0.6865,0.0,")
    chart = office("report", "--chart", *office_until)
    assert chart.code == 0, chart.err
    assert chart.out.startswith(f"cad/solver: peak 2 of 2 issued at {iso(B + 2 * H)}, 3 denial(s), 1 true\n")
    assert "2 ┤" in chart.out and "x = denials" in chart.out and "Usage from" in chart.out


def test_chart_draws_the_peak_per_column_against_issued():
    # 8 slots over 8 h: 0,1,2,2,2,2,1,1 seats, 2 issued, denials in slot 3
    points = [(B + i * H, p, 2, 1 if i == 3 else 0) for i, p in enumerate([0, 1, 2, 2, 2, 2, 1, 1])]
    text = render("t", points, B + 8 * H, width=8, height=2)
    assert text.splitlines() == [
        "t",
        "2 ┤┈┈████┈┈ issued 2",
        "0 ┤ ███████",
        "  │   x     x = denials",
        "  └────────",
        "   2026-11-19 00:00 2026-11-19 08:00 UTC",
    ]


def test_usage_errors_and_unknown_names(office):
    assert office("report", "--since", "yesterday").code == 2
    r = office("report", "--since", iso(B + 2 * H), "--until", iso(B + H))
    assert r.code == 2 and "must be before" in r.err
    assert office("report", "--by", "minute").code == 2
    r = office("--format", "json", "report", "--chart")
    assert r.code == 2 and "--chart" in r.err and len(r.err.splitlines()) == 1
    r = office("report", "--pool", "nope")
    assert r.code == 4 and r.err == "lictools: pool 'nope' does not appear in the journal\n"
    assert office("report", "--pool", "cad", "--feature", "nope").code == 4
    r = office("report", "--plot", "/tmp/x.pdf")
    assert r.code == 2 and ".png or .svg" in r.err
    r = office("report", "--html", "/no/such/folder/r.html")
    assert r.code == 2 and r.err == "lictools: --html '/no/such/folder/r.html': the folder /no/such/folder does not exist\n"
    r = office("report", "--plot", "/tmp")
    assert r.code == 2 and "is a folder" in r.err


def test_html_name_too_long_is_a_usage_error(office, tmp_path):
    """Found by the CLI fuzzer: a 10,000-character file name passed the checks and ended in exit 1."""
    r = office("report", "--html", str(tmp_path / ("r" * 10_000)))
    assert r.code == 2, r.err
    assert r.err.startswith("lictools: --html '") and "cannot write it (File name too long)" in r.err
    assert len(r.err.splitlines()) == 1


def test_plot_without_the_extra_names_it(office, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    r = office("report", "--plot", "/tmp/never-written.png")
    assert r.code == 2
    assert r.err == "lictools: --plot needs the plotting extra, which is not installed: pip install 'lictools[plot]'\n"


def test_plot_writes_png_and_svg(office, tmp_path):
    pytest.importorskip("matplotlib")
    for name in ("r.png", "r.svg"):
        r = office("report", "--since", iso(B), "--until", iso(B + 8 * H), "--plot", str(tmp_path / name))
        assert r.code == 0, r.err
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "r.svg").read_text()[:2000]


@pytest.mark.layouts("sqlite", "json")  # about files (test_postgres checks a database gets no schema)
def test_empty_journal_is_an_empty_report(lt, state):
    """No state yet: exit 4, nothing created (a read-only command); a state without use: no rows."""
    missing = lt("--format", "json", "report")
    assert missing.code == 4 and "no state at" in missing.err and not state.exists()
    assert lt("config").code == 4
    assert lt("group", "set", "staff", "alice").code == 0  # a state with a journal that never saw a pool
    assert report(lt) == []


def test_login_hook_commands_import_no_report_code(state):
    """acquire, refresh, detach, release: none loads the report, metrics or picture modules."""
    script = """
import sys
from lictools.cli.main import run
assert run(["pool", "add", "p", "--product", "generic", "--license", "s=5"]) == 0
before = set(sys.modules)
for args in (["acquire", "p", "--feature", "s", "--session", "h1"], ["refresh", "h1"], ["detach", "h1"],
             ["acquire", "p", "--feature", "s", "--session", "h2"], ["release", "h2"]):
    assert run(args) == 0, args
loaded = sorted(m for m in set(sys.modules) - before if m.startswith(("lictools.reports", "lictools.metrics",
         "lictools.output.chart", "lictools.output.html", "lictools.output.plot", "matplotlib", "prometheus")))
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_memory_stays_bounded_whatever_the_journal_length():
    """The fold keeps no events: ten times the events, about the same peak memory."""
    from lictools import engine
    from lictools.model import Request
    from lictools.stores.memory import MemoryTransaction, empty_document

    def journal(cycles: int):
        tx = MemoryTransaction(empty_document(), B)
        engine.add_pool(tx, "p", "generic", {"s": 3}, {"lease": "0"})
        yield from tx.events
        for i in range(cycles):
            tx.events = []
            tx.now = B + i * 10
            for k in range(4):  # the fourth is denied
                engine.acquire(tx, Request(pool="p", feature="s", session=f"{i}-{k}", user=f"u{k}", host="h", node="n"))
            engine.release(tx, [f"{i}-{k}" for k in range(3)])
            yield from tx.events

    peaks = []
    for cycles in (500, 500, 5000):  # the first run warms caches (imports, interned strings): not compared
        tracemalloc.start()
        fold = UsageFold(B, B + 10 * 5000, dims=("user", "host"), slots=720).feed(journal(cycles)).finish()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert fold.rows()[0]["denials"] == cycles
    # kept events would cost megabytes more at 5,000 cycles; noise (allocator, gc timing) is tens of KB
    assert peaks[2] < peaks[1] * 2, peaks


def test_journal_decoder_reads_events_and_refuses_damaged_text():
    from lictools.stores.codec import decode_event, encode_event

    event = {"event": "grant", "ts": 1.5, "user": "é\"x"}
    assert decode_event(encode_event(event)) == event
    assert decode_event(" " + encode_event(event) + "\n") == event
    for damaged in ('{"event": "grant"} trailing', '["not", "an", "object"]', '{"event": ', ""):
        with pytest.raises(ValueError):
            decode_event(damaged)


def test_a_damaged_sqlite_journal_row_is_exit_6(cli, tmp_path):
    import sqlite3

    assert cli("pool", "add", "p", "--product", "generic", "--license", "s=1")[0] == 0
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE events SET doc = '{\"event\": \"gra' WHERE seq = 1")
    db.commit()
    db.close()
    code, out, err = cli("report")
    assert code == 6 and out == "" and err.startswith("lictools: state ") and "journal event 1 is damaged" in err


def test_buckets_and_spans():
    from lictools.reports.periods import bucket_end, bucket_start, parse_when
    from lictools.timeutil import parse_time

    thursday = parse_time("2026-11-19T10:30:00+00:00")
    assert iso(bucket_start(thursday, "hour")) == "2026-11-19T10:00:00+00:00"
    assert iso(bucket_start(thursday, "day")) == "2026-11-19T00:00:00+00:00"
    assert iso(bucket_start(thursday, "week")) == "2026-11-16T00:00:00+00:00"  # ISO weeks start on Monday
    assert iso(bucket_start(thursday, "month")) == "2026-11-01T00:00:00+00:00"
    assert iso(bucket_end(parse_time("2026-12-01"), "month")) == "2027-01-01T00:00:00+00:00"
    assert iso(bucket_end(parse_time("2028-02-01"), "month")) == "2028-03-01T00:00:00+00:00"
    assert iso(bucket_end(parse_time("2026-11-16"), "week")) == "2026-11-23T00:00:00+00:00"
    assert parse_when("7d", thursday, "--since") == thursday - 7 * 86400
    assert parse_when("12h", thursday, "--since") == thursday - 12 * 3600
    assert parse_when("30m", thursday, "--since") == thursday - 1800
    assert parse_when("2w", thursday, "--since") == thursday - 14 * 86400
    assert parse_when("2026-11-19T11:30:00+01:00", thursday, "--since") == thursday
    assert parse_when("2026-11-19", thursday, "--since") == B


def test_policy_denials_are_counted_apart_from_capacity_denials(lt, clock):
    """Issue 13: report counts policy denials apart from capacity denials (the deny event names the policy)."""
    assert lt("pool", "add", "cad", "--product", "generic", "--license", "solver=2").code == 0
    assert lt("policy", "add", "cad", "max", "1", "--user", "alice").code == 0
    lt("acquire", "cad", "--feature", "solver", "--user", "alice", "--session", "a1")
    clock.advance(60)
    refused = lt("acquire", "cad", "--feature", "solver", "--user", "alice", "--session", "a2")  # MAX
    assert refused.code == 3 and "MAX 1" in refused.err
    lt("acquire", "cad", "--feature", "solver", "--user", "bob", "--session", "b1")
    clock.advance(60)
    assert lt("acquire", "cad", "--feature", "solver", "--user", "carol", "--session", "c1").code == 3  # full
    clock.advance(60)
    [row] = lt("--format", "json", "report", "--since", "1h").json()
    assert (row["denials"], row["policy_denials"]) == (2, 1)
    by_user = {r["group"]: r for r in lt("--format", "json", "report", "--since", "1h", "--by", "user").json()}
    assert (by_user["alice"]["denials"], by_user["alice"]["policy_denials"]) == (1, 1)
    assert (by_user["carol"]["denials"], by_user["carol"]["policy_denials"]) == (1, 0)
