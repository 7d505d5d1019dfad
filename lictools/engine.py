"""The counting engine: decisions over a store :class:`~lictools.stores.api.Transaction`.

Each function validates what it is asked, asks the product's rule for a seat key and
:mod:`lictools.admission` for capacity, then builds journal events (:mod:`lictools.events`) and
commits them (:func:`lictools.apply.commit`: apply + journal, in the same transaction). It never
changes state itself, never names a product, and never prints. Read views live in
:mod:`lictools.views`. What it needs from the machine (login, node, PIDs, ids) comes through a
:class:`~lictools.host.Host`, so tests and the simulator can run it without touching real processes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, ContextManager, Iterable, Literal, NamedTuple

from lictools import policies, validate
from lictools.admission import admit, charge_for, charges, holder_text, reserved_for_others, shared_capacity, shared_used
from lictools.apply import commit, session_from_grant
from lictools.errors import ForbiddenError, NotFoundError, UsageError
from lictools.events import (
    Dequeue, Queue,
    Actor, Config, Deny, Detach, End, Grant, GroupRemove, GroupSet, LicenseAdd, LicenseRemove, PolicyAdd, PolicyRemove,
    PoolAdd, PoolRemove, PoolSet, Recharge, Refresh, Reserve, VERSION, RequestPart, SessionPart, Stamp,
)
from lictools.host import SYSTEM, Host, same_machine
from lictools.model import License, Policy, Pool, Request, Session, Waiter
from lictools.rules import check_feature, check_options, detach_timeout, get_rule
from lictools.rules.base import Rule
from lictools.stores.api import StateView, Transaction
from lictools.timeutil import iso


# --------------------------------------------------------------------------- results
class Outcome(NamedTuple):
    """What ``acquire`` decided: granted (new seat or shared) or denied, and why."""

    granted: bool
    pool: str
    feature: str
    seat: str
    session: Session | None
    shared: bool
    reason: str
    issued: int
    in_use: int
    retry: bool = False
    denial_text: str | None = None
    holders: tuple[str, ...] = ()
    # the pool policy that refused it (None: granted, or refused for capacity)
    policy: Policy | None = None
    # refused for now but waiting in the pool's queue (acquire --wait): its place, 1 being next
    queued: int | None = None

    def to_doc(self) -> dict[str, Any]:
        """The ``acquire --format json`` object (SPEC.md section 3)."""
        s = self.session
        return {
            "session": s.id if s else None,
            "pool": self.pool,
            "feature": self.feature,
            "seat": self.seat,
            "shared": self.shared,
            "granted": self.granted,
            "expires": iso(s.expires) if s else None,
            "reason": self.reason,
            "issued": self.issued,
            "in_use": self.in_use,
            "policy": self.policy.to_doc() if self.policy else None,
        }


class Handled(NamedTuple):
    """What ``release`` / ``detach`` / ``refresh`` / ``remove`` did to the sessions they were given."""

    # the sessions handled: as they are after the change, or as they were when it ended them
    done: list[Session]
    # ids that name no live session (for refresh, also live but detached ones)
    missing: list[str]
    # ids in ``done`` whose seat was freed (they were its last session)
    freed: frozenset[str] = frozenset()
    # ids in ``missing`` that are live but detached: their user agent went away, refresh cannot extend them
    detached: frozenset[str] = frozenset()
    # sessions a removal matched but kept: younger than its ``min_age`` (RLM's MINREMOVE)
    kept: tuple[Session, ...] = ()


class LicenseResult(NamedTuple):
    """What ``license add`` did: ``loaded``, ``already-loaded`` or ``not-loaded`` (host lock elsewhere)."""

    status: str
    license: License
    message: str


class ReservationChange(NamedTuple):
    """One reservation to set: ``seats`` of ``feature`` for ``project`` (0 removes it)."""

    project: str
    feature: str
    seats: int


# --------------------------------------------------------------------------- helpers
def get_pool(tx: StateView, name: str) -> Pool:
    """The pool called ``name``; NotFoundError (exit 4) if there is none."""
    validate.name(name, "pool name")
    pool = tx.get_pool(name)
    if pool is None:
        raise NotFoundError(f"unknown pool {name!r}")
    return pool


def rule_of(pool: Pool) -> Rule:
    return get_rule(pool.product)


def _stamp(tx: Transaction) -> Stamp:
    """The fields every event starts with: schema version and the transaction's time."""
    return {"v": VERSION, "time": iso(tx.now) or "", "ts": round(tx.now, 6)}


def _actor(host: Host, actor: str | None) -> Actor:
    """Who does an admin change: the claimed name (``actor``, else the login name) and the real account."""
    uid, name = host.account()
    return {"by": actor or host.login_user(), "by_uid": uid, "by_user": name}


def _session_fields(session: Session) -> SessionPart:
    """A session's identity and attributes, as its events carry them."""
    return {
        "pool": session.pool, "feature": session.feature, "seat": session.seat, "session": session.id,
        "user": session.user, "host": session.host, "node": session.node, "terminal": session.terminal or None,
        "app": session.app, "project": session.project, "client": session.client, "monitor": session.monitor,
        "parent": session.parent, "root": session.root, "pid": session.pid, "uid": session.uid,
        "seat_project": session.seat_project, "pid_start": session.pid_start, "caller_pid": session.caller_pid,
    }


def _end(
    tx: Transaction, session: Session, kind: Literal["release", "expire", "remove"],
    reason: str | None = None, actor: Actor | None = None,
) -> bool:
    """End ``session`` with a ``release`` / ``expire`` / ``remove`` event; True when its seat was freed."""
    # as it is now: an earlier end in this transaction may have re-charged its seat; and on a database
    # store another command may have ended it since this one found it (then there is nothing to do)
    current = tx.get_session(session.id)
    if current is None:
        return False
    session = current
    event: End = {"event": kind, **_stamp(tx), **_session_fields(session), "reason": reason, **(actor or {})}
    commit(tx, event)
    return _settle_seat(tx, session)


def _settle_seat(tx: Transaction, ended: Session) -> bool:
    """After ``ended`` ended: True when its seat was freed.

    A seat still held stays charged to what one of its sessions may be charged to (its project, or a
    ``reserve`` policy it matched): when none of the sessions left may carry the seat's charge, journal
    a ``recharge`` (in this transaction) to what :func:`lictools.admission.charge_for` picks. Otherwise a
    grouped seat opened from a reservation would keep counting as that reservation while only others
    use it, and the reservation would stop protecting its holder (issue 10).
    """
    holders = tx.find_sessions(pool=ended.pool, feature=ended.feature, seat=ended.seat)
    if not holders:
        serve_queue(tx, ended.pool, ended.feature)  # the freed seat goes to the first waiter that may take it
        return True
    charged = holders[0].seat_project
    candidates = [charges(h.project, h.reserves) for h in holders]
    if any(charged in keys for keys in candidates):
        return False
    pool = get_pool(tx, ended.pool)
    reserved = pool.reserved(ended.feature)
    usage = tx.seats_by_project(pool.name, ended.feature)
    project = charge_for(candidates, reserved, usage)
    after = dict(usage)
    after[charged] = after.get(charged, 1) - 1
    after[project] = after.get(project, 0) + 1
    left = f"no session of {holder_text(charged)} holds seat {ended.seat} any more"
    if project and after[project] <= reserved.get(project, 0):
        whose = "whose sessions hold it" if "=" not in project else "which a session holding it matches"
        reason = (f"{left}; charged to {holder_text(project)}, {whose}, within its "
                  f"{reserved[project]} reserved seat(s)")
    else:
        reason = (f"{left}; charged to {holder_text(project)} of its oldest session, beyond the reservations "
                  "(no project holding it has a reserved seat free)")
        used, cap = shared_used(after, reserved), shared_capacity(pool.issued(ended.feature), reserved)
        if reserved and used > cap:
            reason += (f"; {used} seat(s) are now held beyond reservations where {cap} are shared: the seat stays "
                       "in use while its clients run, and no new seat beyond a reservation is granted until "
                       "enough of them end")
    event: Recharge = {"event": "recharge", **_stamp(tx), "pool": pool.name, "feature": ended.feature,
                       "seat": ended.seat, "seat_project": project, "previous_project": charged, "reason": reason}
    commit(tx, event)
    return False


def _request_fields(request: Request) -> RequestPart:
    """The whole request, as ``grant``, ``share`` and ``deny`` events carry it (``host``: the client host,
    this node when none was given)."""
    return {
        "pool": request.pool, "session": request.session, "user": request.user, "host": request.client_host,
        "node": request.node, "terminal": request.terminal or None, "app": request.app, "project": request.project,
        "parent": request.parent, "client": request.client, "monitor": request.monitor, "pid": request.pid,
        "uid": request.uid, "caller_pid": request.caller_pid,
    }


# --------------------------------------------------------------------------- expiry
def reap(tx: Transaction, host: Host = SYSTEM) -> list[Session]:
    """End every session whose lease ran out (journal ``expire``); run at the start of every command.

    Also ends dead local processes in pools with ``check_pids=yes``.
    """
    reaped = []
    for session in sorted(tx.expired_sessions(tx.now), key=lambda s: (s.expires or 0.0, s.id)):
        reason = "detached session timed out" if session.detached else "lease not refreshed"
        _end(tx, session, "expire", reason=reason)
        reaped.append(session)
    for pool in tx.list_pools():
        if pool.options.get("check_pids") == "yes":
            reaped.extend(drop_dead_processes(tx, pool.name, host))
        if pool.queue:
            _tidy_queue(tx, pool, host)
    return reaped


def drop_dead_processes(tx: Transaction, pool: str | None = None, host: Host = SYSTEM) -> list[Session]:
    """End sessions on this node whose ``--pid`` no longer runs (``fglWrt -u``); journal ``expire``.

    "This node" is compared as machines are named (:func:`lictools.host.same_machine`: no case, no
    DNS domain), so ``--node VM`` or ``--node vm.corp.local`` on host ``vm`` are checked. Only
    ``--pid`` is checked, never ``caller_pid``.
    """
    here = host.node()
    dropped = []
    for session in tx.find_sessions(**({"pool": pool} if pool else {})):
        if session.pid is None or not same_machine(session.node, here):
            continue
        reason = process_gone(host, session.pid, session.pid_start)
        if reason is None:
            continue
        _end(tx, session, "expire", reason=reason)
        dropped.append(session)
    return dropped


def process_gone(host: Host, pid: int, started: int | None) -> str | None:
    """Why the process ``pid`` (started at ``started``, when known) is gone from this machine, or None when it runs.

    A PID that now belongs to a process started later counts as gone: PIDs are reused.
    """
    if not host.pid_alive(pid):
        return f"process {pid} is gone"
    if started is not None and host.process_start(pid) != started:
        return f"process {pid} is gone (the PID now belongs to a process started later)"
    return None


# --------------------------------------------------------------------------- pools, licenses, settings
def add_pool(
    tx: Transaction,
    name: str,
    product: str,
    licenses: dict[str, int] | None = None,
    options: dict[str, str] | None = None,
    exist_ok: bool = False,
) -> Pool:
    """Create a pool; ``licenses`` loads one serial ``initial-<feature>`` per feature."""
    validate.name(name, "pool name")
    rule = get_rule(product)
    checked = check_options(rule, options or {})
    existing = tx.get_pool(name)
    if existing is not None:
        if exist_ok and existing.product == product:
            return existing
        raise UsageError(f"pool {name!r} already exists (product {existing.product})")
    issued: dict[str, int] = {}
    for feature, count in (licenses or {}).items():
        feature = check_feature(rule, feature)
        issued[feature] = validate.count(count, f"license count for {feature}")
    event: PoolAdd = {"event": "pool-add", **_stamp(tx), "pool": name, "product": product,
                      "options": checked, "issued": issued}
    commit(tx, event)
    return get_pool(tx, name)


def set_pool_options(tx: Transaction, name: str, options: dict[str, str], replace_all: bool = False) -> Pool:
    """Change pool options (checked against the product's option list); ``replace_all``: the options not
    given go back to their defaults."""
    pool = get_pool(tx, name)
    checked = check_options(rule_of(pool), options if replace_all else {**pool.options, **options})
    event: PoolSet = {"event": "pool-set", **_stamp(tx), "pool": name, "options": checked}
    commit(tx, event)
    return get_pool(tx, name)


def remove_pool(
    tx: Transaction, name: str, force: bool = False, actor: str | None = None, host: Host = SYSTEM
) -> list[Session]:
    """Delete a pool; with live sessions only when ``force`` (each is removed and journaled first)."""
    get_pool(tx, name)
    sessions = tx.find_sessions(pool=name)
    if sessions and not force:
        raise UsageError(f"pool {name!r} has {len(sessions)} live session(s); release them or use --force")
    who = _actor(host, actor)
    for waiter in get_pool(tx, name).queue:
        _dequeue(tx, name, waiter, "removed")
    for session in sessions:
        _end(tx, session, "remove", reason="pool removed", actor=who)
    event: PoolRemove = {"event": "pool-remove", **_stamp(tx), "pool": name, **who}
    commit(tx, event)
    return sessions


def add_license(
    tx: Transaction,
    pool_name: str,
    feature: str,
    count: int,
    serial: str | None = None,
    host_lock: str | None = None,
    this_host: str | None = None,
    host: Host = SYSTEM,
) -> LicenseResult:
    """Load a license: idempotent per serial; a host lock for another machine is not loaded.

    Without ``serial`` each call adds a new anonymous license (like a FlexNet INCREMENT line).
    """
    pool = get_pool(tx, pool_name)
    feature = check_feature(rule_of(pool), feature)
    validate.count(count, "license count")
    if serial is not None:
        validate.name(serial, "serial")
    if host_lock is not None:
        validate.text(host_lock, "--host-lock")
    serial = serial or f"anon-{len(pool.licenses) + 1}-{host.new_id()[:6]}"
    for loaded in pool.licenses:
        if loaded.serial == serial:
            return LicenseResult("already-loaded", loaded, f"serial {serial} is already loaded in pool {pool_name}; nothing changed")
    lic = License(serial, feature, count, host_lock, tx.now)
    here = this_host or host.node()
    if host_lock and not same_machine(host_lock, here):
        return LicenseResult(
            "not-loaded", lic, f"serial {serial} is locked to host {host_lock}, not this machine ({here}); not loaded"
        )
    issued = pool.issued(feature) + count
    event: LicenseAdd = {"event": "license-add", **_stamp(tx), "pool": pool_name, "feature": feature,
                         "serial": serial, "count": count, "issued": issued, "host_lock": host_lock}
    commit(tx, event)
    return LicenseResult("loaded", lic, f"loaded serial {serial}: {count} {feature} seat(s); issued now {issued}")


def set_license(
    tx: Transaction, pool_name: str, serial: str, feature: str, count: int, host_lock: str | None = None,
    host: Host = SYSTEM,
) -> LicenseResult:
    """Make serial ``serial`` load exactly ``count`` seats of ``feature`` (a site file's declaration):
    ``loaded``, ``changed`` (unloaded and loaded again with the new count, in this transaction),
    ``already-loaded`` (as declared: nothing journaled) or ``not-loaded`` (locked to another host; a
    copy loaded before is unloaded). UsageError when the pool's reservations would exceed its seats.
    """
    pool = get_pool(tx, pool_name)
    feature = check_feature(rule_of(pool), feature)
    validate.name(serial, "serial")
    validate.count(count, "license count")
    old = next((lic for lic in pool.licenses if lic.serial == serial), None)
    wanted = License(serial, feature, count, host_lock, tx.now)
    if old is not None and (old.feature, old.count, old.host_lock) == (feature, count, host_lock):
        return LicenseResult("already-loaded", old, f"serial {serial} is loaded as declared")
    here = host.node()
    locked_elsewhere = bool(host_lock) and not same_machine(host_lock or "", here)
    for changed in {feature, old.feature if old else feature}:
        left = pool.issued(changed) - (old.count if old and old.feature == changed else 0)
        left += count if changed == feature and not locked_elsewhere else 0
        reserved = sum(pool.reserved(changed).values())
        if reserved > left:
            raise UsageError(f"serial {serial}: {left} {changed} seat(s) would be issued, fewer than the {reserved} reserved")
    if old is not None:
        unload: LicenseRemove = {"event": "license-remove", **_stamp(tx), "pool": pool_name, "feature": old.feature,
                                 "serial": serial, "issued": pool.issued(old.feature) - old.count}
        commit(tx, unload)
    if locked_elsewhere:
        return LicenseResult("not-loaded", wanted, f"serial {serial} is locked to host {host_lock}, not this machine "
                                                   f"({here}); not loaded")
    issued = get_pool(tx, pool_name).issued(feature) + count
    event: LicenseAdd = {"event": "license-add", **_stamp(tx), "pool": pool_name, "feature": feature,
                         "serial": serial, "count": count, "issued": issued, "host_lock": host_lock}
    commit(tx, event)
    return LicenseResult("changed" if old else "loaded", wanted, f"serial {serial}: {count} {feature} seat(s); issued now {issued}")


def remove_license(tx: Transaction, pool_name: str, serial: str) -> License:
    """Unload one serial; refused when the remaining seats would not cover the reservations."""
    pool = get_pool(tx, pool_name)
    lic = next((lic for lic in pool.licenses if lic.serial == serial), None)
    if lic is None:
        raise NotFoundError(f"serial {serial!r} is not loaded in pool {pool_name}")
    left = pool.issued(lic.feature) - lic.count
    reserved = sum(pool.reserved(lic.feature).values())
    if reserved > left:
        raise UsageError(
            f"removing serial {serial} leaves {left} {lic.feature} seat(s), fewer than the {reserved} reserved"
        )
    event: LicenseRemove = {"event": "license-remove", **_stamp(tx), "pool": pool_name,
                            "feature": lic.feature, "serial": serial, "issued": left}
    commit(tx, event)
    return lic


def reserve(tx: Transaction, pool_name: str, project: str, feature: str, count: int) -> Pool:
    """Reserve ``count`` seats of ``feature`` for ``project`` (0 removes the reservation).

    Refused (exit 2) when the reservations would exceed the issued count.
    """
    pool = get_pool(tx, pool_name)
    feature = check_feature(rule_of(pool), feature)
    validate.name(project, "project")
    validate.count(count, "reserved count")
    others = sum(c for p, c in pool.reserved(feature).items() if p != project)
    issued = pool.issued(feature)
    if others + count > issued:
        raise UsageError(
            f"reserving {count} {feature} seat(s) for {project} would reserve {others + count}, "
            f"more than the {issued} issued in pool {pool_name}"
        )
    event: Reserve = {"event": "reserve", **_stamp(tx), "pool": pool_name, "feature": feature,
                      "project": project, "count": count}
    commit(tx, event)
    return get_pool(tx, pool_name)


class ReservationPlan(NamedTuple):
    """What a reservation import would do: the changes, decreases first, and the reservations after them."""

    changes: list[ReservationChange]
    # project -> feature -> reserved seats, once the changes are made
    reservations: dict[str, dict[str, int]]


def plan_reservations(pool: Pool, wanted: dict[str, dict[str, int]], replace_all: bool) -> ReservationPlan:
    """The reservations ``wanted`` would leave the pool with, and the changes that get there; changes nothing.

    ``replace_all`` also drops reservations of projects ``wanted`` does not name. UsageError when a
    feature is unknown or the result would reserve more than is issued (so an import is all or nothing).
    """
    rule = rule_of(pool)
    target: dict[str, dict[str, int]] = {} if replace_all else {p: dict(f) for p, f in pool.reservations.items()}
    for project, features in wanted.items():
        validate.name(project, "project")
        for feature, count in features.items():
            if count or feature in target.get(project, {}):
                check_feature(rule, feature)
            target.setdefault(project, {})[feature] = validate.count(count, "reserved count")
    problems = []
    for feature in sorted({f for per in target.values() for f in per}):
        total = sum(per.get(feature, 0) for per in target.values()) + _policy_reserved(pool, feature)
        if total > pool.issued(feature):
            problems.append(f"{feature}: {total} reserved > {pool.issued(feature)} issued")
    if problems:
        raise UsageError(f"reservations exceed the issued seats in pool {pool.name} ({'; '.join(problems)}); nothing changed")
    changes = []
    for project in sorted(set(target) | set(pool.reservations)):
        for feature in sorted(set(target.get(project, {})) | set(pool.reservations.get(project, {}))):
            old = pool.reservations.get(project, {}).get(feature, 0)
            new = target.get(project, {}).get(feature, 0)
            if old != new:
                changes.append((new - old, ReservationChange(project, feature, new)))
    kept = {p: {f: n for f, n in per.items() if n} for p, per in target.items()}
    # decreases first, so moving seats between projects never overshoots the issued count
    return ReservationPlan([change for _, change in sorted(changes, key=lambda c: c[0])], {p: per for p, per in kept.items() if per})


def set_reservations(tx: Transaction, pool_name: str, changes: Iterable[ReservationChange]) -> Pool:
    """Apply planned reservation changes (:func:`plan_reservations`), each journaled."""
    for change in changes:
        reserve(tx, pool_name, change.project, change.feature, change.seats)
    return get_pool(tx, pool_name)


def set_setting(tx: Transaction, key: str, value: str | None, actor: str | None = None, host: Host = SYSTEM) -> None:
    """Set (or, with None, clear) a state-wide setting; journaled with who did it."""
    event: Config = {"event": "config", **_stamp(tx), "key": key, "value": value, **_actor(host, actor)}
    commit(tx, event)


# --------------------------------------------------------------------------- policies and groups
def _policy_reserved(pool: Pool, feature: str, but: Policy | None = None) -> int:
    """Seats of ``feature`` that ``reserve`` policies keep (``but`` one of them left out)."""
    return sum(p.count or 0 for p in policies.applying(pool, feature, ("reserve",))
               if but is None or p.identity != but.identity)


def add_policy(tx: Transaction, pool_name: str, policy: Policy, actor: str | None = None, host: Host = SYSTEM) -> bool:
    """Add ``policy`` to the pool, or give the one of its kind, feature and target its count; False when the
    pool already has it as it is (nothing journaled).

    UsageError (exit 2): a feature the product does not have, a group that is neither a lictools group
    nor a Unix group, a ``reserve`` (its feature defaults to the product's only one) that would reserve
    more seats than are issued, projects' reservations included.
    """
    pool = get_pool(tx, pool_name)
    rule = rule_of(pool)
    if policy.feature is not None or policy.kind == "reserve":
        policy = replace(policy, feature=check_feature(rule, policy.feature))
    policy = policies.make(policy.kind, policy.target, policy.name, policy.feature, policy.count)
    if policy.target == "group" and not policies.members(tx).known(policy.name):
        raise UsageError(f"{policy.text()}: no lictools group or Unix group is called {policy.name!r} "
                         "(create it with 'lictools group set')")
    if policy in pool.policies:
        return False
    if policy.kind == "reserve" and policy.feature is not None:
        projects = sum(n for k, n in pool.reserved(policy.feature).items() if "=" not in k)
        total = projects + _policy_reserved(pool, policy.feature, but=policy) + (policy.count or 0)
        if total > pool.issued(policy.feature):
            raise UsageError(f"{policy.text()} would reserve {total} {policy.feature} seat(s), more than the "
                             f"{pool.issued(policy.feature)} issued in pool {pool.name}")
    event: PolicyAdd = {"event": "policy-add", **_stamp(tx), "pool": pool.name, "policy": policy.to_doc(),
                        **_actor(host, actor)}
    commit(tx, event)
    return True


def remove_policy(tx: Transaction, pool_name: str, policy: Policy, actor: str | None = None, host: Host = SYSTEM) -> Policy:
    """Remove the pool's policy of ``policy``'s kind, feature and target (its count is not compared);
    NotFoundError (exit 4) when it has none. Returns the policy removed."""
    pool = get_pool(tx, pool_name)
    if policy.feature is not None or policy.kind == "reserve":
        policy = replace(policy, feature=check_feature(rule_of(pool), policy.feature))
    found = next((p for p in pool.policies if p.identity == policy.identity), None)
    if found is None:
        raise NotFoundError(f"pool {pool.name} has no policy {replace(policy, count=None).text()}")
    event: PolicyRemove = {"event": "policy-remove", **_stamp(tx), "pool": pool.name, "policy": found.to_doc(),
                           **_actor(host, actor)}
    commit(tx, event)
    return found


def set_group(tx: Transaction, name: str, members: Iterable[str], actor: str | None = None, host: Host = SYSTEM) -> bool:
    """Create lictools group ``name`` or replace its members; False when it already has exactly these."""
    policies.check_group_name(name)
    wanted = sorted({policies.check_member(m) for m in members})
    if policies.groups(tx.get_settings()).get(name) == wanted:
        return False
    event: GroupSet = {"event": "group-set", **_stamp(tx), "group": name, "members": wanted, **_actor(host, actor)}
    commit(tx, event)
    return True


def remove_group(tx: Transaction, name: str, actor: str | None = None, host: Host = SYSTEM) -> None:
    """Delete lictools group ``name``: NotFoundError (exit 4) when there is none, UsageError (exit 2) while a
    policy names it (the policy would fall back to a Unix group of that name, or name nobody)."""
    policies.check_group_name(name)
    if name not in policies.groups(tx.get_settings()):
        raise NotFoundError(f"no lictools group called {name!r}")
    users = [f"{p.name}: {policy.text()}" for p in tx.list_pools() for policy in p.policies
             if policy.target == "group" and policy.name == name]
    if users:
        raise UsageError(f"group {name} is named by {len(users)} policy(ies) ({'; '.join(users[:3])}); remove them first")
    event: GroupRemove = {"event": "group-remove", **_stamp(tx), "group": name, **_actor(host, actor)}
    commit(tx, event)


# --------------------------------------------------------------------------- acquire
def _normalise(request: Request) -> None:
    validate.name(request.pool, "pool name")
    validate.name(request.session, "session id")
    for attr in ("user", "node"):
        validate.text(getattr(request, attr), f"--{attr}")
    if request.host_given:  # missing, empty or blank: the client runs on the node
        validate.text(request.host or "", "--host")
    for attr in ("app", "client", "monitor"):
        if getattr(request, attr) is not None:
            validate.text(getattr(request, attr), f"--{attr}")
    if request.project is not None:
        validate.name(request.project, "project")
    if request.parent is not None:
        validate.name(request.parent, "parent session id")
    for attr in ("pid", "caller_pid"):
        if getattr(request, attr) is not None:
            validate.count(getattr(request, attr), f"--{attr.replace('_', '-')}", 2**31 - 1)
    if request.lease is not None:
        validate.count(request.lease, "--lease", 315_360_000)


def acquire(
    tx: Transaction, request: Request, dry_run: bool = False, journal_denial: bool = True, host: Host = SYSTEM,
    admin: bool | Callable[[], bool] = True, wait: Wait | None = None,
) -> Outcome:
    """Grant, share or deny a seat for ``request``; idempotent by session id.

    A session whose seat key is already in use always joins it, even in a full pool, unless an
    ``exclude`` or ``include`` policy keeps its user or host from the feature (lictools-policies(7)). With
    ``dry_run`` nothing is written and nothing is journaled; ``journal_denial=False`` skips the
    ``deny`` event (for the queue deciding its waiters again). ``admin``: the caller may claim any
    ``--user`` and ``--parent`` even where the pool trusts no claims (``trust_claims=no``); a callable is
    asked only there (it reads the settings and may look up a group: no cost for other pools). ``wait``:
    a request refused for want of a seat waits in the pool's queue instead of being denied (the outcome
    says its place); asked again while it waits, it keeps its place (see :func:`acquire_waiting`).
    """
    _normalise(request)
    pool = get_pool(tx, request.pool)
    rule = rule_of(pool)
    if pool.options.get("trust_claims") == "no" and not (admin() if callable(admin) else admin):
        _check_claims(tx, pool, request, host)
    feature = check_feature(rule, request.feature)
    request = replace(request, feature=feature)
    issued = pool.issued(feature)

    existing = tx.get_session(request.session)
    if existing is not None:
        return _retry(tx, pool, request, existing, dry_run)
    place = _place(pool, feature, request.session)
    if place is not None and (wait is not None or dry_run):
        return _waiting(pool, feature, request.session, place, "it waits in the queue for a seat")

    seat = rule.seat_key(request, pool, tx)
    held = tx.count_seat_sessions(pool.name, feature, seat.key)
    usage = tx.seats_by_project(pool.name, feature)
    in_use = sum(usage.values())
    reserves: list[str] = []
    if pool.policies:
        members = policies.members(tx)
        refusal = policies.access(pool, feature, request.user, request.client_host, members)
        if refusal is None and not held:
            refusal = policies.maximum(tx, pool, feature, request.user, request.client_host, members)
            if refusal is not None and wait is not None and not dry_run:
                # MAX counts seats held: when one of them ends, the request may have its seat
                return _enqueue(tx, pool, request, feature, wait, f"{refusal.policy.text()}: {refusal.reason}")
        if refusal is not None:
            journaled = f"{refusal.policy.text()}: {refusal.reason}"
            return _deny(tx, pool, request, feature, seat.key, in_use, (f"denied by policy {journaled}", journaled),
                         refusal.policy, dry_run, journal_denial)
        reserves = policies.reserves(pool, feature, request.user, request.client_host, members)
    if held:
        holders = tx.find_sessions(pool=pool.name, feature=feature, seat=seat.key)
        shared, seat_project = True, holders[0].seat_project
        reason = f"shares seat {seat.key} already held by {len(holders)} session(s): {seat.why}; it costs no new seat"
    else:
        holders = []
        reserved = pool.reserved(feature)
        admission = admit(issued, reserved, usage, request.project, reserves)
        if not admission.granted:
            blocking = reserved_for_others(issued, reserved, usage, request.project, reserves,
                                           [p.holder for p in policies.applying(pool, feature, ("reserve",))])
            why = f"needs a new seat {seat.key}, no live session holds that key ({seat.why}), but {admission.reason}"
            if wait is not None and not dry_run:
                return _enqueue(tx, pool, request, feature, wait, admission.reason)
            if blocking:
                policy = policies.reserve_policy(pool, feature, blocking[0])
                others = f" (and {', '.join(holder_text(k) for k in blocking[1:])})" if blocking[1:] else ""
                reserved_text = f"{policy.text()}: the free seat(s) are reserved for {holder_text(blocking[0])}{others}"
                return _deny(tx, pool, request, feature, seat.key, in_use,
                             (f"denied by policy {reserved_text}; {why}", f"{reserved_text}; {admission.reason}"),
                             policy, dry_run, journal_denial)
            return _deny(tx, pool, request, feature, seat.key, in_use, (f"denied: {why}", admission.reason), None,
                         dry_run, journal_denial)
        shared, seat_project = False, admission.charge
        reason = f"new seat {seat.key} ({seat.why}), {admission.reason}"

    after = in_use + (0 if shared else 1)
    lease = request.lease if request.lease is not None else int(pool.options["lease"])
    # what the session takes from what it joins (a Genero RUN child: its root's client and monitor)
    counted = replace(request, **dict(seat.inherits))
    event: Grant = {
        "event": "share" if shared else "grant", **_stamp(tx), **_request_fields(counted), "feature": feature,
        "seat": seat.key, "root": seat.root, "seat_project": seat_project, "lease": lease, "in_use": after,
        "reserves": reserves or None,
    }
    if request.pid is not None and request.node == host.node():
        event["pid_start"] = host.process_start(request.pid)
    session = session_from_grant(event) if dry_run else commit(tx, event)
    return Outcome(True, pool.name, feature, seat.key, session, shared, reason, issued, after,
                   holders=tuple(h.id for h in holders))


def _deny(
    tx: Transaction, pool: Pool, request: Request, feature: str, seat: str, in_use: int, reasons: tuple[str, str],
    policy: Policy | None, dry_run: bool, journal_denial: bool,
) -> Outcome:
    """Refuse ``request``: journal a ``deny`` (unless ``dry_run`` or not ``journal_denial``) carrying the
    refusing ``policy``, or none for a capacity denial. ``reasons``: the outcome's and the journal's."""
    reason, journaled = reasons
    if not dry_run and journal_denial:
        deny: Deny = {"event": "deny", **_stamp(tx), **_request_fields(request), "feature": feature,
                      "seat": seat, "in_use": in_use, "reason": journaled,
                      "lease": request.lease, "policy": policy.to_doc() if policy else None}
        commit(tx, deny)
    # a policy denial is lictools' own, not the product's "user limit" text
    denial_text = None if policy else rule_of(pool).DENIAL_TEXT
    return Outcome(False, pool.name, feature, seat, None, False, reason, pool.issued(feature), in_use,
                   denial_text=denial_text, policy=policy)


def _check_claims(tx: Transaction, pool: Pool, request: Request, host: Host) -> None:
    """``trust_claims=no``: acquire only as your own account, and only below your own sessions (exit 7).

    Otherwise ``--user ltalice`` by Bob joins Alice's ``share=user`` seat for free, and ``--parent``
    with Alice's DVM joins her Genero seat.
    """
    uid, account = host.account()
    if request.user != account:
        raise ForbiddenError(
            f"pool {pool.name} takes no claimed --user (trust_claims=no): you are {account}, not {request.user}"
        )
    if request.parent is not None:
        parent = tx.get_session(request.parent)
        if parent is not None and parent.uid is not None and parent.uid != uid:
            raise ForbiddenError(
                f"pool {pool.name} takes no claimed --parent (trust_claims=no): session {parent.id} "
                f"belongs to another account (user {parent.user})"
            )


def _retry(tx: Transaction, pool: Pool, request: Request, existing: Session, dry_run: bool) -> Outcome:
    """The same ``--session`` asked again: the same grant, lease renewed (a login hook that ran twice)."""
    if (existing.pool, existing.feature) != (request.pool, request.feature):
        raise UsageError(f"session {request.session} already holds pool {existing.pool} feature {existing.feature}")
    if existing.uid is not None and request.uid is not None and existing.uid != request.uid:
        raise ForbiddenError(f"session {existing.id} belongs to another account (user {existing.user})")
    session: Session | None = existing
    if not dry_run:
        lease = existing.lease if request.lease is None else request.lease
        event: Refresh = {"event": "refresh", **_stamp(tx), "pool": existing.pool,
                          "feature": existing.feature, "session": existing.id, "lease": lease, "retry": True,
                          "reattached": True if existing.detached else None}
        session = commit(tx, event)
    return Outcome(
        True, pool.name, existing.feature, existing.seat, session, existing.shared,
        "this session already holds its seat (retry): same grant, lease renewed",
        pool.issued(existing.feature), tx.seats_in_use(pool.name, existing.feature), retry=True,
    )


# --------------------------------------------------------------------------- the queue (acquire --wait)
class Wait(NamedTuple):
    """How long a request may wait in its pool's queue, and which process waits (it leaves the queue when gone)."""

    until: float
    pid: int | None = None
    pid_start: int | None = None
    node: str | None = None


def _place(pool: Pool, feature: str, session: str) -> int | None:
    """The waiter's place in the feature's queue (1: next), or None when it does not wait."""
    for place, waiter in enumerate(pool.waiting(feature), 1):
        if waiter.session == session:
            return place
    return None


def _waiting(pool: Pool, feature: str, session: str, place: int, why: str) -> Outcome:
    return Outcome(False, pool.name, feature, "", None, False,
                   f"queued: {why} ({place} of {len(pool.waiting(feature))} waiting for {feature} in pool {pool.name})",
                   pool.issued(feature), 0, queued=place)


def _enqueue(tx: Transaction, pool: Pool, request: Request, feature: str, wait: Wait, why: str) -> Outcome:
    """The request found no seat: it waits at the end of the feature's queue (journal ``queue``)."""
    place = len(pool.waiting(feature)) + 1
    event: Queue = {"event": "queue", **_stamp(tx), **_request_fields(request), "feature": feature,
                    "lease": request.lease, "reason": why, "until": iso(wait.until) or "", "until_ts": wait.until,
                    "position": place, "waiter_pid": wait.pid, "waiter_pid_start": wait.pid_start,
                    "waiter_node": wait.node}
    commit(tx, event)
    return _waiting(get_pool(tx, pool.name), feature, request.session, place, why)


def _dequeue(tx: Transaction, pool: str, waiter: Waiter, reason: Literal["granted", "timed out", "waiter gone", "removed"]) -> None:
    event: Dequeue = {"event": "dequeue", **_stamp(tx), "pool": pool, "feature": waiter.feature,
                      "session": waiter.session, "reason": reason, "waited": round(tx.now - waiter.queued, 3)}
    commit(tx, event)


def serve_queue(tx: Transaction, pool_name: str, feature: str) -> list[Session]:
    """Give seats to the feature's waiters in arrival order, each that may have one now (journal ``grant``
    or ``share`` and ``dequeue``). A waiter that may not (its seat would be another project's reserved one,
    its user is at a MAX) keeps its place, and a later one that may is served: no request ever takes a seat
    an earlier waiter could have had. Called whenever a seat frees, and at the start of every command."""
    pool = tx.get_pool(pool_name)
    served: list[Session] = []
    for waiter in (pool.waiting(feature) if pool else []):
        if waiter.until <= tx.now:
            continue  # timed out: the next reap says so
        outcome = acquire(tx, Request(**waiter.request), journal_denial=False)
        if outcome.granted and outcome.session is not None:
            _dequeue(tx, pool_name, waiter, "granted")
            served.append(outcome.session)
    return served


def _tidy_queue(tx: Transaction, pool: Pool, host: Host) -> None:
    """Waiters whose time ran out leave the queue denied; waiters whose process on this node is gone
    leave it; then whoever may have a seat now gets it (a license loaded, a reservation changed)."""
    here = host.node()
    current = tx.get_pool(pool.name)  # as this transaction may change it (a database store locks it here)
    if current is None:
        return
    pool = current
    for waiter in pool.queue:
        if waiter.until <= tx.now:
            _time_out(tx, pool, waiter)
        elif waiter.pid is not None and waiter.node is not None and same_machine(waiter.node, here) and \
                process_gone(host, waiter.pid, waiter.pid_start) is not None:
            _dequeue(tx, pool.name, waiter, "waiter gone")
    for feature in dict.fromkeys(w.feature for w in pool.queue):
        serve_queue(tx, pool.name, feature)


def _time_out(tx: Transaction, pool: Pool, waiter: Waiter) -> None:
    """The waiter's time ran out: it leaves the queue, and its request is journaled as denied."""
    _dequeue(tx, pool.name, waiter, "timed out")
    waited = round(tx.now - waiter.queued)
    request = Request(**waiter.request)
    in_use = tx.seats_in_use(pool.name, waiter.feature)
    _deny(tx, pool, request, waiter.feature, "", in_use,
          ("", f"waited {waited} s in the queue and no seat it may take was freed ({in_use} of "
               f"{pool.issued(waiter.feature)} in use)"), None, False, True)


def give_up(tx: Transaction, pool_name: str, feature: str, session: str) -> Outcome | None:
    """A waiter whose time is up: out of the queue, denied (None when it got its seat meanwhile)."""
    live = tx.get_session(session)
    pool = get_pool(tx, pool_name)
    if live is not None:
        return Outcome(True, pool.name, feature, live.seat, live, live.shared, "granted from the queue",
                       pool.issued(feature), tx.seats_in_use(pool.name, feature))
    for waiter in pool.waiting(feature):
        if waiter.session == session:
            _time_out(tx, pool, waiter)
    in_use = tx.seats_in_use(pool.name, feature)
    return Outcome(False, pool.name, feature, "", None, False,
                   f"denied: waited in the queue and no seat it may take was freed ({in_use} of "
                   f"{pool.issued(feature)} in use)", pool.issued(feature), in_use,
                   denial_text=rule_of(pool).DENIAL_TEXT)


def acquire_waiting(
    open_transaction: Callable[[], ContextManager[Transaction]],
    request: Request,
    wait: float,
    admin: Callable[[Transaction], bool] = lambda tx: True,
    waiter: Wait = Wait(0.0),
    open_view: Callable[[], ContextManager[StateView]] | None = None,
    sleep: Callable[[float], None] | None = None,
    monotonic: Callable[[], float] | None = None,
    poll: float = 1.0,
    queued: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Acquire; when no seat is free, wait up to ``wait`` seconds in the pool's queue for one.

    The request takes its place in one transaction; the seat is then handed to it by whichever command
    frees one (in that command's transaction, so nobody arriving later can take it first). Meanwhile
    this process sleeps, and every ``poll`` seconds reads (``open_view``, a read-only snapshot where the
    store has one) whether its session exists. At the end of its time it leaves the queue, denied.
    """
    import time

    sleep = sleep or time.sleep
    monotonic = monotonic or time.monotonic
    view = open_view or open_transaction
    deadline = monotonic() + wait
    with open_transaction() as tx:
        outcome = acquire(tx, request, admin=lambda: admin(tx),
                          wait=waiter._replace(until=tx.now + wait) if wait > 0 else None)
    if outcome.queued is None:
        return outcome  # granted, shared, or refused in a way waiting cannot change
    if queued is not None:
        queued(outcome)
    feature = outcome.feature
    while monotonic() < deadline:
        sleep(min(poll, max(0.0, deadline - monotonic())))
        with view() as tx:
            session = tx.get_session(request.session)
            pool = tx.get_pool(request.pool)
            if session is not None:
                return Outcome(True, request.pool, feature, session.seat, session, session.shared,
                               f"granted from the queue: {session.seat}", pool.issued(feature) if pool else 0,
                               tx.seats_in_use(request.pool, feature))
            if pool is None or _place(pool, feature, request.session) is None:
                break  # timed out (by another command's reap) or its pool removed
    with open_transaction() as tx:
        last = give_up(tx, request.pool, feature, request.session)
    assert last is not None
    return last


# --------------------------------------------------------------------------- ending and extending
def _lookup(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> tuple[list[Session], list[str]]:
    """The live sessions named by ``ids`` and the ids not found.

    With ``uid`` (a non-admin caller) every session must have been acquired by that account,
    else ForbiddenError (exit 7) before anything changes.
    """
    found: list[Session] = []
    missing: list[str] = []
    for session_id in dict.fromkeys(ids):  # an id given twice is handled once
        session = tx.get_session(session_id) if isinstance(session_id, str) and session_id.isprintable() else None
        if session is None:
            missing.append(session_id)
        else:
            found.append(session)
    if uid is not None:
        for session in found:
            if session.uid is not None and session.uid != uid:
                raise ForbiddenError(f"session {session.id} belongs to another account (user {session.user})")
    return found, missing


def release(
    tx: Transaction, ids: Iterable[str], actor: str | None = None, uid: int | None = None
) -> Handled:
    """End sessions now. The seat frees with its last session. ``uid``: only that account's sessions."""
    found, missing = _lookup(tx, ids, uid)
    freed = frozenset(s.id for s in found if _end(tx, s, "release", actor={"by": actor} if actor else None))
    return Handled(found, missing, freed)


def detach(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> Handled:
    """The user agent went away: keep each session until its pool's detach timeout, then free it."""
    found, missing = _lookup(tx, ids, uid)
    done, freed = [], set()
    for listed in found:
        session = tx.get_session(listed.id) or listed  # its seat may have been re-charged meanwhile
        pool = get_pool(tx, session.pool)
        linger = detach_timeout(pool)
        event: Detach = {"event": "detach", **_stamp(tx), **_session_fields(session)}
        event["linger"] = linger
        if linger == 0:
            event["reason"] = "no detach timeout: seat freed now"
        changed = commit(tx, event)
        done.append(changed or session)
        if changed is None and _settle_seat(tx, session):
            freed.add(session.id)
    return Handled(done, missing, frozenset(freed))


def refresh(tx: Transaction, ids: Iterable[str], uid: int | None = None) -> Handled:
    """Extend leases by each session's lease; unknown, expired or detached ids are returned as missing."""
    found, missing = _lookup(tx, ids, uid)
    done, detached = [], set()
    for session in found:
        if session.detached:
            missing.append(session.id)
            detached.add(session.id)
            continue
        event: Refresh = {"event": "refresh", **_stamp(tx), "pool": session.pool,
                          "feature": session.feature, "session": session.id}
        done.append(commit(tx, event) or session)
    return Handled(done, missing, detached=frozenset(detached))


def remove(
    tx: Transaction,
    ids: Iterable[str] = (),
    user: str | None = None,
    host: str | None = None,
    pool: str | None = None,
    actor: str | None = None,
    machine: Host = SYSTEM,
    pid: int | None = None,
    node: str | None = None,
    everything: bool = False,
    min_age: float = 0.0,
) -> Handled:
    """Admin forced release: by ids (FlexNet ``lmremove``), every session of a user or client host,
    of a process (``pid`` on ``node``, default this node: ``fglWrt -x``), or ``everything`` in ``pool``
    (``fglWrt -i``). Sessions younger than ``min_age`` seconds are kept (RLM's MINREMOVE) and returned
    as ``kept``. With ``pool``, ids of sessions in other pools are reported as not found.

    ``host`` and ``node`` match the machine, not the text (:func:`lictools.host.same_machine`):
    ``HOST1`` also removes a session recorded as ``host1.corp.local``, as both are device ``HOST1``
    of an AVEVA device ID.
    """
    if everything and pool is None:
        raise UsageError("removing every session needs a pool (--pool POOL --all)")
    if pool is not None:
        get_pool(tx, pool)
    found, missing = _lookup(tx, ids)
    if pool is not None:
        missing.extend(s.id for s in found if s.pool != pool)
        found = [s for s in found if s.pool == pool]
    if pid is not None:
        validate.count(pid, "--pid", 2**31 - 1)
    for text, what in ((host, "--host"), (node, "--node")):
        if text is not None:
            validate.text(text, what)
    if user is not None or host is not None or pid is not None or everything:
        criteria = {k: v for k, v in (("user", user), ("pid", pid), ("pool", pool)) if v is not None}
        process_node = (node or machine.node()) if pid is not None else None
        found.extend(
            s for s in tx.find_sessions(**criteria)
            if (host is None or same_machine(s.host, host))
            and (process_node is None or same_machine(s.node, process_node))
        )
    matched = list({s.id: s for s in found}.values())
    kept = tuple(s for s in matched if tx.now - s.started < min_age)
    done = [s for s in matched if s not in kept]
    who = _actor(machine, actor)
    freed = frozenset(s.id for s in done if _end(tx, s, "remove", actor=who))
    return Handled(done, missing, freed, kept=kept)
