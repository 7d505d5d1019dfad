"""``lictools doctor``: check state, journal, permissions and lock; restore the last good copy."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings


@click.command(epilog=example("lictools doctor", "lictools doctor --restore --yes"))
@click.option("--restore", is_flag=True, help="Replace the state by its last good copy (the damaged file is kept).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
def doctor(restore: bool, yes: bool) -> None:
    """Check the state, journal, backup, permissions, lock, space and filesystem, without the lock.

    Exit 6 when a check fails (8 when only the free space does: writes are refused, nothing is
    damaged), 4 when there is no state.
    """
    import os
    import sys

    from lictools.doctor import run_checks
    from lictools.errors import CannotWriteError, DamagedStateError, UsageError
    from lictools.output import emit_rows
    from lictools.stores import open_store

    s = settings()
    store = open_store(s.state, s.lock_timeout)
    rows = run_checks(store)
    emit_rows(rows, ["check", "status", "detail"], s.fmt)
    damaged = any(r["check"] == "state" and r["status"] == "fail" for r in rows)
    failed = [r["check"] for r in rows if r["status"] == "fail"]
    if not restore:
        if damaged:
            raise DamagedStateError(f"state {store.location} is damaged; 'lictools doctor --restore' puts back the last good copy")
        if failed == ["space"]:
            raise CannotWriteError("doctor found no space left for writes (see the detail column); the state is not damaged")
        if failed:
            raise DamagedStateError(f"doctor found problems: {', '.join(failed)} (see the detail column)")
        return
    from lictools.permissions import require_admin

    admin_group = None
    if not damaged:
        with store.read() as view:
            admin_group = view.get_settings().get("admin_group")
    require_admin(store.owner_uid(), admin_group, "doctor --restore")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("restore needs a confirmation: run it in a terminal or add --yes")
        click.confirm(f"Replace {store.location} by its last good copy?", abort=True, err=True)
    kept = store.restore_backup()
    click.echo(f"lictools: restored {store.location} from its last good copy; the replaced file is kept as {kept}", err=True)
    click.echo("lictools: changes made after that copy was taken are not in the restored state", err=True)
    if os.path.exists(kept):
        after = run_checks(store)
        if any(r["check"] == "state" and r["status"] == "fail" for r in after):
            raise DamagedStateError(f"state {store.location} still fails its checks after the restore")
