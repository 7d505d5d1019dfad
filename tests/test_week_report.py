"""The README's "report --html on the shipped week", tried as a new user would (issue 11).

The README's own commands (read from README.md, so they cannot drift apart) replay examples/week.csv
under the three products' rules with ``simulate --keep-state``, then write the HTML report of the kept
state. Checked: the kept state's report gives the simulation's numbers (denials; the peak where
nobody was refused, else the capacity), its journal is the simulated history, and the page shows a
chart per pool and feature that is not empty, in a real headless Chromium.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import run_process
from tests.test_report_html import open_in_chromium

ROOT = Path(__file__).resolve().parent.parent
FEATURES = {"runtime": "genero", "mom": "aveva-batch", "dev": "aveva-batch", "threads": "magic-xpa",
            "ria": "magic-xpa", "web": "magic-xpa"}


def readme_commands() -> list[list[str]]:
    """The commands of the README block that keeps the simulated week (``lictools`` dropped)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, flags=re.S) if "--keep-state /tmp/week.db" in b)
    commands = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    assert all(c[0] == "lictools" for c in commands) and len(commands) == 2
    return [c[1:] for c in commands]


def here(args: list[str], folder: Path) -> list[str]:
    """A README command run from the checkout, writing into ``folder`` instead of /tmp."""
    return [str(ROOT / a) if a.startswith("examples/") else a.replace("/tmp/", f"{folder}/") for a in args]


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    folder = tmp_path_factory.mktemp("week")
    simulate, report = (here(c, folder) for c in readme_commands())
    env = {"LICTOOLS_STATE": str(folder / "unused.db")}
    simulated = run_process("--format", "json", *simulate, env=env, timeout=300)
    assert simulated.code == 0, simulated.err
    reported = run_process(*report, env=env, timeout=300)
    assert reported.code == 0 and reported.err == f"lictools: wrote {folder}/r.html\n", reported.err
    state = folder / "week.db"
    numbers = run_process("--state", str(state), "--format", "json", "report", *report[report.index("--since"):-2],
                          env=env)
    assert numbers.code == 0, numbers.err
    return folder, state, json.loads(simulated.out), json.loads(numbers.out)


def test_the_kept_week_reports_what_the_simulation_found(week):
    _, _, simulated, reported = week
    assert sorted((r["product"], r["feature"]) for r in simulated) == sorted((p, f) for f, p in FEATURES.items())
    by_lane = {(r["pool"], r["feature"]): r for r in reported}
    assert len(by_lane) == 6
    refused_somewhere = False
    for row in simulated:
        kept = by_lane[(row["product"], row["feature"])]
        assert kept["issued"] == row["capacity"]
        assert kept["denials"] == row["denials"]
        if row["denials"]:
            refused_somewhere = True
            assert kept["peak"] == row["capacity"] < row["peak"]
        else:
            assert (kept["peak"], kept["peak_at"]) == (row["peak"], row["peak_at"])
    assert refused_somewhere, "the README's capacities are meant to turn some users away"


def test_the_kept_journal_is_the_simulated_history(week):
    folder, state, simulated, _ = week
    journal = run_process("--state", str(state), "journal")
    events = [json.loads(line) for line in journal.out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # a pool per product and a license per feature, set up when the log begins
    assert sorted(e["event"] for e in events[:6]) == ["license-add"] * 3 + ["pool-add"] * 3
    assert {e["time"] for e in events[:6]} == {simulated[0]["since"]}
    times = [e["ts"] for e in events]
    assert times == sorted(times) and events[-1]["time"] <= simulated[0]["until"]
    kinds = {e["event"] for e in events}
    assert {"grant", "share", "release", "deny"} <= kinds
    assert sum(e["event"] == "deny" for e in events) == sum(r["denials"] for r in simulated)


def test_the_html_report_of_the_kept_week_shows_a_chart_per_pool(week):
    folder, _, simulated, _ = week
    page = (folder / "r.html").read_text(encoding="utf-8")
    titles = [t for t in re.findall(r"<section><h2>([^<]+)</h2>", page) if t != "Report"]  # the table's
    assert sorted(titles) == sorted(f"{p} / {f}" for f, p in FEATURES.items())
    for section in page.split("<section><h2>")[1:7]:
        use = re.search(r'<path class="use" d="([^"]+)"', section)
        assert use is not None
        heights = {float(y) for y in re.findall(r"L[\d.]+,([\d.]+)", use.group(1))}
        assert len(heights) > 5, "the chart of seats in use is flat: nothing was used"
    denied = sum(1 for r in simulated if r["denials"])
    assert sum(1 for s in page.split("<section><h2>")[1:7] if 'class="denial"' in s) == denied


def test_the_html_report_of_the_kept_week_opens_in_chromium(week):
    folder, _, _, _ = week

    def inspect(page):
        assert page.locator("svg").count() == 6
        for i in range(6):
            box = page.locator("svg").nth(i).bounding_box()
            assert box and box["width"] > 400 and box["height"] > 80

    open_in_chromium(folder / "r.html", folder / "profile", inspect)
