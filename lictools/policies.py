"""Pool policies, as FlexNet's options file and RLM's ISV options have them: who may use a feature
(``include`` / ``exclude``), how many seats one user, group or host may hold (``max``), and seats kept
for one (``reserve``); and the lictools groups they may name.

Plain decisions over a transaction: the engine asks :func:`refusal` before it grants a session and
journals the policy that refused it; :func:`reserves` tells which ``reserve`` policies a request may
draw on (the seat arithmetic itself is :mod:`lictools.admission`'s). The semantics, and why, are in
lictools-policies(7):

- ``exclude`` and ``include`` apply to every new session, one joining a seat in use included (FlexNet
  checks EXCLUDE on every checkout); ``exclude`` supersedes ``include``;
- ``max`` and ``reserve`` count seats, per feature, and apply only to a session that needs a new seat:
  joining a seat in use costs nothing (SPEC.md section 1);
- a group is a lictools group (``lictools group set``) when one has that name, else a Unix group.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, NamedTuple

from lictools import validate
from lictools.errors import UsageError
from lictools.host import same_machine
from lictools.model import POLICY_KINDS, POLICY_TARGETS, Policy, Pool, Session
from lictools.stores.api import StateView, Transaction

GROUP_SETTING = "group:"
"""Settings key prefix of a lictools group: ``group:designers`` -> the members as a JSON list."""

EVERY_USER = "*"
"""``max`` with user ``*``: a maximum for each user on their own (FlexNet ``USER ALL_USERS``, RLM ``user *``)."""


# --------------------------------------------------------------------------- groups
def groups(settings: dict[str, str]) -> dict[str, list[str]]:
    """The lictools groups (name -> members) kept in the state-wide settings."""
    return {key[len(GROUP_SETTING):]: json.loads(value) for key, value in sorted(settings.items())
            if key.startswith(GROUP_SETTING)}


def check_group_name(name: str) -> str:
    return validate.name(name, "group name")


def check_member(name: str) -> str:
    """A group member: a user name as ``--user`` takes it, without commas or spaces."""
    validate.text(name, "group member")
    if "," in name or any(c.isspace() for c in name):
        raise UsageError(f"group member {name[:40]!r} is not a user name (no commas or spaces)")
    return name


def unix_group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except (KeyError, UnicodeError, ValueError):
        return False
    return True


def in_unix_group(user: str, group: str) -> bool:
    """Is ``user`` a member of Unix group ``group``: listed in it, or the group is its primary group?"""
    import grp
    import pwd

    try:
        entry = grp.getgrnam(group)
    except (KeyError, UnicodeError, ValueError):
        return False
    if user in entry.gr_mem:
        return True
    try:
        return pwd.getpwnam(user).pw_gid == entry.gr_gid
    except (KeyError, UnicodeError, ValueError):
        return False


class Members:
    """Who is in which group, for one command: lictools groups first, then Unix groups (looked up once)."""

    def __init__(self, lictools_groups: dict[str, list[str]]) -> None:
        self.lictools = lictools_groups
        self._unix: dict[tuple[str, str], bool] = {}

    def contains(self, group: str, user: str) -> bool:
        if group in self.lictools:
            return user in self.lictools[group]
        key = (group, user)
        if key not in self._unix:
            self._unix[key] = in_unix_group(user, group)
        return self._unix[key]

    def known(self, group: str) -> bool:
        return group in self.lictools or unix_group_exists(group)


def members(tx: StateView) -> Members:
    return Members(groups(tx.get_settings()))


# --------------------------------------------------------------------------- policies
def make(kind: str, target: str, name: str, feature: str | None = None, count: int | None = None) -> Policy:
    """A policy from its parts, checked (UsageError naming what is wrong); the feature is checked by the caller."""
    if kind not in POLICY_KINDS:
        raise UsageError(f"unknown policy kind {kind!r}; known: {', '.join(POLICY_KINDS)}")
    if target not in POLICY_TARGETS:
        raise UsageError(f"a policy names a {' or '.join(POLICY_TARGETS)}, not {target!r}")
    if target == "group":
        check_group_name(name)
    elif target == "user" and name == EVERY_USER:
        if kind != "max":
            raise UsageError(f"user {EVERY_USER} (every user) is only for max policies")
    elif target == "user":
        check_member(name)
    else:
        validate.text(name, "host")
    if kind in ("max", "reserve"):
        if count is None:
            raise UsageError(f"a {kind} policy needs a count")
        validate.count(count, f"{kind} count")
        if kind == "reserve" and count == 0:
            raise UsageError("a reserve policy reserves at least 1 seat")
    elif count is not None:
        raise UsageError(f"a {kind} policy takes no count")
    if kind == "reserve" and feature is None:
        raise UsageError("a reserve policy names its feature")
    return Policy(kind, target, name, feature, count)


def applying(pool: Pool, feature: str, kinds: Iterable[str] = POLICY_KINDS) -> list[Policy]:
    """The policies of ``pool`` of these kinds that apply to ``feature`` (named, or every feature)."""
    wanted = set(kinds)
    return [p for p in pool.policies if p.kind in wanted and p.feature in (None, feature)]


def matches(policy: Policy, user: str, host: str, groups_: Members) -> bool:
    """Does ``policy`` name this user (or ``*``), their client host (as machines are named), or a group of theirs?"""
    if policy.target == "user":
        return policy.name in (user, EVERY_USER)
    if policy.target == "host":
        return same_machine(policy.name, host)
    return groups_.contains(policy.name, user)


def who(policy: Policy, user: str, host: str) -> str:
    """The one a policy counts for this request: ``user alice``, ``host ws12``, ``group designers``."""
    if policy.target == "user":
        return f"user {user}"
    return f"{policy.target} {policy.name}"


class Refusal(NamedTuple):
    """A policy that refused a request, and why in words."""

    policy: Policy
    reason: str


def access(pool: Pool, feature: str, user: str, host: str, groups_: Members) -> Refusal | None:
    """``exclude`` and ``include``: may this user, from this client host, use ``feature`` at all?

    Applies to every new session, joining a seat in use included. EXCLUDE supersedes INCLUDE; with an
    INCLUDE for the feature (or for every feature), only those it names may use it.
    """
    for policy in applying(pool, feature, ("exclude",)):
        if matches(policy, user, host, groups_):
            return Refusal(policy, f"{_requester(policy, user, host)} may not use {feature}")
    included = applying(pool, feature, ("include",))
    if included and not any(matches(p, user, host, groups_) for p in included):
        listed = ", ".join(p.text() for p in included)
        return Refusal(included[0], (
            f"only the users, hosts and groups an INCLUDE names may use {feature} ({listed}); "
            f"user {user} on host {host} is not among them"
        ))
    return None


def _requester(policy: Policy, user: str, host: str) -> str:
    if policy.target == "group":
        return f"user {user} (in group {policy.name})"
    return f"host {host}" if policy.target == "host" else f"user {user}"


def held_seats(sessions: Iterable[Session], policy: Policy, user: str, host: str, groups_: Members) -> int:
    """Seats in which a session of whom ``policy`` counts for this request holds a share."""
    if policy.name == EVERY_USER:
        return len({s.seat for s in sessions if s.user == user})
    return len({s.seat for s in sessions if matches(policy, s.user, s.host, groups_)})


def maximum(tx: StateView, pool: Pool, feature: str, user: str, host: str, groups_: Members
) -> Refusal | None:
    """``max``: would one more seat of ``feature`` take this user, group or host beyond its maximum?

    Counts the seats of the feature in which one of its sessions holds a share (a seat shared by two
    users counts for each). Asked only for a session that needs a new seat.
    """
    limits = [p for p in applying(pool, feature, ("max",)) if matches(p, user, host, groups_)]
    if not limits:
        return None
    everyone: list[Session] | None = None
    for policy in limits:
        if policy.target == "user":  # it names this user (or every user): only their own sessions count
            sessions = tx.find_sessions(pool=pool.name, feature=feature, user=user)
        else:
            everyone = everyone if everyone is not None else tx.find_sessions(pool=pool.name, feature=feature)
            sessions = everyone
        held = held_seats(sessions, policy, user, host, groups_)
        if held >= (policy.count or 0):
            return Refusal(policy, f"{who(policy, user, host)} already holds {held} {feature} seat(s), the most it allows")
    return None


def reserves(pool: Pool, feature: str, user: str, host: str, groups_: Members) -> list[str]:
    """The ``reserve`` policies of ``feature`` this request matches, as holder keys (``user=alice``), in the
    pool's order: the reservations besides its project's that its new seat may be taken from."""
    return [p.holder for p in applying(pool, feature, ("reserve",)) if matches(p, user, host, groups_)]


def reserve_policy(pool: Pool, feature: str, holder: str) -> Policy:
    """The ``reserve`` policy of ``feature`` whose holder key is ``holder``."""
    return next(p for p in applying(pool, feature, ("reserve",)) if p.holder == holder)


# --------------------------------------------------------------------------- views
def row(pool: str, policy: Policy) -> dict[str, Any]:
    """One row of ``policy list`` (its JSON shape)."""
    return {"pool": pool, "kind": policy.kind, "feature": policy.feature, "target": policy.target,
            "name": policy.name, "count": policy.count, "policy": policy.text()}
