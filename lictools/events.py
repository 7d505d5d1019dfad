"""The journal's events: one typed record per kind, whose keys are the keys of its JSON line.

Every state change is one of these. The engine decides and builds the event; :func:`lictools.apply.apply`
is the one function that turns an event into state, in the same transaction that journals it; replay,
audit, ``explain`` and reports read the same records back. The records are ``TypedDict``s: mypy checks
every key where one is built or read, and at run time an event is the plain dict that becomes the JSON
line (a ``TypedDict`` costs nothing to import, unlike a dataclass per kind).

A key whose value is None is left out of the JSON line (``None`` and "absent" read the same); times are
``time`` (ISO 8601, to the second, for people) and ``ts`` (epoch seconds to the microsecond, for
programs). ``v`` is the schema version of the line: lines written before it existed carry no ``v`` and
read as version 0, which differs from 1 only in what 1 added (``v``; ``linger`` on ``detach``;
``host_lock`` on ``license-add``; the whole request on ``deny``; ``by_uid``/``by_user`` beside ``by``).
Version 2 adds the ``recharge`` kind (an event that ends a session is followed, in the same
transaction, by the ``recharge`` of its seat when the seat stays held but no session of the project
it was charged to is left) and ``caller_pid`` on session events.

Pool policies and lictools groups (lictools-policies(7)) add, within version 2, the kinds
``policy-add``, ``policy-remove``, ``group-set`` and ``group-remove``, ``reserves`` on ``grant`` and
``share``, and ``policy`` on ``deny``: a denial carrying ``policy`` was refused by that pool policy,
one without it by capacity (no seat free, or the free ones reserved for projects).
"""

from typing import Any, Literal, NotRequired, Required, TypedDict, Union

VERSION = 2
"""The ``v`` written on every journal line."""


class Stamp(TypedDict):
    """What every event starts with: the schema version and the time of its transaction."""

    v: int
    time: str
    ts: float


class Actor(TypedDict, total=False):
    """Who ran an admin change: the name the caller claims (``$LOGNAME``) and the account it really is."""

    by: str | None
    by_uid: int | None
    by_user: str | None


class _Attributes(TypedDict, total=False):
    """What a session (or a request for one) says about the client: the attributes rules key on."""

    user: Required[str]
    host: Required[str]
    node: Required[str]
    terminal: bool | None
    app: str | None
    project: str | None
    parent: str | None
    client: str | None
    monitor: str | None
    pid: int | None
    uid: int | None
    caller_pid: int | None


class RequestPart(_Attributes):
    """A request for a seat as ``grant``, ``share`` and ``deny`` carry it (with ``feature`` and ``lease``)."""

    pool: str
    session: str


class SessionPart(_Attributes):
    """A live session as its events name it: where, which seat, and the client's attributes."""

    pool: str
    feature: str
    session: str
    seat: str
    root: NotRequired[str | None]
    seat_project: NotRequired[str | None]
    # when the process ``pid`` started (to tell a reused PID), recorded for a process on this node
    pid_start: NotRequired[int | None]


class _SessionEvent(Stamp, SessionPart):
    # seats in use in the pool feature after the event
    in_use: NotRequired[int]


# --------------------------------------------------------------------------- pools, licenses, settings
class PoolAdd(Stamp):
    event: Literal["pool-add"]
    pool: str
    product: str
    options: dict[str, str]
    # feature -> seats, each loaded as serial ``initial-<feature>``
    issued: dict[str, int]


class PoolSet(Stamp):
    event: Literal["pool-set"]
    pool: str
    options: dict[str, str]


class PoolRemove(Stamp, Actor):
    event: Literal["pool-remove"]
    pool: str


class LicenseAdd(Stamp):
    event: Literal["license-add"]
    pool: str
    feature: str
    serial: str
    count: int
    issued: int
    host_lock: NotRequired[str | None]


class LicenseRemove(Stamp):
    event: Literal["license-remove"]
    pool: str
    feature: str
    serial: str
    issued: int


class Reserve(Stamp):
    event: Literal["reserve"]
    pool: str
    feature: str
    project: str
    # 0 removes the reservation
    count: int


class PolicyAdd(Stamp, Actor):
    """A pool policy added, or (same kind, feature and target) its count changed; ``policy`` is its document
    (:meth:`lictools.model.Policy.to_doc`: ``{"kind": "max", "user": "alice", "count": 2}``)."""

    event: Literal["policy-add"]
    pool: str
    policy: dict[str, Any]


class PolicyRemove(Stamp, Actor):
    event: Literal["policy-remove"]
    pool: str
    policy: dict[str, Any]


class GroupSet(Stamp, Actor):
    """A lictools group created or its members replaced."""

    event: Literal["group-set"]
    group: str
    members: list[str]


class GroupRemove(Stamp, Actor):
    event: Literal["group-remove"]
    group: str


class Config(Stamp, Actor):
    event: Literal["config"]
    key: str
    # None clears the setting
    value: NotRequired[str | None]


# --------------------------------------------------------------------------- sessions
class Grant(_SessionEvent):
    """A new session: ``grant`` opened a seat, ``share`` joined one already held."""

    event: Literal["grant", "share"]
    lease: int
    expires: NotRequired[str | None]
    # the ``reserve`` policies the request matched (holder keys): what its seat may also be charged to
    reserves: NotRequired[list[str] | None]


class Deny(Stamp, _Attributes):
    """A refused request, with the whole request so that it can be re-keyed later (simulate, explain)."""

    event: Literal["deny"]
    pool: str
    feature: str
    session: str
    seat: str
    in_use: int
    reason: str
    lease: NotRequired[int | None]
    # the pool policy that refused it (its document); absent: refused for capacity
    policy: NotRequired[dict[str, Any] | None]


class Refresh(Stamp):
    """A lease extended; ``retry``: a repeated acquire (may carry a new ``lease``, re-attaches a detached session)."""

    event: Literal["refresh"]
    pool: str
    feature: str
    session: str
    expires: NotRequired[str | None]
    lease: NotRequired[int | None]
    retry: NotRequired[bool | None]
    reattached: NotRequired[bool | None]


class Detach(_SessionEvent):
    """The user agent went away: kept ``linger`` seconds (with ``expires``), or ended now (without)."""

    event: Literal["detach"]
    linger: NotRequired[int | None]
    expires: NotRequired[str | None]
    reason: NotRequired[str | None]


class End(_SessionEvent, Actor):
    """A session ended: released by its client, expired (lease or process gone), removed by an admin."""

    event: Literal["release", "expire", "remove"]
    reason: NotRequired[str | None]


class Recharge(Stamp):
    """A held seat is charged to another project from now on: the last session of the project it was
    charged to ended while sessions of other projects still hold it (version 2).

    ``seat_project`` is the project charged from this event on (absent: no project), ``previous_project``
    the one charged before (absent: none). Every live session of the seat now carries the new
    ``seat_project``, so the events that end them say it too.
    """

    event: Literal["recharge"]
    pool: str
    feature: str
    seat: str
    seat_project: NotRequired[str | None]
    previous_project: NotRequired[str | None]
    reason: str


class Queue(Stamp, _Attributes):
    """A request that found no seat and waits for one (``acquire --wait``), with the whole request."""

    event: Literal["queue"]
    pool: str
    feature: str
    session: str
    lease: NotRequired[int | None]
    # why it could not have a seat now
    reason: str
    # when it stops waiting (ISO 8601, and epoch seconds)
    until: str
    until_ts: float
    # its place in the feature's queue (1: next)
    position: int
    # the waiting lictools process: when it is gone, so is the waiter
    waiter_pid: NotRequired[int | None]
    waiter_pid_start: NotRequired[int | None]
    waiter_node: NotRequired[str | None]


class Dequeue(Stamp):
    """A waiter left the queue: ``granted`` (a ``grant`` of its session comes with it), ``timed out``
    (a ``deny`` comes with it), ``waiter gone`` (its process ended) or ``removed`` (its pool went)."""

    event: Literal["dequeue"]
    pool: str
    feature: str
    session: str
    reason: Literal["granted", "timed out", "waiter gone", "removed"]
    # seconds it waited
    waited: float


Event = Union[
    PoolAdd, PoolSet, PoolRemove, LicenseAdd, LicenseRemove, Reserve, Config, Grant, Deny, Refresh, Detach, End, Recharge,
    PolicyAdd, PolicyRemove, GroupSet, GroupRemove, Queue, Dequeue,
]

KINDS: dict[str, type] = {
    "pool-add": PoolAdd,
    "pool-set": PoolSet,
    "pool-remove": PoolRemove,
    "license-add": LicenseAdd,
    "license-remove": LicenseRemove,
    "reserve": Reserve,
    "config": Config,
    "grant": Grant,
    "share": Grant,
    "deny": Deny,
    "refresh": Refresh,
    "detach": Detach,
    "release": End,
    "expire": End,
    "remove": End,
    "recharge": Recharge,
    "policy-add": PolicyAdd,
    "policy-remove": PolicyRemove,
    "group-set": GroupSet,
    "group-remove": GroupRemove,
    "queue": Queue,
    "dequeue": Dequeue,
}
"""Every event kind and its record."""

SESSION_KINDS = frozenset({"grant", "share", "deny", "refresh", "detach", "release", "expire", "remove"})
"""Kinds about one session (they carry ``session``)."""


def ends_session(event: Event | dict[str, Any]) -> bool:
    """Does this event end its session? release, expire, remove, and a detach with no timeout.

    A detach with ``linger`` 0 ends it (a version-0 line says so by having no ``expires``).
    """
    kind = event.get("event")
    if kind == "detach":
        linger = event.get("linger")
        return event.get("expires") is None if linger is None else linger == 0
    return kind in ("release", "expire", "remove")


def missing_keys(event: dict[str, Any]) -> list[str]:
    """The keys this event's kind requires and it lacks (``v`` aside: a version-0 line has none)."""
    record = KINDS.get(str(event.get("event")))
    if record is None:
        return []
    required: frozenset[str] = record.__required_keys__  # type: ignore[attr-defined]
    return sorted(k for k in required if k not in event and k not in ("v", "time"))


def to_line(event: Event | dict[str, Any]) -> dict[str, Any]:
    """The JSON-line form: keys with None values left out."""
    return {k: v for k, v in event.items() if v is not None}
