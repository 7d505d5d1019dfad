"""``lictools fglwrt`` / ``lictools-fglwrt``: fglWrt's options on a pool, for scripts written against fglWrt."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lictools.cli.fglwrt import Action, parse
from lictools.errors import UsageError

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

BIN = Path(sys.executable).parent / "lictools-fglwrt"


@pytest.mark.parametrize("args, action", [
    (["-a", "info", "users"], Action("users")),
    (["-a", "info", "user"], Action("users")),
    (["-u"], Action("check")),
    (["-x", "5144"], Action("kill", 5144)),
    (["-kill-session", "77"], Action("kill", 77)),
    (["-i"], Action("clear")),
    (["-a", "ps"], Action("ps")),
    (["-a", "info", "up"], Action("up")),
    (["-h"], Action("help")),
    ([], Action("help")),
])
def test_parse_fglwrt_options(args, action):
    assert parse(args) == action


@pytest.mark.parametrize("args", [["-x"], ["-x", "abc"], ["-a", "info", "license"], ["-l"], ["-u", "-i"]])
def test_unsupported_fglwrt_options_are_exit_2(args):
    with pytest.raises(UsageError):
        parse(args)


@pytest.fixture
def genero(lt):
    assert lt("pool", "add", "g", "--product", "genero", "--license", "runtime=5").code == 0
    return lt


def test_info_users_prints_the_listing_to_stdout_or_stderr(genero):
    genero("acquire", "g", "--client", "gdc", "--monitor", "fe-1", "--pid", "4242")
    out = genero("fglwrt", "-a", "info", "users")
    assert out.code == 0 and re.search(r"^Users *: 1/5$", out.out, re.M), out.out
    assert out.out == genero("info", "users", "g").out
    old = genero("fglwrt", "--stderr", "-a", "info", "users")
    assert old.out == "" and re.search(r"^Users *: 1/5$", old.err, re.M)


def test_u_drops_dead_processes_of_the_pool(genero):
    genero("acquire", "g", "--client", "tui", "--session", "alive", "--pid", str(os.getpid()))
    genero("acquire", "g", "--client", "tui", "--session", "dead", "--pid", "2147483000")
    assert genero("fglwrt", "-u").code == 0
    assert [r["session"] for r in genero("--format", "json", "users", "--sessions").json()] == ["alive"]


def test_x_clears_the_session_of_one_pid_and_i_clears_all(genero):
    genero("acquire", "g", "--client", "tui", "--session", "a", "--pid", "5144")
    genero("acquire", "g", "--client", "tui", "--session", "b", "--pid", "6000")
    assert genero("fglwrt", "-x", "5144").code == 0
    assert [r["session"] for r in genero("--format", "json", "users", "--sessions").json()] == ["b"]
    assert genero("fglwrt", "-x", "5144").code == 4
    cleared = genero("fglwrt", "-i")
    assert cleared.code == 0 and "Warning: all registered user sessions of pool g are cleared." in cleared.err
    assert genero("--format", "json", "users").json() == []


def test_ps_up_and_help(genero):
    genero("acquire", "g", "--client", "tui", "--pid", "5144")
    genero("acquire", "g", "--client", "tui", "--pid", "77")
    assert genero("fglwrt", "-a", "ps").out == "77\n5144\n"
    assert genero("fglwrt", "-a", "info", "up").out == "License server is up.\n"
    assert "-x pid      : Clears the session referenced by the specified pid." in genero("fglwrt", "-h").out


def test_pool_is_the_only_one_or_named(genero):
    genero("pool", "add", "h", "--product", "genero", "--license", "runtime=1")
    several = genero("fglwrt", "-a", "info", "users")
    assert several.code == 2 and "give --pool or LICTOOLS_FGLWRT_POOL" in several.err
    assert "Pool         : h" in genero("fglwrt", "--pool", "h", "-a", "info", "users").out
    assert genero("fglwrt", "--pool", "nope", "-u").code == 4


def test_console_script_lictools_fglwrt(genero, state):
    if not BIN.exists():
        pytest.skip(f"console script {BIN} is not installed")
    genero("acquire", "g", "--client", "tui")
    result = subprocess.run([str(BIN), "-a", "info", "users"], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, LICTOOLS_STATE=str(state)))
    assert result.returncode == 0 and "Users        : 1/5" in result.stdout
    bad = subprocess.run([str(BIN), "-q"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, LICTOOLS_STATE=str(state)))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_front_end_output_satisfies_the_patterns_scripts_grep(genero):
    """Issue 13: 'Users *: [0-9]+/[0-9]+' and '^\\s*GUI Server [0-9.:]+ - Process Id [0-9]+' (the public
    awk parser of T100/TIPTOP) when clients give IP addresses and PIDs; through the examples/fglWrt drop-in."""
    genero("acquire", "g", "--client", "gdc", "--monitor", "10.1.2.3:0", "--pid", "5144", "--host", "10.1.2.3")
    genero("acquire", "g", "--client", "gwc", "--host", "10.1.2.9", "--pid", "6001")
    out = genero("fglwrt", "-a", "info", "users").out
    assert re.findall(r"Users *: [0-9]+/[0-9]+", out) == ["Users        : 2/5"]
    lines = re.findall(r"^\s*GUI Server [0-9.:]+ - Process Id [0-9]+", out, re.M)
    assert [ln.strip() for ln in lines] == ["GUI Server 10.1.2.3:0 - Process Id 5144"], out
    # through the GAS, fglWrt puts the GUI server and each DVM on lines of their own (vendors.md 1.3)
    assert "    GUI Server 10.1.2.9\n        Process Id 6001\n" in out


def test_examples_drop_in_runs_the_front_end(genero, state):
    genero("acquire", "g", "--client", "tui", "--pid", "77")
    env = dict(os.environ, LICTOOLS_STATE=str(state), LICTOOLS_BIN=f"{sys.executable} -m lictools",
               LICTOOLS_FGLWRT_STDERR="1")
    drop_in = Path(__file__).resolve().parent.parent / "examples" / "fglWrt"
    listed = subprocess.run(["bash", str(drop_in), "-a", "info", "users"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and listed.stdout == "" and "Users        : 1/5" in listed.stderr
    ps = subprocess.run(["bash", str(drop_in), "-a", "ps"], capture_output=True, text=True, env=env)
    assert ps.stdout == "77\n"
