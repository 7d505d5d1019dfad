"""``lictools refresh``: extend leases (the periodic heartbeat of a client)."""

from __future__ import annotations

import click

from lictools.cli.common import end_sessions, example
from lictools.cli.options import SESSIONS


@click.command(epilog=example('lictools refresh "$id" || id=$(lictools acquire batch --feature mom)'))
@click.argument("sessions", nargs=-1, required=True, shell_complete=SESSIONS)
def refresh(sessions: tuple[str, ...]) -> None:
    """Extend the leases of SESSIONS; exit 4 when one is unknown, expired or detached (acquire again)."""
    from lictools import engine

    end_sessions(engine.refresh, sessions, "refreshed")
