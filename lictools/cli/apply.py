"""``lictools apply SITE.toml``: make the state what a site file declares, in one transaction."""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, transaction, trial_transaction, warn


@click.command(epilog=example(
    "lictools apply /etc/lictools/site.toml --dry-run   # what would change",
    "lictools apply /etc/lictools/site.toml             # prints each change, or: no change",
    "lictools export > site.toml && lictools apply site.toml   # no change",
))
@click.argument("site_file", metavar="SITE.toml")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--prune", is_flag=True,
              help="Also remove pools the file does not declare (refused for a pool with live sessions).")
@click.option("--force", is_flag=True, help="With --prune: remove such pools with their live sessions (journaled).")
def apply(site_file: str, dry_run: bool, prune: bool, force: bool) -> None:
    """Make pools, licenses, options, reservations, groups, policies and settings what SITE.toml declares
    (an admin command; - reads stdin). All or nothing: a file that does not validate, or a change it asks
    for that is refused, changes nothing (exit 2, one line naming the key). A second run prints: no change.
    """
    from lictools import site
    from lictools.cli.reserve import read_capped
    from lictools.errors import UsageError
    from lictools.output import emit_object

    if force and not prune:
        raise UsageError("--force only applies to --prune")
    declared = site.read(site_file, read_capped(site_file, what=""))
    try:
        with trial_transaction() if dry_run else transaction() as tx:
            require_admin(tx, "apply")
            result = site.apply_site(tx, declared, prune=prune, force=force)
    except site.SiteError as exc:
        raise site.SiteError(f"{site_file}: {exc.message}; nothing changed") from None
    changes, warnings = result
    for line in warnings:
        warn(line)
    fmt = settings().fmt
    if fmt == "table":
        for change in changes:
            click.echo(change.text())
        if not changes:
            click.echo("no change")
        if dry_run:
            warn(f"dry run: {len(changes)} change(s) shown, nothing changed")
        return
    doc = {"file": site_file, "dry_run": dry_run, "changed": bool(changes) and not dry_run,
           "changes": [c.to_doc() for c in changes], "warnings": warnings}
    if fmt == "csv":
        from lictools.output import emit_rows

        emit_rows([{k: v for k, v in c.to_doc().items()} for c in changes],
                  ["action", "kind", "pool", "name", "before", "after", "text"], fmt)
        return
    emit_object(doc, fmt)
