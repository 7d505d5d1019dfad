"""A simulation: client events routed to the lanes of the product rules tried, and the result rows.

:class:`Simulation` reads client events (a CSV log, :mod:`lictools.simulation.clientlog`, or the
journal, :mod:`lictools.simulation.history`) one at a time, moves the clock of every lane to the
event's time and hands the event to the lanes of its feature (and pool): one lane per product rule
tried (``--product``, every rule that accepts the feature with ``--compare``, or a journal pool's
own product). :meth:`Simulation.rows` gives the ``simulate`` JSON shape (SPEC.md section 3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lictools.errors import NotFoundError, UsageError
from lictools.model import Pool
from lictools.rules import RULES, check_feature, check_options, get_rule, rule_options
from lictools.rules.base import Rule
from lictools.simulation.clientlog import COLUMNS, BadRow, ClientEvent
from lictools.simulation.history import PoolChange
from lictools.simulation.keep import Keeper
from lictools.simulation.lane import POOL, Lane
from lictools.timeutil import iso

ROW_KEYS = ["pool", "product", "feature", "capacity", "needed", "peak_at", "denials", "peak", "reserved", "requests",
            "running_at_end", "since", "until"]
"""The ``simulate`` JSON keys, in order (``series`` follows with ``--series``)."""

SWEEP_EVERY = 4096
"""Client events between sweeps of what ended sessions leave behind (keeps memory to the live sessions)."""

NO_LEASE = ("option lease does not apply to a simulation: a client in the log keeps its seat from its start to its "
            "stop (it refreshes meanwhile); for clients that die without a stop use --stop-after SECONDS")


def check_overrides(products: Iterable[str], options: dict[str, str]) -> None:
    """Exit 2 for an ``--option`` no product tried knows, or a value one of them refuses."""
    if "lease" in options:
        raise UsageError(NO_LEASE)
    rules = [get_rule(product) for product in products]
    for key, value in options.items():
        knowing = [rule for rule in rules if key in rule_options(rule)]
        if not knowing:
            names = ", ".join(rule.NAME for rule in rules)
            raise UsageError(f"unknown option {key!r} for {names}")
        for rule in knowing:
            check_options(rule, {key: value})


def lane_options(rule: Rule, base: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """The pool options of a lane: a journal pool's own (``base``) and ``--option``, those ``rule`` knows."""
    known = rule_options(rule)
    return {k: v for k, v in {**base, **overrides}.items() if k in known and k != "lease"}


def _column(message: str) -> str | None:
    """The log column an engine message is about: the last ``--name`` it mentions that is a column
    (``--client gdc is direct mode ... give --monitor ID``: the monitor is what is missing)."""
    names: list[str] = re.findall(r"--([a-z]+)", message)
    return next((name for name in reversed(names) if name in COLUMNS), None)


class Simulation:
    """Replays client events under product rules and capacities.

    ``product``: the rule, or rules (each row replayed under those that take its feature; None: each
    journal pool's own, or every rule with ``compare``);
    ``licenses``: feature -> capacity (a feature without one is not limited: no denials);
    ``reservations``: feature -> project -> reserved seats (a CSV log's; a journal brings its own);
    ``stop_after``: seconds after which a session that never stopped ends (0: never);
    ``features``: replay only the rows of these features (None: every row);
    ``pools``: a journal pool's definition at this point of the journal;
    ``keeper``: gathers the runs at the capacity into one state (``--keep-state``).
    """

    def __init__(
        self, product: str | Sequence[str] | None = None, compare: bool = False, licenses: dict[str, int] | None = None,
        options: dict[str, str] | None = None, reservations: dict[str, dict[str, int]] | None = None,
        stop_after: int = 0, series: bool = False, chart: bool = False, features: Iterable[str] | None = None,
        pools: Callable[[str], Pool | None] | None = None, keeper: Keeper | None = None,
    ) -> None:
        # the rules a log is replayed under: one --product, or several (each row goes to those taking its feature)
        self.products = (product,) if isinstance(product, str) else tuple(product or ())
        self.compare = compare
        self.features = None if features is None else frozenset(features)
        self.licenses = dict(licenses or {})
        self.options = dict(options or {})
        self.reservations = reservations or {}
        self.stop_after = stop_after
        self.series = series
        self.chart = chart
        self.pools = pools
        self.keeper = keeper
        if keeper is not None:
            keeper.follow(self.clock)
        self.now = 0.0
        self.since: float | None = None
        self.until: float | None = None
        self.events = 0
        self.unmatched = 0
        self.unnamed = 0
        # (pool, product, feature) -> lane; (pool, feature as given) -> its lanes
        self.lanes: dict[tuple[str | None, str, str], Lane] = {}
        self.routes: dict[tuple[str | None, str | None], list[Lane]] = {}
        self.refusals: list[str] = []
        # (pool, session) -> the route it started on, for a stop that names no feature
        self.where: dict[tuple[str | None, str], tuple[str | None, str | None]] = {}
        if pools is None:  # a CSV log: every feature given a capacity has its lanes, used or not
            for feature in self.licenses:
                self._route(None, feature, "--license")

    def clock(self) -> float:
        return self.now

    # ------------------------------------------------------------------ lanes and routes
    def _products(self, pool: str | None) -> list[str]:
        if self.compare:
            return list(RULES)
        if self.products:
            return list(self.products)
        definition = self.pools(pool) if self.pools is not None and pool is not None else None
        return [definition.product] if definition is not None else []

    def _feature(self, rule: Rule, given: str | None) -> str:
        """The feature a row means for ``rule``: as given (checked), else the rule's only feature or the
        only ``--license`` feature it knows; UsageError when it cannot tell."""
        if given is None:
            if len(rule.FEATURES) == 1:
                return rule.FEATURES[0]
            licensed = [f for f in self.licenses if not rule.FEATURES or f in rule.FEATURES]
            if len(licensed) == 1:
                return licensed[0]
            known = f"product {rule.NAME} has features {', '.join(rule.FEATURES)}" if rule.FEATURES else (
                f"product {rule.NAME} takes any feature name")
            raise UsageError(f"empty; {known}: name one (or give exactly one --license FEATURE=N)")
        return check_feature(rule, given)

    def _route(self, pool: str | None, given: str | None, where: str) -> list[Lane]:
        """The lanes a row of ``pool`` and feature ``given`` goes to (made when first needed)."""
        key = (pool, given)
        lanes = self.routes.get(key)
        if lanes is None:
            lanes = []
            resolved: list[str] = []
            refusals: list[str] = []  # why each --product refused the row's feature
            # rules with features of their own first: generic, given no feature, takes the ones they took
            for rule in sorted((get_rule(p) for p in self._products(pool)), key=lambda r: not r.FEATURES):
                if self.features is not None and given is not None and given not in self.features:
                    continue
                try:
                    features = [self._feature(rule, given)]
                except UsageError as exc:
                    if not rule.FEATURES and given is None and resolved:
                        features = list(resolved)
                    elif self.compare or self.features is not None:
                        continue  # this rule does not accept the feature: it is not tried
                    else:
                        refusals.append(exc.message)
                        continue  # another --product may take it; none: a bad row (below)
                for feature in features:
                    if self.features is None or feature in self.features:
                        if feature not in resolved:
                            resolved.append(feature)
                        lanes.append(self._lane(pool, rule.NAME, feature))
            if refusals and not lanes:
                label = "column feature" if pool is None else "feature"
                hint = "" if given is None else " (--feature replays only the rows of the features given)"
                raise BadRow(f"{where}, {label}: {'; '.join(refusals)}{hint}")
            self.routes[key] = lanes
        return [lane for lane in lanes if lane.refused is None]

    def _lane(self, pool: str | None, product: str, feature: str) -> Lane:
        key = (pool, product, feature)
        lane = self.lanes.get(key)
        if lane is not None:
            return lane
        rule = get_rule(product)
        definition = self.pools(pool) if self.pools is not None and pool is not None else None
        capacity = self.licenses.get(feature)
        follows = capacity is None and definition is not None
        if definition is not None:
            options = lane_options(rule, definition.options, self.options)
            reserved = definition.reserved(feature)
            if follows:
                capacity = definition.issued(feature)
        else:
            options = lane_options(rule, {}, self.options)
            reserved = dict(self.reservations.get(feature, {}))
        self._check_reserved(pool, feature, reserved, None if follows else capacity)
        keep = self.keeper.lane(product, feature, capacity, options, reserved) if self.keeper is not None else None
        lane = self.lanes[key] = Lane(self.clock, pool, product, feature, capacity, options, reserved,
                                      series=self.series, chart=self.chart, follows_journal=follows,
                                      since=self.since, keep=keep)
        return lane

    def _check_reserved(self, pool: str | None, feature: str, reserved: dict[str, int], capacity: int | None) -> None:
        total = sum(reserved.values())
        if capacity is not None and total > capacity:
            where = f"pool {pool}" if pool is not None else "--reserve"
            raise UsageError(f"{where}: {total} {feature} seat(s) are reserved, more than the capacity "
                             f"--license {feature}={capacity}")

    def _refuse(self, lane: Lane, event: ClientEvent, exc: UsageError | NotFoundError) -> None:
        """A rule refused a request: exit 2 naming the row, or with ``--compare`` that rule is dropped."""
        message = exc.message.replace(f" in pool {POOL}", "")  # the lane's own pool is no news to the reader
        column = _column(message)
        label = "" if column is None else (f", column {column}" if event.pool is None else f", key {column}")
        text = f"{event.where}{label}: {lane.product} refuses the request: {message}"
        if not self.compare:
            raise BadRow(text)
        lane.refused = text
        self.refusals.append(f"{lane.product} is not compared for feature {lane.feature}: {text}")

    # ------------------------------------------------------------------ the replay
    def feed(self, items: Iterable[ClientEvent | PoolChange]) -> Simulation:
        """Replay ``items`` (oldest first); can be called again with the items that follow."""
        for item in items:
            self.now = item.t
            if isinstance(item, PoolChange):
                self._pool_change(item)
                continue
            if self.since is None:
                self.since = item.t
                for lane in self.lanes.values():  # made before the log began (--license): same time axis
                    if lane.timeline is not None:
                        lane.timeline.since = item.t
            self.until = item.t
            self.events += 1
            if item.kind == "start":
                self._start(item)
            elif item.kind == "reattach":
                for lane in self._route(item.pool, item.feature, item.where):
                    lane.reattach(item.session or "")
            else:
                self._stop(item)
            if self.events % SWEEP_EVERY == 0:
                self._sweep()
        return self

    def _start(self, event: ClientEvent) -> None:
        session = event.session
        if session is None:
            self.unnamed += 1
            session = f"unnamed@{self.unnamed}"
        if self.pools is None:  # a journal names the feature of every event
            self.where[(event.pool, session)] = (event.pool, event.feature)
        for lane in self._route(event.pool, event.feature, event.where):
            try:
                lane.start(event, session, self.stop_after)
            except (UsageError, NotFoundError) as exc:
                self._refuse(lane, event, exc)

    def _stop(self, event: ClientEvent) -> None:
        session = event.session or ""
        route = (event.pool, event.feature) if event.feature is not None else self.where.get((event.pool, session))
        lanes = self._route(route[0], route[1], event.where) if route is not None else None
        matched = False
        for lane in lanes or ():
            matched = lane.stop(session, detach=event.kind == "detach") or matched
        if event.kind == "stop" or lanes == []:
            self.where.pop((event.pool, session), None)
        if not matched and lanes != []:  # no lane: a feature not replayed (--feature) or every rule refused it
            self.unmatched += 1

    def _pool_change(self, change: PoolChange) -> None:
        """A journal pool changed: its lanes follow (issued seats, reservations, options)."""
        definition = self.pools(change.pool) if self.pools is not None else None
        if definition is None:
            return
        for lane in list(self.lanes.values()):
            if lane.pool != change.pool or lane.refused is not None:
                continue
            if change.feature is not None and lane.feature != change.feature:
                continue
            if change.kind in ("license-add", "license-remove"):
                if lane.follows_journal and lane.limited is not None:
                    lane.limited.set_issued(definition.issued(lane.feature))
            elif change.kind == "reserve" and change.project is not None:
                reserved = definition.reserved(lane.feature)
                limited = lane.limited
                self._check_reserved(lane.pool, lane.feature, reserved,
                                     None if lane.follows_journal or limited is None else limited.issued())
                lane.reserve(change.t, change.project, change.seats)
            elif change.kind == "pool-set":
                lane.set_options(lane_options(get_rule(lane.product), definition.options, self.options))

    def _sweep(self) -> None:
        """Forget what sessions that ended left behind: refused ids, and where stopped sessions ran."""
        for lane in self.lanes.values():
            lane.sweep()
        def running(session: str, lanes: list[Lane]) -> bool:
            active = [lane for lane in lanes if lane.refused is None]
            return not active or any(lane.unlimited.live(session) for lane in active)

        self.where = {key: route for key, route in self.where.items() if running(key[1], self.routes.get(route, []))}

    def finish(self) -> Simulation:
        """End of the log: what expired by its last time is reaped."""
        if self.until is not None:
            self.now = self.until
        for lane in self.active():
            lane.finish()
        return self

    # ------------------------------------------------------------------ results
    def active(self) -> list[Lane]:
        """The lanes with results (not refused), by pool, feature and product."""
        lanes = [lane for lane in self.lanes.values() if lane.refused is None]
        return sorted(lanes, key=lambda lane: (lane.pool or "", lane.feature, lane.product))

    def rows(self) -> list[dict[str, Any]]:
        """One row per lane: the ``simulate`` JSON shape."""
        out = []
        for lane in self.active():
            demand, limited = lane.demand, lane.limited
            row: dict[str, Any] = {
                "pool": lane.pool,
                "product": lane.product,
                "feature": lane.feature,
                "capacity": limited.issued() if limited is not None else None,
                "needed": demand.needed,
                "peak_at": iso(demand.needed_at) if demand.needed else None,
                "denials": limited.denials if limited is not None else 0,
                "peak": demand.peak,
                "reserved": sum(demand.reserved.values()),
                "requests": lane.requests,
                "running_at_end": lane.unlimited.running(),
                "since": iso(self.since),
                "until": iso(self.until),
            }
            if demand.points is not None:
                row["series"] = [[iso(t), in_use] for t, in_use in demand.points]
            out.append(row)
        return out
