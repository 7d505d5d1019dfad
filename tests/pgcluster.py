"""A throwaway PostgreSQL 15 cluster for the tests and the benchmark: ``initdb`` + ``pg_ctl``, Unix socket only.

As root the cluster runs as the ``postgres`` account (PostgreSQL refuses to run as root), in a
folder under /tmp that account owns; it listens on no TCP port, only on a socket in that folder,
and trusts every local connection. :meth:`Cluster.remove` stops it and deletes the folder.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

BIN_DIRS = ["/usr/lib/postgresql/15/bin"]
PASSWORD_ROLE = "lictools_pw"
"""The one role of a test cluster that must give its password (see :meth:`Cluster.add_password_role`)."""
REQUIRE_ENV = "LICTOOLS_REQUIRE_POSTGRES"
"""Set to 1 (CI does) to make a cluster that cannot start a failure instead of a skip."""


def find_bin() -> str | None:
    """The folder holding PostgreSQL 15's initdb and pg_ctl, or None."""
    for folder in BIN_DIRS:
        if os.access(os.path.join(folder, "initdb"), os.X_OK) and os.access(os.path.join(folder, "pg_ctl"), os.X_OK):
            return folder
    import glob

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):  # another Debian release
        return os.path.dirname(initdb)
    found = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(found)) if found else None


def why_not() -> str | None:
    """Why no cluster can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if find_bin() is None:
        return "PostgreSQL 15 (initdb, pg_ctl) is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres account to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser(1) to start the server as postgres"
    return None


PREFIX = "lictools-pg-"


def remove_orphans() -> None:
    """Stop and delete the clusters of test runs that were killed before they could (their owner.pid is gone)."""
    import glob

    for folder in glob.glob(f"/tmp/{PREFIX}*"):
        try:
            with open(os.path.join(folder, "owner.pid")) as owner:
                os.kill(int(owner.read()), 0)
            continue  # its run is still going
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # not ours to judge
        orphan = Cluster.__new__(Cluster)
        orphan.bin, orphan.as_postgres = find_bin() or "", os.geteuid() == 0
        orphan.folder, orphan.data = folder, os.path.join(folder, "data")
        orphan.remove()


class Cluster:
    """One running cluster; :meth:`url` names a database in it, :meth:`new_database` makes a fresh one."""

    def __init__(self, fsync: bool = False) -> None:
        self.bin = find_bin() or "/usr/lib/postgresql/15/bin"
        self.as_postgres = os.geteuid() == 0
        remove_orphans()
        self.folder = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")
        with open(os.path.join(self.folder, "owner.pid"), "w") as owner:
            owner.write(str(os.getpid()))
        self.data = os.path.join(self.folder, "data")
        self.socket_dir = self.folder
        self.user = "postgres" if self.as_postgres else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        os.chmod(self.folder, 0o755)  # clients of every account reach the socket
        try:
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", self.user, "-E", "UTF8", "--locale=C",
                      "--no-sync")
            # PASSWORD_ROLE logs in with a password (tests of credentials); every other role is trusted
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as hba:
                hba.write(f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n")
            self.settings = [f"-k {self.folder}", "-c listen_addresses=''", "-c max_connections=300",
                             "-c shared_buffers=32MB", "-c log_min_messages=fatal"]
            if not fsync:
                self.settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            self.start()
        except BaseException:
            self.remove()
            raise

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [os.path.join(self.bin, tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120, cwd="/")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "log"), "-w", "-t", "60",
                  "-o", " ".join(self.settings), "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.folder}"

    def admin(self) -> "psycopg.Connection":  # type: ignore[name-defined]  # noqa: F821
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def add_password_role(self, password: str) -> None:
        """Create PASSWORD_ROLE (a superuser: it creates the lictools schema) with ``password``."""
        with self.admin() as db:
            db.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
            db.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{password}'")

    def remove(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
