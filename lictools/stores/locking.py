"""The state lock: ``<state file>.lock`` beside the state, held for one write command.

The lock is filelock's: an exclusive ``flock`` on ``<state>.lock``, opened with O_NOFOLLOW and
never deleted, so lictools excludes, and is excluded by, any filelock holder of that file. What
lictools adds is how a command waits for it (docs/performance.md, "The lock wait"):

- the first attempt is filelock's non-blocking acquire; without contention that is all;
- otherwise the command queues on a turnstile, ``<state>.lock.wait``, with a blocking ``flock``:
  it sleeps in the kernel and costs no CPU however many wait, and the kernel lets waiters
  through roughly in the order they came;
- the one process at the head of the queue sleeps, in the kernel too, on a shared ``flock`` of
  ``<state>.lock`` (granted the moment the holder lets go), drops it, takes the lock through
  filelock, and leaves the turnstile to the next;
- ``--lock-timeout`` bounds how long the lock may stay with one holder: a login storm hands it
  on every few milliseconds and never times out, a stopped or hung holder makes the waiters exit 5
  after that long, with a message naming it.

The holder writes its PID and a unique stamp at the start of the lock file; waiters look at it
every quarter of the timeout (a timer interrupts the kernel wait) to tell a lock that changes
hands from a stuck one. After acquiring, the lock file's inode is checked to still be the one at ``<state>.lock``:
a lock file deleted while held would otherwise let a second holder in beside the first.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from filelock import BaseFileLock

from lictools.errors import BusyError, ForbiddenError, UsageError
from lictools.stores.files import file_mode, same_file, writing_error

DEFAULT_TIMEOUT = 30.0
"""Seconds one holder may keep the lock while a command waits (``--lock-timeout``). In storms of
1,000 processes on 2 cores the longest any holder kept it was 1.8 s and 5.1 s (starved of CPU by the
others starting up: docs/performance.md); 30 s leaves a margin of 6, and a stopped holder is
reported after half a minute rather than never."""

WATCH_INTERVAL = (0.25, 5.0)
"""Bounds of the seconds between a waiter's looks at who holds the lock: a quarter of the timeout,
so a stuck holder is reported within 1.25 timeouts, and 1,000 waiters of a storm wake rarely."""


def _watch_interval(timeout: float) -> float:
    low, high = WATCH_INTERVAL
    return min(high, max(low, timeout / 4))

FIRST_RETRY = 0.001
MAX_RETRY = 0.05
"""Polling back-off, used only where a timer cannot interrupt the wait (not the main thread, or
the caller's own SIGALRM timer is running)."""

STAMP_BYTES = 32


def _stamp() -> bytes:
    """``<pid> <monotonic ns>``: who holds the lock, and which acquisition this is."""
    return f"{os.getpid():>10} {time.monotonic_ns():>20}\n".encode()


def _read_stamp(lock_path: str) -> bytes:
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.pread(fd, STAMP_BYTES, 0)
    except OSError:
        return b""
    finally:
        os.close(fd)


def lock_holder(lock_path: str) -> str | None:
    """The PID the last holder of the lock wrote into it, or None when unknown."""
    first = _read_stamp(lock_path).split(b"\n", 1)[0].split()
    pid = first[0].decode("ascii", "replace") if first else ""
    return pid if pid.isdigit() else None


def describe_holder(lock_path: str) -> str:
    """``PID 1234 (stopped)``: the recorded holder and what /proc says it is doing."""
    pid = lock_holder(lock_path)
    if pid is None:
        return "an unknown process"
    states = {"R": "running", "S": "sleeping", "D": "waiting for a disk", "T": "stopped", "t": "stopped by a tracer",
              "Z": "exited"}
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0].decode()
        return f"PID {pid} ({states.get(state, state)})"
    except (OSError, IndexError):
        return f"PID {pid} (no longer running: the holder is not lictools, or its record is stale)"


# --------------------------------------------------------------------------- the filelock object
_LOCKS: dict[str, "BaseFileLock"] = {}
"""One FileLock per lock path in this process (cheaper for callers running many transactions)."""
_LOCKED: dict[str, os.stat_result] = {}
"""Lock path -> the inode this process locked last (recorded by filelock's on_acquired hook)."""


def _file_lock(lock_path: str) -> "BaseFileLock":
    lock = _LOCKS.get(lock_path)
    if lock is None:
        from filelock import FileLock

        def acquired(fd: int) -> None:
            os.pwrite(fd, _stamp(), 0)  # fixed width: no truncation needed over the previous holder's
            _LOCKED[lock_path] = os.fstat(fd)

        folder = os.path.dirname(lock_path)
        lock = _LOCKS[lock_path] = FileLock(lock_path, mode=file_mode(folder), on_acquired=acquired)
    return lock


def _still_there(lock_path: str) -> bool:
    """Is the file this process locked still the one named ``<state>.lock``?"""
    try:
        return same_file(os.lstat(lock_path), _LOCKED[lock_path])
    except (OSError, KeyError):
        return False


def _try(lock: "BaseFileLock", lock_path: str) -> bool:
    """One non-blocking attempt; a lock on a file no longer at the path does not count."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    if _still_there(lock_path):
        return True
    lock.release()  # we locked a deleted or replaced file: that guards nothing
    return False


class HeldLock:
    """The lock while a command holds it."""

    def __init__(self, lock_path: str) -> None:
        self.path = lock_path

    def verify(self) -> None:
        """BusyError (nothing committed) when the lock file was removed or replaced while held."""
        if not _still_there(self.path):
            raise BusyError(
                f"state lock {self.path} was removed or replaced while this command held it; "
                "nothing was changed: run the command again"
            )


@contextmanager
def state_lock(state_path: str, timeout: float) -> Iterator[HeldLock]:
    """Hold ``<state_path>.lock`` for the block; BusyError (exit 5) when its holder keeps it ``timeout`` seconds."""
    lock_path = state_path + ".lock"
    lock = _file_lock(lock_path)
    try:
        _acquire(lock, lock_path, timeout)
    except PermissionError:
        raise ForbiddenError(f"permission denied: cannot open state lock {lock_path}") from None
    except OSError as exc:
        mapped = writing_error(exc, f"state lock {lock_path}")
        if mapped is exc:
            raise UsageError(f"cannot open state lock {lock_path}: {exc.strerror}") from None
        raise mapped from None
    try:
        yield HeldLock(lock_path)
    finally:
        lock.release()


# --------------------------------------------------------------------------- waiting
class _Watch:
    """Tells a lock that changes hands from one its holder keeps: BusyError after ``timeout`` of the latter."""

    def __init__(self, lock_path: str, timeout: float) -> None:
        self.lock_path = lock_path
        self.timeout = timeout
        self.stamp = _read_stamp(lock_path)
        self.since = time.monotonic()

    def check(self) -> None:
        stamp = _read_stamp(self.lock_path)
        now = time.monotonic()
        if stamp != self.stamp:
            self.stamp, self.since = stamp, now  # it changed hands: progress
        elif now - self.since >= self.timeout:
            raise self.busy()

    def busy(self) -> BusyError:
        return BusyError(
            f"state lock {self.lock_path} is held by {describe_holder(self.lock_path)}, "
            f"which kept it {self.timeout:g}s (--lock-timeout) while this command waited; nothing was changed"
        )


def _acquire(lock: "BaseFileLock", lock_path: str, timeout: float) -> None:
    if _try(lock, lock_path):
        return
    watch = _Watch(lock_path, timeout)
    if timeout <= 0:
        raise watch.busy()
    if not _wait_in_kernel(lock, lock_path, watch):
        _poll(lock, lock_path, watch)


def _poll(lock: "BaseFileLock", lock_path: str, watch: _Watch) -> None:
    """Retry with a doubling, jittered wait (the fallback where no timer may interrupt a kernel wait)."""
    wait, jitter, looked = FIRST_RETRY, (os.getpid() % 97) / 97, time.monotonic()
    while not _try(lock, lock_path):
        time.sleep(wait * (0.5 + jitter))
        wait, jitter = min(wait * 2, MAX_RETRY), (jitter * 31 + 0.37) % 1
        if time.monotonic() - looked >= _watch_interval(watch.timeout):
            watch.check()
            looked = time.monotonic()


class _Tick(Exception):
    """The watch timer interrupted a kernel wait."""


_in_kernel_wait = False


def _on_tick(signum: int, frame: object) -> None:  # noqa: ARG001
    if _in_kernel_wait:  # anywhere else (inside filelock, say) the tick is ignored
        raise _Tick()


def _flock(fd: int, operation: int) -> None:
    """A blocking flock that a tick of the watch timer interrupts (_Tick)."""
    import fcntl

    global _in_kernel_wait
    _in_kernel_wait = True
    try:
        fcntl.flock(fd, operation)
    finally:
        _in_kernel_wait = False


def _wait_in_kernel(lock: "BaseFileLock", lock_path: str, watch: _Watch) -> bool:
    """Queue on the turnstile, then wait for the holder to let go; False when that cannot be done here."""
    import fcntl
    import signal

    try:
        if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0) or signal.getsignal(signal.SIGALRM) not in (
            signal.SIG_DFL, signal.SIG_IGN, None
        ):
            return False  # the caller times something itself: do not take its timer
    except ValueError:
        return False
    turnstile = _open_turnstile(lock_path + ".wait")
    if turnstile is None:
        return False
    try:
        previous = signal.signal(signal.SIGALRM, _on_tick)
    except ValueError:  # not the main thread
        os.close(turnstile)
        return False
    try:
        interval = _watch_interval(watch.timeout)
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        while True:
            try:
                _flock(turnstile, fcntl.LOCK_EX)  # in the queue
                break
            except _Tick:
                watch.check()
                if _try(lock, lock_path):  # the head of the queue may be stuck: the lock decides
                    return True
        while True:  # at the head of the queue: sleep until the holder lets go
            try:
                probe = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                probe = None  # deleted: the next attempt creates it
            if probe is not None:
                try:
                    _flock(probe, fcntl.LOCK_SH)
                    fcntl.flock(probe, fcntl.LOCK_UN)
                except _Tick:
                    watch.check()
                finally:
                    os.close(probe)
            if _try(lock, lock_path):
                return True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.close(turnstile)  # the next in the queue becomes the head


def _open_turnstile(path: str) -> int | None:
    """``<state>.lock.wait`` (created like the lock file), or None when it cannot be used."""
    import stat

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     file_mode(os.path.dirname(path)))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


# --------------------------------------------------------------------------- filesystems
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
