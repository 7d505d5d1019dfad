"""The human-readable embedded store: one JSON document, replaced atomically on every change.

Chosen with a state path ending in ``.json``. Each command: lock, read, apply, then append the
journal lines (``<state>.journal``, JSON lines, fsync), write ``<state>.tmp-<pid>`` in the same
folder, fsync, rename over the state, fsync the folder. A crash leaves the old or the new file,
never a torn one. The state records ``journal_bytes``, the journal's length after its last
commit: journal lines beyond it were written by a transaction that crashed before its rename,
are ignored by readers, and are cut off by the next commit.

It reads and rewrites the whole document on every command, so it suits states of up to a few
thousand sessions; the SQLite store is the default for that reason (docs/performance.md).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from lictools.errors import DamagedStateError, ForbiddenError
from lictools.stores.api import SCHEMA_VERSION, Store, Transaction
from lictools.stores.codec import decode_event, encode_event
from lictools.stores.locking import ensure_folder, fsync_folder, open_private, restore_file, state_lock
from lictools.stores.memory import MemoryTransaction, empty_document
from lictools.timeutil import now as clock_now


class JsonFileStore(Store):
    """The state as one JSON file guarded by ``<file>.lock``, journal in ``<file>.journal``."""

    def __init__(self, path: str, lock_timeout: float) -> None:
        self.path = os.path.abspath(path)
        self.location = self.path
        self.journal_path = self.path + ".journal"
        self.lock_timeout = lock_timeout

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        folder = os.path.dirname(self.path)
        ensure_folder(folder)
        with state_lock(self.path, self.lock_timeout):
            doc = self._load()
            tx = MemoryTransaction(doc, clock_now())
            yield tx
            if tx.dirty:
                doc["journal_bytes"] = self._append_journal(tx.events, doc.get("journal_bytes", 0))
                doc["seq"] = doc.get("seq", 0) + len(tx.events)
                self._replace(doc, folder)

    def read_journal(self, since_seq: int = 0) -> Iterable[dict[str, Any]]:
        if not os.path.exists(self.path):
            return
        committed = self._load().get("journal_bytes", 0)
        try:
            f = open(self.journal_path, "rb")
        except FileNotFoundError:
            return
        with f:
            seq = 0
            left = committed  # bytes beyond it belong to a transaction that never committed
            for line in f:  # line by line: a report over a long journal reads it in bounded memory
                if left <= 0:
                    break
                line = line[:left]
                left -= len(line)
                seq += 1
                if seq > since_seq:
                    try:
                        event = decode_event(line.decode())
                    except ValueError:
                        raise DamagedStateError(
                            f"journal {self.journal_path} line {seq} is damaged; the state itself is intact"
                        ) from None
                    event["seq"] = seq
                    yield event

    def _keep_good_copy(self) -> None:
        """Hard-link the state being replaced (it loaded fine) as ``<state>.bak``: no copy, no extra fsync."""
        if not os.path.exists(self.path):
            return
        link = f"{self.path}.bak.tmp-{os.getpid()}"
        if os.path.lexists(link):
            os.unlink(link)
        os.link(self.path, link)
        os.replace(link, self.path + ".bak")

    def owner_uid(self) -> int | None:
        try:
            return os.stat(self.path).st_uid
        except OSError:
            return None

    def check(self) -> list[tuple[str, str, str]]:
        try:
            doc = self._load()
        except (DamagedStateError, ForbiddenError) as exc:
            return [("state", "fail", exc.message), self._check_backup()]
        rows = [("state", "ok", f"{self.path}: JSON, {len(doc['pools'])} pool(s), {len(doc['sessions'])} session(s)")]
        committed = doc.get("journal_bytes", 0)
        try:
            size = os.stat(self.journal_path).st_size
        except FileNotFoundError:
            size = 0
        if size < committed:
            rows.append(("journal", "fail", f"{self.journal_path} is shorter ({size} bytes) than committed ({committed})"))
        elif size > committed:
            rows.append(("journal", "warn", f"{size - committed} byte(s) after the last commit: a crashed write, "
                                            "ignored and cut by the next command"))
        else:
            bad = 0
            with open(self.journal_path, "rb") if size else open(os.devnull, "rb") as f:
                for line in f.read(committed).splitlines():
                    try:
                        json.loads(line)
                    except ValueError:
                        bad += 1
            status = "fail" if bad else "ok"
            rows.append(("journal", status, f"{self.journal_path}: {committed} bytes" + (f", {bad} unreadable line(s)" if bad else "")))
        rows.append(self._check_backup())
        return rows

    def _check_backup(self) -> tuple[str, str, str]:
        bak = self.path + ".bak"
        if not os.path.exists(bak):
            return ("backup", "warn", f"no good copy yet at {bak} (kept from the second write on)")
        try:
            JsonFileStore(bak, self.lock_timeout)._load()
        except (DamagedStateError, ForbiddenError) as exc:
            return ("backup", "fail", exc.message)
        return ("backup", "ok", f"{bak}: the state before the last write")

    def restore_backup(self) -> str:
        return restore_file(self.path, self.path + ".bak", self._check_backup)

    def _load(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return empty_document()
        except PermissionError:
            raise ForbiddenError(f"permission denied: cannot read state {self.path}") from None
        except OSError as exc:
            raise DamagedStateError(f"state {self.path} cannot be opened: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            raise DamagedStateError(f"state {self.path} is not valid JSON (damaged?); nothing was changed") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("schema"), int):
            raise DamagedStateError(f"state {self.path} is not a lictools state file; nothing was changed")
        if doc["schema"] > SCHEMA_VERSION:
            raise DamagedStateError(
                f"state {self.path} has schema {doc['schema']}, newer than this lictools ({SCHEMA_VERSION}); "
                "upgrade lictools"
            )
        if not isinstance(doc.get("pools"), dict) or not isinstance(doc.get("sessions"), dict):
            raise DamagedStateError(f"state {self.path} lacks its pools or sessions; nothing was changed")
        return doc

    def _append_journal(self, events: list[dict[str, Any]], committed: int) -> int:
        """Cut any uncommitted tail, append ``events``, fsync; return the new committed length."""
        fd = open_private(self.journal_path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size != committed:
                os.ftruncate(fd, committed)
            data = b"".join(encode_event(e).encode() + b"\n" for e in events)
            if data:
                os.pwrite(fd, data, committed)
                os.fsync(fd)
            return committed + len(data)
        finally:
            os.close(fd)

    def _replace(self, doc: dict[str, Any], folder: str) -> None:
        tmp = f"{self.path}.tmp-{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)  # left by a crashed writer with our PID
        fd = open_private(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc, indent=1, sort_keys=True).encode())
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            self._keep_good_copy()
            os.rename(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        fsync_folder(folder)
