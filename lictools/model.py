"""Plain data: pools, loaded licenses, sessions and acquire requests.

These are what stores persist and rules read. They convert to and from JSON-ready dicts so
every store keeps the same documents and ``lictools dump`` can print them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class License:
    """One loaded license: a serial number that adds ``count`` seats to ``feature``."""

    serial: str
    feature: str
    count: int
    host_lock: str | None = None
    loaded: float = 0.0


@dataclass
class Pool:
    """One licensed product installation."""

    name: str
    product: str
    options: dict[str, str] = field(default_factory=dict)
    licenses: list[License] = field(default_factory=list)
    # project -> feature -> reserved seats
    reservations: dict[str, dict[str, int]] = field(default_factory=dict)
    created: float = 0.0

    def issued(self, feature: str) -> int:
        """Seats issued for ``feature``: the sum over every loaded serial."""
        return sum(lic.count for lic in self.licenses if lic.feature == feature)

    def reserved(self, feature: str) -> dict[str, int]:
        """Project -> reserved seats for ``feature`` (projects with zero left out)."""
        out = {}
        for project, per_feature in self.reservations.items():
            count = per_feature.get(feature, 0)
            if count:
                out[project] = count
        return out

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Pool":
        doc = dict(doc)
        doc["licenses"] = [License(**lic) for lic in doc.get("licenses", [])]
        return cls(**doc)


@dataclass
class Request:
    """What ``acquire`` asks for; the attributes a rule may build a seat key from."""

    pool: str
    feature: str
    session: str
    user: str
    host: str
    node: str
    terminal: bool = False
    app: str | None = None
    project: str | None = None
    parent: str | None = None
    client: str | None = None
    monitor: str | None = None
    pid: int | None = None
    lease: int | None = None


@dataclass
class Session:
    """A live session: the request plus what the engine decided about it."""

    id: str
    pool: str
    feature: str
    seat: str
    user: str
    host: str
    node: str
    started: float
    refreshed: float
    expires: float | None
    lease: int
    shared: bool = False
    terminal: bool = False
    app: str | None = None
    project: str | None = None
    parent: str | None = None
    root: str | None = None
    client: str | None = None
    monitor: str | None = None
    pid: int | None = None
    # the project charged for the seat (the project of the session that opened it)
    seat_project: str | None = None
    detached: bool = False

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Session":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


SESSION_ATTRIBUTES = ("user", "host", "node", "app", "project", "client", "monitor", "terminal", "pid")
"""Session attributes a seat key may be built from (the generic rule's ``share=``)."""
