"""Rotated journal files: the oldest events, moved out of the live journal into gzip files beside the state.

A rotated file is ``<state>.journal.<first_seq>-<last_seq>.jsonl.gz`` (seqs zero-padded to 12
digits, so ``ls`` lists them in order): the events ``first_seq`` to ``last_seq``, one JSON line
each, every line carrying its ``seq``, exactly as ``lictools journal`` prints them.

Both file layouts rotate the same way (``journal rotate``, or after a write once the journal
outgrows the ``journal_max_bytes`` setting), and readers chain the files, oldest first, before
the live journal (the SQLite ``events`` table, or ``<state>.journal``):

- a rotated file is written whole before any event leaves the live journal (temporary name,
  fsync, atomic rename, fsync of the folder: :mod:`lictools.stores.files`), so a crash between
  the two leaves the events twice, never nowhere; readers skip an event whose ``seq`` they
  already gave;
- a file is opened without following a symlink, must be a regular file with one name, and belong
  to the state's owner, this account, or (in a group-shared folder) the folder's group
  (``FileStore.trusted_copy``); anything else is refused as damaged (exit 6);
- the oldest files may be deleted to reclaim space: readers then start at the first event kept.
  A hole anywhere later (a file missing between two others, or before the live journal) is
  refused (exit 6): a report over it would be silently wrong.

One rotation runs at a time per state: it holds ``<state>.rotate.lock`` (``flock``).
"""

from __future__ import annotations

import io
import os
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple

from lictools.errors import BusyError, DamagedStateError, ForbiddenError, LictoolsError, UsageError
from lictools.stores import files, schema
from lictools.stores.codec import encode_event

if TYPE_CHECKING:
    from lictools.stores.filestore import FileStore

SETTING = "journal_max_bytes"
"""The state setting: rotate once the live journal holds more than this many bytes of JSON lines."""
MIN_MAX_BYTES = 4096
"""The smallest ``journal_max_bytes`` accepted (a smaller one would rotate on nearly every write)."""
MAX_EVENT_BYTES = 1 << 20
"""A longer line is damage: no event is that long."""
SUFFIX = ".jsonl.gz"


class Segment(NamedTuple):
    """One rotated file: the events ``first`` to ``last``."""

    first: int
    last: int
    path: str


class Moved(Exception):
    """Raised by a live-journal reader whose journal was rotated since its snapshot: read the files again."""


# --------------------------------------------------------------------------- names
def segment_path(state_path: str, first: int, last: int) -> str:
    return f"{state_path}.journal.{first:012d}-{last:012d}{SUFFIX}"


def segments(state_path: str) -> list[Segment]:
    """The rotated files of a state, oldest first (by their names: nothing is opened)."""
    folder, base = os.path.split(state_path)
    pattern = re.compile(re.escape(base) + r"\.journal\.(\d{1,19})-(\d{1,19})" + re.escape(SUFFIX))
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except PermissionError:
        raise ForbiddenError(f"permission denied: cannot list the state folder {folder}") from None
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            if 1 <= first <= last:
                found.append(Segment(first, last, os.path.join(folder, name)))
    return sorted(found)


def refuse_clearing(state_path: str) -> None:
    """Refuse (exit 2) to drop the journal of a state that has rotated files: the new journal would
    number its events 1, 2 ... again, and readers chain the old files before it."""
    found = segments(state_path)
    if found:
        raise UsageError(f"{state_path} has {len(found)} rotated journal file(s) ({os.path.basename(found[0].path)} ...); "
                         "move them away (they are its history) before replacing its whole state")


def parse_size(text: str) -> int:
    """``journal_max_bytes`` as bytes: a whole number with an optional K, M or G (powers of 1024)."""
    value = text.strip()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(value[-1:].lower(), 1)
    digits = value[:-1] if scale > 1 else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 15:
        raise UsageError(f"{SETTING}: expected a size in bytes such as 67108864, 64M or 1G, got {text!r}")
    size = int(digits) * scale
    if size < MIN_MAX_BYTES:
        raise UsageError(f"{SETTING}: {size} bytes is too small (at least {MIN_MAX_BYTES}); '' turns rotation off")
    return size


def max_bytes(settings: dict[str, str]) -> int | None:
    """The state's rotation threshold in bytes, or None (no rotation by size; a bad value counts as none)."""
    value = settings.get(SETTING)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- writing
def write_segment(store: FileStore, events: Iterable[dict[str, Any]], first: int, last: int) -> Segment:
    """Write ``events`` (each with its ``seq``: exactly ``first`` to ``last``) as a rotated file, durably.

    A fresh temporary file in the state's folder (``O_EXCL``, no symlink followed, the state
    files' mode), gzip-compressed, fsynced, renamed to its name, the folder fsynced.
    """
    import gzip

    fd, temp = files.create_exclusive(f"{store.path}.tmp-")
    try:
        raw = io.FileIO(fd, "wb", closefd=False)
        expected = first
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            chunk: list[str] = []
            for event in events:
                if event.get("seq") != expected or expected > last:
                    raise DamagedStateError(f"journal of {store.path}: event {expected} is missing "
                                            f"(found seq {event.get('seq')}); nothing was rotated")
                chunk.append(encode_event(event))
                expected += 1
                if len(chunk) == 512:
                    gz.write(("\n".join(chunk) + "\n").encode())
                    chunk.clear()
            if chunk:
                gz.write(("\n".join(chunk) + "\n").encode())
        if expected != last + 1:
            raise DamagedStateError(f"journal of {store.path}: events {expected} to {last} are missing; "
                                    "nothing was rotated")
        os.fsync(fd)
        path = segment_path(store.path, first, last)
        files.publish(fd, temp, path, "a rotated journal file")
        return Segment(first, last, path)
    except OSError as exc:
        raise files.writing_error(exc, f"a rotated journal file in {store.folder}") from None
    finally:
        files.discard(fd, temp)


# --------------------------------------------------------------------------- reading
def _open(store: FileStore, seg: Segment) -> int:
    what = "rotated journal file"
    try:
        fd, st = files.open_regular(seg.path, what)
    except FileNotFoundError:
        raise DamagedStateError(f"{what} {seg.path} disappeared while it was being read (deleted?)") from None
    why = store.trusted_copy(st)
    if why:
        os.close(fd)
        raise DamagedStateError(f"{what} {seg.path} is not lictools' own: {why}; it is not read")
    return fd


def read_segment(store: FileStore, seg: Segment, since: int = 0, upto: int | None = None) -> Iterator[dict[str, Any]]:
    """The events of one rotated file after ``since`` (and up to ``upto``), checked against its name."""
    import gzip
    import zlib

    where = f"rotated journal file {seg.path}"
    fd = _open(store, seg)
    expected = seg.first
    try:
        with gzip.GzipFile(fileobj=io.FileIO(fd, "rb", closefd=True), mode="rb") as gz:
            while upto is None or expected <= upto:
                line = gz.readline(MAX_EVENT_BYTES)
                if not line:
                    break
                if not line.endswith(b"\n"):
                    raise DamagedStateError(f"{where} ends early or has an overlong line at event {expected}")
                if expected > seg.last:
                    raise DamagedStateError(f"{where} holds more events than its name says ({seg.first} to {seg.last})")
                if expected > since:
                    event = schema.event(line, f"{where} event {expected}")
                    if event.get("seq") != expected:
                        raise DamagedStateError(f"{where}: line {expected - seg.first + 1} has seq "
                                                f"{event.get('seq')!r}, expected {expected}")
                    yield event
                expected += 1
    except (OSError, EOFError, zlib.error) as exc:
        raise DamagedStateError(f"{where} is damaged: {exc}") from None
    if expected <= seg.last and (upto is None or expected <= upto):
        raise DamagedStateError(f"{where} holds events {seg.first} to {expected - 1}, its name says to {seg.last}")


def chained(
    store: FileStore,
    since: int,
    upto: int | None,
    live_first: Callable[[], int | None],
    live: Callable[[int], Iterator[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    """Events after ``since`` (up to ``upto``): the rotated files, oldest first, then the live journal.

    ``live_first()`` is the first seq the live journal holds (None: it is empty); ``live(after)``
    yields its events after ``after``, or raises :class:`Moved` when it was rotated meanwhile
    (its events are in files by then: they are listed again). An event already given is skipped.
    """
    last = since
    for _ in range(8):
        previous: int | None = None  # the last seq of the files seen so far (for holes)
        for seg in segments(store.path):
            if upto is not None and last >= upto:
                return
            if previous is not None and seg.first > previous + 1:
                _hole(store, previous + 1, seg.first - 1)
            previous = max(previous or 0, seg.last)
            if seg.last <= last:
                continue
            for event in read_segment(store, seg, last, upto):
                last = event["seq"]
                yield event
        if upto is not None and last >= upto:
            return
        first = live_first()
        if previous is not None and first is not None and first > previous + 1:
            _hole(store, previous + 1, first - 1)
        try:
            for event in live(last):
                last = event["seq"]
                yield event
            return
        except Moved:
            continue  # rotated since this reader's snapshot: its events are in the files now
    raise BusyError(f"the journal of {store.path} was rotated again and again while it was being read; try again")


def _hole(store: FileStore, first: int, last: int) -> None:
    raise DamagedStateError(
        f"the journal of {store.path} has a hole: events {first} to {last} are in no rotated file "
        f"({os.path.basename(segment_path(store.path, first, last))} deleted?); only the oldest files may be removed"
    )


def check(store: FileStore, live_first: int | None, over_limit: bool = False) -> tuple[str, str, str]:
    """``doctor``'s row about the rotated files: each read whole and checked, holes, the first event kept,
    and (``over_limit``) a live journal still larger than ``journal_max_bytes``."""
    row = _check_files(store, live_first)
    if over_limit and row[1] == "ok":
        return ("rotated", "warn", f"{row[2]}; the live journal is larger than {SETTING}: a rotation is running, "
                                   "or the last ones failed ('lictools journal rotate' says why)")
    return row


def _check_files(store: FileStore, live_first: int | None) -> tuple[str, str, str]:
    try:
        found = segments(store.path)
    except LictoolsError as exc:
        return ("rotated", "fail", exc.message)
    if not found:
        return ("rotated", "ok", "no rotated journal files")
    count, size, previous = 0, 0, None
    for seg in found:
        if previous is not None and seg.first > previous + 1:
            return ("rotated", "fail", f"events {previous + 1} to {seg.first - 1} are in no rotated file "
                                       f"(a file between {os.path.basename(seg.path)} and the one before was deleted?)")
        previous = max(previous or 0, seg.last)
        try:
            count += sum(1 for _ in read_segment(store, seg))
            size += os.lstat(seg.path).st_size
        except (DamagedStateError, ForbiddenError) as exc:
            return ("rotated", "fail", exc.message)
        except OSError as exc:
            return ("rotated", "fail", f"{seg.path}: {exc.strerror}")
    assert previous is not None
    if live_first is not None and live_first > previous + 1:
        return ("rotated", "fail", f"events {previous + 1} to {live_first - 1} are in neither a rotated file "
                                   "nor the live journal (the newest rotated file was deleted?)")
    detail = f"{len(found)} rotated file(s), events {found[0].first} to {previous}, {size:,} bytes compressed"
    if found[0].first > 1:
        return ("rotated", "warn", f"{detail}; events before {found[0].first} were removed: reports start there, "
                                   "and the state cannot be rebuilt from the journal")
    return ("rotated", "ok", detail)


# --------------------------------------------------------------------------- one rotation at a time
@contextmanager
def claimed(state_path: str, timeout: float, held: int | None = None) -> Iterator[None]:
    """Hold ``<state>.rotate.lock`` (``held``: a descriptor already holding it, closed at the end)."""
    fd = held
    if fd is None:
        fd = files.open_or_create(state_path + ".rotate.lock", "rotation lock")
        if not files.flock_within(fd, timeout):
            os.close(fd)
            raise BusyError(f"another 'journal rotate' of {state_path} is running; try again")
    try:
        yield
    finally:
        os.close(fd)


def try_claim(state_path: str) -> int | None:
    """``<state>.rotate.lock`` held with flock, or None when another process holds it (it rotates)."""
    return files.try_claim(state_path + ".rotate.lock", "rotation lock")


def rotate_in_background(path: str, claim: str) -> None:
    """The background job a write asks for once the journal outgrew ``journal_max_bytes`` (holding ``claim``)."""
    from lictools.stores import open_store
    from lictools.stores.filestore import FileStore
    from lictools.stores.locking import DEFAULT_TIMEOUT

    store = open_store(path, DEFAULT_TIMEOUT)
    if isinstance(store, FileStore):
        store.rotate_journal(only_over_limit=True, claim=int(claim))
    else:
        os.close(int(claim))
