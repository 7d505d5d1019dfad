"""The site's own journal as a log of client events (``simulate --from-journal``).

Session events become what the clients did (lictools.simulation explains the mapping); the
events that define pools (``pool-add``, ``pool-set``, ``license-*``, ``reserve``, ``pool-remove``)
are folded through :func:`lictools.apply.apply` into a memory transaction holding pools only, so
the simulation reads each pool as the journal defines it at that point, and is told of each change
(:class:`PoolChange`). Memory holds the pools and, per live session, its lease end: never the journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from lictools.apply import apply
from lictools.events import ends_session
from lictools.model import Pool
from lictools.simulation.clientlog import ClientEvent
from lictools.stores.memory import MemoryTransaction, empty_document

POOL_KINDS = frozenset({"pool-add", "pool-set", "pool-remove", "license-add", "license-remove", "reserve"})
"""Journal events that define a pool."""


class PoolChange(NamedTuple):
    """A pool's definition changed at ``t``: ``kind`` is the journal event's, ``feature`` the feature it
    changed (None: the whole pool); for ``reserve`` the ``project`` and its reserved ``seats`` from now on."""

    t: float
    kind: str
    pool: str
    feature: str | None = None
    project: str | None = None
    seats: int = 0
    where: str = ""


def _request(event: dict[str, Any], kind: str, t: float, where: str) -> ClientEvent:
    """A ``start`` (or the stop of a refused one) with the whole request a grant, share or deny carries."""
    return ClientEvent(
        t, kind, event["session"], event["feature"], where, user=event.get("user"), host=event.get("host"),
        node=event.get("node"), terminal=bool(event.get("terminal")), app=event.get("app"),
        project=event.get("project"), client=event.get("client"), parent=event.get("parent"),
        monitor=event.get("monitor"), pool=event["pool"],
    )


def _stop(event: dict[str, Any], kind: str, t: float, where: str) -> ClientEvent:
    return ClientEvent(t, kind, event["session"], event["feature"], where, pool=event["pool"])


class History:
    """Iterate to get the journal's client events and pool changes, oldest first, times never going back."""

    def __init__(self, events: Iterable[dict[str, Any]], pool: str | None = None) -> None:
        self.events = events
        self.only = pool
        self.pools = MemoryTransaction(empty_document(), 0.0)
        self.seen: set[str] = set()  # pools the journal names (for --pool: exit 4 when it never does)
        self.t = float("-inf")
        self.count = 0
        # live session -> the end of its lease (ISO text, as journaled), and the detached ones
        self.lease_ends: dict[str, str] = {}
        self.detached: set[str] = set()

    def pool(self, name: str) -> Pool | None:
        """The pool as the journal defines it at this point (None: not defined)."""
        return self.pools.get_pool(name)

    def __iter__(self) -> Iterator[ClientEvent | PoolChange]:
        for event in self.events:
            pool = event.get("pool")
            if pool is None or (self.only is not None and pool != self.only):
                continue
            self.seen.add(pool)
            self.count += 1
            kind = event.get("event")
            ts = event.get("ts")
            if not isinstance(ts, (int, float)):
                continue
            t = max(self.t, float(ts))  # a clock that stepped back does not move the replay back
            end = self.lease_ends.get(event.get("session") or "") if kind == "expire" else None
            if end and event.get("session") not in self.detached:
                # the client stopped refreshing: it ended when its lease did, not at the reap that noticed
                t = max(self.t, min(t, datetime.fromisoformat(end).timestamp()))
            self.t = t
            where = f"journal event {event.get('seq', self.count)} ({kind})"
            if kind in POOL_KINDS:
                try:
                    apply(self.pools, event)
                except (LookupError, KeyError):
                    continue  # a pool event the journal cannot explain changes nothing here
                yield PoolChange(t, str(kind), pool, event.get("feature"), event.get("project"),
                                 int(event.get("count") or 0), where)
                continue
            session = event.get("session")
            if not isinstance(session, str) or "feature" not in event:
                continue
            yield from self._session_event(event, str(kind), session, t, where)

    def _session_event(self, event: dict[str, Any], kind: str, session: str, t: float,
                       where: str) -> Iterator[ClientEvent]:
        if kind in ("grant", "share"):
            if event.get("expires"):
                self.lease_ends[session] = event["expires"]
            yield _request(event, "start", t, where)
        elif kind == "deny":
            if "user" in event and "node" in event:  # journals before version 1 kept no request on a denial
                yield _request(event, "start", t, where)
                yield _stop(event, "stop", t, where)
        elif kind == "refresh":
            if event.get("expires"):
                self.lease_ends[session] = event["expires"]
            if event.get("reattached"):
                self.detached.discard(session)
                yield _stop(event, "reattach", t, where)
        elif kind == "detach":
            if ends_session(event):
                self.lease_ends.pop(session, None)
            else:
                self.lease_ends[session] = event.get("expires") or ""
                self.detached.add(session)
            yield _stop(event, "detach", t, where)
        elif kind in ("release", "remove"):
            self._forget(session)
            yield _stop(event, "stop", t, where)
        elif kind == "expire":
            if session in self.detached:  # its detach timeout ran out: the simulated product's timeout decides
                self._forget(session)
                return
            self._forget(session)
            yield _stop(event, "stop", t, where)

    def _forget(self, session: str) -> None:
        self.lease_ends.pop(session, None)
        self.detached.discard(session)
