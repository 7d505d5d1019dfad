"""``lictools policy add|list|remove``: a pool's options-file lines (MAX, INCLUDE, EXCLUDE, RESERVE)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from lictools.cli.common import example, require_admin, settings, snapshot, transaction
from lictools.cli.options import COUNT, FEATURES, POOLS
from lictools.model import POLICY_KINDS, Policy

COLUMNS = ["pool", "kind", "feature", "target", "name", "count", "policy"]


@click.group(epilog=example(
    "lictools policy add cad max 2 --user alice --feature solver",
    "lictools policy add cad exclude --group contractors",
    "lictools policy list cad",
))
def policy() -> None:
    """Who may use a pool's features and how many seats each may hold (lictools-policies(7))."""


def _target(user: str | None, group: str | None, host: str | None) -> tuple[str, str]:
    from lictools.errors import UsageError

    given = [(t, v) for t, v in (("user", user), ("group", group), ("host", host)) if v is not None]
    if len(given) != 1:
        raise UsageError("name exactly one of --user, --group or --host")
    return given[0]


F = TypeVar("F", bound=Callable[..., Any])


def _who_options(command: F) -> F:
    """--user, --group, --host and --feature: whom a policy names, and for which feature."""
    for option in reversed([
        click.option("--user", help="A user (for max: * = each user on their own)."),
        click.option("--group", help="A lictools group (lictools group set), else a Unix group."),
        click.option("--host", help="A client host (compared as machine names: no case, no DNS domain)."),
        click.option("--feature", shell_complete=FEATURES,
                     help="The feature it applies to (default: every feature; reserve: the product's only one)."),
    ]):
        command = option(command)
    return command


def _emit(rows: list[dict[str, object]]) -> None:
    from lictools.output import emit_rows

    emit_rows(rows, COLUMNS, settings().fmt)


@policy.command("add", epilog=example(
    "lictools policy add cad max 1 --user '*'              # each user at most one seat",
    "lictools policy add cad include --group designers",
    "lictools policy add cad reserve 2 --host ws12 --feature solver",
))
@click.argument("pool", shell_complete=POOLS)
@click.argument("kind", type=click.Choice(POLICY_KINDS))
@click.argument("count", type=COUNT, required=False)
@_who_options
def add(pool: str, kind: str, count: int | None, user: str | None, group: str | None, host: str | None,
        feature: str | None) -> None:
    """Add a KIND policy to POOL (max and reserve take a COUNT of seats), or change its COUNT.

    A refused request (exit 3) names the policy that refused it.
    """
    from lictools import engine, policies

    target, name = _target(user, group, host)
    with transaction() as tx:
        require_admin(tx, "policy add")
        changed = engine.add_policy(tx, pool, Policy(kind, target, name, feature, count))
        rows = [policies.row(pool, p) for p in engine.get_pool(tx, pool).policies
                if p.identity[0] == kind and p.target == target and p.name == name]
    if not changed and settings().fmt == "table":
        from lictools.cli.common import warn

        warn("pool already has this policy; nothing changed")
    _emit(rows)


@policy.command("list", epilog=example("lictools policy list", "lictools --format json policy list cad"))
@click.argument("pool", required=False, shell_complete=POOLS)
def list_(pool: str | None) -> None:
    """List the policies of POOL, or of every pool, in the order they apply."""
    from lictools import policies, views

    with snapshot() as view:
        rows = [policies.row(p.name, policy) for p in views.pools(view, pool) for policy in p.policies]
    _emit(rows)


@policy.command("remove", epilog=example(
    "lictools policy remove cad max --user alice --feature solver",
    "lictools policy remove cad exclude --group contractors",
))
@click.argument("pool", shell_complete=POOLS)
@click.argument("kind", type=click.Choice(POLICY_KINDS))
@_who_options
def remove(pool: str, kind: str, user: str | None, group: str | None, host: str | None, feature: str | None) -> None:
    """Remove POOL's KIND policy for that user, group or host (and feature); exit 4 when it has none."""
    from lictools import engine, policies

    target, name = _target(user, group, host)
    with transaction() as tx:
        require_admin(tx, "policy remove")
        removed = engine.remove_policy(tx, pool, Policy(kind, target, name, feature))
    _emit([{**policies.row(pool, removed), "removed": True}])
