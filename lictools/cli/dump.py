"""``lictools dump``: the whole state as readable JSON, whatever the store's layout."""

from __future__ import annotations

import click

from lictools.cli.common import example, snapshot


@click.command(epilog=example("lictools dump > state-backup.json"))
def dump() -> None:
    """Print every pool and live session as one JSON document."""
    import json

    from lictools import views

    with snapshot() as tx:
        doc = views.dump(tx)
    click.echo(json.dumps(doc, indent=2, sort_keys=True))
