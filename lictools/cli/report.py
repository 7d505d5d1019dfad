"""``lictools report``: usage from the journal (peaks, seat-hours, grants, denials, utilisation), with pictures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from lictools.cli.common import example, settings, store
from lictools.cli.options import SECONDS
from lictools.reports.usage import BY_CHOICES, COLUMNS


@click.command(epilog=example(
    "lictools report --since 7d",
    "lictools report --pool genero-prod --by day --since 2026-11-01 --until 2026-12-01",
    "lictools --format csv report --by user --since 30d > users.csv",
    "lictools report --since 7d --chart",
    "lictools report --since 7d --html /tmp/report.html",
))
@click.option("--pool", help="Only this pool.")
@click.option("--feature", help="Only this feature.")
@click.option("--since", metavar="TIME",
              help="Start: ISO 8601 (2026-11-01, 2026-11-01T08:00:00+01:00) or a span back from now "
                   "(7d, 12h, 30m). Default: the first journal event.")
@click.option("--until", metavar="TIME", help="End, the same forms as --since. Default: now.")
@click.option("--by", type=click.Choice(BY_CHOICES),
              help="One row per UTC hour/day/week/month, per user/host/project (the seats each opened), "
                   "or per feature over all pools.")
@click.option("--retry-window", type=SECONDS, default=300, show_default=True, metavar="SECONDS",
              help="A denial is a true denial when the user got no seat of that pool feature within this time.")
@click.option("--chart", is_flag=True, help="Also draw seats in use over time against the issued count (table format).")
@click.option("--html", "html_file", metavar="FILE",
              help="Write one self-contained HTML page: charts, peaks, denials, top users and hosts, the table.")
@click.option("--plot", "plot_file", metavar="FILE.png|FILE.svg",
              help="Write the charts as PNG or SVG (needs: pip install 'lictools[plot]').")
def report(pool: str | None, feature: str | None, since: str | None, until: str | None, by: str | None,
           retry_window: float, chart: bool, html_file: str | None, plot_file: str | None) -> None:
    """Usage from the journal per pool and feature (and --by group): peak seats and when, seat-hours,
    grants, shares, denials, true denials, issued seats, utilisation and reserved-but-unused hours.

    Seats held at --since count from --since; seats still held at --until count to --until.
    A seat is charged to the user, host and project of the session that opened it.
    """
    from lictools import validate
    from lictools.errors import UsageError
    from lictools.output import emit_rows
    from lictools.reports.periods import report_window
    from lictools.reports.run import build_report

    s = settings()
    if chart and s.fmt != "table":
        raise UsageError("--chart draws for people: use it with the table format (drop --format json/csv)")
    for path, option in ((html_file, "--html"), (plot_file, "--plot")):
        if path is not None:
            _check_writable(path, option)
    if plot_file is not None:
        from lictools.output.plot import check_available, check_path

        check_path(plot_file)
        check_available()
    for value, what in ((pool, "--pool"), (feature, "--feature")):
        if value is not None:
            validate.name(value, what)
    state = store()
    since_t, until_t = report_window(since, until, state.now())
    fold = build_report(
        state, since_t, until_t, by=by, pool=pool, feature=feature,
        retry_window=retry_window, pictures=chart or bool(html_file) or bool(plot_file),
    )
    rows = fold.rows()
    if chart:
        from lictools.output.chart import render_all

        click.echo(render_all(fold), nl=False)
    if s.fmt == "table":
        from lictools.timeutil import iso

        click.echo(f"Usage from {iso(fold.window.since)} to {iso(fold.window.until)}")
        emit_rows(rows, [c for c in COLUMNS if c not in ("since", "until")], s.fmt)
    else:
        emit_rows(rows, COLUMNS, s.fmt)
    if html_file is not None:
        from lictools.output.html import write_html

        with _writing(html_file, "--html"):
            write_html(html_file, fold, rows)
        click.echo(f"lictools: wrote {html_file}", err=True)
    if plot_file is not None:
        from lictools.output.plot import write_plot

        with _writing(plot_file, "--plot"):
            write_plot(plot_file, fold)
        click.echo(f"lictools: wrote {plot_file}", err=True)


@contextmanager
def _writing(path: str, option: str) -> Iterator[None]:
    """A file the checks let through that still cannot be written (a name too long ...) is exit 2, not a bug."""
    from lictools.errors import UsageError

    try:
        yield
    except OSError as exc:
        shown = path if len(path) <= 80 else path[:80] + "..."
        raise UsageError(f"{option} {shown!r}: cannot write it ({exc.strerror or exc})") from None


def _check_writable(path: str, option: str) -> None:
    """Exit 2 before any work when ``path`` cannot be written: a folder, or in a missing or read-only folder."""
    import os

    from lictools.errors import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path!r}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path!r}: the folder {folder} is not writable")
