"""``lictools metrics``: Prometheus text exposition, on stdout or as a node_exporter textfile."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, snapshot


@click.command(epilog=example(
    "lictools metrics",
    "lictools metrics --by-user | grep lictools_user_seats_in_use",
    "* * * * * root lictools metrics --textfile /var/lib/node_exporter/textfile_collector   # cron",
))
@click.option("--by-user", is_flag=True, help="Add lictools_user_seats_in_use{pool,feature,user} (one series per user).")
@click.option("--textfile", metavar="DIR", type=click.Path(exists=True, file_okay=False, writable=True),
              help="Write DIR/lictools.prom atomically (node_exporter's textfile collector) instead of stdout.")
@click.option("--recount", is_flag=True, help="Count denials from the first journal event, ignoring the cache.")
def metrics(by_user: bool, textfile: str | None, recount: bool) -> None:
    """Seats issued, in use, reserved and free, live sessions (gauges) and denials (counter) per pool
    and feature, in the Prometheus text format. --format does not apply.

    lictools_denials_total counts the journal's deny events; the count is cached beside the state
    (<state>.metrics-cache), so a scrape reads only the events since the last one.
    """
    import sys

    from lictools import views
    from lictools.cli.common import store
    from lictools.metrics import denial_totals, exposition, seats_per_user, write_textfile

    with snapshot() as tx:
        rows = views.info(tx)
        per_user = seats_per_user(views.users(tx)) if by_user else None
    text = exposition(rows, denial_totals(store(), use_cache=not recount), per_user)
    if textfile is not None:
        write_textfile(textfile, text)
    else:
        sys.stdout.write(text)
