"""Why a session holds, shares or was refused a seat, in words an admin understands without the man page.

Plain functions: :func:`explain_session` reads a live session inside a transaction;
:func:`explain_ended` reads the journal for a session that is no longer live (refused, released,
expired, removed). Both return a JSON-ready dict whose ``lines`` are the table output.
"""

from __future__ import annotations

from typing import Any, Iterable

from lictools import engine, events, policies
from lictools.admission import admit, holder_text, shared_capacity
from lictools.errors import LictoolsError
from lictools.model import Policy, Request, Session
from lictools.stores.api import StateView, Transaction
from lictools.timeutil import iso

MAX_ID = 256


def _who(session: Session) -> str:
    return f"{session.id} ({session.user}@{session.host}, since {iso(session.started)})"


def _request_of(session: Session) -> Request:
    """The request that would give this session: its own attributes."""
    return Request(
        pool=session.pool, feature=session.feature, session=session.id, user=session.user, host=session.host,
        node=session.node, terminal=session.terminal, app=session.app, project=session.project,
        parent=session.parent, client=session.client, monitor=session.monitor, pid=session.pid, lease=session.lease,
    )


def explain_session(tx: StateView, session_id: str) -> dict[str, Any] | None:
    """The explanation of a live session, or None when no live session has this id."""
    if not isinstance(session_id, str) or not session_id.isprintable() or len(session_id) > MAX_ID:
        return None
    session = tx.get_session(session_id)
    if session is None:
        return None
    pool = engine.get_pool(tx, session.pool)
    rule = engine.rule_of(pool)

    # the rule's reason for this key: the rule is pure, so asking it again with the session's own
    # attributes gives the key the session holds, unless the pool's options changed since
    why, now_key = None, None
    try:
        seat = rule.seat_key(_request_of(session), pool, tx)
        why, now_key = seat.why, seat.key
    except LictoolsError:
        pass
    if why is None or now_key != session.seat:
        why = (why + f" (the rule now gives key {now_key}; pool options changed since this session started)") if why else (
            "the rule cannot rebuild this key any more (its parent tree or pool options changed)"
        )

    holders = tx.find_sessions(pool=pool.name, feature=session.feature, seat=session.seat)
    others = [h for h in holders if h.id != session.id]
    issued = pool.issued(session.feature)
    usage = tx.seats_by_project(pool.name, session.feature)
    in_use = sum(usage.values())
    reservations = pool.reserved(session.feature)
    reserved = sum(reservations.values())
    free = issued - in_use

    if session.shared:
        cost = (
            f"shared: when it started, seat {session.seat} was already in use, so it joined that seat and "
            f"cost no new seat (sessions with the same seat key share one seat; joining never needs a free "
            f"seat, even when the pool is full)"
        )
        if session.seat_project:
            cost += f"; the seat counts for {holder_text(session.seat_project)}"
            if session.seat_project == session.project:
                cost += " (a session of that project holds it: a seat is charged to a project whose sessions hold it)"
    else:
        cost = f"opened seat {session.seat}: it was the first live session with this key, so it took one new seat"
        if session.seat_project:
            cost += f", charged to {holder_text(session.seat_project)}"
            if "=" in session.seat_project:
                cost += " (taken from the seats its RESERVE policy keeps)"
    if others:
        holders_text = f"{len(holders)} session(s) share seat {session.seat}: " + ", ".join(_who(h) for h in holders)
        after = f"if it ends, seat {session.seat} stays held by {len(others)} other session(s)"
    else:
        holders_text = f"only this session holds seat {session.seat}"
        after = f"if it ends, seat {session.seat} is freed ({free + 1} of {issued} free)"

    applying = policies.applying(pool, session.feature)
    members = policies.members(tx)
    refusal = (policies.access(pool, session.feature, session.user, session.host, members)
               or policies.maximum(tx, pool, session.feature, session.user, session.host, members))
    if refusal is not None:
        ok, next_why = False, f"by policy {refusal.policy.text()}: {refusal.reason}"
    else:
        reserves = policies.reserves(pool, session.feature, session.user, session.host, members)
        ok, next_why, _ = admit(issued, reservations, usage, session.project, reserves)
    next_seat = {"granted": ok, "reason": next_why, "policy": refusal.policy.to_doc() if refusal else None}
    for_project = f" for project {session.project}" if session.project else ""
    next_text = (
        f"another session{for_project} needing a new seat would be "
        + ("granted: " if ok else "refused: ")
        + next_why
    )
    seats_text = f"{session.feature} in pool {pool.name}: {issued} issued, {in_use} in use, {free} free"
    if reserved:
        seats_text += ", reserved " + ", ".join(f"{n} for {holder_text(p)}" for p, n in sorted(reservations.items()))
        seats_text += f" (shared seats: {shared_capacity(issued, reservations)})"

    if session.detached:
        lease_text = f"detached: keeps its seat until {iso(session.expires)}, then the seat is freed"
    elif session.expires is None:
        lease_text = "never expires (lease 0): ends by release, remove or gc --check-pids"
    else:
        lease_text = f"expires {iso(session.expires)} unless refreshed (lease {session.lease} s)"
        advice = rule.lease_advice(pool)
        if advice:
            lease_text += f"; {advice}"

    attrs = [f"user {session.user}", f"host {session.host}", f"node {session.node}"]
    if session.terminal:
        attrs.append("terminal server session")
    for name in ("client", "monitor", "app", "project", "pid"):
        value = getattr(session, name)
        if value is not None:
            attrs.append(f"{name} {value}")
    lines = [
        f"session  : {session.id} ({', '.join(attrs)})",
        f"pool     : {pool.name}, product {pool.product}, feature {session.feature}",
        f"rule     : {rule.NAME}: {rule.SUMMARY}",
        f"seat     : {session.seat}",
        f"why      : {why}",
    ]
    if session.root and session.root != session.id:
        lines.append(f"root     : child of root DVM {session.root} (parent {session.parent}); it shares the root's seat")
    lines += [
        f"cost     : {cost}",
        f"holders  : {holders_text}",
        f"seats    : {seats_text}",
        *([f"policies : {', '.join(p.text() for p in applying)} (lictools-policies(7))"] if applying else []),
        f"next     : {next_text}",
        f"lease    : {lease_text}",
        f"after    : {after}",
    ]
    return {
        "session": session.id,
        "live": True,
        "pool": pool.name,
        "product": pool.product,
        "feature": session.feature,
        "rule": rule.NAME,
        "seat": session.seat,
        "why": why,
        "shared": session.shared,
        "cost": cost,
        "holders": [
            {"session": h.id, "user": h.user, "host": h.host, "node": h.node, "since": iso(h.started)} for h in holders
        ],
        "root": session.root,
        "parent": session.parent,
        "project": session.project,
        "seat_project": session.seat_project,
        "issued": issued,
        "in_use": in_use,
        "free": free,
        "reserved": reserved,
        "reservations": reservations,
        "next_seat": next_seat,
        "policies": [p.to_doc() for p in applying],
        "detached": session.detached,
        "expires": iso(session.expires),
        "lines": lines,
    }


def explain_ended(journal: Iterable[dict[str, Any]], session_id: str) -> dict[str, Any] | None:
    """What the journal says about a session that is not live, or None when it never appeared.

    The last grant, share or denial of the id, and the event that ended it after that.
    """
    last: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    for event in journal:
        if event.get("session") != session_id:
            continue
        if event.get("event") in ("grant", "share"):
            start = event
        elif event.get("event") != "deny" and not events.ends_session(event):
            continue
        last = event
    if last is None:
        return None
    kind = last["event"]
    where = f"pool {last.get('pool')}, feature {last.get('feature')}"
    policy = Policy.from_doc(last["policy"]) if kind == "deny" and last.get("policy") else None
    if policy is not None:
        lines = [
            f"session  : {session_id} was refused at {last.get('time')} ({where})",
            f"policy   : {policy.text()}: a policy of pool {last.get('pool')} refused it, not a lack of seats",
            f"why      : {last.get('reason')}",
            f"seats    : {last.get('in_use')} in use at that moment",
            "next     : it holds nothing; lictools policy list shows the pool's policies",
        ]
    elif kind == "deny":
        lines = [
            f"session  : {session_id} was refused a seat at {last.get('time')} ({where})",
            f"seat     : it needed a new seat {last.get('seat')}: no live session had that seat key, "
            "so it could not share one",
            f"why      : {last.get('reason')}",
            f"seats    : {last.get('in_use')} in use at that moment",
            "next     : it holds nothing; acquire again when a seat is free "
            "(lictools info shows free seats, lictools users who holds them)",
        ]
    else:
        how = {
            "release": "released",
            "expire": "expired",
            "remove": "removed by an admin",
            "detach": "detached with no detach timeout",
            "grant": "granted",
            "share": "granted (shared)",
        }[kind]
        detail = last.get("reason") or (f"by {last['by']}" if last.get("by") else "")
        lines = [f"session  : {session_id} is not live: {how} at {last.get('time')} ({where})"]
        if detail:
            lines.append(f"why      : {detail}")
        if start is not None:
            lines.append(f"seat     : it held seat {start.get('seat')} from {start.get('time')}")
        lines.append(f"after    : {last.get('in_use')} seat(s) in use after it ended")
    return {
        "session": session_id,
        "live": False,
        "event": kind,
        "time": last.get("time"),
        "pool": last.get("pool"),
        "feature": last.get("feature"),
        "seat": last.get("seat"),
        "reason": last.get("reason"),
        "by": last.get("by"),
        "in_use": last.get("in_use"),
        "policy": last.get("policy") if kind == "deny" else None,
        "lines": lines,
    }
