"""The simulated site as a state of its own (``simulate --keep-state FILE``), for ``report`` and ``report --html``.

A simulation replays each product rule and feature in a lane of its own, on a memory store with one
pool called ``simulated`` (:mod:`lictools.simulation.lane`). What a site at the ``--license``
capacity would have lived through is the lane's *limited* run: its grants, shares, releases,
detaches, expiries and denials. :class:`Keeper` gathers those runs into one more
:class:`~lictools.stores.memory.MemoryStore`, one pool per product (named after the product) with
a license per feature at its capacity and the reservations given, by committing each event the
limited runs journal through :func:`lictools.apply.commit`, so the kept state and its journal are
a fold of real engine events with the simulation's times. The CLI then copies that store into the
state file with :func:`lictools.stores.copy.copy_state`, like ``migrate``.

A lane without a capacity has no limited run (its demand run has unlimited seats, which no report
can chart), so ``--keep-state`` needs ``--license`` for every feature it keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lictools import engine
from lictools.apply import commit
from lictools.errors import UsageError
from lictools.events import SESSION_KINDS
from lictools.simulation.lane import POOL, SimulatedHost
from lictools.stores.api import Transaction
from lictools.stores.memory import MemoryStore

KEPT_KINDS = SESSION_KINDS | {"recharge"}
"""The events of a limited run the kept state gets; its pool's own setup events are made anew per product."""


class Keeper:
    """One state for every limited run of a simulation: a pool per product, events in the order they happened."""

    def __init__(self) -> None:
        self.store = MemoryStore(clock=lambda: 0.0)  # the simulation gives its clock (:meth:`follow`)
        self.store.location = "the simulation"
        self.host = SimulatedHost()
        # lanes made but not yet in the kept state: (product, feature, capacity, options, reserved)
        self.pending: list[tuple[str, str, int, dict[str, str], dict[str, int]]] = []
        # feature -> the product it is kept under
        self.kept: dict[str, str] = {}

    def follow(self, clock: Callable[[], float]) -> None:
        """Take the simulation's clock: every kept event happens at the time it happened there."""
        self.store.clock = clock

    def lane(self, product: str, feature: str, capacity: int | None, options: dict[str, str],
             reserved: dict[str, int]) -> Callable[[float, dict[str, Any]], None]:
        """Register a lane; returns the listener its limited run journals to. UsageError without a capacity."""
        if capacity is None:
            raise UsageError(f"--keep-state keeps the site at the --license capacity: give --license {feature}=N "
                             f"(or replay only the features you give a capacity with --feature)")
        other = self.kept.setdefault(feature, product)
        if other != product:  # one session id would live in two pools of the kept state
            raise UsageError(f"feature {feature} is replayed under both {other} and {product}; --keep-state keeps "
                             "each feature under one rule: give only the --product that should count it")
        self.pending.append((product, feature, capacity, dict(options), dict(reserved)))
        return lambda t, event: self.record(product, event)

    def record(self, product: str, event: dict[str, Any]) -> None:
        """Commit one event of ``product``'s limited run into the kept state (its pool renamed)."""
        if event["event"] not in KEPT_KINDS:
            return  # the run's pool-add and reservations: the kept pool is set up by _set_up
        with self.store.transaction() as tx:
            self._set_up(tx)
            kept = {key: value for key, value in event.items() if key != "seq"}
            if kept.get("pool") == POOL:
                kept["pool"] = product
            commit(tx, kept)  # type: ignore[arg-type]

    def _set_up(self, tx: Transaction) -> None:
        """Create the pools and licenses of lanes registered since, at the time of their first event."""
        for product, feature, capacity, options, reserved in self.pending:
            if tx.get_pool(product) is None:
                engine.add_pool(tx, product, product, {feature: capacity}, options)
            else:
                engine.add_license(tx, product, feature, capacity, serial=f"initial-{feature}", host=self.host)
            for project, count in reserved.items():
                engine.reserve(tx, product, project, feature, count)
        self.pending.clear()

    def finish(self) -> MemoryStore:
        """The kept state (lanes that never saw an event get their pool and license too)."""
        if self.pending:
            with self.store.transaction() as tx:
                self._set_up(tx)
        return self.store
