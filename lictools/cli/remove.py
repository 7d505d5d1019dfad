"""``lictools remove``: admin forced release (FlexNet lmremove, fglWrt -x / -i); journaled with who did it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from lictools.cli.common import end_sessions, example
from lictools.cli.options import POOLS, SECONDS, SESSIONS

if TYPE_CHECKING:
    from lictools.engine import Handled
    from lictools.stores.api import Transaction


@click.command(epilog=example(
    "lictools remove 3f9a0c12d4e5b6a7",
    "lictools remove --user alice --pool genero-prod",
    "lictools remove --pid 5144                      # fglWrt -x 5144 (a process on this node)",
    "lictools remove --pool genero-prod --all --yes  # fglWrt -i",
    "lictools remove --host ws12 --min-age 900       # only sessions older than 15 minutes",
))
@click.argument("sessions", nargs=-1, shell_complete=SESSIONS)
@click.option("--user", help="Remove every session of this user.")
@click.option("--host", help="Remove every session from this client host.")
@click.option("--pid", type=click.IntRange(1, 2**31 - 1), help="Remove the sessions of this process (on --node).")
@click.option("--node", help="With --pid: the node the process runs on (default: this host).")
@click.option("--pool", shell_complete=POOLS, help="Only sessions of this pool.")
@click.option("--all", "everything", is_flag=True, help="Every session of --pool (asks first; --yes without a terminal).")
@click.option("--min-age", type=SECONDS, default=0, metavar="SECONDS",
              help="Keep sessions younger than this (RLM's MINREMOVE); they are listed on stderr.")
@click.option("--yes", is_flag=True, help="Do not ask before --all.")
def remove(sessions: tuple[str, ...], user: str | None, host: str | None, pid: int | None, node: str | None,
           pool: str | None, everything: bool, min_age: float, yes: bool) -> None:
    """Forcibly end SESSIONS, or every session of --user, --host, --pid, or of --pool with --all.

    Exit 4 when nothing matched (or everything that matched was younger than --min-age).
    """
    import sys

    from lictools.errors import UsageError

    if not sessions and user is None and host is None and pid is None and not everything:
        raise UsageError("remove needs session ids, --user, --host, --pid or --pool POOL --all")
    if node is not None and pid is None:
        raise UsageError("--node applies to --pid only")
    if everything and pool is None:
        raise UsageError("--all needs --pool POOL (every session of that pool)")
    if everything and not yes:
        if not sys.stdin.isatty():
            raise UsageError("--all removes every session of the pool: run it in a terminal or add --yes")
        click.confirm(f"Remove every session of pool {pool}?", abort=True, err=True)

    def admin_remove(tx: Transaction, ids: tuple[str, ...]) -> Handled:
        from lictools import engine
        from lictools.cli.common import require_admin

        require_admin(tx, "remove")
        return engine.remove(tx, ids, user=user, host=host, pool=pool, pid=pid, node=node, everything=everything,
                             min_age=min_age)

    end_sessions(admin_remove, sessions, "removed", own_only=False, must_match=not sessions)
