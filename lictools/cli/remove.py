"""``lictools remove``: admin forced release, like FlexNet lmremove; journaled with who did it."""

from __future__ import annotations

import click

from typing import TYPE_CHECKING

from lictools.cli.common import end_sessions, example

if TYPE_CHECKING:
    from lictools.engine import Handled
    from lictools.stores.api import Transaction


@click.command(epilog=example("lictools remove 3f9a0c12d4e5b6a7", "lictools remove --user alice --pool genero-prod"))
@click.argument("sessions", nargs=-1)
@click.option("--user", help="Remove every session of this user.")
@click.option("--host", help="Remove every session from this client host.")
@click.option("--pool", help="Only sessions of this pool.")
def remove(sessions: tuple[str, ...], user: str | None, host: str | None, pool: str | None) -> None:
    """Forcibly end SESSIONS, or every session of --user or --host."""
    from lictools.errors import UsageError

    if not sessions and user is None and host is None:
        raise UsageError("remove needs session ids, --user or --host")
    end_sessions(_admin_remove, sessions, "removed", own_only=False, user=user, host=host, pool=pool)


def _admin_remove(
    tx: Transaction, ids: tuple[str, ...], user: str | None, host: str | None, pool: str | None
) -> Handled:
    from lictools import engine
    from lictools.cli.common import require_admin

    require_admin(tx, "remove")
    return engine.remove(tx, ids, user=user, host=host, pool=pool)
