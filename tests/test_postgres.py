"""The PostgreSQL store as users meet it: real processes on "two hosts", a server that goes away,
credentials that must never be printed, a schema from a newer lictools.

The store contract itself (the same suite as the file stores) runs through the ``store`` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import LICTOOLS, run_process
from tests.pgcluster import PASSWORD_ROLE


@pytest.fixture
def pg_state(pg_url, monkeypatch):
    """A fresh database exported as LICTOOLS_STATE."""
    monkeypatch.setenv("LICTOOLS_STATE", pg_url)
    monkeypatch.delenv("LICTOOLS_NOW", raising=False)
    monkeypatch.delenv("LICTOOLS_FORMAT", raising=False)
    return pg_url


def sql(cluster, url: str, statement: str, *args):
    """Run one statement in the test database as the superuser; its rows."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(statement, args)
        return cur.fetchall() if cur.description else []


def race(pool: str, contenders: int, nodes=("host-a", "host-b")) -> list[tuple[int, str, str]]:
    """``contenders`` real acquire processes at once, alternating between ``nodes``: (code, out, err) each."""
    env = dict(os.environ, LICTOOLS_LOCK_TIMEOUT="300")
    procs = [
        subprocess.Popen(LICTOOLS + ["acquire", pool, "--feature", "seats", "--user", f"user{i}",
                                     "--node", nodes[i % len(nodes)]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(contenders)
    ]
    return [(p.wait(timeout=600), p.stdout.read().strip(), p.stderr.read()) for p in procs]


@pytest.mark.parametrize("contenders,seats", [(24, 5), (200, 50)])
def test_two_hosts_racing_through_one_database_get_exactly_the_issued_seats(pg_state, contenders, seats):
    assert run_process("pool", "add", "race", "--product", "generic", "--license", f"seats={seats}").code == 0
    results = race("race", contenders)
    winners = [out for code, out, _ in results if code == 0]
    losers = [err for code, _, err in results if code == 3]
    assert len(winners) == seats, [r for r in results if r[0] not in (0, 3)][:3]
    assert len(losers) == contenders - seats
    assert all(err.startswith("lictools: denied") for err in losers)

    info = json.loads(run_process("--format", "json", "info", "race").out)
    assert (info[0]["in_use"], info[0]["sessions"]) == (seats, seats)
    held = json.loads(run_process("--format", "json", "users", "race").out)
    assert sorted(s for row in held for s in row["sessions"]) == sorted(winners)
    journal = [json.loads(line) for line in run_process("journal").out.splitlines()]
    assert [e["seq"] for e in journal] == list(range(1, len(journal) + 1))
    assert sum(e["event"] == "grant" for e in journal) == seats
    assert sum(e["event"] == "deny" for e in journal) == contenders - seats
    assert max(e.get("in_use", 0) for e in journal) == seats
    assert {e["node"] for e in journal if e["event"] == "grant"} <= {"host-a", "host-b"}


def hold_pool_lock(url: str, pool: str):
    """A connection holding pool ``pool``'s row lock (as a command deciding on it does) until closed."""
    import psycopg

    db = psycopg.connect(url)
    db.execute("SELECT 1 FROM lictools.pools WHERE name = %s FOR UPDATE", (pool,))
    return db


def test_a_locked_pool_makes_others_wait_but_not_other_pools(pg_state):
    for pool in ("p", "q"):
        assert run_process("pool", "add", pool, "--product", "generic", "--license", "f=3").code == 0
    holder = hold_pool_lock(pg_state, "p")
    try:
        other = run_process("--lock-timeout", "2", "acquire", "q", "--feature", "f")
        assert other.code == 0, other.err
        started = time.monotonic()
        blocked = run_process("--lock-timeout", "1", "acquire", "p", "--feature", "f")
        assert time.monotonic() - started >= 1
    finally:
        holder.close()
    assert blocked.code == 5
    assert blocked.out == "" and len(blocked.err.splitlines()) == 1, blocked.err
    assert "lock not obtained within 1s" in blocked.err and "port 5432" in blocked.err
    assert "Traceback" not in blocked.err
    info = {row["pool"]: row for row in json.loads(run_process("--format", "json", "info").out)}
    assert (info["p"]["sessions"], info["q"]["sessions"]) == (0, 1)


def test_backend_killed_mid_transaction_leaves_no_partial_change(pg_state, pg_cluster, clock):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=3",
                       "--option", "lease=60").code == 0
    assert run_process("acquire", "p", "--feature", "f", "--session", "old").code == 0
    events_before = sql(pg_cluster, pg_state, "SELECT count(*) FROM lictools.events")[0][0]
    clock.advance(120)  # "old" has expired: the next command's reap deletes it, then decides on p
    holder = hold_pool_lock(pg_state, "p")
    try:
        proc = subprocess.Popen(LICTOOLS + ["--lock-timeout", "60", "acquire", "p", "--feature", "f",
                                            "--session", "new"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        deadline = time.monotonic() + 60
        waiting: list = []
        while not waiting and time.monotonic() < deadline:  # the command has reaped and waits for p's lock
            waiting = sql(pg_cluster, pg_state, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                          "'lictools' AND wait_event_type = 'Lock'")
            time.sleep(0.05)
        assert waiting, "the acquire never waited for the pool lock"
        assert sql(pg_cluster, pg_state, "SELECT pg_terminate_backend(%s)", waiting[0][0]) == [(True,)]
        code, err = proc.wait(timeout=60), proc.stderr.read()
    finally:
        holder.close()
    assert code == 5, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "port 5432" in err, err
    # nothing of it landed: the expired session is still stored, no journal line was added
    assert sql(pg_cluster, pg_state, "SELECT id FROM lictools.sessions") == [("old",)]
    assert sql(pg_cluster, pg_state, "SELECT count(*) FROM lictools.events")[0][0] == events_before
    # the next command does it all, once
    assert run_process("acquire", "p", "--feature", "f", "--session", "new").code == 0
    kinds = [json.loads(line)["event"] for line in run_process("journal").out.splitlines()]
    assert kinds == ["pool-add", "grant", "expire", "grant"]


def test_server_stopped_is_exit_5_in_one_line_and_restarted_loses_nothing(pg_state, pg_cluster):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=3").code == 0
    first = run_process("acquire", "p", "--feature", "f").out.strip()
    before = run_process("dump").out
    pg_cluster.stop()
    try:
        for args in (["acquire", "p", "--feature", "f"], ["info"], ["release", first], ["doctor"]):
            down = run_process(*args)
            assert down.code == 5, (args, down)
            assert down.out == "" and len(down.err.splitlines()) == 1, down.err
            assert down.err.startswith("lictools: cannot reach the PostgreSQL server at host ")
            assert f"host {pg_cluster.folder} port 5432" in down.err and "Traceback" not in down.err
    finally:
        pg_cluster.start()
    assert run_process("dump").out == before
    second = run_process("acquire", "p", "--feature", "f")
    assert second.code == 0
    assert sorted(s for row in json.loads(run_process("--format", "json", "users").out)
                  for s in row["sessions"]) == sorted([first, second.out.strip()])


def test_passwords_are_never_shown(pg_url, pg_cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("LICTOOLS_STATE", raising=False)
    pg_cluster.add_password_role("right-pw-123")
    database = pg_url.split("@/", 1)[1].split("?")[0]
    base = f"@/{database}?host={pg_cluster.folder}"
    wrong = run_process("--state", f"postgresql://{PASSWORD_ROLE}:wrong-pw-456{base}", "info")
    assert wrong.code == 7 and "refused the login" in wrong.err and len(wrong.err.splitlines()) == 1, wrong.err
    unreachable = run_process("--lock-timeout", "2", "--state",
                              "postgresql://someone:secret-pw-789@127.0.0.1:1/x", "acquire", "p")
    assert unreachable.code == 5 and "host 127.0.0.1 port 1" in unreachable.err, unreachable.err
    in_query = run_process("--state", f"postgresql://{PASSWORD_ROLE}{base}&password=wrong-pw-456", "info")
    assert in_query.code == 7, in_query.err
    for result in (wrong, unreachable, in_query):
        assert "pw-" not in result.out + result.err and "Traceback" not in result.err
    # the right password, from the environment or from .pgpass, works and is not shown either
    env_pw = run_process("--state", f"postgresql://{PASSWORD_ROLE}{base}", "pool", "add", "p", "--product",
                         "generic", "--license", "f=1", env={"PGPASSWORD": "right-pw-123"})
    assert env_pw.code == 0, env_pw.err
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{PASSWORD_ROLE}:right-pw-123\n")
    pgpass.chmod(0o600)
    from_file = run_process("--state", f"postgresql://{PASSWORD_ROLE}{base}", "doctor",
                            env={"PGPASSFILE": str(pgpass)})
    assert from_file.code == 0, from_file.err
    assert "pw-" not in from_file.out


def test_url_shown_without_password():
    from lictools.stores.postgres import redact

    assert redact("postgresql://u:s3cret@db.example:5433/lic?sslmode=require&password=x") == \
        "postgresql://u@db.example:5433/lic?sslmode=require"
    assert redact("postgres://db/lic") == "postgres://db/lic"


def test_newer_schema_is_refused_and_left_alone(pg_state, pg_cluster):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    sql(pg_cluster, pg_state, "COMMENT ON SCHEMA lictools IS 'lictools state, schema version 99'")
    for args in (["acquire", "p", "--feature", "f"], ["info"]):
        result = run_process(*args)
        assert result.code == 6 and "schema 99, newer than this lictools" in result.err, result
    assert sql(pg_cluster, pg_state, "SELECT count(*) FROM lictools.sessions")[0][0] == 0
    assert sql(pg_cluster, pg_state, "SELECT count(*) FROM lictools.events")[0][0] == 1


def test_refused_first_command_creates_nothing(pg_state, pg_cluster):
    assert run_process("info").code == 4
    assert run_process("acquire", "p").code == 4
    assert sql(pg_cluster, pg_state, "SELECT to_regnamespace('lictools')") == [(None,)]


def test_lease_expiry_uses_the_server_clock(pg_state, pg_cluster):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    session = run_process("acquire", "p", "--feature", "f").out.strip()
    (server_now,) = sql(pg_cluster, pg_state, "SELECT extract(epoch FROM now())::float8")[0]
    (doc,) = sql(pg_cluster, pg_state, "SELECT doc FROM lictools.sessions WHERE id = %s", session)[0]
    assert abs(json.loads(doc)["started"] - server_now) < 30


def test_doctor_reports_server_schema_and_clocks(pg_state, pg_cluster):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=2").code == 0
    assert run_process("acquire", "p", "--feature", "f", "--node", "good").code == 0
    assert run_process("acquire", "p", "--feature", "f", "--node", "skewed").code == 0
    sql(pg_cluster, pg_state, "UPDATE lictools.sessions SET clock_skew = 42 WHERE node = 'skewed'")
    result = run_process("--format", "json", "doctor")
    rows = {row["check"]: row for row in json.loads(result.out)}
    assert rows["server"]["status"] == "ok" and "PostgreSQL 15" in rows["server"]["detail"]
    assert rows["state"]["status"] == "ok" and "schema 1" in rows["state"]["detail"]
    assert rows["clock"]["status"] == "ok"
    assert rows["nodes"]["status"] == "warn" and "skewed 42.0s ahead of" in rows["nodes"]["detail"]
    assert "good" not in rows["nodes"]["detail"]
    assert rows["replay"]["status"] == "ok"
    restore = run_process("doctor", "--restore", "--yes")
    assert restore.code == 2 and "pg_dump" in restore.err, restore.err


def test_missing_psycopg_is_exit_2_naming_the_extra(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "psycopg.py").write_text("raise ImportError('No module named psycopg', name='psycopg')\n")
    env = dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = run_process("--state", "postgresql://db.example/lic", "info", env=env)
    assert result.code == 2
    assert result.err == "lictools: a postgresql:// state needs psycopg: pip install 'lictools[postgres]'\n"


def test_acquire_on_a_file_state_never_imports_psycopg(tmp_path):
    script = (
        "import sys\nfrom lictools.cli.main import run\n"
        "run(['pool', 'add', 'p', '--product', 'generic', '--license', 'f=1'])\n"
        "code = run(['acquire', 'p', '--feature', 'f'])\n"
        "print(code, 'psycopg' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, LICTOOLS_STATE=str(tmp_path / "state.db")))
    assert proc.stdout.splitlines()[-1] == "0 False", proc.stderr


# --------------------------------------------------------------------------- transactions, in one process
def two_stores(url: str):
    """Two stores on one database, as two commands (two connections) on two hosts."""
    from lictools.stores.postgres import PostgresStore

    return PostgresStore(url, lock_timeout=30), PostgresStore(url, lock_timeout=30)


def test_journal_numbers_follow_commit_order(pg_url, clock):
    from lictools import engine

    first, second = two_stores(pg_url)
    with first.transaction() as t:  # the first write creates the schema (the next commands wait for it)
        engine.add_pool(t, "o", "generic", {"f": 1}, {})
    with first.transaction() as early:
        engine.add_pool(early, "p", "generic", {"f": 1}, {})  # appended first ...
        with second.transaction() as late:
            engine.add_pool(late, "q", "generic", {"f": 1}, {})  # ... committed first
    events = [(e["seq"], e["pool"]) for e in first.read_journal()]
    assert events == [(1, "o"), (2, "q"), (3, "p")]
    # a reader that saw seq 2 when q was committed misses nothing
    assert [e["pool"] for e in first.read_journal(since_seq=2)] == ["p"]


def test_two_commands_reaping_one_expired_session_end_it_once(pg_url, pg_cluster, clock):
    import threading

    from lictools import engine
    from tests.test_engine import req

    first, second = two_stores(pg_url)
    with first.transaction() as t:
        engine.add_pool(t, "p", "generic", {"f": 2}, {"lease": "60"})
        engine.add_pool(t, "q", "generic", {"f": 2}, {})
        engine.acquire(t, req(session="old"))
    clock.advance(120)
    outcome = {}

    def other_command():
        with second.transaction() as t:
            outcome["reaped"] = [s.id for s in engine.reap(t)]
            outcome["granted"] = engine.acquire(t, req(pool="q", session="other")).granted

    with first.transaction() as t:
        assert [s.id for s in engine.reap(t)] == ["old"]  # holds the expired row's lock until the commit
        racer = threading.Thread(target=other_command)
        racer.start()
        wait_for_lock_wait(pg_cluster, pg_url)
        assert engine.acquire(t, req(session="new")).granted
    racer.join(timeout=30)
    assert outcome == {"reaped": [], "granted": True}
    kinds = [(e["event"], e.get("session")) for e in first.read_journal()]
    assert kinds.count(("expire", "old")) == 1
    with first.read() as view:
        assert sorted(s.id for s in view.find_sessions()) == ["new", "other"]


def wait_for_lock_wait(cluster, url: str) -> None:
    """Until a lictools connection waits for a lock (the other command is blocked where the test wants)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sql(cluster, url, "SELECT 1 FROM pg_stat_activity WHERE "
                                                  "application_name = 'lictools' AND wait_event_type = 'Lock'"):
        time.sleep(0.02)


def test_concurrent_pool_add_of_one_name_is_refused_not_overwritten(pg_url, pg_cluster):
    import threading

    from lictools import engine
    from lictools.errors import BusyError

    first, second = two_stores(pg_url)
    with first.transaction() as t:  # the schema exists: what remains is the two adds
        engine.add_pool(t, "other", "generic", {"f": 1}, {})
    outcome = {}

    def late_add():
        try:
            with second.transaction() as late:
                engine.add_pool(late, "p", "aveva-batch", {"dev": 3}, {})
        except BusyError as exc:
            outcome["error"] = exc.message

    with first.transaction() as early:
        engine.add_pool(early, "p", "generic", {"f": 1}, {})
        racer = threading.Thread(target=late_add)
        racer.start()
        wait_for_lock_wait(pg_cluster, pg_url)  # the late add waits on the name the early one inserted
    racer.join(timeout=30)
    assert "at the same time" in outcome["error"]
    with first.read() as view:
        assert view.get_pool("p").product == "generic"
    assert [e["pool"] for e in first.read_journal()] == ["other", "p"]


def test_doctor_fails_a_journal_row_that_is_not_json(pg_state, pg_cluster):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    sql(pg_cluster, pg_state, "INSERT INTO lictools.events (seq, doc) VALUES (2, '{not json')")
    result = run_process("--format", "json", "doctor")
    assert result.code == 6 and "Traceback" not in result.err
    rows = {row["check"]: row for row in json.loads(result.out)}
    assert rows["journal"]["status"] == "fail" and "not valid JSON" in rows["journal"]["detail"]
    assert run_process("journal").code == 6  # the journal command refuses it too, in one line


def race_two_commands(pg_url, pg_cluster, command):
    """``command(tx)`` in two transactions at once: the second starts while the first holds its locks.

    Returns what the second raised (None when it did not); the first commits once the second waits.
    """
    import threading

    first, second = two_stores(pg_url)
    outcome = {}

    def other():
        try:
            with second.transaction() as t:
                command(t)
        except Exception as exc:  # noqa: BLE001  the test asserts there was none
            outcome["error"] = exc

    with first.transaction() as t:
        command(t)
        racer = threading.Thread(target=other)
        racer.start()
        wait_for_lock_wait(pg_cluster, pg_url)
    racer.join(timeout=30)
    return outcome.get("error"), first


def test_two_commands_timing_out_one_waiter_journal_it_once(pg_url, pg_cluster, clock):
    from lictools import engine
    from tests.test_engine import req

    first, _ = two_stores(pg_url)
    with first.transaction() as t:
        engine.add_pool(t, "p", "generic", {"f": 1}, {})
        engine.add_pool(t, "q", "generic", {"f": 1}, {})
        assert engine.acquire(t, req(session="holder")).granted
    with first.transaction() as t:
        assert engine.acquire(t, req(session="waiter", user="bob"), wait=engine.Wait(t.now + 10)).queued
    clock.advance(60)
    error, store = race_two_commands(pg_url, pg_cluster, engine.reap)
    assert error is None
    events = [(e["event"], e.get("session")) for e in store.read_journal()]
    assert events.count(("dequeue", "waiter")) == 1 and events.count(("deny", "waiter")) == 1


def test_two_commands_removing_the_same_sessions_journal_each_once(pg_url, pg_cluster, clock):
    from lictools import engine
    from tests.test_engine import req

    first, _ = two_stores(pg_url)
    with first.transaction() as t:
        engine.add_pool(t, "p", "generic", {"f": 3}, {})
        for session in ("b1", "b2"):
            assert engine.acquire(t, req(session=session, user="bob")).granted
    error, store = race_two_commands(pg_url, pg_cluster, lambda t: engine.remove(t, user="bob", actor="admin"))
    assert error is None
    events = [(e["event"], e.get("session")) for e in store.read_journal()]
    assert events.count(("remove", "b1")) == 1 and events.count(("remove", "b2")) == 1


def test_a_long_transaction_journals_in_batches_numbered_in_order(pg_url, clock):
    from lictools.stores.postgres import JOURNAL_BATCH

    first, _ = two_stores(pg_url)
    count = JOURNAL_BATCH * 2 + 5
    with first.transaction() as t:
        for i in range(count):
            t.append_event({"event": "config", "v": 2, "ts": 1.0 + i, "key": "k", "value": str(i)})
        assert len(t.events) == 5  # the full batches are written already (bounded memory)
        assert [e["seq"] for e in t.journal()] == list(range(1, count + 1))
        t.clear_journal()
        t.append_event({"event": "config", "v": 2, "ts": 1.0, "key": "k", "value": "after clear"})
        assert [e["seq"] for e in t.journal()] == [1]
    with first.transaction() as t:
        for i in range(3):
            t.append_event({"event": "config", "v": 2, "ts": 2.0, "key": "k", "value": str(i)})
    assert [(e["seq"], e["value"]) for e in first.read_journal()] == [(1, "after clear"), (2, "0"), (3, "1"), (4, "2")]


def test_readme_setup_a_role_owning_its_database_is_enough(pg_cluster, monkeypatch):
    """README "Several hosts": CREATE ROLE lictools LOGIN; CREATE DATABASE lictools OWNER lictools; no superuser."""
    with pg_cluster.admin() as db:
        db.execute("DROP DATABASE IF EXISTS readme_db")
        db.execute("DROP ROLE IF EXISTS readme_role")
        db.execute("CREATE ROLE readme_role LOGIN")
        db.execute("CREATE DATABASE readme_db OWNER readme_role")
    monkeypatch.setenv("LICTOOLS_STATE", f"postgresql://readme_role@/readme_db?host={pg_cluster.folder}")
    assert run_process("pool", "add", "genero-prod", "--product", "genero", "--license", "runtime=50").code == 0
    session = run_process("acquire", "genero-prod", "--node", "app1")
    assert session.code == 0, session.err
    rows = json.loads(run_process("--format", "json", "users").out)
    assert [s for row in rows for s in row["sessions"]] == [session.out.strip()]
    # another role may log in but was granted nothing: exit 7, one line
    with pg_cluster.admin() as db:
        db.execute("DROP ROLE IF EXISTS readme_other")
        db.execute("CREATE ROLE readme_other LOGIN")
    other = run_process("--state", f"postgresql://readme_other@/readme_db?host={pg_cluster.folder}", "info")
    assert other.code == 7 and len(other.err.splitlines()) == 1 and "may not use schema lictools" in other.err, other.err
    # the README's grants let it in
    import psycopg

    with psycopg.connect(f"postgresql://readme_role@/readme_db?host={pg_cluster.folder}", autocommit=True) as db:
        db.execute("GRANT USAGE ON SCHEMA lictools TO readme_other")
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lictools TO readme_other")
    granted = run_process("--state", f"postgresql://readme_other@/readme_db?host={pg_cluster.folder}",
                          "acquire", "genero-prod", "--node", "app2")
    assert granted.code == 0, granted.err


def test_journal_rotation_is_refused_on_postgresql_in_one_line(pg_state):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "f=1").code == 0
    result = run_process("journal", "rotate")
    assert result.code == 2 and result.out == ""
    assert result.err == "lictools: journal rotation is not available on this store\n"
    assert len(run_process("journal").out.splitlines()) == 1   # the pool_add event, still there
