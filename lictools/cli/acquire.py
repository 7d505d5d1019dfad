"""``lictools acquire``: the command a login hook runs. Keep its imports lean."""

from __future__ import annotations

import click

from lictools.cli.common import caller_is_admin, example, settings, snapshot, transaction, trial_transaction, warn
from lictools.cli.options import FEATURES, POOLS, SECONDS


@click.command(epilog=example(
    "id=$(lictools acquire prod --pid \"$PPID\") || exit 1",
    "lictools acquire batch --feature dev --terminal --host \"$CLIENTNAME\"",
    "lictools --format json acquire cad --feature solver --wait 60",
    "man lictools-products     # which options each product's rule reads",
))
@click.argument("pool", shell_complete=POOLS)
@click.option("--feature", shell_complete=FEATURES, help="Feature (default: the product's only feature).")
@click.option("--session", help="Session id (default: a new one, printed). Retrying with the same id returns the same grant.")
@click.option("--user", help="User (default: your account). A pool with trust_claims=no takes only your own.")
@click.option("--host", help="Client host the session comes from (default, also when empty: this node).")
@click.option("--node", help="Node the client runs on (default: this host's name).")
@click.option("--terminal", is_flag=True,
              help="The client runs in a Terminal Server session from --host (a rule keying on that host needs --host).")
@click.option("--app", help="Application name.")
@click.option("--project", help="Project (reservations are per project).")
@click.option("--parent", help="Parent session, for products whose child processes share their root's seat.")
@click.option("--client", help="Client kind, for products that count by it (see 'man lictools-products').")
@click.option("--monitor", help="Front-end monitor id, for products that count per front end.")
@click.option("--pid", type=click.IntRange(1, 2**31 - 1),
              help="Process id of the client on --node: gc --check-pids frees the seat when it is gone "
                   "(default: none; listings then show the caller's parent PID, never checked).")
@click.option("--lease", type=click.IntRange(0, 315_360_000), help="Seconds before the session expires without a refresh (0: never).")
@click.option("--wait", type=SECONDS, default=0, metavar="SECONDS",
              help="When no seat is free, wait this long in the pool's queue: seats are handed out in arrival order.")
@click.option("--dry-run", is_flag=True, help="Say whether it would be granted, shared or denied, and why; change nothing.")
def acquire(pool: str, feature: str | None, session: str | None, user: str | None, host: str | None,
            node: str | None, terminal: bool, app: str | None, project: str | None, parent: str | None,
            client: str | None, monitor: str | None, pid: int | None, lease: int | None, wait: float,
            dry_run: bool) -> None:
    """Ask for a seat in POOL; prints the session id (exit 3 when denied)."""
    import os

    from lictools import engine
    from lictools.errors import DeniedError
    from lictools.host import SYSTEM
    from lictools.model import Request

    # --host stays as given (None, empty): a rule may need to know it was not given; the engine
    # takes the node as the client host everywhere else
    request = Request(
        pool=pool, feature=feature, session=session or SYSTEM.new_id(), user=user or SYSTEM.account()[1],
        host=host, node=node or SYSTEM.node(), terminal=terminal, app=app, project=project, parent=parent,
        client=client, monitor=monitor, pid=pid, lease=lease, uid=os.geteuid(), caller_pid=SYSTEM.caller_pid(),
    )
    if dry_run:
        with trial_transaction() as tx:
            outcome = engine.acquire(tx, request, dry_run=True, admin=lambda: caller_is_admin(tx))
    else:
        me = os.getpid()  # who waits, read only when it may wait (/proc is not free for every login)
        waiter = engine.Wait(0.0, me, SYSTEM.process_start(me), SYSTEM.node()) if wait > 0 else engine.Wait(0.0)
        outcome = engine.acquire_waiting(transaction, request, wait, admin=caller_is_admin, open_view=snapshot,
                                         waiter=waiter,
                                         queued=lambda waiting: warn(f"{waiting.reason}; waiting up to {wait:g} s"))

    fmt = settings().fmt
    doc = outcome.to_doc()
    if dry_run:
        doc["dry_run"] = True
        verdict = "deny" if not outcome.granted else ("share" if outcome.shared else "grant")
        if fmt == "table":
            click.echo(f"would {verdict}: {outcome.reason}")
        else:
            from lictools.output import emit_object

            emit_object(doc, fmt)
    elif outcome.granted:
        from lictools.output import emit_object

        emit_object(doc, fmt, plain=doc["session"])
    elif fmt != "table":
        from lictools.output import emit_object

        emit_object(doc, fmt)
    if not outcome.granted:
        if outcome.denial_text:
            raise DeniedError(outcome.denial_text, verbatim=True)
        raise DeniedError(outcome.reason)
