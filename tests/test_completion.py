"""``lictools completion SHELL``: the script, sourced in a real bash, completes commands, pool names,
the features of the pool on the line, and live session ids (read from the state, never written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_process

BIN = Path(sys.executable).parent


def complete(line: str, env: dict[str, str]) -> list[str]:
    """What bash offers after TAB at the end of ``line`` (COMP_WORDS/COMP_CWORD as bash sets them)."""
    script = run_process("completion", "bash").out
    words = line.split(" ")
    driver = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_lictools_completion lictools\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", driver], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture
def bash_env(state):
    if not (BIN / "lictools").exists() or shutil.which("bash") is None:
        pytest.skip("needs bash and the lictools console script")
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")


def test_completes_command_names(bash_env):
    assert complete("lictools acq", bash_env) == ["acquire"]
    offered = set(complete("lictools re", bash_env))
    assert offered >= {"release", "refresh", "remove", "reserve"} and all(c.startswith("re") for c in offered)


def test_completes_pools_features_and_sessions_from_the_state(bash_env, state):
    for name, product, lic in (("genero-prod", "genero", "runtime=5"), ("magic", "magic-xpa", "ria=5"),
                               ("gamma", "generic", "seats=1")):
        assert run_process("pool", "add", name, "--product", product, "--license", lic).code == 0
    assert run_process("acquire", "genero-prod", "--session", "login-42").code == 0
    assert complete("lictools acquire g", bash_env) == ["gamma", "genero-prod"]
    assert complete("lictools users ma", bash_env) == ["magic"]
    assert complete("lictools acquire magic --feature ", bash_env) == ["ria", "threads", "web"]
    assert complete("lictools release login", bash_env) == ["login-42"]
    assert complete("lictools --state " + str(state) + " pool show gen", bash_env) == ["genero-prod"]


def test_completion_on_a_missing_state_creates_nothing(bash_env, tmp_path):
    missing = tmp_path / "nowhere" / "state.db"
    env = dict(bash_env, LICTOOLS_STATE=str(missing))
    assert complete("lictools acquire ", env) == []
    assert not missing.parent.exists()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_the_program(shell):
    result = run_process("completion", shell)
    assert result.code == 0 and "_LICTOOLS_COMPLETE" in result.out
    assert run_process("completion", "tcsh").code == 2
