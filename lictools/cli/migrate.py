"""``lictools migrate``: copy this state (pools, sessions, settings, journal) into another store."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, store


@click.command(epilog=example(
    "lictools --state /var/lib/lictools/state.db migrate --to /var/lib/lictools/state.json",
    "lictools --format json migrate --to /srv/lictools/new.db --force",
))
@click.option("--to", "to", required=True, metavar="TARGET",
              help="The state to copy into: a path (SQLite, or JSON for *.json) or a URL, as --state takes.")
@click.option("--force", is_flag=True,
              help="Replace the target's whole state (journal included) when it is not empty (an admin command there).")
def migrate(to: str, force: bool) -> None:
    """Copy the --state state into TARGET: pools with their licenses, reservations, policies and queues,
    live sessions, settings and groups, and the journal with its sequence numbers and times, in one
    transaction of the target. A target that is not empty is refused (exit 2) unless --force.
    Afterwards 'lictools dump' and 'lictools journal' print the same on both sides.
    """
    from lictools.output import emit_object
    from lictools.permissions import require_admin
    from lictools.stores import open_store
    from lictools.stores.copy import copy_state

    from lictools.errors import UsageError

    if not to:
        raise UsageError("--to: give the path or URL of the state to copy into")
    s = settings()
    target = open_store(to, s.lock_timeout)
    try:
        copied = copy_state(store(), target, force, before_replace=lambda tx: require_admin(
            target.owner_uid(), tx.get_settings().get("admin_group"), "migrate --force over a state"))
    finally:
        target.close()
    doc = copied.to_doc()
    what = "replaced the state of" if copied.replaced else "copied into"
    emit_object(doc, s.fmt, plain=(
        f"{what} {copied.target}: {copied.pools} pool(s), {copied.sessions} session(s), "
        f"{copied.waiters} waiter(s), {copied.settings} setting(s), {copied.events} journal event(s)"))
