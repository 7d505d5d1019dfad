"""``lictools group set|list|remove``: lictools-defined groups that pool policies may name."""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, snapshot, transaction


@click.group(epilog=example(
    "lictools group set designers alice bob",
    "lictools policy add cad max 4 --group designers",
    "lictools group list",
))
def group() -> None:
    """Groups of users for pool policies (a lictools group shadows a Unix group of the same name)."""


def _emit(groups: dict[str, list[str]]) -> None:
    from lictools.output import emit_rows

    rows = [{"group": name, "members": members} for name, members in sorted(groups.items())]
    emit_rows(rows, ["group", "members"], settings().fmt)


@group.command("set", epilog=example("lictools group set designers alice bob carol", "lictools group set nobody-yet"))
@click.argument("name")
@click.argument("members", nargs=-1)
def set_(name: str, members: tuple[str, ...]) -> None:
    """Create group NAME with MEMBERS, or replace its members."""
    from lictools import engine

    with transaction() as tx:
        require_admin(tx, "group set")
        engine.set_group(tx, name, members)
        from lictools.policies import groups

        current = groups(tx.get_settings())
    _emit({name: current[name]})


@group.command("list", epilog=example("lictools group list", "lictools --format json group list designers"))
@click.argument("name", required=False)
def list_(name: str | None) -> None:
    """List the lictools groups (or group NAME: exit 4 when there is none)."""
    from lictools.errors import NotFoundError
    from lictools.policies import groups

    with snapshot() as view:
        current = groups(view.get_settings())
    if name is not None:
        if name not in current:
            raise NotFoundError(f"no lictools group called {name!r}")
        current = {name: current[name]}
    _emit(current)


@group.command("remove", epilog=example("lictools group remove designers"))
@click.argument("name")
def remove(name: str) -> None:
    """Delete group NAME (refused while a policy names it)."""
    from lictools import engine
    from lictools.output import emit_object

    with transaction() as tx:
        require_admin(tx, "group remove")
        engine.remove_group(tx, name)
    emit_object({"group": name, "removed": True}, settings().fmt, plain=f"removed group {name}")
