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
            "pools": [_pool_doc(p) for p in tx.list_pools()],
            "sessions": [engine.session_doc(s) for s in tx.find_sessions()],
        }
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _pool_doc(pool):  # type: ignore[no-untyped-def]
    from lictools.timeutil import iso

    doc = pool.to_doc()
    doc["created"] = iso(doc["created"])
    for lic in doc["licenses"]:
        lic["loaded"] = iso(lic["loaded"])
    return doc
