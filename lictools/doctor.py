"""Health checks for ``lictools doctor``: state, journal, backup, permissions, lock, filesystem."""

from __future__ import annotations

import os
import stat

from lictools.stores.api import Store
from lictools.stores.locking import lock_holder, network_filesystem_warning


def _mode_check(path: str, what: str) -> tuple[str, str, str] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return (what, "fail", f"{path} is a symlink; lictools refuses to follow it")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        return (what, "fail", f"{path} has mode {mode:04o}: other users can read or write it (chmod o-rwx)")
    return (what, "ok", f"{path} mode {mode:04o}, owner uid {st.st_uid}")


def folder_checks(folder: str) -> list[tuple[str, str, str]]:
    rows = []
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return [("folder", "warn", f"{folder} does not exist yet (created by the first command)")]
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o002 and not mode & 0o1000:
        rows.append(("folder", "fail", f"{folder} mode {mode:04o}: writable by all without the sticky bit"))
    else:
        shared = "group-shared, files 0660" if mode & 0o020 else "private, files 0600"
        rows.append(("folder", "ok", f"{folder} mode {mode:04o} ({shared})"))
    warning = network_filesystem_warning(folder)
    rows.append(("filesystem", "warn", warning) if warning else ("filesystem", "ok", "local filesystem"))
    return rows


def lock_check(state_path: str) -> tuple[str, str, str]:
    """Is the lock file sane, and is somebody holding it right now?"""
    from filelock import FileLock, Timeout

    lock_path = state_path + ".lock"
    bad = _mode_check(lock_path, "lock")
    if bad and bad[1] == "fail":
        return bad
    if not os.path.exists(lock_path):
        return ("lock", "ok", f"{lock_path} not created yet")
    lock = FileLock(lock_path, timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        return ("lock", "warn", f"{lock_path} is held right now (PID {lock_holder(lock_path) or '?'})")
    except OSError as exc:
        return ("lock", "fail", f"{lock_path}: {exc.strerror}")
    lock.release()
    return ("lock", "ok", f"{lock_path} free")


def run_checks(store: Store) -> list[dict[str, str]]:
    """Every check as ``{"check", "status", "detail"}``, most fundamental first."""
    rows: list[tuple[str, str, str]] = []
    path = getattr(store, "path", None)
    if path:
        rows.extend(folder_checks(os.path.dirname(path)))
        if not os.path.exists(path):
            rows.append(("state", "warn", f"{path} does not exist yet"))
            return [dict(zip(("check", "status", "detail"), r)) for r in rows]
        rows.append(_mode_check(path, "permissions") or ("permissions", "warn", f"{path} missing"))
    rows.extend(store.check())
    if path:
        rows.append(lock_check(path))
    if not any(r[0] == "state" and r[1] == "fail" for r in rows):
        rows.append(replay_check(store))
    return [dict(zip(("check", "status", "detail"), r)) for r in rows]


def replay_check(store: Store) -> tuple[str, str, str]:
    """Does replaying the journal give the state? (skipped where lictools.replay is absent)"""
    try:
        from lictools.replay import compare
    except ImportError:
        return ("replay", "warn", "journal replay not available in this build")
    try:
        differences = compare(store)
    except Exception as exc:  # a check must report, not crash
        return ("replay", "warn", f"could not replay the journal: {type(exc).__name__}: {exc}")
    if differences:
        return ("replay", "warn", f"journal and state differ in {len(differences)} place(s), first: {differences[0]}")
    return ("replay", "ok", "replaying the journal gives the state")
