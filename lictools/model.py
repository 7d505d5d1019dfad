"""Plain data: pools, loaded licenses, acquire requests and live sessions.

Stores persist them as JSON documents (``to_doc`` / ``from_doc``); rules and views read them;
only :func:`lictools.apply.apply` makes new ones from journal events. Slotted dataclasses:
``dataclasses`` is imported by filelock anyway, and four classes cost about 2 ms at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

POLICY_KINDS = ("max", "include", "exclude", "reserve")
"""The options-file keywords a pool policy can be (FlexNet's options file, RLM's ISV options)."""

POLICY_TARGETS = ("user", "group", "host")
"""What a policy names: one user (``*`` for every user, ``max`` only), one group, or one client host."""


@dataclass(slots=True)
class License:
    """One loaded license: a serial number that adds ``count`` seats to ``feature``."""

    serial: str
    feature: str
    count: int
    host_lock: str | None = None
    loaded: float = 0.0

    def to_doc(self) -> dict[str, Any]:
        return {"serial": self.serial, "feature": self.feature, "count": self.count,
                "host_lock": self.host_lock, "loaded": self.loaded}


@dataclass(slots=True, frozen=True)
class Policy:
    """One line of a pool's options file: ``MAX 2 solver USER alice``, ``EXCLUDE GROUP contractors`` ...

    ``feature`` None: every feature of the pool (each counted on its own). ``count``: seats, for
    ``max`` and ``reserve`` only. The policy's identity is everything but ``count``: a pool holds one
    policy per kind, feature and target (lictools-policies(7)).
    """

    kind: str
    target: str
    name: str
    feature: str | None = None
    count: int | None = None

    @property
    def identity(self) -> tuple[str, str | None, str, str]:
        return (self.kind, self.feature, self.target, self.name)

    @property
    def holder(self) -> str:
        """The key a ``reserve`` policy's seats are charged to (``user=alice``); no project name holds ``=``."""
        return f"{self.target}={self.name}"

    def text(self) -> str:
        """The policy as an options-file line: ``MAX 2 solver USER alice``, ``EXCLUDE GROUP contractors``."""
        parts = [self.kind.upper()]
        if self.count is not None:
            parts.append(str(self.count))
        if self.feature is not None:
            parts.append(self.feature)
        parts += [self.target.upper(), self.name]
        return " ".join(parts)

    def to_doc(self) -> dict[str, Any]:
        """``{"kind": "max", "user": "alice", "count": 2, "feature": "solver"}``: the shape of the site file,
        the pool document, the policy events and the ``policy`` key of a ``deny`` event."""
        doc: dict[str, Any] = {"kind": self.kind, self.target: self.name}
        if self.count is not None:
            doc["count"] = self.count
        if self.feature is not None:
            doc["feature"] = self.feature
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Policy:
        target = next(t for t in POLICY_TARGETS if t in doc)
        return cls(doc["kind"], target, doc[target], doc.get("feature"), doc.get("count"))


@dataclass(slots=True)
class Waiter:
    """A request waiting in its pool's queue (``acquire --wait``): granted in arrival order when a seat it may
    take frees, like FlexNet's and RLM's queued checkouts."""

    session: str
    feature: str
    # the request's attributes (the Request fields), to decide it again when a seat frees
    request: dict[str, Any]
    queued: float
    # when it stops waiting (epoch seconds)
    until: float
    # the waiting lictools process, on ``node``: a waiter whose process is gone leaves the queue
    pid: int | None = None
    pid_start: int | None = None
    node: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"session": self.session, "feature": self.feature, "request": dict(self.request),
                "queued": self.queued, "until": self.until, "pid": self.pid, "pid_start": self.pid_start,
                "node": self.node}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Waiter:
        return cls(**{**doc, "request": dict(doc["request"])})


@dataclass(slots=True)
class Pool:
    """One licensed product installation."""

    name: str
    product: str
    options: dict[str, str] = field(default_factory=dict)
    licenses: list[License] = field(default_factory=list)
    # project -> feature -> reserved seats
    reservations: dict[str, dict[str, int]] = field(default_factory=dict)
    created: float = 0.0
    # the pool's options-file lines, in the order they were added
    policies: list[Policy] = field(default_factory=list)
    # requests waiting for a seat (acquire --wait), in arrival order
    queue: list[Waiter] = field(default_factory=list)

    def issued(self, feature: str) -> int:
        """Seats issued for ``feature``: the sum over every loaded serial."""
        return sum(lic.count for lic in self.licenses if lic.feature == feature)

    def reserved(self, feature: str) -> dict[str, int]:
        """Who has seats of ``feature`` reserved -> how many (zero left out): each project with a reservation,
        then each ``reserve`` policy by its :attr:`Policy.holder` key (``user=alice``)."""
        out = {p: per[feature] for p, per in self.reservations.items() if per.get(feature)}
        out.update((p.holder, p.count) for p in self.policies if p.kind == "reserve" and p.feature == feature and p.count)
        return out

    def to_doc(self) -> dict[str, Any]:
        """A JSON-ready copy (nothing aliased with the pool)."""
        return {
            "name": self.name,
            "product": self.product,
            "options": dict(self.options),
            "licenses": [lic.to_doc() for lic in self.licenses],
            "reservations": {p: dict(per) for p, per in self.reservations.items()},
            "created": self.created,
            "policies": [p.to_doc() for p in self.policies],
            "queue": [w.to_doc() for w in self.queue],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Pool:
        return cls(
            name=doc["name"],
            product=doc["product"],
            options=dict(doc.get("options", {})),
            licenses=[License(**lic) for lic in doc.get("licenses", [])],
            reservations={p: dict(per) for p, per in doc.get("reservations", {}).items()},
            created=doc.get("created", 0.0),
            policies=[Policy.from_doc(p) for p in doc.get("policies", [])],
            queue=[Waiter.from_doc(w) for w in doc.get("queue", [])],
        )

    def waiting(self, feature: str) -> list[Waiter]:
        """The requests waiting for a seat of ``feature``, in arrival order."""
        return [w for w in self.queue if w.feature == feature]


@dataclass(slots=True, frozen=True)
class Request:
    """What ``acquire`` asks for: the attributes a rule may build a seat key from."""

    pool: str
    feature: str | None
    session: str
    user: str
    # the client host as given; None (or blank): not given, and then the client runs on ``node``
    host: str | None
    node: str
    terminal: bool = False
    app: str | None = None
    project: str | None = None
    parent: str | None = None
    client: str | None = None
    monitor: str | None = None
    pid: int | None = None
    lease: int | None = None
    # the account asking (set by the CLI): only it, or an admin, may end the session
    uid: int | None = None
    # the process that ran ``acquire`` (its parent; set by the CLI): shown when ``pid`` is not given
    caller_pid: int | None = None

    @property
    def host_given(self) -> bool:
        """Was a client host given (not missing, empty or blank)? A rule that needs one refuses otherwise."""
        return bool(self.host and self.host.strip())

    @property
    def client_host(self) -> str:
        """The client host: ``--host`` when given, else this node (SPEC.md section 3)."""
        return self.host if self.host is not None and self.host_given else self.node


@dataclass(slots=True)
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
    # the root session a child shares (Genero RUN); None otherwise
    root: str | None = None
    client: str | None = None
    monitor: str | None = None
    pid: int | None = None
    # the project charged for the seat (the project of the session that opened it)
    seat_project: str | None = None
    detached: bool = False
    # the account that acquired it (None: not recorded, anyone may end it)
    uid: int | None = None
    # when the process ``pid`` started on ``node`` (lictools.host.Host.process_start), to tell a reused PID
    pid_start: int | None = None
    # the process that ran ``acquire`` (shown by ``info users`` without ``pid``; never checked by gc)
    caller_pid: int | None = None
    # the ``reserve`` policies (holder keys, ``user=alice``) it matched when it started: besides its
    # project's reservation, the reservations its seat may be charged to (lictools-policies(7))
    reserves: list[str] | None = None

    def to_doc(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SESSION_FIELDS}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Session:
        return cls(**{k: v for k, v in doc.items() if k in SESSION_FIELDS})


SESSION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Session))
"""Every field of a stored session, in order."""

REQUEST_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Request))
"""Every field of an acquire request, in order (a ``deny`` event carries them all)."""

SESSION_ATTRIBUTES = ("user", "host", "node", "app", "project", "client", "monitor", "terminal", "pid")
"""Session attributes a seat key may be built from (the generic rule's ``share=``)."""
