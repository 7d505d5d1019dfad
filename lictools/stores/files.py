"""Files in a folder other accounts may write to: open, create, publish, copy, clean up.

A state folder shared by a group (mode 2770) lets every member create, rename and delete any
entry in it, so any name there can become a symlink, a FIFO or someone else's file between two
system calls. These rules keep that from turning one account's lictools against another's
files (docs/security.md):

- every file is opened with ``O_NOFOLLOW|O_NONBLOCK`` and must turn out to be a regular file: a
  symlink, FIFO, device or directory is refused (exit 6) instead of followed or waited on;
- a file lictools writes gets a fresh random name, ``O_EXCL``, is written and fsynced through
  that descriptor and never opened again by name; the name is checked to still be that
  descriptor's file just before and just after the rename or link that publishes it;
- SQLite, which opens files by name and follows symlinks while doing so, opens only the state
  itself (checked against the file lictools opened, see ``sqlite.py``) and scratch files in a
  :func:`private_folder` that no other account can write.
"""

from __future__ import annotations

import errno
import os
import stat

from lictools.errors import CannotWriteError, DamagedStateError, ForbiddenError, UsageError

MIN_FREE_BYTES = 1 << 20
"""A write is refused (exit 8) with less free space than this in the state folder: SQLite grows
its WAL index through a memory map, and on a nearly full disk that ends in SIGBUS, not an error."""

LEFTOVER_AGE = 600
"""Seconds before a dead process's temporary file may be removed (a live one is never touched)."""

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def kind(mode: int) -> str:
    """What a file is, in words (``a FIFO``)."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def not_regular(path: str, what: str, mode: int) -> DamagedStateError:
    return DamagedStateError(f"{what} {path} is not a regular file ({kind(mode)}); nothing was changed")


def refuse_unusual(path: str, what: str) -> os.stat_result | None:
    """``lstat`` of ``path``: None when it does not exist, exit 6 when it is not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise UsageError(f"{what} {path}: a folder on the way is a file") from None
    except PermissionError:
        raise ForbiddenError(f"permission denied: cannot reach {what} {path}") from None
    except OSError as exc:
        shown = path if len(path) <= 200 else path[:200] + "..."
        raise UsageError(f"{what} {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, what, st.st_mode)
    return st


def writing_error(exc: OSError, what: str) -> Exception:
    """An OSError met while writing, as the error a user can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CannotWriteError(f"cannot write {what}: no space left on the device; nothing was changed")
    if exc.errno == errno.EROFS:
        return CannotWriteError(f"cannot write {what}: read-only file system; nothing was changed")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ForbiddenError(f"permission denied: cannot write {what}")
    if exc.errno == errno.ELOOP:
        return DamagedStateError(f"{what} is a symbolic link; lictools does not follow it; nothing was changed")
    if exc.errno == errno.EIO:
        return CannotWriteError(f"cannot write {what}: input/output error; nothing was changed")
    return exc


def open_regular(path: str, what: str, flags: int = os.O_RDONLY) -> tuple[int, os.stat_result]:
    """Open ``path`` without following a symlink or waiting on a FIFO; it must be a regular file.

    FileNotFoundError passes through (the caller knows what a missing file means).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise ForbiddenError(f"permission denied: cannot open {what} {path}") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                mode = stat.S_IFLNK if exc.errno == errno.ELOOP else 0
            raise not_regular(path, what, mode) from None
        if exc.errno == errno.EROFS:
            raise CannotWriteError(f"cannot write {what} {path}: read-only file system; nothing was changed") from None
        raise DamagedStateError(f"{what} {path} cannot be opened: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_regular(path, what, st.st_mode)
    return fd, st


def read_capped(fd: int, size: int, limit: int, what: str) -> bytes:
    """The whole file behind ``fd`` (``size`` from its fstat), refusing one larger than ``limit``."""
    too_big = DamagedStateError(f"{what} is larger than the {limit:,} bytes lictools reads; nothing was changed")
    if size > limit:
        raise too_big
    chunks, total = [], 0
    while chunk := os.read(fd, max(size - total, 1 << 16)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # it grew while we read it
            raise too_big
    return b"".join(chunks)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# --------------------------------------------------------------------------- folders
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
            if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT):
                raise writing_error(exc, f"state folder {folder}") from None
            raise UsageError(f"cannot create state folder {folder}: {exc.strerror}") from None
        return
    st = os.stat(folder)
    from lictools.stores.locking import network_filesystem_warning

    warning = network_filesystem_warning(folder)
    if warning:
        import sys

        sys.stderr.write(f"lictools: {warning}\n")
    if st.st_mode & 0o002 and not st.st_mode & 0o1000:
        raise UsageError(
            f"state folder {folder} is writable by every user without the sticky bit; "
            "anyone could replace the state: chmod o-w or +t it"
        )


def check_writable(folder: str) -> None:
    """Exit 8 before a write on a read-only filesystem or one with less than MIN_FREE_BYTES free."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return  # the write itself will say what is wrong
    if st.f_flag & os.ST_RDONLY:
        raise CannotWriteError(f"cannot write state folder {folder}: read-only file system; nothing was changed")
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise CannotWriteError(
            f"cannot write state folder {folder}: no space left on the device ({free // 1024} KiB free; "
            f"lictools needs {MIN_FREE_BYTES // 1024} KiB to write safely); nothing was changed"
        )


def read_only_filesystem(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def fsync_folder(folder: str) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- writing
def create_exclusive(prefix: str) -> tuple[int, str]:
    """A new file ``<prefix><pid>-<random>`` (O_EXCL, no symlink followed), mode :func:`file_mode`."""
    mode = file_mode(os.path.dirname(prefix) or ".")
    for _ in range(16):
        name = f"{prefix}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue  # somebody made that name first: take another
        except OSError as exc:
            raise writing_error(exc, f"a temporary file in {os.path.dirname(prefix)}") from None
        try:
            os.fchmod(fd, mode)  # umask aside
        except PermissionError:
            pass
        return fd, name
    raise CannotWriteError(f"cannot create a temporary file {prefix}*: every name tried exists")


def open_or_create(path: str, what: str) -> int:
    """Open ``path`` read-write as :func:`open_regular` does, creating it (mode :func:`file_mode`) if missing."""
    mode = file_mode(os.path.dirname(path) or ".")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return open_regular(path, what, os.O_RDWR)[0]
    except OSError as exc:
        raise writing_error(exc, f"{what} {path}") from None
    try:
        os.fchmod(fd, mode)
    except PermissionError:
        pass
    return fd


def flock_within(fd: int, timeout: float) -> bool:
    """Take ``flock(LOCK_EX)`` on ``fd``, retrying until ``timeout`` seconds have passed; False when not taken."""
    import fcntl
    import time

    deadline, wait = time.monotonic() + timeout, 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(wait)
            wait = min(wait * 2, 0.05)


def try_claim(path: str, what: str) -> int | None:
    """The lock file ``path`` held with flock, or None when another process holds it (it does the
    work) or it cannot be opened (the work is left for later: the next command asks again)."""
    import fcntl

    try:
        fd = open_or_create(path, what)
    except Exception:  # noqa: BLE001
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def copy_fd(src: int, dst: int) -> None:
    """Copy the file behind ``src`` (from its start) to ``dst``."""
    offset = 0
    while True:
        chunk = os.pread(src, 1 << 20, offset)
        if not chunk:
            return
        write_all(dst, chunk)
        offset += len(chunk)


def _expect(path: str, st: os.stat_result, what: str) -> None:
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        now = None
    if now is None or not same_file(now, st):
        raise DamagedStateError(
            f"{path} was replaced while lictools wrote {what}: another account is changing files in "
            f"{os.path.dirname(path)}; check who may write that folder"
        )


def write_new(path: str, data: bytes, what: str, replace: bool = True, sync: bool = True) -> None:
    """Put a new file holding ``data`` at ``path``: a fresh temporary name, fsync, then :func:`publish`."""
    fd, temp = create_exclusive(f"{path}.tmp-")
    try:
        write_all(fd, data)
        os.fsync(fd)
        publish(fd, temp, path, what, replace=replace, sync=sync)
    finally:
        discard(fd, temp)


def publish(fd: int, temp: str, path: str, what: str, replace: bool = True, sync: bool = True) -> None:
    """Put the file behind ``fd`` (written and fsynced, named ``temp``) at ``path``; fsync the folder unless not ``sync``.

    ``replace``: rename over an existing file (atomic replace); otherwise link, refusing one that
    exists (atomic create). The name is checked to be ``fd``'s file before and after.
    """
    st = os.fstat(fd)
    _expect(temp, st, what)
    try:
        if replace:
            os.rename(temp, path)
        else:
            os.link(temp, path, follow_symlinks=False)
            os.unlink(temp)
    except OSError as exc:
        raise writing_error(exc, what) from None
    _expect(path, st, what)
    if sync:
        fsync_folder(os.path.dirname(path))


def discard(fd: int | None, temp: str | None) -> None:
    """Close a temporary file's descriptor, and remove its name unless it was published (best effort).

    After :func:`publish` the temporary name is gone (renamed or unlinked), so this only closes.
    """
    if fd is not None:
        try:
            st = os.fstat(fd)
            os.close(fd)
        except OSError:
            st = None
        if temp and st is not None:
            try:
                if same_file(os.lstat(temp), st):
                    os.unlink(temp)
            except OSError:
                pass


# --------------------------------------------------------------------------- scratch space for SQLite
def _private_base(path: str) -> bool:
    """True when no other account can change any folder on ``path`` (owned by root or us, sticky if others may write)."""
    uid = os.geteuid()
    try:
        real = os.path.realpath(path)
        parts = real.split("/")
        for i in range(1, len(parts) + 1):
            st = os.lstat("/".join(parts[:i]) or "/")
            if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, uid):
                return False
            if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                return False
    except OSError:
        return False
    return os.access(real, os.W_OK | os.X_OK)


SCRATCH_PREFIX = "lictools-scratch-"


def private_folder() -> str:
    """A new folder only this account can write, where no other account can swap a name.

    SQLite follows symlinks in the names it is given, so its scratch files (a backup being
    taken) live here rather than in a shared state folder. Candidates: ``$XDG_RUNTIME_DIR``,
    ``$TMPDIR``, ``/var/tmp``, ``/tmp``, each used only when every folder on its path belongs to
    root or to this account and is sticky where others may write.
    """
    for base in (os.environ.get("XDG_RUNTIME_DIR"), os.environ.get("TMPDIR"), "/var/tmp", "/tmp"):
        if not base or not _private_base(base):
            continue
        folder = os.path.join(os.path.realpath(base), f"{SCRATCH_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.mkdir(folder, 0o700)
        except OSError:
            continue
        st = os.lstat(folder)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0:
            return folder
    raise CannotWriteError("no private temporary folder to work in ($XDG_RUNTIME_DIR, $TMPDIR, /var/tmp, /tmp)")


def remove_folder(folder: str) -> None:
    """Remove a private folder and the files in it (never following a symlink)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


# --------------------------------------------------------------------------- leftovers of killed processes
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def leftovers(state_path: str) -> list[tuple[str, int, bool]]:
    """Temporary files of this state in its folder: ``(path, pid, pid still running)``.

    Names lictools writes beside a state: ``<state>.tmp-<pid>-<random>`` (and the older
    ``.tmp-<pid>``, ``.new-<pid>``, ``.bak.tmp-<pid>``, ``.restore-<pid>`` with SQLite's
    ``-wal``/``-shm``/``-journal`` beside them).
    """
    import re

    folder, base = os.path.split(state_path)
    pattern = re.compile(
        re.escape(base) + r"(?:\.bak)?\.(?:tmp|new|restore)-(\d{1,10})(?:-[0-9a-f]+)?(?:-wal|-shm|-journal)?"
    )
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            pid = int(match.group(1))
            found.append((os.path.join(folder, name), pid, _alive(pid)))
    return sorted(found)


def remove_dead_leftovers(state_path: str, now: float) -> int:
    """Remove temporary files of processes that are gone and older than LEFTOVER_AGE; how many were removed."""
    removed = 0
    for path, _, alive in leftovers(state_path):
        try:
            st = os.lstat(path)
            if not alive and now - st.st_mtime > LEFTOVER_AGE:
                os.unlink(path)
                removed += 1
        except OSError:
            pass
    return removed


def remove_dead_scratch(folder: str) -> None:
    """Remove this account's private scratch folders left in ``folder``'s temp base by killed processes."""
    base = os.path.dirname(folder)
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(SCRATCH_PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            pid = int(name[len(SCRATCH_PREFIX):].split("-", 1)[0])
            st = os.lstat(path)
        except (ValueError, OSError):
            continue
        if path != folder and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not _alive(pid):
            remove_folder(path)
