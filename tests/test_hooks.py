"""The bash hooks in examples/hooks, run for real with bash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_process

HOOKS = Path(__file__).resolve().parent.parent / "examples" / "hooks"
LICTOOLS_BIN = str(Path(sys.executable).parent / "lictools")


@pytest.fixture
def hook_env(state, tmp_path):
    if not os.access(LICTOOLS_BIN, os.X_OK):
        pytest.skip(f"console script {LICTOOLS_BIN} is not installed in this environment")
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    return dict(os.environ, LICTOOLS_BIN=LICTOOLS_BIN, LICTOOLS_SESSION_DIR=str(sessions))


def hook(name, env, *args):
    return subprocess.run(["bash", str(HOOKS / name), *args], env=env, capture_output=True, text=True, timeout=60)


def in_use(pool):
    return json.loads(run_process("--format", "json", "info", pool).out)[0]["in_use"]


def test_login_logout_cycle(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    first = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert first.returncode == 0, first.stderr
    assert in_use("p") == 1
    retried = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert retried.returncode == 0, "a retried login reuses its session"
    assert in_use("p") == 1
    assert hook("heartbeat.sh", hook_env, "p", "--feature", "seats").returncode == 0
    assert hook("logout.sh", hook_env, "p").returncode == 0
    assert in_use("p") == 0
    assert hook("logout.sh", hook_env, "p").returncode == 0, "logout twice is harmless"


def test_login_refused_when_full(hook_env, tmp_path):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    assert run_process("acquire", "p", "--feature", "seats", "--user", "someone-else").code == 0
    refused = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert refused.returncode == 3
    assert "No license seat is free for p" in refused.stderr


def test_heartbeat_reacquires_an_expired_session(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1", "--option", "lease=60").code == 0
    assert hook("login.sh", hook_env, "p", "--feature", "seats").returncode == 0
    later = dict(hook_env, LICTOOLS_NOW=str(__import__("time").time() + 120))
    assert hook("heartbeat.sh", later, "p", "--feature", "seats").returncode == 0
    assert json.loads(run_process("--format", "json", "info", "p", env={"LICTOOLS_NOW": later["LICTOOLS_NOW"]}).out)[0]["in_use"] == 1
