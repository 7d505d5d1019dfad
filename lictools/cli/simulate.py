"""``lictools simulate``: what-if replay of client starts and stops under a rule and a capacity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

import click

from lictools.cli.common import example, settings, warn
from lictools.cli.options import KEY_VALUE
from lictools.rules import RULES

if TYPE_CHECKING:
    from lictools.simulation.run import Simulation


@click.command(epilog=example(
    "lictools simulate week.csv --product genero --license runtime=40",
    "lictools simulate week.csv --compare --option share=user,host --license dev=6 --license mom=10",
    "lictools simulate week.csv --product magic-xpa --feature web --license web=20 --reserve alpha web 5 --chart",
    "lictools --format json simulate --from-journal --pool genero-prod --license runtime=30",
    "lictools --format csv simulate --from-journal --pool cad --product generic --option share=user --series",
    "lictools simulate week.csv --product genero --license runtime=40 --keep-state /tmp/week.db",
))
@click.argument("events", required=False, metavar="[EVENTS.csv]")
@click.option("--product", "products", metavar="PRODUCT", multiple=True,
              help=f"The counting rule to replay under: {', '.join(RULES)}. Repeatable for a log of several "
                   "products' clients: each row is replayed under the products that take its feature.")
@click.option("--license", "licenses", type=KEY_VALUE, multiple=True, metavar="FEATURE=N",
              help="The capacity to count denials at (a feature without one is not limited). Repeatable.")
@click.option("--option", "options", type=KEY_VALUE, multiple=True, metavar="KEY=VALUE",
              help="Pool option of the rules tried (share, user_agent_timeout, linger, version ...). Repeatable.")
@click.option("--reserve", "reservations", nargs=3, multiple=True, metavar="PROJECT FEATURE COUNT",
              help="Seats of FEATURE reserved for PROJECT (as lictools reserve). Repeatable.")
@click.option("--feature", "features", multiple=True, metavar="FEATURE",
              help="Replay only the rows of this feature (a log of several products' clients). Repeatable.")
@click.option("--compare", is_flag=True,
              help="Replay under every product rule that accepts each feature, and the generic rule (its share= "
                   "from --option), one row each.")
@click.option("--from-journal", is_flag=True, help="Replay this state's own journal instead of a CSV log.")
@click.option("--pool", metavar="POOL", help="With --from-journal: only this pool.")
@click.option("--stop-after", type=click.IntRange(0, 315_360_000), default=0, metavar="SECONDS",
              help="End a session that has not stopped this long after its start (its client died); "
                   "default 0: it holds its seat to its stop or the end of the log.")
@click.option("--series", is_flag=True, help="Also give the seats in use (no capacity limit) at each change.")
@click.option("--chart", is_flag=True,
              help="Also draw the seats in use (no capacity limit) against the capacity, denials marked (table format).")
@click.option("--keep-state", metavar="FILE",
              help="Also write the simulated site at the --license capacity (a pool per product, its sessions and "
                   "journal) into FILE, a new state, for lictools report.")
def simulate(events: str | None, products: tuple[str, ...], licenses: tuple[tuple[str, str], ...],
             options: tuple[tuple[str, str], ...], reservations: tuple[tuple[str, str, str], ...],
             features: tuple[str, ...], compare: bool,
             from_journal: bool, pool: str | None, stop_after: int, series: bool, chart: bool,
             keep_state: str | None) -> None:
    """Replay a log of client starts and stops (EVENTS.csv: columns time, event, session, feature, user,
    host, node, terminal, app, project, client, parent, monitor) under a product's counting rule, with
    no state touched: the seats the rule needs with unlimited capacity (needed, and when), and the
    requests refused at the --license capacity (denials).

    Each client runs from its start to its stop; a detach keeps its seat for the product's detach
    timeout. --from-journal replays the site's own history (grants, shares and denials as starts)
    under another capacity or product. See man lictools-simulate for every choice a replay makes.
    """
    from lictools import validate
    from lictools.errors import UsageError
    from lictools.simulation.run import check_overrides

    fmt = settings().fmt
    if (events is None) == (not from_journal):
        raise UsageError("give a log (EVENTS.csv, or - for standard input) or --from-journal, one of the two")
    if compare and products:
        raise UsageError("--compare tries every product rule: drop --product")
    if from_journal and len(products) > 1:
        raise UsageError("--from-journal replays each pool under one rule: give --product once")
    if events is not None and not products and not compare:
        raise UsageError("--product is required (or --compare to try every product rule)")
    if pool is not None and not from_journal:
        raise UsageError("--pool selects a pool of the journal: use it with --from-journal")
    if reservations and from_journal:
        raise UsageError("--reserve is for a CSV log; --from-journal replays the pools' own reservations")
    if keep_state == "":
        raise UsageError("--keep-state: give the path of the new state to write")
    if keep_state is not None and (from_journal or compare):
        raise UsageError("--keep-state keeps a CSV log replayed under --product (not --from-journal or --compare)")
    if chart and fmt != "table":
        raise UsageError("--chart draws for people: use it with the table format (drop --format json/csv)")
    if pool is not None:
        validate.name(pool, "--pool")
    tried = list(dict.fromkeys(products)) or list(RULES)
    capacities = {validate.name(f, "--license feature"): validate.whole_number(n, f"--license {f}=")
                  for f, n in licenses}
    reserved: dict[str, dict[str, int]] = {}
    for project, feature, count in reservations:
        validate.name(project, "--reserve project")
        reserved.setdefault(validate.name(feature, "--reserve feature"), {})[project] = validate.whole_number(
            count, f"--reserve {project} {feature}")
    for feature in features:
        validate.name(feature, "--feature")
    if products:
        _check_features(tried, [*capacities, *reserved, *features])
    overrides = dict(options)
    check_overrides(tried, overrides)

    from lictools.simulation.run import Simulation

    simulation_options: dict[str, Any] = dict(
        product=tried if products else None, compare=compare, licenses=capacities, options=overrides, reservations=reserved,
        stop_after=stop_after, series=series, chart=chart, features=features or None,
    )
    if keep_state is not None:
        from lictools.simulation.keep import Keeper

        _check_new_state(keep_state)
        simulation_options["keeper"] = Keeper()
    if from_journal:
        simulation = _replay_journal(pool, simulation_options)
    else:
        assert events is not None
        simulation = _replay_log(events, simulation_options)
    for line in simulation.refusals:
        warn(line)
    if simulation.unmatched:
        warn(f"{simulation.unmatched} stop/detach event(s) named no running session and ended nothing "
             "(started before the log, refused, or already ended by a detach timeout or --stop-after)")
    _emit(simulation, fmt, series, chart)
    if keep_state is not None:
        _keep(simulation_options["keeper"], keep_state, fmt)


def _check_features(products: list[str], features: list[str]) -> None:
    """Exit 2 for a feature no product given takes (with one --product: that rule's own message)."""
    from lictools.errors import UsageError
    from lictools.rules import check_feature, get_rule

    rules = [get_rule(product) for product in products]
    for feature in features:
        refusals = []
        for rule in rules:
            try:
                check_feature(rule, feature)
                break
            except UsageError as exc:
                refusals.append(exc)
        else:
            if len(refusals) == 1:
                raise refusals[0]
            raise UsageError(f"no --product given takes feature {feature!r}: "
                             + "; ".join(exc.message for exc in refusals))


NEW_STATE = "--keep-state writes a new state: give a path with no state yet"


def _check_new_state(path: str) -> None:
    """Exit 2 before simulating when ``path`` already holds a state (the copy checks again under its lock)."""
    from lictools.errors import NotFoundError, UsageError
    from lictools.stores import open_store
    from lictools.stores.copy import contents

    try:
        with open_store(path, settings().lock_timeout).read() as view:
            held = contents(view)
    except NotFoundError:
        return
    if held is not None:
        raise UsageError(f"the target {path} is not empty ({held}); {NEW_STATE}")


def _keep(keeper: Any, path: str, fmt: str) -> None:
    """Copy the kept simulated site into the state at ``path`` (lictools.stores.copy, as migrate does)."""
    from lictools.stores import open_store
    from lictools.stores.copy import copy_state

    target = open_store(path, settings().lock_timeout)
    try:
        copied = copy_state(keeper.finish(), target, hint=NEW_STATE)
    finally:
        target.close()
    if fmt == "table":
        click.echo(f"Kept the simulated site in {path}: {copied.pools} pool(s), {copied.sessions} session(s) "
                   f"running at the end, {copied.events} journal event(s)")


def _replay_log(path: str, simulation_options: dict[str, Any]) -> Simulation:
    """Stream the CSV log at ``path`` (``-``: standard input) through a simulation."""
    import sys

    from lictools.errors import UsageError
    from lictools.simulation.clientlog import read_log
    from lictools.simulation.run import Simulation

    simulation = Simulation(**simulation_options)
    name = "standard input" if path == "-" else path
    try:
        stream: TextIO
        if path == "-":
            import io

            buffer = getattr(sys.stdin, "buffer", None)
            stream = io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="") if buffer is not None else sys.stdin
        else:
            stream = open(path, encoding="utf-8-sig", newline="")
        with stream:
            simulation.feed(read_log(stream, name))
    except OSError as exc:
        raise UsageError(f"cannot read {name[:200]}: {exc.strerror or exc}") from None
    return simulation.finish()


def _replay_journal(pool: str | None, simulation_options: dict[str, Any]) -> Simulation:
    """Replay the state's journal (read through lictools.reports.source, as report reads it)."""
    from lictools.errors import NotFoundError
    from lictools.reports.source import journal_events
    from lictools.simulation.history import History
    from lictools.simulation.run import Simulation
    from lictools.stores import open_store

    s = settings()
    history = History(journal_events(open_store(s.state, s.lock_timeout)), pool)
    simulation = Simulation(**simulation_options, pools=history.pool).feed(history).finish()
    if pool is not None and pool not in history.seen:
        raise NotFoundError(f"pool {pool!r} does not appear in the journal")
    return simulation


SERIES_COLUMNS = ["pool", "product", "feature", "time", "in_use"]
"""``--format csv --series``: one row per point of every series."""


def _emit(simulation: Simulation, fmt: str, series: bool, chart: bool) -> None:
    from lictools.output import emit_rows
    from lictools.simulation.run import ROW_KEYS

    rows = simulation.rows()
    if fmt == "json":
        emit_rows(rows, ROW_KEYS, fmt)
        return
    if fmt == "csv":
        if series:
            points = [{"pool": r["pool"], "product": r["product"], "feature": r["feature"], "time": t, "in_use": n}
                      for r in rows for t, n in r["series"]]
            emit_rows(points, SERIES_COLUMNS, fmt)
        else:
            emit_rows(rows, ROW_KEYS, fmt)
        return
    if chart:
        click.echo(_charts(simulation, rows), nl=False)
    since, until = rows[0]["since"] if rows else None, rows[0]["until"] if rows else None
    click.echo(f"Simulated {simulation.events} client event(s)" + (f" from {since} to {until}" if since else ""))
    columns = [c for c in ROW_KEYS if c not in ("since", "until")]
    if not any(r["pool"] for r in rows):
        columns.remove("pool")
    if not any(r["reserved"] for r in rows):
        columns.remove("reserved")
    emit_rows([{k: v for k, v in r.items() if k != "series"} for r in rows], columns, fmt)
    if series:
        for row in rows:
            click.echo(f"\n{_title(row)}: seats in use with no capacity limit")
            emit_rows([{"time": t, "in_use": n} for t, n in row["series"]], ["time", "in_use"], fmt)


def _title(row: dict[str, Any]) -> str:
    return "/".join(str(row[k]) for k in ("pool", "product", "feature") if row[k] is not None)


def _charts(simulation: Simulation, rows: list[dict[str, Any]]) -> str:
    """A chart per lane: the seats in use with no capacity limit against the capacity, denials marked."""
    import shutil

    from lictools.output.chart import render

    width = max(10, shutil.get_terminal_size((80, 24)).columns - 8)
    out = []
    for lane, row in zip(simulation.active(), rows):
        if lane.timeline is None or simulation.until is None:
            continue
        capacity = f"capacity {row['capacity']}: {row['denials']} denial(s)" if row["capacity"] is not None else (
            "no capacity given")
        needs = f"needs {row['needed']}" + (f" (first at {row['peak_at']})" if row["peak_at"] else "")
        points = lane.timeline.points(simulation.until, row["capacity"] or 0)
        out.append(render(f"{_title(row)}: {needs}, {capacity}", points, simulation.until, width=width))
    return "\n".join(out) + ("\n" if out else "")
