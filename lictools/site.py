"""The site file: pools, licenses, options, reservations, groups, policies and settings declared in one
TOML file (``lictools apply``), and the current configuration written as one (``lictools export``).

:func:`read` checks the whole file before anything changes (a bad key is a UsageError naming it);
:func:`apply_site` makes the state what it declares through the engine's own functions (so every
change is journaled and checked as the commands check it) and returns what it changed; the CLI runs
it in one transaction, so the file lands whole or not at all. What the file leaves out
(lictools-apply(1)): a pool it does not declare is kept (``prune`` removes it, refusing one with live
sessions unless ``force``); inside a declared pool, a key it gives (``licenses``, ``serials``,
``options``, ``reservations``, ``policies``) is the whole of that aspect, a key it leaves out leaves
that aspect as it is; ``[groups]`` given is every lictools group; ``[settings]`` sets the keys it gives.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from lictools import engine, policies, validate
from lictools.errors import LictoolsError, UsageError
from lictools.host import SYSTEM, Host
from lictools.model import POLICY_KINDS, POLICY_TARGETS, Policy, Pool
from lictools.permissions import SETTINGS
from lictools.rules import check_feature, check_options, get_rule
from lictools.rules.base import Rule
from lictools.stores.api import StateView, Transaction

INITIAL = "initial-"
"""The serial ``licenses = {FEATURE = COUNT}`` loads, as ``pool add --license`` does: ``initial-FEATURE``."""


def is_initial(serial: str, feature: str) -> bool:
    """Is this the serial ``licenses = {FEATURE = COUNT}`` manages (``initial-FEATURE``)?"""
    return serial == INITIAL + feature

POOL_KEYS = ("product", "licenses", "serials", "options", "reservations", "policies")
SERIAL_KEYS = ("serial", "feature", "count", "host_lock")
POLICY_KEYS = ("kind", *POLICY_TARGETS, "feature", "count")
TOP_KEYS = ("settings", "groups", "pools")


# --------------------------------------------------------------------------- the declaration
@dataclass
class Serial:
    serial: str
    feature: str
    count: int
    host_lock: str | None = None


@dataclass
class SitePool:
    """One ``[pools.NAME]`` table; None: the file leaves that aspect out (it stays as it is)."""

    product: str
    licenses: dict[str, int] | None = None
    serials: list[Serial] | None = None
    options: dict[str, str] | None = None
    reservations: dict[str, dict[str, int]] | None = None
    policies: list[Policy] | None = None


@dataclass
class Site:
    settings: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] | None = None
    pools: dict[str, SitePool] = field(default_factory=dict)


class SiteError(UsageError):
    """A site file that does not validate, or a change it asks for that is refused: names the key (exit 2)."""


@contextmanager
def at(key: str) -> Iterator[None]:
    """Re-raise any lictools error inside as a SiteError naming ``key``."""
    try:
        yield
    except SiteError:
        raise
    except LictoolsError as exc:
        raise SiteError(f"{key}: {exc.message}") from None


def _table(value: Any, key: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SiteError(f"{key}: expected a table, got {_kind(value)}")
    if known is not None:
        for name in value:
            if name not in known:
                raise SiteError(f"{key}.{name}: unknown key (known: {', '.join(known)})")
    return value


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SiteError(f"{key}: expected a string, got {_kind(value)}")
    return value


def _count(value: Any, key: str) -> int:
    with at(key):
        return validate.count(value, "a seat count")


def _counts(value: Any, key: str, rule: Rule) -> dict[str, int]:
    """``{feature = count}``, each feature one the product has."""
    out = {}
    for name, count in _table(value, key).items():
        with at(f"{key}.{name}"):
            check_feature(rule, name)
        out[name] = _count(count, f"{key}.{name}")
    return out


def parse(doc: dict[str, Any]) -> Site:
    """A parsed TOML document as a :class:`Site`, every key and value checked; SiteError names the first bad one."""
    _table(doc, "the file", TOP_KEYS)
    site = Site()
    for name, value in _table(doc.get("settings", {}), "settings", tuple(SETTINGS)).items():
        site.settings[name] = _string(value, f"settings.{name}")
    if "groups" in doc:
        site.groups = {}
        for name, members in _table(doc["groups"], "groups").items():
            key = f"groups.{name}"
            with at(key):
                policies.check_group_name(name)
            if not isinstance(members, list):
                raise SiteError(f"{key}: expected an array of user names, got {_kind(members)}")
            with at(key):
                site.groups[name] = [policies.check_member(_string(m, key)) for m in members]
    for name, value in _table(doc.get("pools", {}), "pools").items():
        with at(f"pools.{name}"):
            validate.name(name, "pool name")
        site.pools[name] = _pool(_table(value, f"pools.{name}", POOL_KEYS), f"pools.{name}")
    return site


def _pool(doc: dict[str, Any], key: str) -> SitePool:
    if "product" not in doc:
        raise SiteError(f"{key}.product: missing (a pool names its product)")
    product = _string(doc["product"], f"{key}.product")
    with at(f"{key}.product"):
        rule = get_rule(product)
    pool = SitePool(product)
    if "licenses" in doc:
        pool.licenses = _counts(doc["licenses"], f"{key}.licenses", rule)
    if "serials" in doc:
        if not isinstance(doc["serials"], list):
            raise SiteError(f"{key}.serials: expected an array of tables, got {_kind(doc['serials'])}")
        pool.serials = []
        for index, item in enumerate(doc["serials"]):
            where = f"{key}.serials[{index}]"
            item = _table(item, where, SERIAL_KEYS)
            for required in ("serial", "feature", "count"):
                if required not in item:
                    raise SiteError(f"{where}.{required}: missing")
            serial = _string(item["serial"], f"{where}.serial")
            feature = _string(item["feature"], f"{where}.feature")
            with at(f"{where}.feature"):
                check_feature(rule, feature)
            with at(f"{where}.serial"):
                validate.name(serial, "serial")
                if serial == INITIAL + feature:
                    raise UsageError(f"serial {serial} is the one licenses = {{ {feature} = COUNT }} loads")
            host_lock = _string(item["host_lock"], f"{where}.host_lock") if "host_lock" in item else None
            if host_lock is not None:
                with at(f"{where}.host_lock"):
                    validate.text(host_lock, "host_lock")
            pool.serials.append(Serial(serial, feature, _count(item["count"], f"{where}.count"), host_lock))
        if len({s.serial for s in pool.serials}) != len(pool.serials):
            raise SiteError(f"{key}.serials: a serial is listed twice")
    if "options" in doc:
        options = {}
        for name, value in _table(doc["options"], f"{key}.options").items():
            if isinstance(value, bool):
                value = "yes" if value else "no"
            elif isinstance(value, (int, float)):
                value = str(value)
            options[name] = _string(value, f"{key}.options.{name}")
            with at(f"{key}.options.{name}"):
                check_options(rule, {name: options[name]})
        pool.options = options
    if "reservations" in doc:
        pool.reservations = {}
        for project, per in _table(doc["reservations"], f"{key}.reservations").items():
            with at(f"{key}.reservations.{project}"):
                validate.name(project, "project")
            pool.reservations[project] = _counts(per, f"{key}.reservations.{project}", rule)
    if "policies" in doc:
        pool.policies = _policies(doc["policies"], f"{key}.policies")
        for index, policy in enumerate(pool.policies):
            if policy.feature is not None:
                with at(f"{key}.policies[{index}].feature"):
                    check_feature(rule, policy.feature)
    return pool


def _policies(value: Any, key: str) -> list[Policy]:
    if not isinstance(value, list):
        raise SiteError(f"{key}: expected an array of tables ([[{key}]]), got {_kind(value)}")
    out: list[Policy] = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        item = _table(item, where, POLICY_KEYS)
        if "kind" not in item:
            raise SiteError(f"{where}.kind: missing ({' | '.join(POLICY_KINDS)})")
        targets = [t for t in POLICY_TARGETS if t in item]
        if len(targets) != 1:
            raise SiteError(f"{where}: name exactly one of {', '.join(POLICY_TARGETS)}")
        count = _count(item["count"], f"{where}.count") if "count" in item else None
        feature = _string(item["feature"], f"{where}.feature") if "feature" in item else None
        with at(where):
            policy = policies.make(_string(item["kind"], f"{where}.kind"), targets[0],
                                   _string(item[targets[0]], f"{where}.{targets[0]}"), feature, count)
        if any(p.identity == policy.identity for p in out):
            raise SiteError(f"{where}: the same {policy.kind} policy for {policy.target} {policy.name} is listed twice")
        out.append(policy)
    return out


def read(path: str, data: bytes) -> Site:
    """Parse and check a site file's bytes; SiteError (exit 2) names the file and the first bad key."""
    import tomllib

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SiteError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(doc)
    except SiteError as exc:
        raise SiteError(f"{path}: {exc.message}") from None


# --------------------------------------------------------------------------- the changes
class Change(NamedTuple):
    """One change ``apply`` made (or, with --dry-run, would make)."""

    action: str  # add | change | remove
    kind: str  # setting | group | pool | option | license | reservation | policy
    pool: str | None
    name: str
    before: Any
    after: Any

    def text(self) -> str:
        sign = {"add": "+", "change": "~", "remove": "-"}[self.action]
        where = f" {self.pool}" if self.pool else ""
        if self.action == "add":
            detail = f": {_shown(self.after)}" if self.after not in (None, "") else ""
        elif self.action == "remove":
            detail = f" ({_shown(self.before)})" if self.before not in (None, "") else ""
        else:
            detail = f": {_shown(self.before)} -> {_shown(self.after)}"
        return f"{sign} {self.kind}{where} {self.name}{detail}"

    def to_doc(self) -> dict[str, Any]:
        return {**self._asdict(), "text": self.text()}


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


class Applier:
    """Makes one transaction's state what a :class:`Site` declares, collecting the changes."""

    def __init__(self, tx: Transaction, host: Host = SYSTEM) -> None:
        self.tx = tx
        self.host = host
        self.changes: list[Change] = []
        self.warnings: list[str] = []

    def note(self, action: str, kind: str, pool: str | None, name: str, before: Any = None, after: Any = None) -> None:
        self.changes.append(Change(action, kind, pool, name, before, after))

    def run(self, site: Site, prune: bool = False, force: bool = False) -> list[Change]:
        self.settings(site.settings)
        if site.groups is not None:
            self.set_groups(site.groups)
        if prune:
            self.prune(site, force)
        for name, declared in site.pools.items():
            self.pool(name, declared)
        if site.groups is not None:
            self.remove_groups(site.groups)
        return self.changes

    # -- settings and groups --------------------------------------------------------------
    def settings(self, wanted: dict[str, str]) -> None:
        from lictools.permissions import check_setting

        current = self.tx.get_settings()
        for key, value in wanted.items():
            with at(f"settings.{key}"):
                value = check_setting(key, value) if value else value
            if (current.get(key) or "") == value:
                continue
            with at(f"settings.{key}"):
                engine.set_setting(self.tx, key, value or None, host=self.host)
            self.note("change", "setting", None, key, current.get(key), value or None)

    def set_groups(self, wanted: dict[str, list[str]]) -> None:
        current = policies.groups(self.tx.get_settings())
        for name, members in wanted.items():
            with at(f"groups.{name}"):
                if engine.set_group(self.tx, name, members, host=self.host):
                    self.note("change" if name in current else "add", "group", None, name,
                              current.get(name), sorted(set(members)))

    def remove_groups(self, wanted: dict[str, list[str]]) -> None:
        current = policies.groups(self.tx.get_settings())
        for name in sorted(set(current) - set(wanted)):
            with at(f"groups (group {name} is not in the file)"):
                engine.remove_group(self.tx, name, host=self.host)
            self.note("remove", "group", None, name, current[name])

    # -- pools -----------------------------------------------------------------------------
    def prune(self, site: Site, force: bool) -> None:
        for pool in self.tx.list_pools():
            if pool.name in site.pools:
                continue
            with at(f"pools (pool {pool.name} is not in the file; --prune removes it)"):
                ended = engine.remove_pool(self.tx, pool.name, force=force, host=self.host)
            self.note("remove", "pool", None, pool.name,
                      f"{pool.product}" + (f"; {len(ended)} live session(s) removed" if ended else ""))

    def pool(self, name: str, declared: SitePool) -> None:
        key = f"pools.{name}"
        existing = self.tx.get_pool(name)
        if existing is None:
            with at(key):
                created = engine.add_pool(self.tx, name, declared.product, {}, declared.options or {})
            given = " ".join(f"{k}={v}" for k, v in (declared.options or {}).items())
            self.note("add", "pool", None, name, after=declared.product + (f"; {given}" if given else ""))
            existing = created
        elif existing.product != declared.product:
            raise SiteError(f"{key}.product: pool {name} counts seats as {existing.product}, the file says "
                            f"{declared.product} (remove the pool first: a product is not changed in place)")
        else:
            self.options(existing, declared, key)
        # decreases first, so that no step reserves more than is issued or issues fewer than are reserved
        self.policies(existing, declared, key, shrink=True)
        self.reservations(name, declared, key, shrink=True)
        self.licenses(name, declared, key)
        self.reservations(name, declared, key, shrink=False)
        self.policies(engine.get_pool(self.tx, name), declared, key, shrink=False)

    def options(self, pool: Pool, declared: SitePool, key: str) -> None:
        if declared.options is None:
            return
        with at(f"{key}.options"):
            wanted = check_options(get_rule(pool.product), declared.options)
        if wanted == pool.options:
            return
        with at(f"{key}.options"):
            engine.set_pool_options(self.tx, pool.name, declared.options, replace_all=True)
        for option in [k for k in wanted if wanted[k] != pool.options.get(k)]:
            self.note("change", "option", pool.name, option, pool.options.get(option), wanted[option])

    def licenses(self, name: str, declared: SitePool, key: str) -> None:
        pool = engine.get_pool(self.tx, name)
        wanted: dict[str, tuple[Serial, str]] = {}
        if declared.licenses is not None:
            for feature, count in declared.licenses.items():
                wanted[INITIAL + feature] = (Serial(INITIAL + feature, feature, count), f"{key}.licenses.{feature}")
        for index, serial in enumerate(declared.serials or []):
            wanted[serial.serial] = (serial, f"{key}.serials[{index}]")
        for serial, where in wanted.values():
            old = next((lic for lic in pool.licenses if lic.serial == serial.serial), None)
            with at(where):
                result = engine.set_license(self.tx, name, serial.serial, serial.feature, serial.count,
                                            serial.host_lock, host=self.host)
            before = f"{old.feature}={old.count}" if old else None
            after = f"{serial.feature}={serial.count}" + (f" host-locked to {serial.host_lock}" if serial.host_lock else "")
            if result.status == "not-loaded":
                self.warnings.append(f"{where}: {result.message}")
                if old is not None:
                    self.note("remove", "license", name, serial.serial, before)
            elif result.status != "already-loaded":
                self.note("add" if old is None else "change", "license", name, serial.serial, before, after)
        for lic in pool.licenses:
            initial = is_initial(lic.serial, lic.feature)
            managed = declared.licenses is not None if initial else declared.serials is not None
            if managed and lic.serial not in wanted:
                with at(f"{key}.{'licenses' if initial else 'serials'} (serial {lic.serial} is not in the file)"):
                    engine.remove_license(self.tx, name, lic.serial)
                self.note("remove", "license", name, lic.serial, f"{lic.feature}={lic.count}")

    def reservations(self, name: str, declared: SitePool, key: str, shrink: bool) -> None:
        """The project reservations: with ``shrink`` only those going down (or away), else those going up
        (checked against the seats issued by then, by :func:`lictools.engine.reserve`)."""
        if declared.reservations is None:
            return
        pool = engine.get_pool(self.tx, name)
        wanted = declared.reservations
        pairs = {(p, f) for p, per in [*pool.reservations.items(), *wanted.items()] for f in per}
        for project, feature in sorted(pairs):
            before = pool.reservations.get(project, {}).get(feature, 0)
            after = wanted.get(project, {}).get(feature, 0)
            if before == after or (after < before) != shrink:
                continue
            where = f"{key}.reservations.{project}.{feature}" if after else f"{key}.reservations ({project} {feature} is not in the file)"
            with at(where):
                engine.reserve(self.tx, name, project, feature, after)
            action = "add" if not before else "remove" if not after else "change"
            self.note(action, "reservation", name, f"{project} {feature}", before or None, after or None)

    def policies(self, pool: Pool, declared: SitePool, key: str, shrink: bool) -> None:
        """With ``shrink``: remove the policies the file does not list and lower reserve counts; else add
        the others and raise counts (so reserved seats never exceed issued ones on the way)."""
        if declared.policies is None:
            return
        current = {p.identity: p for p in pool.policies}
        wanted = {p.identity: p for p in declared.policies}
        if shrink:
            for identity, policy in current.items():
                if identity not in wanted:
                    with at(f"{key}.policies ({policy.text()} is not in the file)"):
                        engine.remove_policy(self.tx, pool.name, policy, host=self.host)
                    self.note("remove", "policy", pool.name, policy.text())
        for index, policy in enumerate(declared.policies):
            old = current.get(policy.identity)
            lower = old is not None and policy.kind == "reserve" and (policy.count or 0) < (old.count or 0)
            if old == policy or lower != shrink:
                continue
            with at(f"{key}.policies[{index}]"):
                engine.add_policy(self.tx, pool.name, policy, host=self.host)
            if old is None:
                self.note("add", "policy", pool.name, policy.text())
            else:
                self.note("change", "policy", pool.name, f"{policy.kind} {policy.target} {policy.name}",
                          old.text(), policy.text())


def apply_site(tx: Transaction, site: Site, prune: bool = False, force: bool = False,
               host: Host = SYSTEM) -> tuple[list[Change], list[str]]:
    """Make the state in ``tx`` what ``site`` declares; returns (changes, warnings). Raise inside a
    transaction: a SiteError leaves the transaction to be rolled back by its store."""
    applier = Applier(tx, host)
    return applier.run(site, prune, force), applier.warnings


# --------------------------------------------------------------------------- export
def export(tx: StateView) -> dict[str, Any]:
    """The configuration in ``tx`` as a site document: applying it to this state changes nothing."""
    settings = tx.get_settings()
    doc: dict[str, Any] = {
        "settings": {key: settings.get(key, "") for key in SETTINGS},
        "groups": policies.groups(settings),
        "pools": {},
    }
    for pool in tx.list_pools():
        defaults = check_options(get_rule(pool.product), {})
        serials = [lic for lic in pool.licenses if not is_initial(lic.serial, lic.feature)]
        doc["pools"][pool.name] = {
            "product": pool.product,
            "licenses": {lic.feature: lic.count for lic in pool.licenses if is_initial(lic.serial, lic.feature)},
            "serials": [
                {"serial": lic.serial, "feature": lic.feature, "count": lic.count,
                 **({"host_lock": lic.host_lock} if lic.host_lock else {})}
                for lic in serials
            ],
            "options": {k: v for k, v in pool.options.items() if defaults.get(k) != v},
            "reservations": {p: dict(per) for p, per in sorted(pool.reservations.items())},
            "policies": [p.to_doc() for p in pool.policies],
        }
    return doc


def to_toml(doc: dict[str, Any], header: str = "") -> str:
    """A site document as TOML text (tomli-w), after ``header`` comment lines."""
    import tomli_w

    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + ("\n" if comments else "") + tomli_w.dumps(doc)
