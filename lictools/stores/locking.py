"""The state lock: ``<state file>.lock`` beside the state, held for one whole command.

Uses :mod:`filelock` (flock on Unix; it opens the lock file with O_NOFOLLOW, so a symlink
planted at the lock path is refused). The holder writes its PID into the lock file so a
command that times out can name who holds it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from filelock import BaseFileLock

from lictools.errors import BusyError, ForbiddenError, UsageError

FIRST_RETRY = 0.001
"""Seconds before the second lock attempt; the wait then doubles, with jitter, up to MAX_RETRY."""
MAX_RETRY = 0.1
"""Longest wait between two attempts: short enough that a free lock is taken quickly, long
enough that 150 hooks waiting at 8:00 do not burn the CPU the holder needs (docs/performance.md)."""


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
    warning = network_filesystem_warning(folder)
    if warning:
        import sys

        sys.stderr.write(f"lictools: {warning}\n")
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


def restore_file(
    path: str,
    backup: str,
    check_backup: Callable[[], tuple[str, str, str]],
    extra: tuple[str, ...] = (),
    lock_timeout: float = 10.0,
) -> str:
    """Put ``backup`` in place of ``path`` under the state lock; the replaced file is kept, never deleted.

    Returns the name the replaced state was moved to (``<state>.damaged-<time>``).
    """
    import shutil
    import time

    from lictools.errors import DamagedStateError, NotFoundError

    with state_lock(path, lock_timeout):
        _, status, detail = check_backup()
        if status == "fail":
            raise DamagedStateError(f"the last good copy is not usable either: {detail}")
        if not os.path.exists(backup):
            raise NotFoundError(f"no good copy to restore from ({backup} does not exist)")
        kept = f"{path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        folder = os.path.dirname(path)
        tmp = f"{path}.restore-{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        fd = open_private(tmp)
        with open(backup, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        if os.path.lexists(path):
            os.rename(path, kept)
        for suffix in extra:  # a damaged database's WAL must not be applied to the copy
            if os.path.lexists(path + suffix):
                os.rename(path + suffix, kept + suffix)
        os.rename(tmp, path)
        fsync_folder(folder)
        return kept


NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs", "glusterfs", "ceph"}


_FSTYPES: dict[str, str | None] = {}


def filesystem_type(path: str) -> str | None:
    """The filesystem type holding ``path`` (Linux: /proc/self/mountinfo), or None; cached per process."""
    if path not in _FSTYPES:
        _FSTYPES[path] = _read_filesystem_type(path)
    return _FSTYPES[path]


def _read_filesystem_type(path: str) -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mount = fields[4].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, right.split()[0] if right.split() else None
    return fstype


def network_filesystem_warning(folder: str) -> str | None:
    """A warning when the state folder is on NFS/CIFS, where file locks are unreliable."""
    if os.environ.get("LICTOOLS_NETWORK_FS_OK") == "1":
        return None
    fstype = filesystem_type(folder)
    if fstype in NETWORK_FILESYSTEMS:
        return (
            f"warning: state folder {folder} is on {fstype}: file locks there are unreliable; "
            "use a local disk, or the PostgreSQL store for several hosts (LICTOOLS_NETWORK_FS_OK=1 silences this)"
        )
    return None


def lock_holder(lock_path: str) -> str | None:
    """The PID the last holder of the lock wrote into it, or None when unknown."""
    try:
        with open(lock_path, "rb") as f:
            pid = f.read(32).split(b"\n", 1)[0].decode("ascii", "replace").strip()
    except OSError:
        return None
    return pid if pid.isdigit() else None


def _held_by(lock_path: str) -> str:
    pid = lock_holder(lock_path)
    return f" (held by PID {pid})" if pid else ""


def _record_holder(fd: int) -> None:
    # fixed width, so no truncation is needed to overwrite a previous holder's PID
    os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)


def _acquire_with_backoff(lock: "BaseFileLock", timeout: float) -> None:
    """Try the lock, then retry with a doubling, jittered wait until ``timeout`` (filelock.Timeout)."""
    import time

    from filelock import Timeout

    deadline = time.monotonic() + timeout
    wait = FIRST_RETRY
    jitter = (os.getpid() % 97) / 97  # spreads the retries of processes started together
    while True:
        try:
            lock.acquire(timeout=0)
            return
        except Timeout:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(wait * (0.5 + jitter), left))
            wait = min(wait * 2, MAX_RETRY)
            jitter = (jitter * 31 + 0.37) % 1


_LOCKS: dict[str, "BaseFileLock"] = {}
"""One FileLock object per lock path in this process (cheaper for callers running many transactions)."""


@contextmanager
def state_lock(state_path: str, timeout: float) -> Iterator[None]:
    """Hold ``<state_path>.lock`` for the block; BusyError (exit 5) after ``timeout`` seconds."""
    from filelock import FileLock, Timeout

    lock_path = state_path + ".lock"
    folder = os.path.dirname(os.path.abspath(state_path))
    lock = _LOCKS.get(lock_path)
    if lock is None:
        lock = _LOCKS[lock_path] = FileLock(lock_path, mode=file_mode(folder), on_acquired=_record_holder)
    try:
        _acquire_with_backoff(lock, timeout)
    except Timeout:
        raise BusyError(f"state lock {lock_path} not obtained within {timeout:g}s{_held_by(lock_path)}") from None
    except PermissionError:
        raise ForbiddenError(f"permission denied: cannot open state lock {lock_path}") from None
    except OSError as exc:
        raise UsageError(f"cannot open state lock {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()
