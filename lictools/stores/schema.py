"""The shape of the documents a state holds, checked as they are read (exit 6 otherwise).

A state file is input like any other: a member of the state's group can edit it, a disk can
garble it. Well-formed JSON of the wrong shape (a pool that is a string, a session that is
null, ``expires: "soon"``, a seat count of ``Infinity``, 100,000 nested lists) must not crash a
command (exit 1) or be believed (unlimited seats): it is refused as damaged, and nothing is
changed. ``lictools doctor`` runs the same checks over every row.
"""

from __future__ import annotations

import json
from math import isfinite
from typing import Any, Callable

from lictools.errors import DamagedStateError
from lictools.model import Pool, Session

MAX_TIME = 253402300800  # 9999-12-31: the range lictools reads and writes times in
MAX_COUNT = 10**12


def _text(v: Any) -> bool:
    return type(v) is str


def _opt_text(v: Any) -> bool:
    return v is None or type(v) is str


def _flag(v: Any) -> bool:
    return type(v) is bool


def _count(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_COUNT


def _opt_count(v: Any) -> bool:
    return v is None or _count(v)


def _time(v: Any) -> bool:
    return type(v) in (int, float) and isfinite(v) and 0 <= v < MAX_TIME


def _opt_time(v: Any) -> bool:
    return v is None or _time(v)


def _text_map(v: Any) -> bool:
    return type(v) is dict and all(type(k) is str and type(x) is str for k, x in v.items())


def _licenses(v: Any) -> bool:
    return type(v) is list and all(type(lic) is dict and _check_fields(lic, LICENSE) is None for lic in v)


def _reservations(v: Any) -> bool:
    return type(v) is dict and all(
        type(project) is str and type(per) is dict and all(type(f) is str and _count(n) for f, n in per.items())
        for project, per in v.items()
    )


def _texts(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _opt_texts(v: Any) -> bool:
    return v is None or _texts(v)


def _policies(v: Any) -> bool:
    """A pool's options-file lines: each its kind, one target (user, group or host), a count, a feature."""
    return type(v) is list and all(
        type(p) is dict and _check_fields(p, POLICY) is None
        and sum(1 for target in ("user", "group", "host") if target in p) == 1
        for p in v
    )


def _queue(v: Any) -> bool:
    return type(v) is list and all(type(w) is dict and _check_fields(w, WAITER, closed=True) is None for w in v)


def _request(v: Any) -> bool:
    return type(v) is dict and all(type(k) is str for k in v)


Fields = dict[str, tuple[Callable[[Any], bool], bool]]
"""field -> (check, required)"""

POLICY: Fields = {
    "kind": (_text, True), "user": (_text, False), "group": (_text, False), "host": (_text, False),
    "count": (_opt_count, False), "feature": (_opt_text, False),
}
WAITER: Fields = {
    "session": (_text, True), "feature": (_text, True), "request": (_request, True), "queued": (_time, True),
    "until": (_time, True), "pid": (_opt_count, False), "pid_start": (_opt_count, False), "node": (_opt_text, False),
}

LICENSE: Fields = {
    "serial": (_text, True), "feature": (_text, True), "count": (_count, True),
    "host_lock": (_opt_text, False), "loaded": (_time, False),
}
POOL: Fields = {
    "name": (_text, True), "product": (_text, True), "options": (_text_map, False),
    "licenses": (_licenses, False), "reservations": (_reservations, False), "created": (_time, False),
    "policies": (_policies, False), "queue": (_queue, False),
}
SESSION: Fields = {
    "id": (_text, True), "pool": (_text, True), "feature": (_text, True), "seat": (_text, True),
    "user": (_text, True), "host": (_text, True), "node": (_text, True),
    "started": (_time, True), "refreshed": (_time, True), "expires": (_opt_time, True), "lease": (_count, True),
    "shared": (_flag, False), "terminal": (_flag, False), "app": (_opt_text, False), "project": (_opt_text, False),
    "parent": (_opt_text, False), "root": (_opt_text, False), "client": (_opt_text, False),
    "monitor": (_opt_text, False), "pid": (_opt_count, False), "seat_project": (_opt_text, False),
    "detached": (_flag, False), "uid": (_opt_count, False), "pid_start": (_opt_count, False),
    "caller_pid": (_opt_count, False), "reserves": (_opt_texts, False),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_fields(doc: dict[str, Any], fields: Fields, closed: bool = False) -> str | None:
    """What is wrong with ``doc`` (one phrase), or None."""
    for name, (check, required) in fields.items():
        if name in doc:
            if not check(doc[name]):
                return f"field {name!r} is {_shown(doc[name])}"
        elif required:
            return f"field {name!r} is missing"
    if closed:
        for name in doc:
            if name not in fields:
                return f"has an unknown field {_shown(name)}"
    return None


def _damaged(where: str, what: str) -> DamagedStateError:
    return DamagedStateError(f"{where} is damaged: {what}; nothing was changed")


def pool(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` if it is a pool document, else DamagedStateError naming ``where``."""
    problem = "it is not an object" if type(doc) is not dict else _check_fields(doc, POOL, closed=True)
    if problem:
        raise _damaged(where, f"a pool: {problem}")
    checked: dict[str, Any] = doc
    return checked


def session(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` if it is a session document, else DamagedStateError naming ``where``."""
    problem = "it is not an object" if type(doc) is not dict else _check_fields(doc, SESSION)
    if problem:
        raise _damaged(where, f"a session: {problem}")
    checked: dict[str, Any] = doc
    return checked


def pool_row(text: str | bytes, where: str) -> Pool:
    """A pool from the JSON text one database row holds (SQLite, PostgreSQL), checked."""
    where = f"{where} (a pool row)"
    return Pool.from_doc(pool(loads(text, where), where))


def session_row(text: str | bytes, where: str) -> Session:
    """A session from the JSON text one database row holds, checked."""
    where = f"{where} (a session row)"
    return Session.from_doc(session(loads(text, where), where))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number lictools stores")


def loads(text: str | bytes, where: str) -> Any:
    """Parse JSON; NaN/Infinity, undecodable bytes and absurd nesting are damage too."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise _damaged(where, "JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(where, f"not valid JSON ({str(exc)[:80]})") from None


def event(text: str | bytes, where: str) -> dict[str, Any]:
    """One journal line as an event (lictools.stores.codec: fast, and as strict as :func:`loads`)."""
    from lictools.stores.codec import decode_event

    try:
        return decode_event(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(where, f"not a journal event ({str(exc)[:80]})") from None


def document(doc: Any, where: str) -> dict[str, Any]:
    """A whole JSON-layout state document: schema, pools, sessions, settings, journal length."""
    if type(doc) is not dict or type(doc.get("schema")) is not int:
        raise DamagedStateError(f"{where} is not a lictools state file; nothing was changed")
    for key in ("pools", "sessions"):
        if type(doc.get(key)) is not dict:
            raise _damaged(where, f"its {key} are {_shown(doc.get(key))}, not an object")
    if "settings" in doc and not _text_map(doc["settings"]):
        raise _damaged(where, f"its settings are {_shown(doc['settings'])}")
    for key in ("journal_bytes", "seq", "journal_base"):
        if key in doc and not _count(doc[key]):
            raise _damaged(where, f"{key} is {_shown(doc[key])}")
    for name, p in doc["pools"].items():
        pool(p, f"{where} pool {_shown(name)}")
        if p["name"] != name:
            raise _damaged(where, f"pool {_shown(name)} is named {_shown(p['name'])}")
    for sid, s in doc["sessions"].items():
        session(s, f"{where} session {_shown(sid)}")
        if s["id"] != sid:
            raise _damaged(where, f"session {_shown(sid)} has id {_shown(s['id'])}")
    return doc
