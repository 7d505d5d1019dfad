"""``lictools reserve``: per-project reserved seats, one at a time or from the product's own file
(Magic xpa: projectsStartup.xml, read by the magic-xpa rule). An import is all or nothing: it is
planned first (:func:`lictools.engine.plan_reservations`) and refused whole when it does not fit.
"""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, transaction, trial_transaction
from lictools.cli.options import POOLS

MAX_FILE_BYTES = 1024 * 1024
"""The largest reservation file read (1 MiB); real projectsStartup.xml files are a few kilobytes."""

COLUMNS = ["pool", "project", "feature", "reserved", "issued", "shared"]


def read_capped(path: str, what: str = "--from") -> bytes:
    """The bytes of ``path`` (``-``: stdin), refusing more than MAX_FILE_BYTES (exit 2); errors name ``what``."""
    import sys

    from lictools.errors import UsageError

    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}".lstrip()) from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{what} {path}: larger than {MAX_FILE_BYTES} bytes (1 MiB); refused, nothing changed")
    return data


@click.command(epilog=example(
    "lictools reserve magic Orders ria 5",
    "lictools reserve magic --from 'GigaSpaces-xpa/config/projectsStartup.xml'",
    "lictools reserve magic Orders ria 0     # remove the reservation",
    "lictools --format json reserve magic    # list",
))
@click.argument("pool", shell_complete=POOLS)
@click.argument("args", nargs=-1, metavar="[PROJECT FEATURE COUNT]")
@click.option("--from", "from_file", metavar="FILE",
              help="Read the reservations from the product's own file: for magic-xpa a projectsStartup.xml "
                   "(ReservedThreadsLicenses / ReservedRIAUsersLicenses / ReservedWebClientUsersLicenses, "
                   "3.x ReservedUsersLicenses; - for stdin; at most 1 MiB).")
@click.option("--replace", is_flag=True, help="With --from: also drop reservations of projects not in the file.")
@click.option("--dry-run", is_flag=True, help="Check and show the resulting reservations; change nothing.")
def reserve(pool: str, args: tuple[str, ...], from_file: str | None, replace: bool, dry_run: bool) -> None:
    """Reserve COUNT seats of FEATURE in POOL for PROJECT (0 removes it), import them --from a
    projectsStartup.xml, or with POOL alone list the reservations.

    Reserved seats of a project are usable only by that project, which draws on them first, then
    on the shared rest (issued - all reservations). Reservations beyond the issued count are refused.
    """
    from lictools import engine, views
    from lictools.cli.common import warn
    from lictools.errors import UsageError
    from lictools.output import emit_rows
    from lictools.rules import check_feature
    from lictools.validate import whole_number

    if from_file is not None and args:
        raise UsageError("give either PROJECT FEATURE COUNT or --from FILE, not both")
    if replace and from_file is None:
        raise UsageError("--replace only applies to --from")
    if args and len(args) != 3:
        raise UsageError("expected PROJECT FEATURE COUNT (three values)")

    with trial_transaction() if dry_run else transaction() as tx:
        p = engine.get_pool(tx, pool)
        touched: list[engine.ReservationChange] = []
        reservations = p.reservations
        if args or from_file is not None:
            require_admin(tx, "reserve")
        if args:
            project, feature, count_text = args
            count = whole_number(count_text, "COUNT")
            feature = check_feature(engine.rule_of(p), feature)
            if dry_run:
                reservations = engine.plan_reservations(p, {project: {feature: count}}, replace_all=False).reservations
            else:
                reservations = engine.reserve(tx, pool, project, feature, count).reservations
            touched = [engine.ReservationChange(project, feature, count)]
        elif from_file is not None:
            wanted, warnings = engine.rule_of(p).parse_reservation_file(read_capped(from_file))
            for message in warnings:
                warn(message)
            plan = engine.plan_reservations(p, wanted, replace)
            touched, reservations = plan.changes, plan.reservations
            if not dry_run:
                engine.set_reservations(tx, pool, touched)
        rows = views.reservation_rows(p, reservations, touched)
    emit_rows(rows, COLUMNS, settings().fmt)
    if from_file is not None and settings().fmt == "table":
        verb = "would change" if dry_run else "changed"
        warn(f"{verb} {len(touched)} reservation(s) from {from_file}")
