"""``lictools reserve``: per-project reserved seats, one at a time or from a Magic xpa projectsStartup.xml.

The XML is parsed with defusedxml (no DTD, no entities, no external references) and capped at
:data:`MAX_XML_BYTES`; a file that is malformed, hostile or too big is exit 2 and changes nothing.
An import is all-or-nothing: it runs in one transaction, and reservations beyond the issued count
refuse the whole file.
"""

from __future__ import annotations

import click

from lictools.cli.common import example, require_admin, settings, transaction

MAX_XML_BYTES = 1024 * 1024
"""The largest projectsStartup.xml accepted (1 MiB); real files are a few kilobytes."""

ATTRIBUTES = {
    "ReservedThreadsLicenses": "threads",
    "ReservedRIAUsersLicenses": "ria",
    "ReservedWebClientUsersLicenses": "web",
}
"""Magic xpa 4.x reservation attributes of a Project element -> lictools feature."""

LEGACY_ATTRIBUTES = {"ReservedUsersLicenses": "ria"}
"""Magic xpa 3.x: user licenses were RIA users (the Web client came with 4.x); the 4.x attribute wins."""

NAME_KEYS = ("ApplicationPublicName", "Name")
"""Where a Project's name is read, in this order: attribute, then child element of that name."""

COLUMNS = ["pool", "project", "feature", "reserved", "issued", "shared"]


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _count(text: str, project: str, attribute: str) -> int:
    from lictools.validate import whole_number

    return whole_number(text.strip(), f"project {project}: {attribute}=")


def parse_projects_startup(data: bytes) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Reservations from a projectsStartup.xml: (project -> feature -> count, warnings).

    Every Project element gives its three features (a missing attribute is 0: no reservation).
    Raises UsageError for anything that is not a well-formed, harmless file naming its projects.
    """
    from xml.etree.ElementTree import ParseError

    import defusedxml
    import defusedxml.ElementTree as safe_et

    from lictools.errors import UsageError

    if len(data) > MAX_XML_BYTES:
        raise UsageError(f"projects file is larger than {MAX_XML_BYTES} bytes; refused")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UsageError(f"projects file refused: it declares a DTD, entities or external references ({type(exc).__name__})") from None
    except ParseError as exc:
        raise UsageError(f"projects file is not well-formed XML: {exc}") from None
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise UsageError(f"projects file cannot be read as XML: {type(exc).__name__}") from None

    out: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    for index, element in enumerate((e for e in root.iter() if _local(e.tag) == "Project"), start=1):
        name = None
        for key in NAME_KEYS:
            name = element.get(key)
            if not name:
                child = next((c for c in element if _local(c.tag) == key), None)
                name = (child.text or "").strip() if child is not None else None
            if name:
                break
        if not name:
            raise UsageError(f"Project element #{index} has no ApplicationPublicName or Name")
        from lictools import validate

        validate.name(name, f"project (Project element #{index})")
        if name in out:
            raise UsageError(f"project {name} appears twice in the projects file")
        counts = {feature: 0 for feature in ATTRIBUTES.values()}
        for attribute, feature in LEGACY_ATTRIBUTES.items():
            if element.get(attribute) is not None:
                counts[feature] = _count(element.get(attribute), name, attribute)
        for attribute, feature in ATTRIBUTES.items():
            if element.get(attribute) is not None:
                value = _count(element.get(attribute), name, attribute)
                for legacy, legacy_feature in LEGACY_ATTRIBUTES.items():
                    if legacy_feature == feature and element.get(legacy) is not None and counts[feature] != value:
                        warnings.append(f"project {name}: {attribute}={value} overrides the 3.x {legacy}={counts[feature]}")
                counts[feature] = value
        out[name] = counts
    if not out:
        raise UsageError("the projects file has no Project element")
    return out, warnings


def read_capped(path: str) -> bytes:
    """The bytes of ``path`` (``-``: stdin), refusing more than MAX_XML_BYTES (exit 2)."""
    import sys

    from lictools.errors import UsageError

    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_XML_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--from {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_XML_BYTES:
        raise UsageError(f"--from {path}: larger than {MAX_XML_BYTES} bytes (1 MiB); refused, nothing changed")
    return data


def plan(pool, rule, wanted: dict[str, dict[str, int]], replace: bool) -> list[tuple[str, str, int]]:
    """(project, feature, count) changes turning the pool's reservations into ``wanted``, decreases first.

    Raises UsageError when a feature is unknown or the new reservations exceed the issued count.
    """
    from lictools.errors import UsageError
    from lictools.rules import check_feature

    target: dict[str, dict[str, int]] = {} if replace else {p: dict(f) for p, f in pool.reservations.items()}
    for project, features in wanted.items():
        for feature, count in features.items():
            if count or feature in target.get(project, {}):
                check_feature(rule, feature)
            target.setdefault(project, {})[feature] = count
    problems = []
    for feature in sorted({f for per in target.values() for f in per}):
        total = sum(per.get(feature, 0) for per in target.values())
        if total > pool.issued(feature):
            problems.append(f"{feature}: {total} reserved > {pool.issued(feature)} issued")
    if problems:
        raise UsageError(f"reservations exceed the issued seats in pool {pool.name} ({'; '.join(problems)}); nothing changed")
    changes = []
    for project in sorted(set(target) | set(pool.reservations)):
        for feature in sorted(set(target.get(project, {})) | set(pool.reservations.get(project, {}))):
            old = pool.reservations.get(project, {}).get(feature, 0)
            new = target.get(project, {}).get(feature, 0)
            if old != new:
                changes.append((project, feature, new, new - old))
    changes.sort(key=lambda c: c[3])  # decreases first, so moving seats between projects never overshoots
    return [(p, f, n) for p, f, n, _ in changes]


def rows_for(pool, touched: list[tuple[str, str, int]], reservations: dict[str, dict[str, int]] | None = None) -> list[dict]:
    reservations = pool.reservations if reservations is None else reservations
    pairs = {(p, f) for p, per in reservations.items() for f in per} | {(p, f) for p, f, _ in touched}
    rows = []
    for project, feature in sorted(pairs):
        issued = pool.issued(feature)
        total = sum(per.get(feature, 0) for per in reservations.values())
        rows.append({
            "pool": pool.name, "project": project, "feature": feature,
            "reserved": reservations.get(project, {}).get(feature, 0),
            "issued": issued, "shared": max(0, issued - total),
        })
    return rows


@click.command(epilog=example(
    "lictools reserve magic Orders ria 5",
    "lictools reserve magic --from 'GigaSpaces-xpa/config/projectsStartup.xml'",
    "lictools reserve magic Orders ria 0     # remove the reservation",
    "lictools --format json reserve magic    # list",
))
@click.argument("pool")
@click.argument("args", nargs=-1, metavar="[PROJECT FEATURE COUNT]")
@click.option("--from", "from_file", metavar="FILE",
              help="Read ReservedThreadsLicenses / ReservedRIAUsersLicenses / ReservedWebClientUsersLicenses "
                   "(and 3.x ReservedUsersLicenses) from a projectsStartup.xml (- for stdin; at most 1 MiB).")
@click.option("--replace", is_flag=True, help="With --from: also drop reservations of projects not in the file.")
@click.option("--dry-run", is_flag=True, help="Check and show the resulting reservations; change nothing.")
def reserve(pool: str, args: tuple[str, ...], from_file: str | None, replace: bool, dry_run: bool) -> None:
    """Reserve COUNT seats of FEATURE in POOL for PROJECT (0 removes it), import them --from a
    projectsStartup.xml, or with POOL alone list the reservations.

    Reserved seats of a project are usable only by that project, which draws on them first, then
    on the shared rest (issued - all reservations). Reservations beyond the issued count are refused.
    """
    from lictools import engine
    from lictools.cli.common import warn
    from lictools.errors import UsageError
    from lictools.output import emit_rows

    if from_file is not None and args:
        raise UsageError("give either PROJECT FEATURE COUNT or --from FILE, not both")
    if replace and from_file is None:
        raise UsageError("--replace only applies to --from")
    if args and len(args) != 3:
        raise UsageError("expected PROJECT FEATURE COUNT (three values)")

    wanted: dict[str, dict[str, int]] = {}
    if from_file is not None:
        wanted, warnings = parse_projects_startup(read_capped(from_file))
        for message in warnings:
            warn(message)
    elif args:
        project, feature, count_text = args
        from lictools.validate import whole_number

        wanted = {project: {feature: whole_number(count_text, "COUNT")}}

    class _DryRun(Exception):
        """Raised inside the transaction so a dry run writes nothing."""

    rows: list[dict] = []
    touched: list[tuple[str, str, int]] = []
    try:
        with transaction() as tx:
            p = engine.get_pool(tx, pool)
            if args or from_file is not None:
                require_admin(tx, "reserve")
            if args:
                project, feature, count = args[0], args[1], wanted[args[0]][args[1]]
                feature = engine.check_feature(engine.rule_of(p), feature)
                engine.reserve(tx, pool, project, feature, count)
                touched = [(project, feature, count)]
            elif from_file is not None:
                touched = plan(p, engine.rule_of(p), wanted, replace)
                for project, feature, count in touched:
                    engine.reserve(tx, pool, project, feature, count)
            rows = rows_for(engine.get_pool(tx, pool), touched)
            if dry_run:
                raise _DryRun()
    except _DryRun:
        pass
    emit_rows(rows, COLUMNS, settings().fmt)
    if from_file is not None and settings().fmt == "table":
        verb = "would change" if dry_run else "changed"
        warn(f"{verb} {len(touched)} reservation(s) from {from_file}")
