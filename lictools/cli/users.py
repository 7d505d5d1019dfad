"""``lictools users``: the seats in use, one row per seat."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, transaction

COLUMNS = ["pool", "feature", "seat", "users", "hosts", "sessions", "since", "expires"]


@click.command(epilog=example("lictools users genero-prod", "lictools --format json users | jq '.[].users'"))
@click.argument("pool", required=False)
@click.option("--feature", help="Only this feature.")
def users(pool: str | None, feature: str | None) -> None:
    """Seats in use: pool, feature, seat key, users, hosts, sessions, since, expires."""
    from lictools import views
    from lictools.output import emit_rows

    with transaction() as tx:
        rows = views.users(tx, pool, feature)
    emit_rows(rows, COLUMNS, settings().fmt)
