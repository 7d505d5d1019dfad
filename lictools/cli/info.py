"""``lictools info``: issued, in use, reserved and free seats per pool feature."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, transaction

COLUMNS = ["pool", "product", "feature", "issued", "in_use", "reserved", "free", "sessions"]


@click.command(epilog=example("lictools info", "lictools --format csv info magic"))
@click.argument("pool", required=False)
def info(pool: str | None) -> None:
    """Per pool and feature: issued, in use, reserved, free, sessions."""
    from lictools import engine
    from lictools.output import emit_rows

    with transaction() as tx:
        rows = engine.info(tx, pool)
    emit_rows(rows, COLUMNS, settings().fmt)
