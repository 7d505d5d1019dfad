"""``lictools journal``: the event journal as JSON lines (the source of reports)."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings


@click.command(epilog=example("lictools journal --since-seq 1200 | jq -c 'select(.event==\"deny\")'"))
@click.option("--since-seq", type=click.IntRange(0, 2**62), default=0, help="Only events after this sequence number.")
def journal(since_seq: int) -> None:
    """Print journal events (grant, share, deny, release, detach, expire, remove ...) as JSON lines."""
    import json
    import sys

    from lictools.stores import open_store

    s = settings()
    out = sys.stdout
    for event in open_store(s.state, s.lock_timeout).read_journal(since_seq):
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
