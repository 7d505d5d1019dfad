"""``report --html``: the page opens in a real headless Chromium with no console error, fetches
nothing, and shows the charts (a screenshot that is not blank).

Needs Debian's ``chromium`` (``.ci/run`` installs it where apt-get works) and the test extras
``playwright`` and ``pillow``; the browser test skips, saying why, when either is missing.
"""

from __future__ import annotations

import io
import os
import shutil

import pytest

from tests.test_report import B, H, iso, office  # noqa: F401  (the fixture: a known day in pool cad)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def write_report(lt, path) -> str:
    r = lt("report", "--since", iso(B), "--until", iso(B + 8 * H), "--html", str(path))
    assert r.code == 0, r.err
    assert r.err == f"lictools: wrote {path}\n"
    return path.read_text(encoding="utf-8")


def test_page_is_self_contained_and_shows_the_numbers(office, tmp_path):
    page = write_report(office, tmp_path / "r.html")
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for fetching in ("<script", "http://", "https://", "src=", "@import", "url("):
        if fetching == "http://" and 'xmlns="http://www.w3.org/2000/svg"' in page:
            lowered = lowered.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert fetching not in lowered, f"the page would fetch or run something: {fetching}"
    assert "<svg" in page and 'class="use"' in page and 'class="issued"' in page
    assert "cad / solver" in page and "2 of 2" in page and "11.0" in page and "10.9833" in page
    assert page.count('class="denial"') >= 2  # carol's and dave's denials are drawn
    for user in ("alice", "bob", "carol", "dave", "alice-pc"):
        assert f"<td>{user}</td>" in page or f'<td class="">{user}</td>' in page


def test_journal_text_is_escaped(lt, clock, tmp_path):
    clock.set(B)
    assert lt("pool", "add", "p", "--product", "generic", "--license", "s=1").code == 0
    clock.set(B + H)
    assert lt("acquire", "p", "--feature", "s", "--user", "<img src=x onerror=alert(1)>").code == 0
    clock.set(B + 2 * H)
    r = lt("report", "--html", str(tmp_path / "e.html"))
    assert r.code == 0, r.err
    page = (tmp_path / "e.html").read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def open_in_chromium(path, profile, inspect):
    """Load the page at ``path`` in headless Chromium, run ``inspect(page)`` on it and check what every page
    must: no console error, nothing fetched besides itself, a screenshot that is not blank. Skips (saying
    why) without chromium, playwright or pillow."""
    browser = chromium_path()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install chromium); .ci/run installs it where apt-get works")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra: pip install -e '.[test]'")
    image = pytest.importorskip("PIL.Image", reason="pillow is a test extra: pip install -e '.[test]'")
    messages, requests = [], []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=browser, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900})
        try:
            page = context.new_page()
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("request", lambda req: requests.append(req.url))
            response = page.goto(path.as_uri(), wait_until="load")
            assert response is None or response.ok
            assert page.title().startswith("License usage")
            inspect(page)
            shot = page.screenshot(full_page=True)
        finally:
            context.close()
    assert [m for m in messages if m.startswith(("error", "warning", "pageerror"))] == []
    assert requests == [path.as_uri()], "the page fetched something besides itself"
    picture = image.open(io.BytesIO(shot)).convert("RGB")
    colours = picture.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, "the screenshot is blank or nearly so"
    background = max(colours)[1]
    painted = sum(count for count, colour in colours if colour != background)
    assert painted / (picture.width * picture.height) > 0.05, "the screenshot is mostly empty"
    if os.environ.get("LICTOOLS_KEEP_SCREENSHOT"):
        picture.save(os.environ["LICTOOLS_KEEP_SCREENSHOT"])


def test_page_loads_in_headless_chromium_without_errors(office, tmp_path):
    path = tmp_path / "report.html"
    write_report(office, path)

    def inspect(page):
        assert page.locator("svg").count() == 1
        assert page.locator("section h2").first.inner_text() == "cad / solver"
        box = page.locator("svg").bounding_box()
        assert box and box["width"] > 400 and box["height"] > 80  # the chart is laid out, not collapsed

    open_in_chromium(path, tmp_path / "profile", inspect)
