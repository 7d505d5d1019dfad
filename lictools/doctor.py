"""Health checks for ``lictools doctor``: folder, space, state, journal, backup, permissions, lock, leftovers.

Read-only: nothing here takes the state lock or writes, so ``doctor`` runs beside a login storm
and on a read-only or full disk, and says which of those it is looking at.
"""

from __future__ import annotations

import os
import stat
from itertools import chain

from lictools.stores import files
from lictools.stores.api import Store
from lictools.stores.locking import describe_holder, network_filesystem_warning

Row = tuple[str, str, str]


def _mode_check(path: str, what: str) -> Row | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return (what, "fail", f"{path} is {files.kind(st.st_mode)}, not a regular file; lictools refuses it")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        return (what, "fail", f"{path} has mode {mode:04o}: other users can read or write it (chmod o-rwx)")
    return (what, "ok", f"{path} mode {mode:04o}, owner uid {st.st_uid}")


def folder_checks(folder: str) -> list[Row]:
    rows: list[Row] = []
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return [("folder", "warn", f"{folder} does not exist yet (created by the first 'pool add')")]
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o002 and not mode & 0o1000:
        rows.append(("folder", "fail", f"{folder} mode {mode:04o}: writable by all without the sticky bit"))
    else:
        shared = "group-shared, files 0660" if mode & 0o020 else "private, files 0600"
        rows.append(("folder", "ok", f"{folder} mode {mode:04o} ({shared}), owner uid {st.st_uid} (the state's owner)"))
    warning = network_filesystem_warning(folder)
    rows.append(("filesystem", "warn", warning) if warning else ("filesystem", "ok", "local filesystem"))
    rows.append(space_check(folder))
    return rows


def space_check(folder: str) -> Row:
    """Writes need MIN_FREE_BYTES free and a writable filesystem (exit 8 otherwise); reads need neither."""
    try:
        vfs = os.statvfs(folder)
    except OSError as exc:
        return ("space", "warn", f"cannot tell the free space of {folder}: {exc.strerror}")
    free = vfs.f_bavail * vfs.f_frsize
    if vfs.f_flag & os.ST_RDONLY:
        return ("space", "warn", f"{folder} is on a read-only filesystem: reads work, writes exit 8")
    if free < files.MIN_FREE_BYTES:
        return ("space", "fail", f"{free // 1024} KiB free in {folder}: writes are refused (exit 8) until "
                                 f"{files.MIN_FREE_BYTES // 1024} KiB are free; the state itself is not damaged")
    return ("space", "ok", f"{free / 2**30:,.1f} GiB free")


def lock_check(state_path: str) -> Row:
    """Is the lock file sane, and is somebody holding it right now? (probed without taking it)"""
    import fcntl

    lock_path = state_path + ".lock"
    bad = _mode_check(lock_path, "lock")
    if bad and bad[1] == "fail":
        return bad
    try:
        fd, _ = files.open_regular(lock_path, "state lock")
    except FileNotFoundError:
        return ("lock", "ok", f"{lock_path} not created yet")
    except Exception as exc:  # noqa: BLE001  a check reports, it does not stop
        return ("lock", "fail", getattr(exc, "message", str(exc)))
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return ("lock", "warn", f"{lock_path} is held right now by {describe_holder(lock_path)}")
    except OSError as exc:
        return ("lock", "fail", f"{lock_path}: {exc.strerror}")
    finally:
        os.close(fd)
    return ("lock", "ok", f"{lock_path} free")


def leftovers_check(state_path: str) -> Row:
    """Temporary files of killed writers (removed by later writes once their process is gone)."""
    found = files.leftovers(state_path)
    if not found:
        return ("leftovers", "ok", "no temporary files left by killed commands")
    shown = ", ".join(f"{os.path.basename(p)} ({'PID running' if alive else 'PID gone'})" for p, _, alive in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return ("leftovers", "warn", f"{len(found)} temporary file(s): {shown}{more}; those of gone processes are "
                                 f"removed by the next good copy after {files.LEFTOVER_AGE // 60} minutes")


def run_checks(store: Store) -> list[dict[str, str]]:
    """Every check as ``{"check", "status", "detail"}``, most fundamental first.

    NotFoundError (exit 4) when there is no state: doctor creates nothing either.
    """
    rows: list[Row] = []
    path = getattr(store, "path", None)
    if path:
        rows.extend(folder_checks(os.path.dirname(path)))
        store.require_state()  # type: ignore[attr-defined]
        rows.append(_mode_check(path, "permissions") or ("permissions", "warn", f"{path} missing"))
    rows.extend(store.check())
    if path:
        rows.append(lock_check(path))
        rows.append(leftovers_check(path))
    if not any(r[0] == "state" and r[1] == "fail" for r in rows):
        rows.append(replay_check(store))
    return [dict(zip(("check", "status", "detail"), r)) for r in rows]


def replay_check(store: Store) -> Row:
    """Does replaying the journal give the state? A grant the journal has and the state lacks fails.

    State and journal are read from one snapshot, so a command committing meanwhile does not show
    up as a difference.
    """
    try:
        from lictools.replay import compare_transaction
    except ImportError:
        return ("replay", "warn", "journal replay not available in this build")
    try:
        with store.read(include_expired=True) as view:
            events = iter(view.journal())
            first = next(events, None)
            if first is not None and first.get("seq", 1) > 1:
                return ("replay", "warn", f"the journal starts at event {first['seq']} (older rotated files were "
                                          "removed): the state cannot be rebuilt from it, so it is not compared")
            differences = compare_transaction(chain([first] if first else [], events), view)
    except Exception as exc:  # noqa: BLE001  a check must report, not crash
        return ("replay", "warn", f"could not replay the journal: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
    lost = [d for d in differences if "live in the journal" in d and "not in the state" in d]
    if lost:
        return ("replay", "fail", f"{len(lost)} session(s) the journal granted are missing from the state (lost "
                                  f"writes: was the lock file deleted while held?), first: {lost[0]}")
    if differences:
        return ("replay", "warn", f"journal and state differ in {len(differences)} place(s), first: {differences[0]}")
    return ("replay", "ok", "replaying the journal gives the state")
