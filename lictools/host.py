"""What the engine asks of the machine it runs on: who is asking, this node's name, PID liveness, fresh ids;
and how machine names compare (:func:`machine_name`).

One seam, so that tests and the simulator run the engine without touching real processes or the real
login: pass another :class:`Host` (``engine.acquire(tx, request, host=...)``). :data:`SYSTEM` is the
machine itself.
"""

from __future__ import annotations

import os
from typing import Protocol


class Host(Protocol):
    def login_user(self) -> str:
        """The name the caller goes by (the default ``--user``; may be claimed through ``$LOGNAME``)."""

    def account(self) -> tuple[int, str]:
        """The real account of this process: (uid, its name); not claimable through the environment."""

    def node(self) -> str:
        """This host's name (the default ``--node``; ``gc --check-pids`` checks sessions of this node)."""

    def pid_alive(self, pid: int) -> bool:
        """Does a process with this PID run on this node?"""

    def process_start(self, pid: int) -> int | None:
        """When process ``pid`` started (an opaque number; None when unknown or not running).

        A PID is reused once its process is gone: a session records its process's start, and a
        process with that PID but another start is not the session's process.
        """

    def new_id(self) -> str:
        """A fresh unique session id."""

    def caller_pid(self) -> int:
        """The PID of the process that ran lictools (its parent): the DVM or hook asking, shown by
        ``info users`` for a session acquired without ``--pid``; never checked for liveness."""


class SystemHost:
    """The machine lictools runs on."""

    def login_user(self) -> str:
        for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
            value = os.environ.get(var)
            if value:
                return value
        return self.account()[1]

    def account(self) -> tuple[int, str]:
        uid = os.getuid()
        import pwd

        try:
            return uid, pwd.getpwuid(uid).pw_name
        except KeyError:
            return uid, str(uid)

    def node(self) -> str:
        return os.uname().nodename

    def pid_alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, owned by someone else
        except OverflowError:
            return False
        return True

    def process_start(self, pid: int) -> int | None:
        # /proc/PID/stat: "pid (comm) state ppid ...", starttime is field 22 (clock ticks since boot);
        # comm may hold spaces and parentheses, so fields are counted after the last ')'
        try:
            with open(f"/proc/{int(pid)}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return int(fields[19])
        except (OSError, IndexError, ValueError):
            return None

    def new_id(self) -> str:
        return os.urandom(8).hex()

    def caller_pid(self) -> int:
        return os.getppid()


SYSTEM: Host = SystemHost()


# --------------------------------------------------------------------------- machine names
def _is_address(name: str) -> bool:
    """An IP address (v4 dotted digits, or anything with a colon: v6), which no rule shortens."""
    return ":" in name or name.replace(".", "").isdigit()


def machine_name(name: str, case: str = "upper", domain: str = "strip") -> str:
    """A host or node name as the machine it names: how every part of lictools compares machines.

    The AVEVA device-ID convention (seed 000: ``HOST1_BMC1`` from the computer names): a Windows
    computer name ignores case and carries no DNS domain, and DNS names ignore case too. So by default
    the name is upper-cased (``case="upper"``; ``"lower"`` for keys that were lower-case before,
    ``"keep"`` leaves it) and a DNS domain is dropped (``domain="strip"``: ``host1.corp.example`` ->
    ``HOST1``; ``"keep"`` leaves it). IP addresses are kept whole. Used by the aveva-batch device ID,
    the magic-xpa machine grouping, Genero's node-relative monitors, ``license add --host-lock``,
    ``remove --host`` and ``gc --check-pids`` / ``check_pids=yes``.
    """
    if domain == "strip" and not _is_address(name):
        name = name.split(".")[0] or name
    if case == "upper":
        return name.upper()
    if case == "lower":
        return name.lower()
    return name


def same_machine(a: str, b: str) -> bool:
    """Do two host or node names name one machine (:func:`machine_name` with its defaults)?"""
    return machine_name(a) == machine_name(b)
