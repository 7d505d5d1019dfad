"""``report --plot FILE.png|FILE.svg``: the charts through matplotlib, an optional extra.

``pip install 'lictools[plot]'`` installs it; without it the command stops with exit 2 and says so.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
from typing import Any

from lictools.errors import UsageError

FORMATS = {".png": "png", ".svg": "svg"}
EXTRA_HINT = "pip install 'lictools[plot]'"


def check_path(path: str) -> str:
    """The image format from the file name; exit 2 for any other suffix."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"--plot {path!r}: the file name must end in .png or .svg")
    return FORMATS[suffix]


def check_available() -> None:
    """Exit 2 naming the extra when matplotlib is not installed (checked before the report runs)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"--plot needs the plotting extra, which is not installed: {EXTRA_HINT}")


def write_plot(path: str, fold: Any) -> None:
    """One panel per pool feature: seats in use (peak per slot) as steps, issued dashed, denials marked."""
    check_available()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    charts = fold.charts()
    panels = max(1, len(charts))
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.6 * panels), squeeze=False, sharex=True)
    utc = datetime.timezone.utc
    for ax, (row, points) in zip(axes[:, 0], charts):
        times = [datetime.datetime.fromtimestamp(p[0], utc) for p in points]
        times.append(datetime.datetime.fromtimestamp(fold.window.until, utc))
        peaks = [p[1] for p in points] + [points[-1][1]]
        issued = [p[2] for p in points] + [points[-1][2]]
        ax.fill_between(times, peaks, step="post", color="#cfe0f3")
        ax.step(times, peaks, where="post", color="#2f6fb3", linewidth=1.2, label="seats in use (peak)")
        ax.step(times, issued, where="post", color="#c4432b", linestyle="--", linewidth=1.2, label="issued")
        denied = [times[i] for i, p in enumerate(points) if p[3]]
        if denied:
            ax.plot(denied, [0] * len(denied), "|", color="#c4432b", markersize=10, label="denials")
        ax.set_ylim(0, max(1, max(peaks), max(issued)) * 1.35)  # room for the legend above the lines
        ax.set_title(f"{row['pool']} / {row['feature']}: peak {row['peak']} of {row['issued']}, "
                     f"{row['denials']} denial(s), {row['true_denials']} true", fontsize=10, loc="left")
        ax.set_ylabel("seats")
        ax.grid(True, color="#d8dee6", linewidth=0.6)
        ax.legend(loc="upper right", ncols=3, fontsize=8, frameon=False)
        formatter = mdates.ConciseDateFormatter(ax.xaxis.get_major_locator(), tz=utc)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
    if not charts:
        axes[0, 0].text(0.5, 0.5, "no usage in this period", ha="center", va="center")
    axes[-1, 0].set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.savefig(path, format=check_path(path))
    plt.close(fig)
