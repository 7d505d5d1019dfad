"""``lictools gc``: reap expired sessions now and print them."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, transaction


@click.command(epilog=example("lictools gc --check-pids"))
@click.option("--check-pids", is_flag=True, help="Also drop sessions on this node whose --pid is gone (fglWrt -u).")
def gc(check_pids: bool) -> None:
    """Reap expired sessions (every command does this first) and print the sessions reaped."""
    from lictools import engine, views
    from lictools.output import emit_rows

    with transaction() as tx:
        reaped = list(settings().reaped)
        if check_pids:
            reaped.extend(engine.drop_dead_processes(tx))
    rows = [views.session_doc(s) for s in reaped]
    emit_rows(rows, ["session", "pool", "feature", "seat", "user", "host", "expires"], settings().fmt)
