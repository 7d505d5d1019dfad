"""``lictools pool add|list|show|set|remove``."""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, snapshot, transaction, warn
from lictools.cli.options import KEY_VALUE, POOLS
from lictools.model import Policy, Pool
from lictools.rules import RULES


@click.group(epilog=example("lictools pool add genero-prod --product genero --license runtime=50", "lictools pool list"))
def pool() -> None:
    """Create, list, show, change and remove pools."""


def _license_counts(values: tuple[tuple[str, str], ...]) -> dict[str, int]:
    from lictools.validate import whole_number

    return {feature: whole_number(count, f"--license {feature[:40]}=") for feature, count in values}


@pool.command("add", epilog=example(
    "lictools pool add batch --product aveva-batch --license dev=5 --license mom=20",
    "lictools pool add cad --product generic --license solver=10 --option share=user,host",
))
@click.argument("name")
@click.option("--product", required=True, help=f"Counting rule: {', '.join(RULES)}.")
@click.option("--license", "licenses", type=KEY_VALUE, multiple=True, metavar="FEATURE=COUNT",
              help="Issued seats for a feature (serial initial-FEATURE). Repeatable.")
@click.option("--option", "options", type=KEY_VALUE, multiple=True, metavar="KEY=VALUE",
              help="Pool option (lease, linger, share, user_agent_timeout, version ...). Repeatable.")
@click.option("--exist-ok", is_flag=True, help="Succeed quietly when the pool already exists with this product.")
def add(name: str, product: str, licenses: tuple[tuple[str, str], ...], options: tuple[tuple[str, str], ...],
        exist_ok: bool) -> None:
    """Create pool NAME counting seats with the rules of --product."""
    from lictools import engine

    with transaction() as tx:
        require_admin(tx, "pool add")
        created = engine.add_pool(tx, name, product, _license_counts(licenses), dict(options), exist_ok=exist_ok)
    _warn_about_options(created)
    _show([created])


@pool.command("list", epilog=example("lictools --format json pool list"))
def list_() -> None:
    """List pools with their product and issued seats."""
    with snapshot() as view:
        pools = view.list_pools()
    _show(pools)


def _warn_about_options(pool: Pool) -> None:
    """One stderr line per option choice the product's rule advises against (the command still succeeds)."""
    from lictools.rules import get_rule

    for line in get_rule(pool.product).option_warnings(pool.options):
        warn(f"pool {pool.name}: {line}")


def _show(pools: list[Pool]) -> None:
    from lictools import views
    from lictools.output import emit_rows

    rows = [views.pool_row(p) for p in pools]
    if settings().fmt == "table":
        for row in rows:
            row["issued"] = " ".join(f"{f}={n}" for f, n in row["issued"].items()) or "-"
            row["options"] = " ".join(f"{k}={v}" for k, v in row["options"].items() if v)
    emit_rows(rows, ["pool", "product", "issued", "options", "created"], settings().fmt)


@pool.command("show", epilog=example("lictools pool show genero-prod"))
@click.argument("name", shell_complete=POOLS)
def show(name: str) -> None:
    """Show one pool: options, loaded serials, reservations, and per-feature counts."""
    from lictools import views
    from lictools.output import emit_object

    with snapshot() as view:
        doc = views.pool_detail(view, name)
    if settings().fmt != "table":
        emit_object(doc, settings().fmt)
        return
    click.echo(f"pool     : {doc['pool']}\nproduct  : {doc['product']}\ncreated  : {doc['created']}")
    click.echo("options  : " + " ".join(f"{k}={v}" for k, v in doc["options"].items()))
    for lic in doc["licenses"]:
        lock = f" host-locked to {lic['host_lock']}" if lic["host_lock"] else ""
        click.echo(f"license  : serial {lic['serial']} {lic['feature']}={lic['count']}{lock}")
    for project, per_feature in sorted(doc["reservations"].items()):
        click.echo(f"reserved : {project} " + " ".join(f"{f}={n}" for f, n in per_feature.items()))
    for policy in doc["policies"]:
        click.echo(f"policy   : {Policy.from_doc(policy).text()}")
    for row in doc["features"]:
        click.echo(
            f"feature  : {row['feature']} issued {row['issued']}, in use {row['in_use']}, "
            f"reserved {row['reserved']}, free {row['free']}, sessions {row['sessions']}"
        )


@pool.command("set", epilog=example("lictools pool set genero-prod --option user_agent_timeout=600"))
@click.argument("name", shell_complete=POOLS)
@click.option("--option", "options", type=KEY_VALUE, multiple=True, required=True, metavar="KEY=VALUE",
              help="Pool option to change. Repeatable.")
def set_(name: str, options: tuple[tuple[str, str], ...]) -> None:
    """Change options of pool NAME."""
    from lictools import engine

    with transaction() as tx:
        require_admin(tx, "pool set")
        changed = engine.set_pool_options(tx, name, dict(options))
    _warn_about_options(changed)
    _show([changed])


@pool.command("remove", epilog=example("lictools pool remove old-pool --force"))
@click.argument("name", shell_complete=POOLS)
@click.option("--force", is_flag=True, help="Also remove the pool's live sessions (journaled as removals).")
def remove(name: str, force: bool) -> None:
    """Delete pool NAME (refused while it has live sessions, unless --force)."""
    from lictools import engine

    with transaction() as tx:
        require_admin(tx, "pool remove")
        ended = engine.remove_pool(tx, name, force=force)
    if ended:
        warn(f"removed {len(ended)} live session(s) of pool {name}")
    from lictools.output import emit_object

    doc = {"pool": name, "removed": True, "sessions_removed": [s.id for s in ended]}
    emit_object(doc, settings().fmt, plain=f"removed pool {name}")
