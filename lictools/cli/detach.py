"""``lictools detach``: the user agent closed without exiting (Genero USER_AGENT timeout)."""

from __future__ import annotations

import click

from lictools.cli.common import end_sessions, example
from lictools.cli.options import SESSIONS


@click.command(epilog=example('lictools detach "$id"'))
@click.argument("sessions", nargs=-1, required=True, shell_complete=SESSIONS)
def detach(sessions: tuple[str, ...]) -> None:
    """Keep SESSIONS until the pool's detach timeout (Genero user_agent_timeout, else linger), then free them."""
    from lictools import engine

    end_sessions(engine.detach, sessions, "detached")
