"""``lictools dump``: the whole state as readable JSON, whatever the store's layout."""

from __future__ import annotations

import click

from lictools.cli.common import example, transaction


@click.command(epilog=example("lictools dump > state-backup.json"))
def dump() -> None:
    """Print every pool and live session as one JSON document."""
    import json

    from lictools import engine

    with transaction() as tx:
        doc = {
            "pools": [p.to_doc() for p in tx.list_pools()],
            "sessions": [engine.session_doc(s) for s in tx.find_sessions()],
        }
    click.echo(json.dumps(doc, indent=2, sort_keys=True))
