"""What the two file layouts (SQLite, JSON) share: the path and its checks, the owner, the clock, restores."""

from __future__ import annotations

import os
import stat
from typing import Callable

from lictools.errors import DamagedStateError, ForbiddenError, NotFoundError
from lictools.stores import files, rotation
from lictools.stores.api import RotatedJournal, Store
from lictools.timeutil import state_clock


class FileStore(Store):
    """A state kept in one file (``path``) in a folder, guarded by ``<path>.lock``."""

    #: how ``doctor`` names the layout
    layout = "file"

    def __init__(self, path: str, lock_timeout: float) -> None:
        self.path = os.path.abspath(path)
        self.location = self.path
        self.folder = os.path.dirname(self.path)
        self.lock_timeout = lock_timeout

    # -- who and when ------------------------------------------------------------------
    def owner_uid(self) -> int | None:
        """The owner of the state's folder: something writing the state cannot change.

        Every member of a group-shared folder (2770) can replace the state file, so the file's
        owner would be whoever wrote last; the folder's owner is set by whoever created the
        folder (root, or the admin account it was given to) and only root can change it. In a
        sticky folder (``/tmp``) nobody but a file's owner may replace or remove it, so there
        the state file's owner is that fact.
        """
        try:
            folder = os.stat(self.folder)
        except OSError:
            return None
        if not folder.st_mode & stat.S_ISVTX:
            return folder.st_uid
        try:
            st = os.lstat(self.path)
        except OSError:
            return None
        return st.st_uid if stat.S_ISREG(st.st_mode) else None

    def now(self) -> float:
        """The time of a command: the system clock, or LICTOOLS_NOW for root and the state's owner (else exit 7)."""
        return state_clock(self.owner_uid, self.path)

    # -- before reading or writing ---------------------------------------------------------
    def prepare_write(self) -> None:
        """Refuse a state path that is not a regular file, create the folder, refuse an unwritable one."""
        files.refuse_unusual(self.path, "state")
        files.ensure_folder(self.folder)
        files.check_writable(self.folder)

    def require_state(self) -> os.stat_result:
        """The state file's lstat; NotFoundError (exit 4, nothing created) when there is none."""
        st = files.refuse_unusual(self.path, "state")
        if st is None:
            raise NotFoundError(f"no state at {self.path} (nothing was created; 'lictools pool add' creates it)")
        return st

    # -- journal rotation -------------------------------------------------------------------
    def rotate_journal(self, only_over_limit: bool = False, claim: int | None = None) -> RotatedJournal | None:
        """Move the older journal events into ``<state>.journal.<first>-<last>.jsonl.gz`` (lictools.stores.rotation).

        One rotation at a time (``<state>.rotate.lock``); exit 4 when there is no state.
        """
        try:
            self.require_state()
        except BaseException:
            if claim is not None:
                os.close(claim)
            raise
        with rotation.claimed(self.path, self.lock_timeout, held=claim):
            seg = self._rotate(only_over_limit)
            # a write that crossed journal_max_bytes meanwhile found the lock held and left it to us
            for _ in range(3):
                if seg is None or self._rotate(only_over_limit=True) is None:
                    break
        if seg is None:
            return None
        return RotatedJournal(seg.path, seg.first, seg.last, os.lstat(seg.path).st_size)

    def _rotate(self, only_over_limit: bool) -> rotation.Segment | None:
        """The layout's rotation, holding the rotation lock."""
        raise NotImplementedError

    def schedule_rotation(self) -> None:
        """After a commit that left the journal over ``journal_max_bytes``: rotate once the command has answered.

        The rotation lock is claimed here and handed to the work, so in a login storm one process
        rotates and the others, finding it held, start nothing.
        """
        from lictools import background
        claim = rotation.try_claim(self.path)
        if claim is not None:
            background.later("lictools.stores.rotation", "rotate_in_background", self.path, fd=claim)

    # -- the good copy -----------------------------------------------------------------------
    def trusted_copy(self, st: os.stat_result) -> str | None:
        """Why a file lictools is about to copy into the state is not its own good copy, or None.

        It must have one name only (a hard link to some other file has two) and belong to the
        state's owner, to this account, or (in a group-shared folder) to the folder's group.
        """
        if st.st_nlink != 1:
            return f"it has {st.st_nlink} names (a hard link to another file?)"
        try:
            folder = os.stat(self.folder)
        except OSError:
            return "its folder cannot be read"
        if st.st_uid in (self.owner_uid(), os.geteuid()):
            return None
        if folder.st_mode & 0o020 and st.st_gid == folder.st_gid:
            return None
        return f"it belongs to uid {st.st_uid}, not to the state's owner nor to the folder's group"

    def check_good_copy(
        self, missing: str, check: Callable[[int, os.stat_result], object]
    ) -> tuple[tuple[str, str, str] | None, os.stat_result | None]:
        """doctor's look at ``<state>.bak``: (a warn/fail row, None), or (None, its stat) when it is usable.

        ``missing`` says when a first copy is made; ``check(fd, stat)`` reads its contents.
        """
        bak = self.path + ".bak"
        try:
            fd, st = files.open_regular(bak, "good copy")
        except FileNotFoundError:
            return ("backup", "warn", f"no good copy yet at {bak} ({missing})"), None
        except (DamagedStateError, ForbiddenError) as exc:
            return ("backup", "fail", exc.message), None
        try:
            why = self.trusted_copy(st)
            if why:
                return ("backup", "fail", f"{bak} is not lictools' own good copy: {why}"), None
            check(fd, st)
        except DamagedStateError as exc:
            return ("backup", "fail", exc.message), None
        finally:
            os.close(fd)
        return None, st

    def restore_from(self, backup: str, check: Callable[[int, os.stat_result], None], extra: tuple[str, ...] = ()) -> str:
        """Put ``backup`` in place of the state under the state lock; the replaced file is kept, never deleted.

        ``backup`` is opened once, without following a symlink, checked (:meth:`trusted_copy`,
        then ``check(fd, stat)`` on its contents) and copied from that same descriptor, so what
        is checked is what is copied. Returns where the replaced state was moved
        (``<state>.damaged-<time>``).
        """
        import time

        from lictools.stores.locking import state_lock

        with state_lock(self.path, self.lock_timeout):
            try:
                src, st = files.open_regular(backup, "good copy")
            except FileNotFoundError:
                raise NotFoundError(f"no good copy to restore from ({backup} does not exist)") from None
            out = temp = None
            try:
                why = self.trusted_copy(st)
                if why:
                    raise DamagedStateError(f"good copy {backup} is not lictools' own: {why}; nothing was changed")
                check(src, st)
                files.check_writable(self.folder)
                out, temp = files.create_exclusive(f"{self.path}.restore-")
                files.copy_fd(src, out)
                os.fsync(out)
                kept = f"{self.path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
                if os.path.lexists(self.path):
                    os.rename(self.path, kept)
                for suffix in extra:  # a damaged database's WAL must not be applied to the copy
                    if os.path.lexists(self.path + suffix):
                        os.rename(self.path + suffix, kept + suffix)
                files.publish(out, temp, self.path, "the restored state")
                return kept
            finally:
                os.close(src)
                files.discard(out, temp)
