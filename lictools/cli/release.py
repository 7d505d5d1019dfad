"""``lictools release``: end sessions now (the logout hook)."""

from __future__ import annotations

import click

from lictools.cli.common import end_sessions, example
from lictools.cli.options import SESSIONS


@click.command(epilog=example('lictools release "$id"'))
@click.argument("sessions", nargs=-1, required=True, shell_complete=SESSIONS)
def release(sessions: tuple[str, ...]) -> None:
    """End SESSIONS now; a seat is freed with its last session (exit 4 for an unknown id)."""
    from lictools import engine

    end_sessions(engine.release, sessions, "released")
