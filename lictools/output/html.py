"""``report --html FILE``: one self-contained page (inline CSS and SVG, no script, no fetch).

Per pool and feature: the seats in use over time against the issued count, the peak and when,
seat-hours, utilisation, denials (true ones apart), top users and hosts by seat-hours; then the
report table as ``--format json`` gives it. Every text from the journal is escaped.
"""

from __future__ import annotations

import html
import os
import time
from typing import Any

from lictools import __version__
from lictools.reports.usage import COLUMNS

TOP = 10
CHART_W, CHART_H = 880, 220
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 48, 16, 14, 30

CSS = """
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d8dee6; --use:#2f6fb3; --use-fill:#cfe0f3; --issued:#c4432b;
        --deny:#c4432b; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { padding: 20px 32px 12px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 22px; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 0 0 6px; font-size: 14px; color: var(--muted); font-weight: 600; }
.sub { color: var(--muted); margin: 0; }
main { padding: 16px 32px 32px; max-width: 1180px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.card.alert b { color: var(--deny); }
svg { display: block; width: 100%; height: auto; max-width: 880px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.grid { stroke: var(--line); stroke-width: 1; }
.use { fill: var(--use-fill); stroke: var(--use); stroke-width: 1.5; }
.issued { fill: none; stroke: var(--issued); stroke-width: 1.5; stroke-dasharray: 6 4; }
.denial { fill: var(--deny); }
.legend { color: var(--muted); font-size: 12px; margin: 4px 0 10px; }
.legend i { display: inline-block; width: 18px; height: 0; vertical-align: middle; margin: 0 6px 0 14px; }
.legend i:first-child { margin-left: 0; }
.tops { display: flex; flex-wrap: wrap; gap: 24px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px 3px 0; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.n, th.n { text-align: right; }
.scroll { overflow-x: auto; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(t: float, span: float) -> str:
    return time.strftime("%Y-%m-%d" if span > 3 * 86400 else "%m-%d %H:%M", time.gmtime(t))


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if top / step <= 5:
            return step
    return max(1, top // 5)


def chart_svg(title: str, points: list[tuple[float, int, int, int]], until: float) -> str:
    """Seats in use (filled steps, the peak per slot) against issued (dashed), denials as red ticks."""
    n = len(points)
    since = points[0][0]
    top = max(1, max(p[1] for p in points), max(p[2] for p in points))
    step = _nice_step(top)
    top = -(-top // step) * step
    w, h = CHART_W - MARGIN_L - MARGIN_R, CHART_H - MARGIN_T - MARGIN_B

    def x(i: float) -> float:
        return MARGIN_L + w * i / n

    def y(v: float) -> float:
        return MARGIN_T + h - h * v / top

    parts = [f'<svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{_e(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>']
    for v in range(0, top + 1, step):
        parts.append(f'<line class="grid" x1="{MARGIN_L}" x2="{MARGIN_L + w}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                     f'<text x="{MARGIN_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    span = until - since
    for k in range(6):
        i = n * k / 5
        anchor = "start" if k == 0 else ("end" if k == 5 else "middle")
        parts.append(f'<text x="{x(i):.1f}" y="{CHART_H - 8}" text-anchor="{anchor}">'
                     f'{_e(_when(since + span * k / 5, span))}</text>')
    use = [f"M{x(0):.1f},{y(0):.1f}"]
    issued = []
    for i, (_, peak, iss, _) in enumerate(points):
        use.append(f"L{x(i):.1f},{y(peak):.1f}L{x(i + 1):.1f},{y(peak):.1f}")
        issued.append(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(iss):.1f}L{x(i + 1):.1f},{y(iss):.1f}")
    use.append(f"L{x(n):.1f},{y(0):.1f}Z")
    parts.append(f'<path class="use" d="{"".join(use)}"/>')
    parts.append(f'<path class="issued" d="{"".join(issued)}"/>')
    for i, (t, _, _, denials) in enumerate(points):
        if denials:
            parts.append(f'<rect class="denial" x="{x(i):.1f}" y="{MARGIN_T + h - 6}" width="{max(2.0, w / n):.1f}" '
                         f'height="6"><title>{denials} denial(s) from {_e(_when(t, 0))} UTC</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f'<th class="{"n" if _numeric(rows, c) else ""}">{_e(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"n" if _numeric(rows, c) else ""}">{_e("-" if row.get(c) is None else row[c])}</td>'
                        for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    return any(isinstance(r.get(column), (int, float)) and not isinstance(r.get(column), bool) for r in rows)


def _tops(group_rows: list[dict[str, Any]], pool: str, feature: str, what: str) -> str:
    rows = [r for r in group_rows if r["pool"] == pool and r["feature"] == feature]
    rows.sort(key=lambda r: (-r["seat_hours"], -r["denials"], str(r["group"])))
    shown = [{what: r["group"], "seat_hours": r["seat_hours"], "peak": r["peak"], "grants": r["grants"],
              "denials": r["denials"]} for r in rows[:TOP]]
    if not shown:
        return f"<div><h3>Top {what}s</h3><p class=\"sub\">none</p></div>"
    more = f' <span class="sub">({len(rows)} in all)</span>' if len(rows) > TOP else ""
    return f"<div><h3>Top {what}s by seat-hours{more}</h3>{_table(shown, list(shown[0]))}</div>"


def _card(value: Any, label: str, alert: bool = False) -> str:
    return f'<div class="card{" alert" if alert else ""}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def render_html(fold: Any, rows: list[dict[str, Any]]) -> str:
    """The whole page for a fold kept with series and the user/host groups (``pictures=True``)."""
    w = fold.window
    users, hosts = fold.group_rows("user"), fold.group_rows("host")
    sections = []
    for summary, points in fold.charts():
        pool, feature = summary["pool"], summary["feature"]
        title = f"{pool} / {feature}"
        util = "-" if summary["utilisation"] is None else f"{summary['utilisation'] * 100:.1f}%"
        cards = "".join((
            _card(f"{summary['peak']} of {summary['issued']}", "peak seats in use of issued"),
            _card(_iso(_parse(summary["peak_at"])) if summary["peak_at"] else "-", "peak first reached (UTC)"),
            _card(f"{summary['seat_hours']:,.1f}", "seat-hours"),
            _card(util, "utilisation"),
            _card(summary["denials"], "denials", alert=summary["denials"] > 0),
            _card(summary["true_denials"], f"true denials (no seat within {fold.retry_window:g} s)",
                  alert=summary["true_denials"] > 0),
            _card(f"{summary['grants']} / {summary['shares']}", "grants / shares"),
            _card(f"{summary['reserved_unused_hours']:,.1f}", "reserved-unused hours"),
        ))
        sections.append(
            f'<section><h2>{_e(title)}</h2><div class="cards">{cards}</div>'
            f'<div class="legend"><i style="border-top:2px solid var(--use)"></i>seats in use (peak per '
            f'{_e(_slot_text(points, w.until))})<i style="border-top:2px dashed var(--issued)"></i>issued'
            f'<i style="border-top:6px solid var(--deny)"></i>denials</div>'
            f'{chart_svg(title + ": seats in use over time against issued", points, w.until)}'
            f'<div class="tops">{_tops(users, pool, feature, "user")}{_tops(hosts, pool, feature, "host")}</div>'
            f"</section>"
        )
    if not sections:
        sections.append('<section><p class="sub">The journal has no usage in this period.</p></section>')
    table_columns = [c for c in COLUMNS if c not in ("since", "until")] if not fold.by else COLUMNS
    by = f" by {fold.by}" if fold.by else ""
    table = _table(rows, table_columns) if rows else '<p class="sub">no rows</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>License usage {_e(_iso(w.since))} to {_e(_iso(w.until))}</title><style>{CSS}</style></head><body>"
        f"<header><h1>License usage</h1><p class=\"sub\">{_e(_iso(w.since))} to {_e(_iso(w.until))} (UTC)"
        f"{_e(' · pool ' + fold.pool) if fold.pool else ''}{_e(' · feature ' + fold.feature) if fold.feature else ''}"
        f" · {fold.events:,} journal events</p></header><main>"
        + "".join(sections)
        + f"<section><h2>Report{_e(by)}</h2>{table}</section>"
        + f"</main><footer>lictools {_e(__version__)} report · seats held at the start count from it, "
          "seats still held at the end count to it · a seat is charged to the user and host that opened it"
          "</footer></body></html>\n"
    )


def _parse(text: str) -> float:
    from lictools.timeutil import parse_time

    return parse_time(text)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _slot_text(points: list[tuple[float, int, int, int]], until: float) -> str:
    seconds = (until - points[0][0]) / len(points)
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def write_html(path: str, fold: Any, rows: list[dict[str, Any]]) -> None:
    """Write the page to ``path`` (temp file in the same folder, then rename)."""
    text = render_html(fold, rows)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
