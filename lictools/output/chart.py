"""``report --chart``: seats in use over time against the issued count, drawn with Unicode blocks.

Why not a terminal plotting library: plotext (the well-kept one) rewrote its API in 6.x, takes
0.2 s to import, and draws lines between points, while seats in use are a step function whose
peak per interval is what a license costs; the charts must also be exact enough to test to the
character. A column of eighth blocks per time column, showing the peak in that column, against a
dotted issued line, is a few dozen lines.
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

BLOCKS = " ▁▂▃▄▅▆▇█"
ISSUED_MARK = "┈"
DENIAL_MARK = "x"


def columns(points: list[tuple[float, int, int, int]], width: int) -> list[tuple[int, int, int]]:
    """``(peak, issued, denials)`` per column: ``points`` slots merged, ``width`` columns at most."""
    n = len(points)
    width = max(1, min(width, n))
    out = []
    for c in range(width):
        part = points[c * n // width:(c + 1) * n // width]
        out.append((max(p[1] for p in part), max(p[2] for p in part), sum(p[3] for p in part)))
    return out


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def render(title: str, points: list[tuple[float, int, int, int]], until: float,
           width: int = 72, height: int = 8) -> str:
    """One chart: ``height`` rows of bars (the peak seats in use per column), the issued count as a
    dotted line, an ``x`` under columns with denials, and the time axis (UTC)."""
    cols = columns(points, width)
    top = max(1, max(c[0] for c in cols), max(c[1] for c in cols))
    label_width = len(str(top))
    eighths = [round(c[0] / top * height * 8) for c in cols]
    issued_rows = [height - max(1, math.ceil(c[1] / top * height)) if c[1] else None for c in cols]
    lines = [title]
    for r in range(height):
        floor = (height - 1 - r) * 8
        cells = []
        for c, e in enumerate(eighths):
            if e >= floor + 8:
                cells.append(BLOCKS[8])
            elif e > floor:
                cells.append(BLOCKS[e - floor])
            elif issued_rows[c] == r:
                cells.append(ISSUED_MARK)
            else:
                cells.append(" ")
        label = str(top) if r == 0 else ("0" if r == height - 1 and height > 1 else "")
        marks = sorted({cols[c][1] for c in range(len(cols)) if issued_rows[c] == r and cols[c][1]})
        note = f" issued {','.join(map(str, marks))}" if marks else ""
        lines.append(f"{label.rjust(label_width)} ┤{''.join(cells)}{note}")
    denials = "".join(DENIAL_MARK if c[2] else " " for c in cols)
    if denials.strip():
        lines.append(f"{' ' * label_width} │{denials} {DENIAL_MARK} = denials")
    lines.append(f"{' ' * label_width} └{'─' * len(cols)}")
    start, end = _when(points[0][0]), _when(until)
    gap = max(1, len(cols) + 1 - len(start) - len(end))
    lines.append(f"{' ' * label_width}  {start}{' ' * gap}{end} UTC")
    return "\n".join(lines) + "\n"


def render_all(fold: Any, width: int | None = None, height: int = 8) -> str:
    """A chart per pool feature of a :class:`~lictools.reports.usage.UsageFold` kept with ``slots``."""
    if width is None:
        width = shutil.get_terminal_size((80, 24)).columns - 8
    out = []
    for row, points in fold.charts():
        peak = f"peak {row['peak']} of {row['issued']} issued" + (f" at {row['peak_at']}" if row["peak_at"] else "")
        title = f"{row['pool']}/{row['feature']}: {peak}, {row['denials']} denial(s), {row['true_denials']} true"
        out.append(render(title, points, fold.window.until, width=max(10, width), height=height))
    return "\n".join(out) + ("\n" if out else "")
