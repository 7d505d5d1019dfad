"""One write path: typed events, one ``apply``, a pure rule, the host seam (issue "One write path").

- ``explain`` states the true reason for every kind of Genero session (root DVM, RUN child,
  direct-mode monitor, reused id): the rule is pure, so asking it again gives the key held;
- a denial's journal line carries the whole request (client, monitor, app, parent, ...);
- every journal line has ``v`` and the keys its kind requires;
- nothing but ``lictools.apply`` writes pools, sessions or settings;
- the engine runs against a fake host (no real processes, no real login) and a MemoryStore;
- admin events record the real account beside the claimed name.
"""

from __future__ import annotations

import ast
import json
import pathlib

import pytest

from lictools import engine, events, replay
from lictools.model import Request
from lictools.stores.memory import MemoryStore

from tests.fakes import FakeHost

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

ROOT = pathlib.Path(__file__).resolve().parent.parent / "lictools"


# --------------------------------------------------------------------------- explain tells the truth (Genero)
@pytest.fixture
def genero(lt):
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=5").code == 0
    return lt


def _why(lt, session: str) -> str:
    result = lt("--format", "json", "explain", session)
    assert result.code == 0, result.err
    doc = result.json()
    assert "pool options changed" not in doc["why"] and "cannot rebuild" not in doc["why"], doc["why"]
    return doc["why"]


def test_explain_root_dvm_gives_its_own_reason(genero):
    """The issue's reproduction: a plain root session was said to be keyed 'dvm:<id>#2'."""
    root = genero("acquire", "g", "--client", "gwc").out.strip()
    why = _why(genero, root)
    assert why.startswith("GWC through the web server: one seat per root DVM")
    line = [ln for ln in genero("explain", root).out.splitlines() if ln.startswith("why")][0]
    assert "#2" not in line


def test_explain_run_child_names_its_root(genero):
    genero("acquire", "g", "--client", "gbc", "--session", "root1")
    genero("acquire", "g", "--parent", "root1", "--session", "kid1")
    assert _why(genero, "kid1").startswith("started by RUN / RUN WITHOUT WAITING from root1: shares the seat of root DVM root1")
    doc = genero("--format", "json", "explain", "kid1").json()
    assert doc["seat"] == "dvm:root1" and doc["shared"] is True


def test_explain_direct_mode_monitor(genero):
    genero("acquire", "g", "--client", "gdc", "--monitor", "fe-42", "--session", "m1")
    genero("acquire", "g", "--client", "gdc", "--monitor", "fe-42", "--session", "m2")
    for session in ("m1", "m2"):
        assert _why(genero, session).startswith("GDC in direct mode: one seat per front-end monitor (fe-42)")


def test_explain_reused_id_says_why_it_took_another_key(genero):
    genero("acquire", "g", "--client", "gwc", "--session", "r")
    genero("acquire", "g", "--parent", "r", "--session", "child")
    genero("release", "r")  # the root exits, its RUN child lives on with seat dvm:r
    assert genero("acquire", "g", "--client", "gwc", "--session", "r").code == 0  # a hook reuses the id
    why = _why(genero, "r")
    assert "id r is reused while DVMs started from an earlier root with that id live on, so it takes key dvm:r#2" in why
    assert genero("--format", "json", "explain", "r").json()["seat"] == "dvm:r#2"
    assert "dvm:r#2" not in _why(genero, "child")


# --------------------------------------------------------------------------- the journal
def test_journal_after_a_denial_shows_the_whole_request(genero):
    genero("pool", "add", "one", "--product", "genero", "--license", "runtime=1")
    genero("acquire", "one", "--client", "gwc", "--session", "first")
    denied = genero("acquire", "one", "--client", "gdc", "--monitor", "fe-7", "--app", "orders",
                    "--session", "second", "--pid", "4242", "--project", "P1")
    assert denied.code == 3
    out = genero("journal").out
    deny = [json.loads(line) for line in out.splitlines() if json.loads(line)["event"] == "deny"]
    assert len(deny) == 1
    assert {k: deny[0][k] for k in ("client", "monitor", "app", "session", "pid", "project", "v")} == {
        "client": "gdc", "monitor": "fe-7", "app": "orders", "session": "second", "pid": 4242, "project": "P1", "v": events.VERSION,
    }


def test_journal_denial_of_a_run_child_keeps_its_parent(genero):
    genero("pool", "add", "zero", "--product", "generic", "--license", "f=0")
    assert genero("acquire", "zero", "--feature", "f", "--parent", "p-1", "--session", "c-1").code == 3
    deny = [json.loads(line) for line in genero("journal").out.splitlines() if '"deny"' in line]
    assert deny[-1]["parent"] == "p-1"


def test_every_journal_line_has_a_version_and_the_keys_of_its_kind(lt, clock):
    steps = [
        ("pool", "add", "p", "--product", "generic", "--license", "f=2", "--option", "linger=30", "--option", "share=user"),
        ("pool", "add", "q", "--product", "generic", "--license", "f=1"),
        ("license", "add", "p", "f", "1", "--serial", "S1"),
        ("license", "remove", "p", "S1"),
        ("reserve", "p", "pa", "f", "1"),
        ("pool", "set", "p", "--option", "lease=60"),
        ("config", "admin_group", "0"),
        ("acquire", "p", "--feature", "f", "--session", "a", "--project", "pa"),
        ("acquire", "p", "--feature", "f", "--session", "b"),
        ("acquire", "p", "--feature", "f", "--session", "c", "--user", "zed"),
        ("acquire", "p", "--feature", "f", "--session", "d", "--user", "yan"),
        ("acquire", "p", "--feature", "f", "--session", "w", "--user", "wes", "--wait", "0.3"),  # queue, times out
        ("refresh", "a"),
        ("acquire", "p", "--feature", "f", "--session", "a"),
        ("detach", "b"),
        ("release", "c"),
        ("acquire", "p", "--feature", "f", "--session", "e", "--project", "pb"),
        ("release", "a"),  # pa's last session leaves the seat b and e still hold: recharge
        ("acquire", "q", "--feature", "f", "--session", "q1"),
        ("remove", "q1"),
        ("pool", "remove", "q"),
        ("group", "set", "g", "zed", "yan"),
        ("policy", "add", "p", "max", "1", "--group", "g"),
        ("acquire", "p", "--feature", "f", "--session", "z2", "--user", "zed", "--project", "pz"),  # deny with policy
        ("policy", "remove", "p", "max", "--group", "g"),
        ("group", "remove", "g"),
    ]
    for step in steps:
        assert lt(*step).code in (0, 3), step
    clock.advance(100)
    lt("gc")
    lines = [json.loads(line) for line in lt("journal").out.splitlines()]
    kinds = {line["event"] for line in lines}
    assert kinds == set(events.KINDS), set(events.KINDS) - kinds
    for line in lines:
        assert line["v"] == events.VERSION, line
        assert events.missing_keys(line) == [], line
        assert None not in line.values(), line


def test_detach_journal_line_says_its_timeout(lt):
    lt("pool", "add", "p", "--product", "generic", "--license", "f=1", "--option", "linger=30")
    lt("acquire", "p", "--feature", "f", "--session", "a")
    lt("detach", "a")
    detach = [json.loads(line) for line in lt("journal").out.splitlines() if '"detach"' in line][0]
    assert detach["linger"] == 30 and detach["expires"] and not events.ends_session(detach)


# --------------------------------------------------------------------------- one write path
WRITES = {"put_pool", "delete_pool", "put_session", "delete_session", "put_setting", "append_event"}


def test_only_apply_writes_the_state():
    """Every call that writes pools, sessions, settings or the journal is in lictools/apply.py (or a store).

    One module among the stores writes without being a store: stores/copy.py (``migrate``,
    ``simulate --keep-state``), which copies a whole state and its journal as they are; a copy
    decides nothing and is no event (its docstring says why).
    """
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "apply.py" or rel.startswith("stores/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
                offenders.append(f"{rel}:{node.lineno} {node.func.attr}")
    assert offenders == []


def test_replay_folds_through_apply(monkeypatch):
    """replay is a fold: every event it reads goes through lictools.apply.apply."""
    store = MemoryStore(clock=lambda: 1_800_000_000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 2}, {})
        engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
        engine.release(tx, ["a"])
    seen = []
    from lictools import apply as applying

    real = applying.apply
    monkeypatch.setattr(replay, "apply", lambda tx, ev: (seen.append(ev["event"]), real(tx, ev))[1])
    replay.replay(store.read_journal())
    assert seen == ["pool-add", "grant", "release"]


# --------------------------------------------------------------------------- the host seam and the memory store
def test_engine_runs_on_a_fake_host_and_a_memory_store():
    host = FakeHost(node="fake-node", alive={pid: 1 for pid in range(100, 200)}, account=(4321, "real-account"),
                    login="claimed-name")
    store = MemoryStore(clock=lambda: 1_800_000_000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 5}, {"lease": "0"})
        for session, pid in (("alive", 150), ("dead", 250), ("elsewhere", 250)):
            node = "other-node" if session == "elsewhere" else "fake-node"
            assert engine.acquire(tx, Request("p", "f", session, "u", "h", node, pid=pid)).granted
    with store.transaction() as tx:
        dropped = engine.drop_dead_processes(tx, host=host)
        assert [s.id for s in dropped] == ["dead"]
        done = engine.remove(tx, ["alive"], machine=host)
        assert [s.id for s in done.done] == ["alive"] and done.freed == {"alive"}
    removal = [e for e in store.read_journal() if e["event"] == "remove"][0]
    assert (removal["by"], removal["by_uid"], removal["by_user"]) == ("claimed-name", 4321, "real-account")
    assert replay.compare(store) == []


def test_memory_store_rolls_back_a_failed_transaction():
    store = MemoryStore(clock=lambda: 1_800_000_000.0)
    with store.transaction() as tx:
        engine.add_pool(tx, "p", "generic", {"f": 1}, {})
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            engine.acquire(tx, Request("p", "f", "a", "u", "h", "n"))
            engine.remove_pool(tx, "p", force=True)
            raise RuntimeError("crash before commit")
    with store.transaction() as tx:
        assert tx.get_pool("p") is not None and tx.find_sessions() == []
    assert [e["event"] for e in store.read_journal()] == ["pool-add"]


def test_remove_records_the_real_account_beside_the_claimed_name(lt, monkeypatch):
    import os
    import pwd

    lt("pool", "add", "p", "--product", "generic", "--license", "f=1")
    session = lt("acquire", "p", "--feature", "f").out.strip()
    monkeypatch.setenv("LOGNAME", "someone-else")
    assert lt("remove", session).code == 0
    removal = [json.loads(line) for line in lt("journal").out.splitlines() if '"remove"' in line][0]
    assert removal["by"] == "someone-else"
    assert removal["by_uid"] == os.getuid() and removal["by_user"] == pwd.getpwuid(os.getuid()).pw_name
