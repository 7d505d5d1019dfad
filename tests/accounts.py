"""Throwaway local accounts for tests of what one account can do to another (root only).

``Accounts`` creates two groups and four users with ``useradd``, and a lictools every account
can run: a venv made with /usr/bin/python3 under /tmp holding copies of lictools and its
dependencies (other accounts cannot enter /root, where the test interpreter and the repository's
.venv may live). Everything is removed at the end of the session (the ``accounts`` fixture in
tests/conftest.py). Commands run as the account (setuid in the child, as ``runuser`` does) with a clean environment.
"""

from __future__ import annotations

import grp
import importlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = ("lictools", "click", "filelock", "platformdirs", "tabulate", "defusedxml")


@dataclass
class Ran:
    code: int
    out: str
    err: str


def why_not() -> str | None:
    """Why throwaway accounts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "creating throwaway accounts needs root (useradd)"
    for tool in ("useradd", "userdel", "groupadd", "groupdel"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing (other accounts need an interpreter they can run)"
    return None


class Accounts:
    """alice and bob (group ``users``), admin (groups ``users`` and ``admins``), outsider (neither)."""

    def __init__(self) -> None:
        tag = os.urandom(3).hex()
        self.group = f"ltu{tag}"
        self.admins = f"lta{tag}"
        self.names = {role: f"lt{role[:3]}{tag}" for role in ("alice", "bob", "admin", "outsider")}
        self.base = Path(tempfile.mkdtemp(prefix="lictools-accounts-", dir="/tmp"))
        self._made_groups: list[str] = []
        self._made_users: list[str] = []
        try:
            self.base.chmod(0o755)
            self.lictools = self._install()
            for group in (self.group, self.admins):
                subprocess.run(["groupadd", group], check=True, capture_output=True)
                self._made_groups.append(group)
            for role, name in self.names.items():
                groups = {"alice": [self.group], "bob": [self.group], "admin": [self.group, self.admins]}.get(role, [])
                cmd = ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                       "--user-group"]
                if groups:
                    cmd += ["--groups", ",".join(groups)]
                subprocess.run(cmd + [name], check=True, capture_output=True)
                self._made_users.append(name)
        except BaseException:
            self.remove()
            raise
        self.gid = grp.getgrnam(self.group).gr_gid
        self.admins_gid = grp.getgrnam(self.admins).gr_gid

    def uid(self, role: str) -> int:
        return pwd.getpwnam(self.names[role]).pw_uid

    def _install(self) -> str:
        """A venv on the system interpreter with copies of lictools and its dependencies."""
        venv = self.base / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        for name in PACKAGES:
            module = importlib.import_module(name)
            source = Path(module.__file__)
            if source.name == "__init__.py":
                shutil.copytree(source.parent, Path(site) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, Path(site) / source.name)
        script = venv / "bin" / "lictools"
        script.write_text(f"#!{venv / 'bin' / 'python'}\nfrom lictools.cli.main import main\nmain()\n")
        subprocess.run(["chmod", "-R", "a+rX", str(self.base)], check=True)
        script.chmod(0o755)
        return str(script)

    def folder(self, name: str, owner: str = "root", mode: int = 0o2770) -> Path:
        """A state folder: owned by ``owner`` (a role or root), group ``users``, ``mode`` (group-shared by default)."""
        path = self.base / name
        path.mkdir()
        uid = 0 if owner == "root" else self.uid(owner)
        os.chown(path, uid, self.gid)
        path.chmod(mode)
        return path

    def identity(self, role: str) -> dict:
        """Popen arguments that run a child as ``role`` (its uid, primary group and groups), or as root."""
        if role == "root":
            return {}
        entry = pwd.getpwnam(self.names[role])
        groups = [g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem]
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}

    def run(self, role: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
        """``lictools ARGS`` as ``role`` (or root) with a clean environment plus ``env``."""
        clean = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
        clean.update(env or {})
        proc = subprocess.run([self.lictools, *args], env=clean, capture_output=True, text=True, timeout=timeout,
                              cwd="/", **self.identity(role))
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    @property
    def python(self) -> str:
        return str(self.base / "venv" / "bin" / "python")

    def popen(self, role: str, argv: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """Any command as ``role`` (the venv's python is ``self.python``)."""
        clean = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
        clean.update(env or {})
        return subprocess.Popen(argv, env=clean, cwd="/", **self.identity(role), **kwargs)

    def remove(self) -> None:
        for name in reversed(self._made_users):  # the tests end the processes they started
            subprocess.run(["userdel", name], capture_output=True)
        for group in reversed(self._made_groups):
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
