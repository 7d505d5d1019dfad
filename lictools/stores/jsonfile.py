"""The human-readable embedded store: one JSON document, replaced atomically on every change.

Chosen with a state path ending in ``.json``. Each write command: lock, read, apply, then
append the journal lines (``<state>.journal``, JSON lines, fsync), write a fresh temporary file
in the same folder, fsync, rename it over the state, fsync the folder. A crash leaves the old or
the new file, never a torn one. The state records ``journal_bytes``, the journal's length after
its last commit, and ``seq``, the number of events in it: journal lines beyond ``journal_bytes``
were written by a transaction that crashed before its rename, are ignored by readers and cut off
by the next commit.

Read-only commands read the file as it is (it is only ever replaced whole, never changed in
place), without the lock. The state file being written is also held with ``flock``: should
``<state>.lock`` be deleted while a command holds it, a second writer waits on that instead of
committing beside the first.

It reads and rewrites the whole document on every command, so it suits states of up to a few
thousand sessions (README, "Limits of the JSON layout"); SQLite is the default for that reason.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from lictools.errors import BusyError, CannotWriteError, DamagedStateError, ForbiddenError, NotFoundError
from lictools.stores import files, rotation, schema
from lictools.stores.api import SCHEMA_VERSION, StateView, Transaction
from lictools.stores.codec import encode_event
from lictools.stores.filestore import FileStore
from lictools.stores.locking import state_lock
from lictools.stores.memory import MemoryTransaction, empty_document

MAX_STATE_BYTES = 256 << 20
"""A larger state file is refused (exit 6) rather than read whole (a huge sparse file would take all memory)."""
MAX_EVENT_BYTES = 1 << 20
"""A longer journal line is damage: no event is that long."""

APPEND_CHUNK = 4096
"""Journal lines written per call: one commit's few at once, a whole copied journal (migrate) in pieces."""
OUTGROWN_SESSIONS = 2_000
OUTGROWN_BYTES = 2 << 20
"""Beyond these, ``doctor`` says the state has outgrown the JSON layout (README, "Limits of the JSON layout")."""


Marks = tuple[int, int, int | None]
"""What a state document says of its journal: (events rotated out before the live journal,
committed bytes of the live journal, events in all)."""


def marks(doc: dict[str, Any]) -> Marks:
    return doc.get("journal_base", 0), doc.get("journal_bytes", 0), doc.get("seq")


class JsonView(MemoryTransaction):
    """A snapshot of the JSON layout: the document read, and the journal up to what it had committed."""

    def __init__(self, doc: dict[str, Any], now: float, store: "JsonFileStore", st: os.stat_result | None) -> None:
        """``st``: the state file the document was read from (None: read under the state lock)."""
        super().__init__(doc, now)
        self._journal = (store, marks(doc), st)
        # events appended by a transaction, as the journal lines they become: text takes a tenth of
        # the memory of dicts, which counts for a long copy (lictools migrate of a whole journal)
        self.lines: list[str] = []

    def append_event(self, event: dict[str, Any]) -> None:
        self.lines.append(encode_event(event))
        self.dirty = True

    def clear_journal(self) -> None:
        rotation.refuse_clearing(self._journal[0].path)
        super().clear_journal()
        self.lines.clear()

    def journal(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        store, journal_marks, st = self._journal
        return store._chained(journal_marks, st, since_seq)


class JsonFileStore(FileStore):
    """The state as one JSON file guarded by ``<file>.lock``, journal in ``<file>.journal``."""

    layout = "JSON"

    def __init__(self, path: str, lock_timeout: float) -> None:
        super().__init__(path, lock_timeout)
        self.journal_path = self.path + ".journal"
        self.where = f"state {self.path}"

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.prepare_write()
        with state_lock(self.path, self.lock_timeout) as held, self._held_state() as (fd, doc):
            tx = JsonView(doc, self.now(), self, None)
            yield tx
            rotate = False
            if tx.dirty:
                files.check_writable(self.folder)
                held.verify()
                if tx.journal_cleared:  # migrate --force: the journal is rewritten from its start
                    doc["journal_bytes"], doc["seq"] = 0, 0
                try:
                    doc["journal_bytes"] = self._append_journal(tx.lines, doc.get("journal_bytes", 0))
                    doc["seq"] = doc.get("seq", 0) + len(tx.lines)
                    self._replace(doc, fd)
                except OSError as exc:
                    raise files.writing_error(exc, f"state {self.path}") from None
                files.remove_dead_leftovers(self.path, time.time())  # a listing of the folder: cheap
                rotate = self._over_limit(doc)
        if rotate:
            self.schedule_rotation()

    @staticmethod
    def _over_limit(doc: dict[str, Any]) -> bool:
        """Is the live journal larger than the ``journal_max_bytes`` setting? (The document says: free.)"""
        settings = doc.get("settings")
        if not settings:
            return False
        limit = rotation.max_bytes(settings)
        return limit is not None and doc.get("journal_bytes", 0) > limit

    @contextmanager
    def _held_state(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        """The state file (held with flock) and its document; (None, an empty document) when there is none."""
        while True:
            try:
                fd, st = files.open_regular(self.path, "state")
            except FileNotFoundError:
                yield None, empty_document()
                return
            try:
                self._flock(fd)
                try:
                    replaced = not files.same_file(os.lstat(self.path), st)
                except FileNotFoundError:
                    replaced = True
                if not replaced:
                    yield fd, self._parse(fd, st)
                    return
            finally:
                os.close(fd)
            # a writer that did not hold our lock file replaced the state meanwhile: read the new one

    def _flock(self, fd: int) -> None:
        if not files.flock_within(fd, self.lock_timeout):
            raise BusyError(f"state {self.path} is being written by a command that does not hold "
                            f"{self.path}.lock (was the lock file deleted?); nothing was changed")

    def _append_journal(self, lines: list[str], committed: int) -> int:
        """Cut any uncommitted tail, append ``lines`` (encoded events), fsync; return the new committed length."""
        fd = files.open_or_create(self.journal_path, "journal")
        try:
            size = os.fstat(fd).st_size
            if size < committed:
                raise DamagedStateError(
                    f"journal {self.journal_path} is shorter ({size} bytes) than the state says ({committed}): "
                    "committed events are lost; see 'lictools doctor'. Nothing was changed"
                )
            if size > committed and committed == 0:
                # a rotation that crashed before it replaced the journal (or a first write that
                # crashed): readers of an older state may still read these lines, so start a new file
                os.close(fd)
                fd = self._fresh_journal()
            elif size > committed:
                os.ftruncate(fd, committed)
            end = committed
            for start in range(0, len(lines), APPEND_CHUNK):  # a long copy is written in pieces, not one copy more
                data = memoryview("".join(line + "\n" for line in lines[start:start + APPEND_CHUNK]).encode())
                while data:  # a short write goes on where it stopped
                    written = os.pwrite(fd, data, end)
                    end, data = end + written, data[written:]
            if lines:
                os.fsync(fd)
            return end
        finally:
            os.close(fd)

    def _replace(self, doc: dict[str, Any], old: int | None, new_is_good_copy: bool = False) -> None:
        """Write ``doc`` to a fresh file and rename it over the state (the old file becomes ``<state>.bak``).

        ``new_is_good_copy``: the new file becomes ``<state>.bak`` too (after a rotation, the old
        document describes a live journal that is gone).
        """
        data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        if new_is_good_copy:
            files.write_new(f"{self.path}.bak", data, "the good copy", sync=False)
        elif old is not None:
            self._keep_good_copy(old)
        files.write_new(self.path, data, "the state", replace=old is not None)

    def _fresh_journal(self) -> int:
        """A new, empty ``<state>.journal`` put in place by rename (a reader holding the old one keeps it); its descriptor."""
        fd, temp = files.create_exclusive(f"{self.path}.tmp-")
        try:
            os.fsync(fd)
            files.publish(fd, temp, self.journal_path, "the journal")
        except BaseException:
            files.discard(fd, temp)
            raise
        return fd

    # -- rotation ------------------------------------------------------------------------
    def _rotate(self, only_over_limit: bool) -> rotation.Segment | None:
        """Move the whole live journal into a rotated file, under the state lock.

        In this order: the file (durable); the state, saying the live journal starts after it,
        empty; a new empty ``<state>.journal`` by rename. A crash after the file leaves its events
        twice (readers skip them by seq); after the state, the old journal's lines lie beyond what
        the state commits, and the next write starts a new file.
        """
        with state_lock(self.path, self.lock_timeout) as held, self._held_state() as (fd, doc):
            if fd is None:
                raise NotFoundError(f"no state at {self.path} (nothing was created)")
            base, committed, total = marks(doc)
            if not total or total <= base or (only_over_limit and not self._over_limit(doc)):
                return None
            files.check_writable(self.folder)
            seg = rotation.write_segment(self, self._live_events((base, committed, total), base, None), base + 1, total)
            held.verify()
            doc["journal_base"], doc["journal_bytes"] = total, 0
            try:
                self._replace(doc, fd, new_is_good_copy=True)
                os.close(self._fresh_journal())
            except OSError as exc:
                raise files.writing_error(exc, f"state {self.path}") from None
            return seg

    def _keep_good_copy(self, old: int) -> None:
        """Hard-link the state being replaced (it loaded fine) as ``<state>.bak``: no copy, no extra fsync.

        Linked from its descriptor (``/proc/self/fd``), so it is the file that was read, whatever
        the name ``<state>`` points to by now.
        """
        link = f"{self.path}.bak.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:  # no /proc: link the name, checked below to be that file
            os.link(self.path, link, follow_symlinks=False)
        else:
            try:  # linkat(AT_SYMLINK_FOLLOW) through the descriptor's magic link: the inode itself
                os.link(str(old), link, src_dir_fd=proc, follow_symlinks=True)
            finally:
                os.close(proc)
        try:
            files.publish(old, link, self.path + ".bak", "the good copy", sync=False)
        except DamagedStateError:
            files.discard(None, link)
            raise

    # -- reading -------------------------------------------------------------------------
    def _parse(self, fd: int, st: os.stat_result, where: str | None = None) -> dict[str, Any]:
        where = where or self.where
        raw = files.read_capped(fd, st.st_size, MAX_STATE_BYTES, where)
        doc = schema.loads(raw, where)
        if type(doc) is dict and type(doc.get("schema")) is int and doc["schema"] > SCHEMA_VERSION:
            raise DamagedStateError(
                f"{where} has schema {doc['schema']}, newer than this lictools ({SCHEMA_VERSION}); upgrade lictools"
            )
        return schema.document(doc, where)

    def _snapshot(self) -> tuple[dict[str, Any], os.stat_result]:
        """The state document as it is now, and the stat of the file it was read from."""
        self.require_state()
        try:
            fd, st = files.open_regular(self.path, "state")
        except FileNotFoundError:
            raise NotFoundError(f"no state at {self.path} (nothing was created)") from None
        try:
            return self._parse(fd, st), st
        finally:
            os.close(fd)

    @contextmanager
    def read(self, include_expired: bool = False) -> Iterator[StateView]:
        doc, st = self._snapshot()
        now = self.now()
        if not include_expired:
            doc["sessions"] = {k: s for k, s in doc["sessions"].items() if s["expires"] is None or s["expires"] > now}
        yield JsonView(doc, now, self, st)

    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        doc, st = self._snapshot()
        yield from self._chained(marks(doc), st, since_seq)

    def _chained(self, journal: Marks, st: os.stat_result | None, since_seq: int) -> Iterator[dict[str, Any]]:
        """The rotated files, then the live journal, as the document read from ``st`` describes them."""
        base, committed, total = journal
        return rotation.chained(self, since_seq, total, lambda: base + 1,
                                lambda after: self._live_events(journal, after, st))

    def _rotated_since(self, base: int, st: os.stat_result) -> bool:
        """Was the journal rotated since the state file ``st`` (whose journal started after ``base``) was read?"""
        try:
            now = os.lstat(self.path)
        except FileNotFoundError:
            return False
        # the inode alone is not enough: once the file read is gone (two writes later), a new state file
        # may get its number; size and times tell them apart (a false "changed" only costs a re-read)
        if files.same_file(now, st) and (now.st_size, now.st_mtime_ns, now.st_ctime_ns) == (
                st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return False
        return marks(self._snapshot()[0])[0] != base

    def _live_events(self, journal: Marks, since_seq: int, st: os.stat_result | None) -> Iterator[dict[str, Any]]:
        """Committed events of ``<state>.journal`` after ``since_seq``; a tail is found from the end, so memory
        stays bounded. ``st``: the state file the marks were read from (None: under the state lock); when
        the journal was rotated since, :class:`rotation.Moved` is raised before anything is read."""
        base, committed, total = journal
        if not committed:
            return
        try:
            fd, _ = files.open_regular(self.journal_path, "journal")
        except FileNotFoundError:
            return
        if st is not None and self._rotated_since(base, st):  # opened after a rotation replaced it?
            os.close(fd)
            raise rotation.Moved
        with os.fdopen(fd, "rb") as f:
            start = self._start_of(f, committed, total, since_seq) if since_seq > base and total else None
            offset, seq = start or (0, base)
            f.seek(offset)
            while offset < committed:
                line = f.readline(min(MAX_EVENT_BYTES, committed - offset))
                if not line.endswith(b"\n"):
                    what = "ends early" if len(line) < min(MAX_EVENT_BYTES, committed - offset) else "has an overlong line"
                    raise DamagedStateError(f"journal {self.journal_path} {what} at byte {offset}; the state itself is intact")
                offset += len(line)
                seq += 1
                if seq > since_seq:
                    event = schema.event(line, f"journal {self.journal_path} line {seq}")
                    event["seq"] = seq
                    yield event

    @staticmethod
    def _start_of(f: Any, committed: int, total: int, since_seq: int) -> tuple[int, int] | None:
        """(offset, seq before it) of the first event after ``since_seq``, counting lines back from the end.

        None (read from the start) when the journal has fewer lines than the state counts (a
        damaged journal: the forward read numbers them as they are).
        """
        wanted = total - since_seq  # events to return; their start is just after newline number wanted + 1 from the end
        if wanted <= 0:
            return committed, total
        end, seen = committed, 0
        while end > 0:
            start = max(0, end - (1 << 16))
            f.seek(start)
            block = f.read(end - start)
            index = len(block)
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                seen += 1
                if seen == wanted + 1:
                    return start + index + 1, since_seq
            end = start
        return None

    # -- doctor --------------------------------------------------------------------------
    def check(self) -> list[tuple[str, str, str]]:
        try:
            doc, _ = self._snapshot()
        except (DamagedStateError, ForbiddenError, CannotWriteError) as exc:
            return [("state", "fail", exc.message), self._check_backup()]
        sessions, size = len(doc["sessions"]), os.stat(self.path).st_size
        rows = [("state", "ok", f"{self.path}: JSON, {len(doc['pools'])} pool(s), {sessions} session(s), {size:,} bytes")]
        if sessions > OUTGROWN_SESSIONS or size > OUTGROWN_BYTES:
            rows.append(("layout", "warn", f"{sessions} sessions in {size:,} bytes: beyond what the JSON layout is for "
                                           f"({OUTGROWN_SESSIONS:,} sessions, {OUTGROWN_BYTES >> 20} MiB); every command "
                                           "reads and rewrites it all: use a state.db (SQLite) path"))
        rows.append(self._check_journal(doc))
        rows.append(rotation.check(self, marks(doc)[0] + 1, self._over_limit(doc)))
        rows.append(self._check_backup())
        return rows

    def _check_journal(self, doc: dict[str, Any]) -> tuple[str, str, str]:
        base, committed, total = marks(doc)
        total = total or 0
        try:
            size = os.lstat(self.journal_path).st_size
        except FileNotFoundError:
            size = 0
        if size < committed:
            return ("journal", "fail", f"{self.journal_path} is shorter ({size} bytes) than committed ({committed})")
        count, back, first_back, last = 0, 0, None, None
        try:
            for event in self._live_events((base, committed, total), base, None):
                count += 1
                ts = event.get("ts")
                if isinstance(ts, (int, float)) and last is not None and ts < last:
                    back += 1
                    first_back = first_back or event["seq"]
                last = ts if isinstance(ts, (int, float)) else last
        except DamagedStateError as exc:
            return ("journal", "fail", exc.message)
        if count != total - base:
            return ("journal", "fail", f"{self.journal_path} holds {count} event(s), the state counts {total - base}")
        tail = f"; {size - committed} byte(s) after the last commit (a crashed write, cut by the next command)" \
            if size > committed else ""
        if back:
            return ("journal", "warn", f"{count} event(s); times go backwards {back} time(s), first at seq {first_back} "
                                       f"(the system clock was set back){tail}")
        return ("journal", "warn" if tail else "ok", f"{self.journal_path}: {count} event(s), times in order{tail}")

    def _check_backup(self) -> tuple[str, str, str]:
        bak = self.path + ".bak"
        row, _ = self.check_good_copy("kept from the second write on",
                                      lambda fd, st: self._parse(fd, st, f"good copy {bak}"))
        return row or ("backup", "ok", f"{bak}: the state before the last write")

    def restore_backup(self) -> str:
        def check(fd: int, st: os.stat_result) -> None:
            try:
                self._parse(fd, st, f"good copy {self.path}.bak")
            except DamagedStateError as exc:
                raise DamagedStateError(f"the last good copy is not usable either: {exc.message}") from None

        return self.restore_from(self.path + ".bak", check)
