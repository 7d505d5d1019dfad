"""``lictools users``: the seats in use, one row per seat; ``--sessions``: one row per checkout."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, snapshot
from lictools.cli.options import FEATURES, POOLS

COLUMNS = ["pool", "feature", "seat", "users", "hosts", "sessions", "since", "expires"]
QUEUE_COLUMNS = ["pool", "feature", "position", "session", "user", "host", "since", "until"]
SESSION_COLUMNS = ["session", "pool", "feature", "user", "host", "node", "client", "pid", "uid", "since",
                   "refreshed", "expires"]


@click.command(epilog=example(
    "lictools users genero-prod",
    "lictools users --sessions --user alice           # like lmstat -a, one line per checkout",
    "lictools --format json users | jq '.[].users'",
))
@click.argument("pool", required=False, shell_complete=POOLS)
@click.option("--feature", shell_complete=FEATURES, help="Only this feature.")
@click.option("--user", help="Only seats (with --sessions: sessions) of this user.")
@click.option("--host", help="Only seats (with --sessions: sessions) from this client host.")
@click.option("--sessions", "per_session", is_flag=True,
              help="One row per session: user, host, node, client, pid, uid, since, last refresh, expires.")
@click.option("--queued", is_flag=True, help="The requests waiting in the queue (acquire --wait), in arrival order.")
def users(pool: str | None, feature: str | None, user: str | None, host: str | None, per_session: bool,
          queued: bool) -> None:
    """Seats in use: pool, feature, seat key, users, hosts, sessions, since, expires.

    With --user or --host, the seats such a session shares, with all their holders. A table
    shows at most three items of a list and how many more there are; JSON and CSV show all.
    """
    from lictools import views
    from lictools.output import emit_rows

    with snapshot() as tx:
        if queued:
            rows, columns = views.waiters(tx, pool, feature, user, host), QUEUE_COLUMNS
        elif per_session:
            rows, columns = views.checkouts(tx, pool, feature, user, host), SESSION_COLUMNS
        else:
            rows, columns = views.users(tx, pool, feature, user, host), COLUMNS
    emit_rows(rows, columns, settings().fmt)
