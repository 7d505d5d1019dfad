"""Prometheus text exposition (format 0.0.4) of the seats, sessions and denials, for a scrape or
node_exporter's textfile collector.

Gauges come from the state (the ``info`` rows); the counter ``lictools_denials_total`` counts the
journal's ``deny`` events. Counting the whole journal on every scrape would cost seconds on a long
journal, so the count is kept in a small cache beside the state (``<state>.metrics-cache``: the
last event counted and the totals) and each run reads only the events after it. The cache is a
memo, never the truth: when it is missing, unreadable, or the journal no longer holds the event it
ends at (another state file, a state rebuilt), the count starts again from the first event.

``lictools_queued`` counts the requests waiting in each pool feature's queue (``acquire --wait``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from lictools.reports.source import journal_events
from lictools.stores.api import Store

GAUGES = (
    ("lictools_seats_issued", "issued", "Seats issued (loaded licenses) for the pool feature."),
    ("lictools_seats_in_use", "in_use", "Seats in use: distinct seat keys among live sessions."),
    ("lictools_seats_reserved", "reserved", "Seats reserved for projects (the sum of the reservations)."),
    ("lictools_seats_free", "free", "Seats issued and not in use, reserved seats included."),
    ("lictools_sessions", "sessions", "Live sessions; several sessions may share one seat."),
    ("lictools_queued", "queued", "Requests waiting in the pool feature's queue (acquire --wait) for a seat."),
)
DENIALS = ("lictools_denials_total", "Requests refused a seat (deny events in the journal).")
USER_SEATS = ("lictools_user_seats_in_use",
              "Seats in use that hold a live session of the user (a shared seat counts for each of its users).")
TEXTFILE_NAME = "lictools.prom"


def _escape_label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def exposition(info_rows: list[dict[str, Any]], denials: dict[tuple[str, str], int],
               user_seats: dict[tuple[str, str, str], int] | None = None) -> str:
    """The exposition text: every gauge and the counter for each ``info`` row (pool feature)."""
    lines: list[str] = []
    for name, key, help_text in GAUGES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [f"{name}{_labels(pool=r['pool'], feature=r['feature'])} {r[key]}" for r in info_rows]
    name, help_text = DENIALS
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines += [f"{name}{_labels(pool=r['pool'], feature=r['feature'])} {denials.get((r['pool'], r['feature']), 0)}"
              for r in info_rows]
    if user_seats is not None:
        name, help_text = USER_SEATS
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [f"{name}{_labels(pool=p, feature=f, user=u)} {n}" for (p, f, u), n in sorted(user_seats.items())]
    return "\n".join(lines) + "\n"


def seats_per_user(user_rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """From the ``users`` rows (one per seat): seats per (pool, feature, user)."""
    counts: dict[tuple[str, str, str], int] = {}
    for row in user_rows:
        for user in row["users"]:
            key = (row["pool"], row["feature"], user)
            counts[key] = counts.get(key, 0) + 1
    return counts


# --------------------------------------------------------------------------- the denial counter
def count_denials(events: Iterable[dict[str, Any]], counts: dict[tuple[str, str], int]) -> tuple[int, float] | None:
    """Add the ``deny`` events of ``events`` to ``counts``; returns (seq, ts) of the last event, if any."""
    last = None
    for event in events:
        if event["event"] == "deny":
            key = (event["pool"], event["feature"])
            counts[key] = counts.get(key, 0) + 1
        last = event
    return (last["seq"], last["ts"]) if last is not None else None


def _cache_path(store: Store) -> str | None:
    """``<state>.metrics-cache`` beside the state file (it belongs to that state, and every account
    that scrapes it shares it); None for a state that is not a file."""
    if "://" in store.location:
        return None
    return store.location + ".metrics-cache"


def _load_cache(path: str, location: str) -> tuple[int, float, dict[tuple[str, str], int]] | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if doc["state"] != location:
            return None
        counts = {(p, f): int(n) for p, f, n in doc["denials"]}
        return int(doc["seq"]), float(doc["ts"]), counts
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_cache(path: str, location: str, seq: int, ts: float, counts: dict[tuple[str, str], int]) -> None:
    """Replace the cache atomically, with the state files' permissions; a folder this account may
    not write only means the next run counts from the start again."""
    from lictools.errors import LictoolsError
    from lictools.stores import files

    doc = {"state": location, "seq": seq, "ts": ts, "denials": [[p, f, n] for (p, f), n in sorted(counts.items())]}
    try:
        files.write_new(path, json.dumps(doc).encode(), "the metrics cache", sync=False)
    except (OSError, LictoolsError):
        pass


def denial_totals(store: Store, use_cache: bool = True) -> dict[tuple[str, str], int]:
    """``deny`` events per (pool, feature) over the whole journal, read incrementally (see the module doc)."""
    path = _cache_path(store) if use_cache else None
    cached = _load_cache(path, store.location) if path else None
    counts: dict[tuple[str, str], int] = {}
    events = None
    if cached is not None:  # go on after the cached event when it is still the journal's (not rotated, not replaced)
        seq, ts, known = cached
        after = journal_events(store, max(seq - 1, 0))
        first = next(after, None)
        if first is not None and first.get("seq") == seq and first.get("ts") == ts:
            counts, events = known, after
    last = count_denials(events if events is not None else journal_events(store), counts)
    if path and last is not None:
        _save_cache(path, store.location, last[0], last[1], counts)
    return counts


def write_textfile(folder: str, text: str) -> str:
    """Write ``lictools.prom`` in ``folder`` atomically (temp file in the same folder, then rename),
    so node_exporter never reads half a file; returns its path."""
    path = os.path.join(folder, TEXTFILE_NAME)
    tmp = os.path.join(folder, f".{TEXTFILE_NAME}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return path
