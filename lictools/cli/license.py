"""``lictools license add|remove``: load issued seats, idempotent per serial."""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, transaction, warn
from lictools.cli.options import COUNT, POOLS


@click.group(epilog=example("lictools license add magic ria 25 --serial RIA-0042"))
def license() -> None:
    """Load or unload issued seats (idempotent per serial)."""


@license.command("add", epilog=example(
    "lictools license add magic ria 25 --serial RIA-0042",
    "lictools license add magic web 10 --serial WEB-7 --host-lock appsrv2",
))
@click.argument("pool", shell_complete=POOLS)
@click.argument("feature")
@click.argument("count", type=COUNT)
@click.option("--serial", help="Serial number; loading a serial already loaded changes nothing.")
@click.option("--host-lock", metavar="HOST", help="Host-locked license: loaded only on that machine (else a warning, exit 0).")
def add(pool: str, feature: str, count: int, serial: str | None, host_lock: str | None) -> None:
    """Add COUNT issued seats of FEATURE to POOL."""
    from lictools import engine
    from lictools.output import emit_object

    with transaction() as tx:
        require_admin(tx, "license add")
        result = engine.add_license(tx, pool, feature, count, serial=serial, host_lock=host_lock)
        issued = engine.get_pool(tx, pool).issued(result.license.feature)
    if result.status != "loaded":
        warn(result.message)
    doc = {"pool": pool, "feature": result.license.feature, "serial": result.license.serial,
           "count": result.license.count, "status": result.status, "issued": issued}
    emit_object(doc, settings().fmt, plain=result.message if result.status == "loaded" else None)


@license.command("remove", epilog=example("lictools license remove magic RIA-0042"))
@click.argument("pool", shell_complete=POOLS)
@click.argument("serial")
def remove(pool: str, serial: str) -> None:
    """Unload serial SERIAL from POOL."""
    from lictools import engine
    from lictools.output import emit_object

    with transaction() as tx:
        require_admin(tx, "license remove")
        lic = engine.remove_license(tx, pool, serial)
        issued = engine.get_pool(tx, pool).issued(lic.feature)
    doc = {"pool": pool, "feature": lic.feature, "serial": serial, "count": lic.count, "status": "removed", "issued": issued}
    emit_object(doc, settings().fmt, plain=f"unloaded serial {serial}; {lic.feature} issued now {issued}")
