"""Plain data: pools, loaded licenses, sessions and acquire requests.

These are what stores persist and rules read. They convert to and from JSON-ready dicts so
every store keeps the same documents and ``lictools dump`` can print them.

They are :class:`Record` classes rather than dataclasses: every lictools command is a fresh
process, and importing :mod:`dataclasses` and building the classes cost about 15 ms of a login
hook's ``acquire`` (docs/performance.md); a Record declares its fields once and costs nothing.
"""

from __future__ import annotations

from typing import Any

REQUIRED = object()
"""Marks a field without a default."""


def _copy(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_doc()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Record:
    """A small data class: ``FIELDS`` lists ``(name, default)``; ``dict``/``list`` defaults are factories."""

    __slots__ = ()
    FIELDS: tuple[tuple[str, Any], ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.FIELDS)} positional values")
        for index, (name, default) in enumerate(self.FIELDS):
            if index < len(args):
                value = args[index]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif default is REQUIRED:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            else:
                value = default() if default in (dict, list) else default
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kwargs))!r}")

    def to_doc(self) -> dict[str, Any]:
        """A JSON-ready copy (nested dicts and lists copied, so the record and the doc never alias)."""
        return {name: _copy(getattr(self, name)) for name, _ in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_doc() == other.to_doc()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self.FIELDS)
        return f"{type(self).__name__}({values})"


def fields(*names: str, **defaults: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((n, REQUIRED) for n in names) + tuple(defaults.items())


class License(Record):
    """One loaded license: a serial number that adds ``count`` seats to ``feature``."""

    __slots__ = ("serial", "feature", "count", "host_lock", "loaded")
    FIELDS = fields("serial", "feature", "count", host_lock=None, loaded=0.0)
    serial: str
    feature: str
    count: int
    host_lock: str | None
    loaded: float


class Pool(Record):
    """One licensed product installation."""

    __slots__ = ("name", "product", "options", "licenses", "reservations", "created")
    FIELDS = fields("name", "product", options=dict, licenses=list, reservations=dict, created=0.0)
    name: str
    product: str
    options: dict[str, str]
    licenses: list[License]
    # project -> feature -> reserved seats
    reservations: dict[str, dict[str, int]]
    created: float

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

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Pool":
        doc = _copy(doc)
        doc["licenses"] = [License(**lic) for lic in doc.get("licenses", [])]
        return cls(**doc)


class Request(Record):
    """What ``acquire`` asks for; the attributes a rule may build a seat key from."""

    __slots__ = ("pool", "feature", "session", "user", "host", "node", "terminal", "app", "project",
                 "parent", "client", "monitor", "pid", "lease", "uid")
    FIELDS = fields(
        "pool", "feature", "session", "user", "host", "node",
        terminal=False, app=None, project=None, parent=None, client=None, monitor=None, pid=None, lease=None,
        uid=None,
    )
    pool: str
    feature: str
    session: str
    user: str
    host: str
    node: str
    terminal: bool
    app: str | None
    project: str | None
    parent: str | None
    client: str | None
    monitor: str | None
    pid: int | None
    lease: int | None
    # the account asking (set by the CLI): only it, or an admin, may end the session
    uid: int | None


class Session(Record):
    """A live session: the request plus what the engine decided about it."""

    __slots__ = ("id", "pool", "feature", "seat", "user", "host", "node", "started", "refreshed", "expires",
                 "lease", "shared", "terminal", "app", "project", "parent", "root", "client", "monitor", "pid",
                 "seat_project", "detached", "uid")
    FIELDS = fields(
        "id", "pool", "feature", "seat", "user", "host", "node", "started", "refreshed", "expires", "lease",
        shared=False, terminal=False, app=None, project=None, parent=None, root=None, client=None,
        monitor=None, pid=None, seat_project=None, detached=False, uid=None,
    )
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
    shared: bool
    terminal: bool
    app: str | None
    project: str | None
    parent: str | None
    # the root session a child shares (Genero RUN); None otherwise
    root: str | None
    client: str | None
    monitor: str | None
    pid: int | None
    # the project charged for the seat (the project of the session that opened it)
    seat_project: str | None
    detached: bool
    # the account that acquired it (None: not recorded, anyone may end it)
    uid: int | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Session":
        known = cls.__slots__
        return cls(**{k: v for k, v in doc.items() if k in known})


SESSION_ATTRIBUTES = ("user", "host", "node", "app", "project", "client", "monitor", "terminal", "pid")
"""Session attributes a seat key may be built from (the generic rule's ``share=``)."""
