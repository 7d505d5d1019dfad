"""Property-based tests of the engine: hypothesis state machines, one per product rule and store.

Any sequence of acquire / release / detach / refresh / admin remove / clock advance (expiry) /
reservation changes / license loads / pool option changes must keep, after every step:

- seats in use <= issued, for every feature;
- the reservation invariant (issue 10): seats held beyond their projects' reservations <= issued -
  sum(reservations), i.e. every unused reservation has a free seat. Its two exceptions, and only they,
  may raise the excess: a reservation made while others hold the seats (it evicts nobody), and a
  forced recharge (a grouped seat left by its charged project, kept by clients of projects with no
  reserved seat free), by one seat per such recharge; no other step raises it;
- every seat is charged to the project of one of the sessions holding it (a seat left by its charged
  project is re-charged to a holder's, one with a reserved seat free first: the model does it too);
- seats in use == the number of distinct seat keys among live sessions;
- a session whose seat key is already held is never denied, and a new seat is opened only when
  the counting rules allow it (checked against an independent model written from SPEC.md);
- the live sessions, their seats, expiry and detached state are those of the model;
- journal replay == state (lictools.replay);
- pool policies (issue 13) decide as an independent model of lictools-policies(7) says: EXCLUDE then
  INCLUDE refuse any new session (a join included), MAX refuses a new seat when the user, lictools
  group or host already holds that many seats of the feature, RESERVE policies are reservations whose
  holders draw on them after their project's, and a denial names the keyword that refused it (a
  refusal only RESERVE policies cause is theirs). The machine adds, changes and removes policies and
  lictools groups as it goes.

The machine runs for every product in lictools.rules.RULES (read at run time), with request
attributes drawn to exercise each rule: host/node/terminal for aveva-batch, parent/client/monitor
for genero, project/app/host (and the version option) for magic-xpa, any attribute and any
``share=`` for generic. Invalid combinations (UsageError, NotFoundError) are legitimate answers,
and must change nothing; for the products the model knows, they must be exactly the ones the
model expects. The stores: lictools' MemoryStore (fast, many examples) and the SQLite store in a
temporary folder (fewer examples).

The machines also exercise the four engine gaps these tests once found, now fixed (each keeps a
test below or in tests/test_replay.py): a retried acquire is journaled; a reservation the usage
does not fit never lets the pool grant beyond its issued count; a reused genero root id takes its
own seat; generic ``share=`` values holding ``,`` and ``=`` give distinct keys.

LICTOOLS_PROPERTY_EXAMPLES scales the number of examples (default 1.0);
LICTOOLS_PROPERTY_AVOID=retry,reserve,reuse,share-key steers around those cases (to isolate a
failure in something else).
A failing sequence is printed as found: shrinking a stateful failure can take minutes, so it is
off unless LICTOOLS_PROPERTY_SHRINK=1.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from lictools import engine, replay
from lictools.errors import NotFoundError, UsageError
from lictools.model import Policy, Request
from lictools.rules import RULES, get_rule
from lictools.stores.memory import MemoryStore
from tests.seeds import commit_seed

SCALE = float(os.environ.get("LICTOOLS_PROPERTY_EXAMPLES", "1.0"))
_AVOIDED = {g.strip() for g in os.environ.get("LICTOOLS_PROPERTY_AVOID", "").split(",") if g.strip()}


def avoid(gap: str) -> bool:
    """True when LICTOOLS_PROPERTY_AVOID names this case (retry, reserve, reuse, share-key)."""
    return gap in _AVOIDED
EXAMPLES = {"memory": max(1, int(70 * SCALE)), "sqlite": max(1, int(8 * SCALE))}
STEPS = {"memory": 40, "sqlite": 25}
START = 1_795_000_000.123456
POOL = "P"
STATS: Counter = Counter()

USERS = ["alice", "bob", "x", "x,host=y"]
HOSTS = ["h1", "H1", "h2.corp.example", "y,host=h1"]
if avoid("share-key"):  # generic share=user,host: ("x,host=y", "h1") and ("x", "y,host=h1") get one key
    USERS, HOSTS = [u for u in USERS if "=" not in u], [h for h in HOSTS if "=" not in h]
NODES = ["bmc1", "BMC1", "bmc2.corp.example"]
NO_HOST = [None, ""]  # --host not given (or empty): the node, except for a terminal server session
PROJECTS = [None, None, "pa", "pb"]
APPS = [None, "a1", "a2"]
GENERO_CLIENTS = [None, "gdc", "gjc", "gwc", "gbc", "gdc-http", "tui", "bogus"]
MONITORS = [None, "m1", "m2", "localhost:1", ":1", " "]
NODE_RELATIVE = ("localhost:1", ":1")  # the monitors above that name an address of the DVM's node
LEASES = [None, None, 0, 30, 600]
SHARES = ["", "user", "host", "user,host", "project", "app,terminal", "client,monitor", "node,pid"]


# --------------------------------------------------------------------------- stores
class MemoryBackend:
    """lictools' MemoryStore: a failed transaction rolls back (undo log), the journal is kept in memory."""

    kind = "memory"

    def __init__(self) -> None:
        self.now = 0.0
        self.store = MemoryStore(clock=lambda: self.now)

    @contextmanager
    def transaction(self, now: float):
        self.now = now
        with self.store.transaction() as tx:
            yield tx

    view = transaction  # nothing is written when nothing changes

    def compare(self, now: float) -> list[str]:
        self.now = now
        return replay.compare(self.store)

    def close(self) -> None:
        pass


class SqliteBackend:
    """The SQLite store in a temporary folder; the clock through LICTOOLS_NOW."""

    kind = "sqlite"

    def __init__(self) -> None:
        from lictools.stores import open_store

        self.folder = tempfile.mkdtemp(prefix="lictools-prop-")
        self.store = open_store(os.path.join(self.folder, "state.db"), 5)
        self.saved_now = os.environ.get("LICTOOLS_NOW")

    @contextmanager
    def transaction(self, now: float):
        os.environ["LICTOOLS_NOW"] = repr(now)
        with self.store.transaction() as tx:
            yield tx

    view = transaction  # nothing is written when nothing changes

    def compare(self, now: float) -> list[str]:
        os.environ["LICTOOLS_NOW"] = repr(now)
        return replay.compare(self.store)

    def close(self) -> None:
        if self.saved_now is None:
            os.environ.pop("LICTOOLS_NOW", None)
        else:
            os.environ["LICTOOLS_NOW"] = self.saved_now
        shutil.rmtree(self.folder, ignore_errors=True)


# --------------------------------------------------------------------------- the model
class MSession:
    """What the model knows of a live session."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _device(name: str) -> str:
    return name.split(".")[0].upper()


def _client_host(req: Request) -> str:
    return req.host if req.host and req.host.strip() else req.node


class Model:
    """SPEC.md's counting rules, written independently of the rule modules.

    ``seat_class`` says which sessions must share a seat: two sessions share one exactly when
    their classes are equal. Classes hold a unique token per root session, not its id, so a
    reused session id is a new seat. None = a product the model does not know (only the
    engine-independent checks apply).
    """

    def __init__(self, product: str) -> None:
        self.product = product
        self.live: dict[str, MSession] = {}
        self.tokens = 0
        # feature -> project -> reserved seats (what the pool says; the reserve rule keeps it)
        self.reservations: dict[str, dict[str, int]] = {}
        # feature -> recharges beyond every reservation since the invariant last looked
        self.forced: Counter = Counter()
        # the pool's policies in order, and the lictools groups (name -> members)
        self.policies: list[MPolicy] = []
        self.groups: dict[str, set[str]] = {}

    def token(self) -> tuple[str, int]:
        self.tokens += 1
        return ("own", self.tokens)

    def reap(self, now: float) -> None:
        """End expired sessions in the engine's order (expiry, then id): recharges depend on the order."""
        expired = [s for s in self.live.values() if s.expires is not None and s.expires <= now]
        for s in sorted(expired, key=lambda s: (s.expires, s.id)):
            self.end(s.id)

    def usage(self, feature: str) -> dict:
        """Seats per charged project."""
        seats: dict = {}
        for s in sorted(self.live.values(), key=lambda s: (s.started, s.id)):
            if s.feature == feature:
                seats.setdefault(s.seat, s.seat_project)
        return dict(Counter(seats.values()))

    def end(self, sid: str) -> None:
        """A session ends. A seat it leaves held but with no session of its charged project is charged to
        the project of a session still holding it: a project with a reserved seat free first (oldest such
        session), else the oldest session's project (SPEC: sessions join a held seat even in a full pool)."""
        ended = self.live.pop(sid)
        holders = sorted((s for s in self.live.values() if s.feature == ended.feature and s.seat == ended.seat),
                         key=lambda s: (s.started, s.id))
        if not holders or holders[0].seat_project in {h.project for h in holders}:
            return
        if holders[0].seat_project in {k for h in holders for k in (h.project, *h.reserves)}:
            return  # a reserve policy of a holder carries the charge
        reserved, usage = self.reservations.get(ended.feature, {}), self.usage(ended.feature)
        room = [k for h in holders for k in (h.project, *h.reserves) if k and usage.get(k, 0) < reserved.get(k, 0)]
        project = room[0] if room else holders[0].project
        if not room:
            self.forced[ended.feature] += 1
        for h in holders:
            h.seat_project = project
        STATS["recharges"] += 1

    def tree_member(self, parent: str) -> MSession | None:
        """Genero: a live session of the parent's tree (SPEC: RUN children share their root's seat)."""
        if parent in self.live:
            return self.live[parent]
        for s in sorted(self.live.values(), key=lambda s: (s.started, s.id)):
            if s.root == parent:
                return s
        for s in sorted(self.live.values(), key=lambda s: (s.started, s.id)):
            if s.parent == parent:
                return s
        return None

    def seat_class(self, req: Request, options: dict[str, str]) -> tuple[Any, type[Exception] | None, Any]:
        """(class, expected error, genero root member) for a request."""
        p = self.product
        if p == "generic":
            share = [a for a in options.get("share", "").split(",") if a]
            values = tuple(_client_host(req) if a == "host" else getattr(req, a) for a in share)
            return (self.token() if not share else ("attrs", values)), None, None
        if p == "aveva-batch":
            node = _device(req.node)
            if req.terminal and not (req.host or "").strip():
                return None, UsageError, None  # a terminal server session names its client host
            return (("ts", _device(_client_host(req)), node) if req.terminal else ("node", node)), None, None
        if p == "magic-xpa":
            version = tuple(int(x) for x in options.get("version", "4.0").split("."))
            machine = _device(_client_host(req))
            if req.feature == "ria" and version >= (3, 2) and req.app:
                return ("ria", machine, req.app), None, None
            if req.feature == "web" and version >= (4, 0):
                return ("web", machine), None, None
            return self.token(), None, None
        if p == "genero":
            if req.parent is not None:
                if req.parent == req.session:
                    return None, UsageError, None
                member = self.tree_member(req.parent)
                if member is None:
                    return None, NotFoundError, None
                return member.cls, None, member
            if req.client is not None and req.client not in GENERO_CLIENTS[1:-1]:
                return None, UsageError, None
            if req.client in ("gdc", "gjc"):
                if not req.monitor or not req.monitor.strip():
                    return None, UsageError, None
                scope = options.get("monitor_scope", "auto")
                scoped = scope == "node" or (scope == "auto" and req.monitor in NODE_RELATIVE)
                return ("monitor", req.client, req.monitor, _device(req.node) if scoped else None), None, None
            return self.token(), None, None
        return None, None, None


class MPolicy(NamedTuple):
    """A pool policy as the model keeps it (lictools-policies(7), not lictools.policies)."""

    kind: str
    target: str
    name: str
    feature: str | None
    count: int | None

    @property
    def holder(self) -> str:
        return f"{self.target}={self.name}"


POLICY_USERS = ["alice", "bob", "x"]  # user names a policy or group may hold (no commas)
GROUPS = ["lt-g1", "lt-g2"]  # lictools groups (no Unix group has these names)


def names(p: MPolicy, user: str, host: str, groups: dict[str, set[str]]) -> bool:
    """Does the policy name this user (or every user), this client host (as a machine), or a group of theirs?"""
    if p.target == "user":
        return p.name in (user, "*")
    if p.target == "host":
        return _device(p.name) == _device(host)
    return user in groups.get(p.name, set())


def model_admit(issued: int, reserved: dict, usage: dict, draws_on: list) -> tuple[bool, Any]:
    """SPEC.md section 2 with reserve policies: (granted, what the new seat is charged to)."""
    if sum(usage.values()) >= issued:
        return False, None
    for key in draws_on:
        if key and usage.get(key, 0) < reserved.get(key, 0):
            return True, key
    cap = max(0, issued - sum(reserved.values()))
    beyond = sum(max(0, n - (reserved.get(k, 0) if k else 0)) for k, n in usage.items())
    return (True, draws_on[0]) if beyond < cap else (False, None)


def model_verdict(model: "Model", req: Request, feature: str, held: bool, issued: int, usage: dict) -> tuple:
    """(granted, refusing keyword or None, charge of a new seat, reserve holders the request matches)."""
    host = _client_host(req)
    applying = [p for p in model.policies if p.feature in (None, feature)]
    for p in applying:
        if p.kind == "exclude" and names(p, req.user, host, model.groups):
            return False, "exclude", None, []
    included = [p for p in applying if p.kind == "include"]
    if included and not any(names(p, req.user, host, model.groups) for p in included):
        return False, "include", None, []
    draws = [p.holder for p in applying if p.kind == "reserve" and names(p, req.user, host, model.groups)]
    if held:
        return True, None, None, draws
    live = [s for s in model.live.values() if s.feature == feature]
    for p in applying:
        if p.kind == "max" and names(p, req.user, host, model.groups):
            mine = [s for s in live if (s.user == req.user if p.name == "*" else names(p, s.user, s.chost, model.groups))]
            if len({s.seat for s in mine}) >= p.count:
                return False, "max", None, draws
    reserved = model.reservations.get(feature, {})
    granted, charge = model_admit(issued, reserved, usage, [req.project, *draws])
    if granted:
        return True, None, charge, draws
    projects_only = {k: n for k, n in reserved.items() if "=" not in k}
    others = [k for k in reserved if "=" in k and k not in draws and usage.get(k, 0) < reserved[k]]
    blamed = model_admit(issued, projects_only, usage, [req.project])[0] and others
    return False, "reserve" if blamed else None, None, draws


# --------------------------------------------------------------------------- the machine
class EngineMachine(RuleBasedStateMachine):
    PRODUCT = "generic"
    BACKEND = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.backend = MemoryBackend() if self.BACKEND == "memory" else SqliteBackend()
        self.rule = get_rule(self.PRODUCT)
        self.features = list(self.rule.FEATURES) or ["f1", "f2"]
        self.model = Model(self.PRODUCT)
        self.excess_before: dict[str, int] = {}
        self.admin_step = False
        self.known = self.model.product in ("generic", "aveva-batch", "magic-xpa", "genero")
        self.now = START
        self.ids: list[str] = []
        self.counter = 0
        STATS["examples"] += 1

    def teardown(self) -> None:
        self.backend.close()

    # -- helpers --------------------------------------------------------------------------
    def pool(self):
        with self.backend.view(self.now) as tx:
            return tx.get_pool(POOL)

    def run(self, action):
        """``action(tx)`` in one transaction that reaps first (as every command does).

        Returns (result, error); a UsageError/NotFoundError must leave the state as it was.
        """
        before = self.snapshot()
        try:
            with self.backend.transaction(self.now) as tx:
                engine.reap(tx)
                return action(tx), None
        except (UsageError, NotFoundError) as exc:
            assert self.snapshot() == before, f"{type(exc).__name__} changed the state: {exc.message}"
            STATS["refused"] += 1
            return None, exc

    def snapshot(self) -> list:
        with self.backend.view(self.now) as tx:
            return [s.to_doc() for s in tx.find_sessions()] + [p.to_doc() for p in tx.list_pools()]

    def pick_id(self, data) -> str:
        choices = self.ids + ["nobody"]
        return data.draw(st.sampled_from(choices), label="session")

    def new_id(self, data) -> str:
        live = self.model.live.values()
        # the id of an exited genero root whose RUN children live on: reusing it joins their seat (known gap)
        roots = {s.root for s in live} | {s.parent for s in live}
        dead = [i for i in self.ids if i not in self.model.live and (i not in roots or not avoid("reuse"))]
        if not avoid("reuse"):
            dead += [i for i in self.ids if i in roots and i not in self.model.live] * 3
        if not avoid("retry"):
            dead += list(self.model.live)
        if dead and data.draw(st.integers(0, 3), label="reuse a dead id") == 0:
            return data.draw(st.sampled_from(dead), label="dead id")
        self.counter += 1
        sid = f"s{self.counter}"
        self.ids.append(sid)
        return sid

    # -- setup ----------------------------------------------------------------------------
    @initialize(data=st.data())
    def setup(self, data) -> None:
        options = {"lease": data.draw(st.sampled_from(["", "0", "60", "600"]), label="lease")}
        options[self.rule.DETACH_OPTION] = data.draw(st.sampled_from(["0", "30", "300"]), label="detach timeout")
        if "share" in self.rule.OPTIONS:
            options["share"] = data.draw(st.sampled_from(SHARES if avoid("share-key") else ["user,host"]), label="share")
        if "version" in self.rule.OPTIONS:
            options["version"] = data.draw(st.sampled_from(["3.1", "3.2", "3.9", "4.0", "4.13"]), label="version")
        if "monitor_scope" in self.rule.OPTIONS:
            options["monitor_scope"] = data.draw(st.sampled_from(["auto", "auto", "global", "node"]), label="monitor scope")
        options = {k: v for k, v in options.items() if v != ""}
        licenses = {f: data.draw(st.sampled_from([0, 1, 2, 2, 3, 4]), label=f"issued {f}") for f in self.features}
        self.run(lambda tx: engine.add_pool(tx, POOL, self.PRODUCT, licenses, options))
        for group in GROUPS:
            self.set_group_members(group, data.draw(st.sets(st.sampled_from(POLICY_USERS)), label=f"{group} members"))

    def set_group_members(self, group: str, members: set[str]) -> None:
        _, error = self.run(lambda tx: engine.set_group(tx, group, sorted(members)))
        assert error is None
        self.model.reap(self.now)
        self.model.groups[group] = set(members)

    # -- rules ----------------------------------------------------------------------------
    def random_request(self, data) -> Request:
        sid = self.new_id(data)
        feature = data.draw(st.sampled_from(self.features + (["zz"] if self.rule.FEATURES else [])), label="feature")
        p = self.PRODUCT
        live = sorted(self.model.live)
        parents = ([None] * 3 + live * 2 + self.ids[-3:]) if p in ("genero", "generic") else [None]
        return Request(
            pool=POOL, feature=feature, session=sid,
            user=data.draw(st.sampled_from(USERS), label="user"),
            host=data.draw(st.sampled_from((HOSTS if p != "aveva-batch" else HOSTS[:3]) + NO_HOST), label="host"),
            node=data.draw(st.sampled_from(NODES), label="node"),
            terminal=data.draw(st.booleans(), label="terminal") if p in ("aveva-batch", "generic") else False,
            app=data.draw(st.sampled_from(APPS), label="app") if p in ("magic-xpa", "generic") else None,
            project=data.draw(st.sampled_from(PROJECTS), label="project"),
            parent=data.draw(st.sampled_from(parents), label="parent"),
            client=data.draw(st.sampled_from(GENERO_CLIENTS), label="client") if p in ("genero", "generic") else None,
            monitor=data.draw(st.sampled_from(MONITORS + ["m1"]), label="monitor") if p in ("genero", "generic") else None,
            pid=data.draw(st.sampled_from([None, 1, 2]), label="pid") if p == "generic" else None,
            lease=data.draw(st.sampled_from(LEASES), label="lease"),
        )

    @rule(data=st.data())
    def acquire(self, data) -> None:
        for _ in range(data.draw(st.integers(1, 3), label="acquisitions")):
            self.acquire_one(self.random_request(data))

    @precondition(lambda self: self.model.live)
    @rule(data=st.data())
    def another_project_joins_then_the_first_leaves(self, data) -> None:
        """Issue 10's case: a client of another project joins a live session's seat (same attributes),
        then the first one ends, so its seat is left to a project it was not charged to."""
        like = self.model.live[data.draw(st.sampled_from(sorted(self.model.live)), label="like")]
        project = data.draw(st.sampled_from([p for p in ("pa", "pb", None) if p != like.project]), label="project")
        clone = Request(
            pool=POOL, feature=like.feature, session=self.new_id(data), user=like.user, host=like.host, node=like.node,
            terminal=like.terminal, app=like.app, project=project, client=like.client, monitor=like.monitor,
            parent=like.id if self.PRODUCT == "genero" else None,
        )
        self.acquire_one(clone)
        self.release_one(like.id)

    @precondition(lambda self: self.model.live)
    @rule(data=st.data())
    def acquire_like_a_live_session(self, data) -> None:
        """A new session with the attributes of a live one (and for genero its RUN child): same key or not."""
        like = self.model.live[data.draw(st.sampled_from(sorted(self.model.live)), label="like")]
        req = dataclasses.replace(self.random_request(data), feature=like.feature)
        for attr in ("user", "host", "node", "terminal", "app", "client", "monitor"):
            if data.draw(st.integers(0, 4), label=f"same {attr}"):
                req = dataclasses.replace(req, **{attr: getattr(like, attr)})
        if self.PRODUCT == "genero":
            parent = data.draw(st.sampled_from([like.id, like.root, like.parent, None]), label="parent")
            req = dataclasses.replace(req, parent=parent)
        self.acquire_one(req)

    def acquire_one(self, req: Request) -> None:
        sid, feature = req.session, req.feature
        pool = self.pool()
        model = copy.deepcopy(self.model)
        model.reap(self.now)
        existing = model.live.get(sid)
        if existing is not None and existing.feature == feature:
            if avoid("retry"):
                return  # a retry: renews the lease without a journal event (known gap, see the docstring)
            outcome, error = self.run(lambda tx: engine.acquire(tx, copy.copy(req)))
            assert error is None and outcome.retry and outcome.seat == existing.seat, (error, outcome)
            self.model = model
            existing.lease = req.lease if req.lease is not None else existing.lease
            existing.detached = False
            existing.expires = None if existing.lease == 0 else self.now + existing.lease
            return

        # what the model expects
        expected_error: type[Exception] | None = None
        if self.rule.FEATURES and feature not in self.rule.FEATURES:
            expected_error = UsageError
        elif existing is not None:
            expected_error = UsageError  # the id holds another feature
        cls, class_error, member = model.seat_class(copy.copy(req), pool.options) if expected_error is None else (None, None, None)
        expected_error = expected_error or class_error
        live = [s for s in model.live.values() if s.feature == feature]
        seats = {}
        for s in sorted(live, key=lambda s: (s.started, s.id)):
            seats.setdefault(s.seat, s.seat_project)
        usage: dict[str | None, int] = {}
        for project in seats.values():
            usage[project] = usage.get(project, 0) + 1
        issued, reserved = pool.issued(feature), pool.reserved(feature)

        outcome, error = self.run(lambda tx: engine.acquire(tx, copy.copy(req)))
        if error is not None:
            if self.known:
                assert isinstance(error, expected_error or ()), f"unexpected {type(error).__name__}: {error.message}"
            return
        if self.known:
            assert expected_error is None, f"expected {expected_error.__name__}, got {outcome.reason}"
        self.model = model  # the transaction committed: its reap happened
        STATS["denied" if not outcome.granted else "shared" if outcome.shared else "granted"] += 1
        held = outcome.seat in seats
        granted, keyword, charge, draws = model_verdict(model, req, feature, held, issued, usage)
        refused_by = outcome.policy.kind if outcome.policy else None
        if refused_by:
            STATS[f"denied by {refused_by}"] += 1
        # a policy denial names the keyword the model says refused it; a capacity denial names none
        assert (outcome.granted, refused_by) == (granted, keyword), (
            f"granted={outcome.granted} by {refused_by}, the model says granted={granted} by {keyword}: issued {issued}, "
            f"reserved {reserved}, usage {usage}, project {req.project}, user {req.user}, policies {model.policies}, "
            f"groups {model.groups}: {outcome.reason}"
        )
        # a session whose seat key is already held is never denied but by who may use the feature at all
        assert outcome.granted or not held or refused_by in ("include", "exclude"), (
            f"denied although seat {outcome.seat} is held: {outcome.reason}")
        if outcome.granted:
            assert outcome.shared == held, f"shared={outcome.shared} but seat held={held}: {outcome.reason}"
        if outcome.granted and not held:
            assert outcome.session.seat_project == charge, f"charged to {outcome.session.seat_project}, model {charge}"
            assert replay.may_open_seat(issued, reserved, usage, req.project, draws), outcome.reason
        # the rule's seat keys match the spec's sharing classes
        if cls is not None:
            same_class = [s for s in live if s.cls == cls]
            if same_class:
                assert held and outcome.seat == same_class[0].seat, (
                    f"{req} should share seat {same_class[0].seat} (class {cls}), got {outcome.seat}"
                )
            else:
                assert not held, f"{req} (class {cls}) joined seat {outcome.seat} of sessions of another class"
        if outcome.granted:
            s = outcome.session
            lease = req.lease if req.lease is not None else int(pool.options["lease"])
            assert s.lease == lease and s.expires == (None if lease == 0 else self.now + lease)
            assert (s.reserves or []) == draws, (s.reserves, draws)
            self.model.live[sid] = MSession(
                id=sid, feature=feature, seat=outcome.seat, cls=cls,
                seat_project=seats[outcome.seat] if held else charge, reserves=draws, chost=_client_host(req),
                expires=s.expires, lease=lease, detached=False, started=self.now, root=s.root, project=req.project,
                **{a: getattr(req, a) for a in ("user", "host", "node", "terminal", "app", "client", "monitor", "parent")},
            )
            if self.PRODUCT == "genero":
                want_root = (member.root or member.id) if member is not None else sid
                assert s.root == want_root, f"root {s.root}, expected {want_root}"

    @rule(data=st.data())
    def release(self, data) -> None:
        self.release_one(self.pick_id(data))

    def release_one(self, sid: str) -> None:
        (done, missing, *_), _ = self.run(lambda tx: engine.release(tx, [sid], actor="prop"))
        self.model.reap(self.now)
        assert [s.id for s in done] == ([sid] if sid in self.model.live else [])
        if sid in self.model.live:
            self.model.end(sid)

    @rule(data=st.data())
    def detach(self, data) -> None:
        sid = self.pick_id(data)
        linger = int(self.pool().options.get(self.rule.DETACH_OPTION, "0"))
        (done, missing, *_), _ = self.run(lambda tx: engine.detach(tx, [sid]))
        self.model.reap(self.now)
        assert [s.id for s in done] == ([sid] if sid in self.model.live else [])
        if sid in self.model.live:
            if linger == 0:
                self.model.end(sid)
            else:
                self.model.live[sid].detached = True
                self.model.live[sid].expires = self.now + linger

    @rule(data=st.data())
    def refresh(self, data) -> None:
        sid = self.pick_id(data)
        (done, missing, *_), _ = self.run(lambda tx: engine.refresh(tx, [sid]))
        self.model.reap(self.now)
        s = self.model.live.get(sid)
        if s is None or s.detached:
            assert sid in missing and not done
        else:
            assert [d.id for d in done] == [sid]
            s.expires = None if s.lease == 0 else self.now + s.lease

    @rule(user=st.sampled_from(USERS))
    def admin_remove(self, user) -> None:
        (done, missing, *_), _ = self.run(lambda tx: engine.remove(tx, user=user, actor="admin"))
        self.model.reap(self.now)
        gone = [s.id for s in sorted(self.model.live.values(), key=lambda s: (s.started, s.id)) if s.user == user]
        assert sorted(s.id for s in done) == sorted(gone)
        for sid in gone:  # in the engine's order (oldest first): recharges depend on it
            self.model.end(sid)

    @rule(seconds=st.sampled_from([1, 29, 30, 31, 59, 60, 61, 299, 300, 301, 599, 600, 601, 1200, 3601, 4000]))
    def advance_clock(self, seconds) -> None:
        self.now += seconds
        if self.BACKEND == "sqlite" or seconds > 1000:  # let a command reap, as the next hook would
            self.run(lambda tx: None)
            self.model.reap(self.now)

    @rule(data=st.data())
    def reserve(self, data) -> None:
        feature = data.draw(st.sampled_from(self.features), label="feature")
        project = data.draw(st.sampled_from(["pa", "pb"]), label="project")
        count = data.draw(st.integers(0, 4), label="count")
        pool = self.pool()
        issued = pool.issued(feature)
        new = {**pool.reserved(feature), project: count}
        new = {p: c for p, c in new.items() if c}
        model = copy.deepcopy(self.model)
        model.reap(self.now)
        seats: dict[str, str | None] = {}
        for s in sorted(model.live.values(), key=lambda s: (s.started, s.id)):
            if s.feature == feature:
                seats.setdefault(s.seat, s.seat_project)
        usage: dict[str | None, int] = {}
        for p in seats.values():
            usage[p] = usage.get(p, 0) + 1
        if avoid("reserve") and sum(new.values()) <= issued and replay.shared_used(usage, new) > issued - sum(new.values()):
            STATS["reservations skipped (usage does not fit)"] += 1
            return  # known engine gap: such a reservation lets admit oversell (docstring)
        _, error = self.run(lambda tx: engine.reserve(tx, POOL, project, feature, count))
        if error is None:
            self.model = model
            self.model.reservations[feature] = new
            self.admin_step = True  # a reservation evicts nobody: the one admin exception of the invariant
        assert (error is not None) == (sum(new.values()) > issued), f"reserve {project} {count}: {error}"

    @rule(data=st.data())
    def license_add(self, data) -> None:
        feature = data.draw(st.sampled_from(self.features), label="feature")
        count = data.draw(st.integers(0, 2), label="count")
        serial = data.draw(st.sampled_from([None, "S1", "S2"]), label="serial")
        before = self.pool()
        result, error = self.run(lambda tx: engine.add_license(tx, POOL, feature, count, serial=serial))
        assert error is None
        self.model.reap(self.now)
        loaded = serial is not None and any(lic.serial == serial for lic in before.licenses)
        assert result.status == ("already-loaded" if loaded else "loaded")
        assert self.pool().issued(feature) == before.issued(feature) + (0 if loaded else count)

    @rule(data=st.data())
    def set_options(self, data) -> None:
        options = {}
        if data.draw(st.booleans(), label="change lease"):
            options["lease"] = data.draw(st.sampled_from(["0", "30", "600"]), label="lease")
        else:
            options[self.rule.DETACH_OPTION] = data.draw(st.sampled_from(["0", "30", "300"]), label="detach timeout")
        _, error = self.run(lambda tx: engine.set_pool_options(tx, POOL, options))
        assert error is None
        self.model.reap(self.now)

    @rule(data=st.data())
    def set_group(self, data) -> None:
        group = data.draw(st.sampled_from(GROUPS), label="group")
        self.set_group_members(group, data.draw(st.sets(st.sampled_from(POLICY_USERS)), label="members"))

    def model_reservations(self) -> None:
        """The model's reservations per feature: the projects', then each reserve policy's holder."""
        for feature in self.features:
            per = {k: n for k, n in self.model.reservations.get(feature, {}).items() if "=" not in k}
            per.update((p.holder, p.count) for p in self.model.policies if p.kind == "reserve" and p.feature == feature)
            self.model.reservations[feature] = per

    @rule(data=st.data())
    def add_policy(self, data) -> None:
        kind = data.draw(st.sampled_from(["max", "max", "include", "exclude", "reserve", "reserve"]), label="kind")
        target = data.draw(st.sampled_from(["user", "user", "group", "host"]), label="target")
        name = data.draw(st.sampled_from({"user": POLICY_USERS + (["*"] if kind == "max" else []), "group": GROUPS,
                                          "host": HOSTS[:3]}[target]), label="name")
        feature = data.draw(st.sampled_from(self.features + ([] if kind == "reserve" else [None, None])), label="feature")
        count = data.draw(st.integers(1 if kind == "reserve" else 0, 3), label="count") if kind in ("max", "reserve") else None
        policy = MPolicy(kind, target, name, feature, count)
        model = copy.deepcopy(self.model)
        model.reap(self.now)
        same = lambda p: (p.kind, p.target, p.name, p.feature) == (kind, target, name, feature)  # noqa: E731
        expect_error = None
        if kind == "reserve":
            others = sum(n for k, n in model.reservations.get(feature, {}).items() if k != policy.holder)
            expect_error = UsageError if others + count > self.pool().issued(feature) else None
        _, error = self.run(lambda tx: engine.add_policy(tx, POOL, Policy(kind, target, name, feature, count)))
        assert type(error) is (expect_error or type(None)), (policy, error)
        if error is None:
            self.model = model
            at = next((i for i, p in enumerate(model.policies) if same(p)), None)
            if at is None:
                model.policies.append(policy)
            else:
                model.policies[at] = policy
            self.model_reservations()
            self.admin_step = True  # a reserve policy evicts nobody, like a project reservation
            STATS["policies added"] += 1

    @precondition(lambda self: self.model.policies)
    @rule(data=st.data())
    def remove_policy(self, data) -> None:
        policy = data.draw(st.sampled_from(self.model.policies), label="policy")
        model = copy.deepcopy(self.model)
        model.reap(self.now)
        _, error = self.run(lambda tx: engine.remove_policy(
            tx, POOL, Policy(policy.kind, policy.target, policy.name, policy.feature)))
        assert error is None, error
        self.model = model
        model.policies.remove(policy)
        self.model_reservations()
        self.admin_step = True

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def seats_and_sessions(self) -> None:
        with self.backend.view(self.now) as tx:
            pool = tx.get_pool(POOL)
            if pool is None:
                return
            sessions = tx.find_sessions()
            assert sorted(s.id for s in sessions) == sorted(self.model.live), (
                f"live sessions {sorted(s.id for s in sessions)}, model {sorted(self.model.live)}"
            )
            for s in sessions:
                m = self.model.live[s.id]
                assert (s.seat, s.detached, s.expires, s.seat_project) == (m.seat, m.detached, m.expires, m.seat_project), (
                    f"session {s.id}: {(s.seat, s.detached, s.expires, s.seat_project)} != model "
                    f"{(m.seat, m.detached, m.expires, m.seat_project)}"
                )
            for feature in self.features:
                mine = [s for s in sessions if s.feature == feature]
                keys = {s.seat for s in mine}
                in_use = tx.seats_in_use(POOL, feature)
                issued, reserved = pool.issued(feature), pool.reserved(feature)
                usage = tx.seats_by_project(POOL, feature)
                assert in_use == len(keys), f"{feature}: seats_in_use {in_use}, distinct keys {len(keys)}"
                assert in_use <= issued, f"{feature}: {in_use} seats in use, {issued} issued: oversold"
                # every seat is charged to the project of a session holding it
                for key in keys:
                    holders = [s for s in mine if s.seat == key]
                    assert holders[0].seat_project in {k for h in holders for k in (h.project, *(h.reserves or []))}, (
                        f"{feature}: seat {key} charged to {holders[0].seat_project}, held by projects "
                        f"{sorted(str(h.project) for h in holders)}"
                    )
                # the reservation invariant: seats beyond reservations <= shared seats; only a reservation
                # made while the seats were held, or a forced recharge (one seat each), may raise the excess
                assert self.model.reservations.get(feature, {}) == reserved, (self.model.reservations, reserved)
                cap = max(0, issued - sum(reserved.values()))
                used = replay.shared_used(usage, reserved)
                excess, before = max(0, used - cap), self.excess_before.get(feature, 0)
                forced = self.model.forced[feature]
                assert excess <= before + forced or self.admin_step, (
                    f"{feature}: seats beyond reservations {used} > {cap} shared, excess up from {before} to {excess} "
                    f"with {forced} forced recharge(s) (issued {issued}, reserved {reserved}, usage {usage})"
                )
                if excess > before and not self.admin_step:
                    STATS["forced excess"] += 1
                self.excess_before[feature] = excess
                STATS["max seats in use"] = max(STATS["max seats in use"], in_use)
        self.model.forced.clear()
        self.admin_step = False
        STATS["steps"] += 1

    @invariant()
    def journal_replays_to_state(self) -> None:
        if self.BACKEND == "sqlite" and STATS["steps"] % 3:
            return  # a whole replay per step is the slow part on SQLite
        diffs = self.backend.compare(self.now)
        assert diffs == [], "\n".join(diffs[:10])


def machine(product: str, backend: str) -> type[EngineMachine]:
    return type(f"Engine_{product.replace('-', '_')}_{backend}", (EngineMachine,), {"PRODUCT": product, "BACKEND": backend})


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("product", sorted(RULES))
def test_engine_properties(product, backend, capsys):
    STATS.clear()
    started = time.monotonic()
    run_state_machine_as_test(
        seed(commit_seed())(machine(product, backend)),  # the same sequences on every run of a commit
        settings=settings(
            max_examples=EXAMPLES[backend], stateful_step_count=STEPS[backend], deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
            phases=list(Phase) if os.environ.get("LICTOOLS_PROPERTY_SHRINK") == "1" else [Phase.explicit, Phase.generate],
        ),
    )
    by_policy = ", ".join(f"{kind} {STATS['denied by ' + kind]}" for kind in ("max", "include", "exclude", "reserve"))
    with capsys.disabled():
        print(f"\nproperties [{product}/{backend}]: {STATS['examples']} sequences, {STATS['steps']} checked steps, "
              f"{STATS['granted']} grants, {STATS['shared']} shares, {STATS['denied']} denials, "
              f"{STATS['refused']} refused (usage/not found), max seats in use {STATS['max seats in use']}, "
              f"{STATS['reservations skipped (usage does not fit)']} reservations skipped, "
              f"{STATS['recharges']} recharges ({STATS['forced excess']} steps raised the excess by force), "
              f"{STATS['policies added']} policies added, denials by policy: {by_policy}, "
              f"{time.monotonic() - started:.1f} s")
    assert STATS["steps"] > 0


# --------------------------------------------------------------------------- rule gaps found
def test_genero_new_root_reusing_an_exited_root_id_takes_its_own_seat():
    backend = MemoryBackend()
    with backend.transaction(START) as tx:
        engine.add_pool(tx, "g", "genero", {"runtime": 5}, {})
        engine.acquire(tx, Request("g", None, "R", "alice", "h1", "n1", client="gwc"))
        engine.acquire(tx, Request("g", None, "C", "alice", "h1", "n1", parent="R"))  # RUN child
        engine.release(tx, ["R"])  # the root exits, its child lives on
        # later, another user starts a separate application whose hook reuses the id R
        outcome = engine.acquire(tx, Request("g", None, "R", "bob", "h2", "n1", client="gbc"))
    assert not outcome.shared, f"joined seat {outcome.seat} of another application: {outcome.reason}"


def test_generic_share_key_is_unambiguous():
    backend = MemoryBackend()
    with backend.transaction(START) as tx:
        engine.add_pool(tx, "p", "generic", {"f": 5}, {"share": "user,host"})
        a = engine.acquire(tx, Request("p", "f", "a", "x,host=y", "h1", "n1"))
        b = engine.acquire(tx, Request("p", "f", "b", "x", "y,host=h1", "n1"))
    assert a.seat != b.seat and not b.shared, f"users {a.session.user!r}@h1 and 'x'@'y,host=h1' share seat {b.seat}"
