"""What-if simulation (``lictools simulate``): replay client starts and stops under a rule and a capacity.

No state file is touched. Every replay runs the real engine (:mod:`lictools.engine`: the rules, the
admission arithmetic, :func:`lictools.apply.apply`) on a :class:`~lictools.stores.memory.MemoryStore`
whose clock the simulation moves, with a :class:`~lictools.simulation.lane.SimulatedHost` standing in
for the machine (no real process, login or node is read). The log is streamed: memory holds the live
sessions of each replay, never the log (:mod:`clientlog` reads a CSV log, :mod:`history` the site's
own journal through :func:`lictools.reports.source.journal_events`).

Each product rule tried and feature is a *lane* (:mod:`lane`) with two replays of the same events: one
with unlimited capacity, whose seats in use over time are the **demand** (``needed``, ``peak_at``,
``series``), and one with the ``--license`` count, which counts the **denials**.

The choices a simulation has to make, and what it does (also in lictools-simulate(1)):

- **Leases.** A client in the log is running from its ``start`` to its ``stop``: it refreshes its
  lease meanwhile, as real clients do, so no lease runs out in a simulation (sessions are acquired
  with lease 0). A ``start`` whose ``stop`` never comes holds its seat to the end of the log and is
  counted in ``running_at_end``; ``--stop-after SECONDS`` ends every session that long after its
  start instead (its lease, never refreshed: for logs of clients that die without a stop).
- **Detach.** The user agent went away: the session keeps its seat for the simulated product's
  detach timeout (Genero ``user_agent_timeout``, default 300 s; the others' ``linger``, default 0:
  freed at once), exactly as ``lictools detach`` does, then the seat is freed. A ``stop`` before
  the timeout frees it then; a ``start`` naming a detached session re-attaches it (a retried
  acquire); a ``stop`` after the timeout ends nothing.
- **A start naming a running session** is a retried acquire: the same seat, nothing new counted.
- **Denied sessions.** A session refused at the capacity never ran: its ``stop`` and ``detach``
  end nothing, and a RUN child whose ``parent`` was refused is not started either (the parent
  never ran to start it): it is neither a request nor a denial of that replay.
- **Stops naming no running session** (the log began while it ran, or a detach timeout ended it
  first) end nothing and are counted in ``unmatched_stops``.
- **Reservations** (``--reserve``, or a journal's own): ``needed`` is the fewest issued seats with
  which no request would be denied, i.e. the peak over time of the seats in use plus the reserved
  seats their projects leave unused (a reserved seat nobody else may take). Without reservations
  that is the peak of seats in use (``peak``, also reported).
- **The site's journal** (``--from-journal``): ``grant`` and ``share`` are starts carrying the
  whole request; ``release`` and ``remove`` are stops; ``expire`` is a stop at the lease's end (the
  client stopped refreshing then), except after a ``detach``, where the simulated product's own
  detach timeout decides; a ``detach`` is a detach. A ``deny`` is a start immediately followed by
  its stop: the journal cannot say how long a refused client would have run, so it counts for the
  demand at that moment and as a denial when refused again, and holds nothing afterwards. Without
  ``--license`` a feature keeps the pool's own issued seats as the journal changed them.
"""
