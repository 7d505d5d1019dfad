"""The state lock: ``<state file>.lock`` beside the state, held for one whole command.

Uses :mod:`filelock` (flock on Unix; it opens the lock file with O_NOFOLLOW, so a symlink
planted at the lock path is refused). The holder writes its PID into the lock file so a
command that times out can name who holds it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from lictools.errors import BusyError, UsageError

POLL_INTERVAL = 0.002
"""Seconds between lock attempts: short, because 200 hooks at 8:00 should queue tightly."""


def file_mode(folder: str) -> int:
    """0660 when the folder is group-writable (a group-shared state), else 0600."""
    try:
        shared = os.stat(folder).st_mode & 0o020
    except OSError:
        shared = 0
    return 0o660 if shared else 0o600


def ensure_folder(folder: str) -> None:
    """Create the state folder (0700) if missing; refuse a folder anybody may write without the sticky bit."""
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create state folder {folder}: {exc.strerror}") from None
        return
    st = os.stat(folder)
    if st.st_mode & 0o002 and not st.st_mode & 0o1000:
        raise UsageError(
            f"state folder {folder} is writable by every user without the sticky bit; "
            "anyone could replace the state: chmod o-w or +t it"
        )


def open_private(path: str, flags: int = os.O_WRONLY) -> int:
    """Open ``path`` refusing symlinks; a file created here gets :func:`file_mode` (umask aside)."""
    mode = file_mode(os.path.dirname(path) or ".")
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return os.open(path, flags | os.O_NOFOLLOW)
    os.fchmod(fd, mode)
    return fd


def fsync_folder(folder: str) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _holder(lock_path: str) -> str:
    try:
        with open(lock_path, "rb") as f:
            pid = f.read(32).split(b"\n", 1)[0].decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (held by PID {pid})" if pid.isdigit() else ""


def _record_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


@contextmanager
def state_lock(state_path: str, timeout: float) -> Iterator[None]:
    """Hold ``<state_path>.lock`` for the block; BusyError (exit 5) after ``timeout`` seconds."""
    from filelock import FileLock, Timeout

    lock_path = state_path + ".lock"
    folder = os.path.dirname(os.path.abspath(state_path))
    lock = FileLock(
        lock_path,
        timeout=timeout,
        mode=file_mode(folder),
        poll_interval=POLL_INTERVAL,
        on_acquired=_record_holder,
    )
    try:
        lock.acquire()
    except Timeout:
        raise BusyError(f"state lock {lock_path} not obtained within {timeout:g}s{_holder(lock_path)}") from None
    except OSError as exc:
        raise UsageError(f"cannot open state lock {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()
