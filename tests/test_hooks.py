"""The bash hooks in examples/hooks, run for real with bash, the way logins, PAM and cron run them.

A "login shell" here is a real bash process that runs login.sh, waits, then runs logout.sh: the
hooks key a seat on that shell ($PPID of the hook). Session files go to a private folder under the
test's HOME (~/.local/state/lictools/sessions), as they do for a user without XDG_RUNTIME_DIR.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_process

STATE_LAYOUTS = ("sqlite", "json", "postgres")  # tests/conftest.py: these run on every store

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / "examples" / "hooks"
LICTOOLS_BIN = str(Path(sys.executable).parent / "lictools")


@pytest.fixture
def hook_env(state, tmp_path):
    if not os.access(LICTOOLS_BIN, os.X_OK):
        pytest.skip(f"console script {LICTOOLS_BIN} is not installed in this environment")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "LICTOOLS_SESSION_DIR")}
    env.update(LICTOOLS_BIN=LICTOOLS_BIN, HOME=str(home))
    return env


def hook(name, env, *args):
    return subprocess.run(["bash", str(HOOKS / name), *args], env=env, capture_output=True, text=True, timeout=60)


def info(pool, env=None):
    return json.loads(run_process("--format", "json", "info", pool, env=env).out)[0]


def checkouts(env=None):
    return json.loads(run_process("--format", "json", "users", "--sessions", env=env).out)


class LoginShell:
    """A bash login shell wired as the README says: login.sh from the profile, logout.sh from its EXIT
    trap. It waits for a line on stdin, then exits (and so logs out)."""

    def __init__(self, env, pool, *acquire_args):
        args = " ".join(acquire_args)
        script = (f"trap 'bash {HOOKS}/logout.sh {pool}' EXIT\n"
                  f'bash {HOOKS}/login.sh {pool} {args} || exit $?\n'
                  f'echo logged-in\nread _\n')
        self.proc = subprocess.Popen(["bash", "-c", script], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line == "logged-in\n", self.proc.stderr.read()

    @property
    def pid(self):
        return self.proc.pid

    def logout(self):
        out, err = self.proc.communicate("\n", timeout=60)
        assert self.proc.returncode == 0, err

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def test_login_logout_cycle(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    first = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert first.returncode == 0, first.stderr
    assert info("p")["in_use"] == 1
    retried = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert retried.returncode == 0, "a retried login (same shell) reuses its session"
    assert info("p")["sessions"] == 1
    assert hook("heartbeat.sh", hook_env, "p", "--feature", "seats").returncode == 0
    assert hook("logout.sh", hook_env, "p").returncode == 0
    assert info("p")["in_use"] == 0
    assert hook("logout.sh", hook_env, "p").returncode == 0, "logout twice is harmless"


def test_login_refused_when_full(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    assert run_process("acquire", "p", "--feature", "seats", "--user", "someone-else").code == 0
    refused = hook("login.sh", hook_env, "p", "--feature", "seats")
    assert refused.returncode == 3
    assert "No license seat is free for p" in refused.stderr


def test_same_user_logged_in_twice_holds_two_sessions_each_freed_by_its_own_logout(hook_env):
    """It used to keep one file per user: the second login reused the first's session, and the first
    logout freed the seat while the second shell still ran."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=5").code == 0
    one, two = LoginShell(hook_env, "p", "--feature", "seats"), LoginShell(hook_env, "p", "--feature", "seats")
    assert sorted(s["pid"] for s in checkouts()) == sorted([one.pid, two.pid])
    one.logout()
    assert [s["pid"] for s in checkouts()] == [two.pid]
    two.logout()
    assert checkouts() == []


def test_hooks_pin_the_output_they_parse(hook_env):
    """A user who exports LICTOOLS_FORMAT=json must not get JSON written into the session file."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    env = dict(hook_env, LICTOOLS_FORMAT="json")
    shell = LoginShell(env, "p", "--feature", "seats")
    files = list((Path(env["HOME"]) / ".local/state/lictools/sessions").iterdir())
    assert len(files) == 1
    session, pid, _start = files[0].read_text().split()
    assert session == checkouts()[0]["session"] and int(pid) == shell.pid
    shell.logout()
    assert info("p")["in_use"] == 0


def test_session_folder_is_private_and_refuses_another_owner(hook_env, tmp_path):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    assert hook("login.sh", hook_env, "p", "--feature", "seats").returncode == 0
    folder = Path(hook_env["HOME"]) / ".local/state/lictools/sessions"
    assert folder.stat().st_mode & 0o077 == 0
    hook("logout.sh", hook_env, "p")
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    refused = hook("login.sh", dict(hook_env, LICTOOLS_SESSION_DIR=str(link)), "p", "--feature", "seats")
    assert refused.returncode == 1 and "refusing to use it" in refused.stderr
    assert info("p")["in_use"] == 0


def test_heartbeat_from_cron_refreshes_the_login_session_and_never_takes_a_second_seat(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=5",
                       "--option", "lease=600").code == 0
    shell = LoginShell(hook_env, "p", "--feature", "seats")
    [before] = checkouts()
    later = time.time() + 300
    cron = {k: v for k, v in hook_env.items() if k not in ("XDG_RUNTIME_DIR",)}  # cron has no session bus
    cron["LICTOOLS_NOW"] = repr(later)
    result = hook("heartbeat.sh", cron, "p", "--feature", "seats")
    assert result.returncode == 0, result.stderr
    [after] = checkouts(env={"LICTOOLS_NOW": repr(later)})
    assert after["session"] == before["session"] and after["pid"] == shell.pid, "cron's PID is never recorded"
    assert after["refreshed"] > before["refreshed"]
    # the lease ran out (the machine slept): the heartbeat takes a seat again for that login, in its name
    much_later = dict(cron, LICTOOLS_NOW=repr(later + 10_000))
    assert hook("heartbeat.sh", much_later, "p", "--feature", "seats").returncode == 0
    [again] = checkouts(env={"LICTOOLS_NOW": much_later["LICTOOLS_NOW"]})
    assert again["session"] == before["session"] and again["pid"] == shell.pid
    assert info("p", env={"LICTOOLS_NOW": much_later["LICTOOLS_NOW"]})["sessions"] == 1
    shell.logout()


def test_heartbeat_without_a_login_takes_no_seat(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=5").code == 0
    assert hook("heartbeat.sh", hook_env, "p", "--feature", "seats").returncode == 0
    assert info("p")["sessions"] == 0


def test_login_shell_killed_with_sigkill_gives_its_seat_back_at_the_next_heartbeat(hook_env):
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1",
                       "--option", "lease=3600").code == 0
    shell = LoginShell(hook_env, "p", "--feature", "seats")
    shell.kill()  # logout.sh never runs
    assert info("p")["in_use"] == 1
    assert hook("heartbeat.sh", hook_env, "p", "--feature", "seats").returncode == 0
    assert info("p")["in_use"] == 0
    assert hook("login.sh", hook_env, "p", "--feature", "seats").returncode == 0, "the seat is free again"


def test_login_shell_killed_with_sigkill_is_reaped_by_check_pids(hook_env):
    """With check_pids=yes the next lictools command that writes, on the node, frees the seat of a dead
    login (listings read a snapshot and change nothing: they show it until then)."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1",
                       "--option", "check_pids=yes").code == 0
    shell = LoginShell(hook_env, "p", "--feature", "seats")
    assert info("p")["in_use"] == 1
    shell.kill()
    assert run_process("acquire", "p", "--feature", "seats", "--user", "next-login").code == 0, "the dead login's seat"
    assert [s["user"] for s in checkouts()] == ["next-login"]


def test_pam_exec_takes_the_seat_in_pam_users_name_and_its_close_frees_it(hook_env):
    """pam_exec runs the hook as root with PAM_USER and PAM_TYPE set and no HOME."""
    assert run_process("pool", "add", "p", "--product", "generic", "--license", "seats=1").code == 0
    pam = {k: v for k, v in hook_env.items() if k != "HOME"}
    pam.update(PAM_USER="alice", PAM_SERVICE="sshd", PAM_TTY="ssh")
    # like sshd or login: one process opens the PAM session, waits, and closes it
    script = (f'PAM_TYPE=open_session bash {HOOKS}/pam.sh p --feature seats || exit $?\n'
              f'echo open\nread _\nPAM_TYPE=close_session bash {HOOKS}/pam.sh p\nexit $?\n')
    app = subprocess.Popen(["bash", "-c", script], env=pam, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert app.stdout.readline() == "open\n", app.stderr.read()
    [session] = checkouts()
    assert session["user"] == "alice" and session["pid"] == app.pid
    assert session["session"].startswith("pam-") and session["session"].endswith(f"-alice-{app.pid}")
    other = hook("pam.sh", dict(pam, PAM_TYPE="open_session", PAM_USER="bob"), "p", "--feature", "seats")
    assert other.returncode == 3 and "No license seat is free" in other.stderr
    _, err = app.communicate("\n", timeout=60)
    assert app.returncode == 0, err
    assert checkouts() == []
    assert hook("pam.sh", dict(pam, PAM_TYPE="auth"), "p").returncode == 0


def test_demo_ignores_an_exported_state_and_format(tmp_path):
    if not os.access(REPO / ".venv" / "bin" / "lictools", os.X_OK):
        pytest.skip("examples/demo.sh installs into the repository's .venv, which this run does not use")
    real = tmp_path / "real" / "state.db"
    env = dict(os.environ, LICTOOLS_STATE=str(real), LICTOOLS_FORMAT="json", TMPDIR=str(tmp_path))
    result = subprocess.run(["bash", str(REPO / "examples" / "demo.sh")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert not real.parent.exists(), "the demo touched the exported state"
    assert "carol denied: exit 3" in result.stdout
    assert list(tmp_path.glob("lictools-demo.*")) == [], "the demo's own state folder is removed"


# --------------------------------------------------------------------------- the shipped wiring, as the README installs it
EXAMPLES = REPO / "examples"
INSTALLED_HOOKS = "/usr/local/lib/lictools/hooks"


def _installed(text: str, env: dict[str, str], state) -> str:
    """A line of a shipped config file with the README's install paths pointed at this test's."""
    return (text.replace(INSTALLED_HOOKS, str(HOOKS)).replace("/usr/local/bin/lictools", env["LICTOOLS_BIN"])
            .replace("/var/lib/lictools/state.db", str(state)).replace("genero-prod", "p"))


def test_pam_line_as_shipped_takes_and_frees_a_seat(hook_env, state):
    """examples/pam/lictools, run the way pam_exec runs its command (as root, no HOME, PAM_* set)."""
    import shlex

    assert run_process("pool", "add", "p", "--product", "genero", "--license", "runtime=1").code == 0
    [line] = [ln for ln in (EXAMPLES / "pam" / "lictools").read_text().splitlines() if ln.startswith("session")]
    words = shlex.split(_installed(line, hook_env, state))
    assert words[:4] == ["session", "required", "pam_exec.so", "quiet"]
    command = " ".join(shlex.quote(w) for w in words[4:])
    pam = {"PATH": "/usr/bin:/bin", "PAM_USER": "alice", "PAM_SERVICE": "sshd"}
    script = f"PAM_TYPE=open_session {command} || exit $?\necho open\nread _\nPAM_TYPE=close_session {command}\nexit $?\n"
    app = subprocess.Popen(["bash", "-c", script], env=pam, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert app.stdout.readline() == "open\n", app.stderr.read()
    [session] = checkouts()
    assert session["user"] == "alice" and session["client"] == "tui"
    _, err = app.communicate("\n", timeout=60)
    assert app.returncode == 0, err
    assert checkouts() == []


def test_systemd_heartbeat_service_as_shipped_refreshes_the_login(hook_env, state):
    """examples/systemd: the service's Environment= and ExecStart=, run as systemd runs a user service."""
    assert run_process("pool", "add", "p", "--product", "genero", "--license", "runtime=2").code == 0
    service = _installed((EXAMPLES / "systemd" / "lictools-heartbeat.service").read_text(), hook_env, state)
    env = {"PATH": "/usr/bin:/bin", "HOME": hook_env["HOME"]}  # a user service: HOME, no login environment
    command = None
    for line in service.splitlines():
        if line.startswith("Environment="):
            key, _, value = line[len("Environment="):].partition("=")
            env[key] = value
        elif line.startswith("ExecStart="):
            command = line[len("ExecStart="):]
    assert command and env["LICTOOLS_STATE"] == str(state)
    timer = (EXAMPLES / "systemd" / "lictools-heartbeat.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer, "every 5 minutes: well inside the default lease of an hour"
    shell = LoginShell(hook_env, "p", "--client", "tui")
    [before] = checkouts()
    later = repr(time.time() + 600)
    result = subprocess.run(["bash", "-c", command], env=dict(env, LICTOOLS_NOW=later), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [after] = checkouts(env={"LICTOOLS_NOW": later})
    assert after["session"] == before["session"] and after["refreshed"] > before["refreshed"]
    shell.logout()


def test_cron_reaper_line_as_shipped(hook_env, state):
    """examples/cron/lictools: the node-wide gc --check-pids line, run as cron runs it."""
    assert run_process("pool", "add", "p", "--product", "genero", "--license", "runtime=2").code == 0
    [line] = [ln for ln in (EXAMPLES / "cron" / "lictools").read_text().splitlines() if ln and not ln.startswith("#")]
    fields = _installed(line, hook_env, state).split(None, 6)
    assert fields[:6] == ["*/5", "*", "*", "*", "*", "root"]
    shell = LoginShell(hook_env, "p", "--client", "tui")
    shell.kill()
    result = subprocess.run(["bash", "-c", fields[6]], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert checkouts() == []


# --------------------------------------------------------------------------- two real accounts on one machine
def test_two_users_without_xdg_runtime_dir_keep_their_own_sessions(accounts):
    """Issue 14: two users on one machine with XDG_RUNTIME_DIR unset: no shared session file, no exit 7.
    Real accounts (root only), each logging in from a real bash login shell with its own home."""
    import shutil

    kit = accounts.base / "hooks"
    shutil.copytree(HOOKS, kit)  # readable by every account, wherever the checkout lives
    os.system(f"chmod -R a+rX {kit}")
    folder = accounts.folder("hook-state")
    state = folder / "state.db"
    assert accounts.run("root", "--state", str(state), "pool", "add", "p", "--product", "generic",
                        "--license", "seats=5").code == 0
    shells = {}
    for role in ("alice", "bob"):
        home = accounts.base / f"home-{role}"
        home.mkdir()
        os.chown(home, accounts.uid(role), -1)
        env = {"HOME": str(home), "LICTOOLS_BIN": accounts.lictools, "LICTOOLS_STATE": str(state)}
        script = (f"trap 'bash {kit}/logout.sh p' EXIT\n"
                  f"bash {kit}/login.sh p --feature seats || exit $?\necho logged-in\nread _\n")
        shells[role] = accounts.popen(role, ["bash", "-c", script], env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = shells[role].stdout.readline()
        assert line == "logged-in\n", shells[role].stderr.read()
        files = list((home / ".local/state/lictools/sessions").iterdir())
        assert len(files) == 1 and files[0].stat().st_uid == accounts.uid(role)
    listed = json.loads(accounts.run("root", "--state", str(state), "--format", "json", "users", "--sessions").out)
    assert sorted(s["user"] for s in listed) == sorted(accounts.names[r] for r in ("alice", "bob"))
    assert sorted(s["uid"] for s in listed) == sorted(accounts.uid(r) for r in ("alice", "bob"))
    _, err = shells["alice"].communicate("\n", timeout=60)
    assert shells["alice"].returncode == 0, err
    left = json.loads(accounts.run("root", "--state", str(state), "--format", "json", "users", "--sessions").out)
    assert [s["user"] for s in left] == [accounts.names["bob"]]
    _, err = shells["bob"].communicate("\n", timeout=60)
    assert shells["bob"].returncode == 0, err
    assert json.loads(accounts.run("root", "--state", str(state), "--format", "json", "users").out) == []
