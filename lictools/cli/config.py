"""``lictools config``: state-wide settings (today: the admin group)."""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, snapshot, transaction
from lictools.permissions import SETTINGS


@click.command(epilog=example("lictools config admin_group lmadmin", "lictools config admin_group ''   # clear",
                              "lictools config journal_max_bytes 64M   # rotate the journal by size"))
@click.argument("key", required=False)
@click.argument("value", required=False)
def config(key: str | None, value: str | None) -> None:
    """Show settings, or set KEY to VALUE (an admin command; an empty VALUE clears it)."""
    from lictools.errors import UsageError

    if key is not None and key not in SETTINGS:
        raise UsageError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
    if key is None or value is None:
        with snapshot() as view:
            current = view.get_settings()
        _show(key, current)
        return
    with transaction() as tx:
        require_admin(tx, "config")
        if value:
            from lictools.permissions import check_setting

            value = check_setting(key, value)
        from lictools.engine import set_setting

        set_setting(tx, key, value or None)
        current = tx.get_settings()
    _show(key, current)


def _show(key: str | None, current: dict[str, str]) -> None:
    from lictools.output import emit_rows

    rows = [{"key": k, "value": current.get(k), "meaning": meaning} for k, meaning in SETTINGS.items() if key in (None, k)]
    emit_rows(rows, ["key", "value", "meaning"], settings().fmt)
