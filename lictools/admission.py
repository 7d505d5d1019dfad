"""May a new seat open? The capacity arithmetic every product shares: reserved seats first, then the shared rest.

Seed 003 (Magic xpa): "reserve a minimum fixed amount of license threads or users for critical projects"
and "Licenses reserved for a given project are acquired by workers ... before trying to acquire
non-reserved licenses". SPEC.md section 2: reserved seats of project P are usable only by P; P draws on
its reservation first, then on the shared rest; shared = issued - sum of reservations. The pools of the
other products have no reservations, and then this is simply "fewer seats in use than issued".

``usage`` is always "seats in use per charged project" (:meth:`Transaction.seats_by_project`; None:
seats charged to no project). A seat is charged to a project one of its sessions belongs to
(:func:`charge_for` picks the project when the charged one leaves a seat others still hold).

Reservations are held by projects and, through ``reserve`` policies (lictools-policies(7)), by a user,
group or host: its key is the policy's holder, ``user=alice`` (no project name holds ``=``). A request
may draw on its project's reservation, then on each ``reserve`` policy it matches (``reserves``, in
the pool's policy order), then on the shared rest; the seat is charged to the reservation it was
taken from (to its project when taken from the shared rest), so every seat counts for one holder.

The reservation invariant this keeps (issue 10): seats held beyond their projects' reservations
<= the shared seats, i.e. seats in use <= issued - the unused reservations. :func:`admit` never
grants past it; only an admin change made while the seats are held, and a re-charge forced by the
always-join rule, can break it, and then :func:`admit` refuses every new seat beyond a
reservation until it holds again (lictools-products(7), RESERVATIONS AND CHARGES).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple


class Admission(NamedTuple):
    """The answer for one request needing a new seat, with the reason in words."""

    granted: bool
    reason: str
    # what the new seat is charged to: a reservation it was taken from, else the request's project
    charge: str | None = None


def holder_text(key: str | None) -> str:
    """A reservation holder in words: ``project P``, ``user alice`` (a ``reserve`` policy), ``no project``."""
    if key is None:
        return "no project"
    target, sep, name = key.partition("=")
    return f"{target} {name}" if sep else f"project {key}"


def charges(project: str | None, reserves: Iterable[str] | None) -> list[str | None]:
    """What a session's seat may be charged to, in the order it draws on them: its project, then the
    ``reserve`` policies it matched (``Session.reserves``)."""
    return [project, *(reserves or ())]


def shared_used(usage: dict[str | None, int], reserved: dict[str, int]) -> int:
    """Seats taken from the shared rest: what each project holds beyond its own reservation."""
    return sum(max(0, used - (reserved.get(p, 0) if p else 0)) for p, used in usage.items())


def shared_capacity(issued: int, reserved: dict[str, int]) -> int:
    """Seats nobody has reserved: issued minus every reservation (never below 0)."""
    return max(0, issued - sum(reserved.values()))


def available(issued: int, reserved: dict[str, int], usage: dict[str | None, int]) -> int:
    """Free seats a request without a project may take: free seats, but not the unused reservations.

    ``info`` shows it beside ``free`` (which counts reserved seats too, as SPEC.md says): a pool whose
    free seats are all reserved has ``available`` 0.
    """
    free = issued - sum(usage.values())
    return max(0, min(free, shared_capacity(issued, reserved) - shared_used(usage, reserved)))


def admit(
    issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None,
    reserves: Iterable[str] = (),
) -> Admission:
    """May a new seat be opened for ``project`` (and the ``reserve`` policy holders ``reserves`` the request
    matches)? Never beyond the issued count; its own reservations first, in order, then the shared rest."""
    in_use = sum(usage.values())
    own = reserved.get(project, 0) if project else 0
    mine = usage.get(project, 0)
    cap = shared_capacity(issued, reserved)
    mine_text = holder_text(project)
    if in_use >= issued:
        # never beyond the issued count, even from a reservation made while the pool was full
        if issued == 0:
            return Admission(False, "no seats are issued for this feature (load a license with 'license add')")
        if not own:
            return Admission(False, f"all {issued} seat(s) are in use")
        if mine >= own:
            shared = f"the {cap} shared seat(s) are in use" if cap else "no seat is shared (every issued seat is reserved)"
            return Admission(False, f"all {issued} seat(s) are in use: {mine_text} uses its {own} reserved seat(s) itself and {shared}")
        # a full pool while a reservation has room: others hold more than the shared seats (the two
        # exceptions of the reservation invariant, SPEC.md section 2 and lictools-products(7))
        return Admission(False, (
            f"all {issued} seat(s) are in use: {mine_text} has {mine} of its {own} reserved seat(s) in use, "
            f"but other projects hold {shared_used(usage, reserved)} seat(s) beyond their reservations, where {cap} are "
            "shared (seats held since before a reservation or license change, or a grouped seat their clients still "
            f"hold after the project charged for it left); the next seat that frees is kept for projects below their "
            f"reservation, such as {project}"
        ))
    for key in charges(project, reserves):
        if key and reserved.get(key, 0) > usage.get(key, 0):
            return Admission(True, f"from the {reserved[key]} seat(s) reserved for {holder_text(key)} "
                                   f"({usage.get(key, 0)} of them in use)", key)
    total_reserved = sum(reserved.values())
    used = shared_used(usage, reserved)
    if used < cap:
        if total_reserved:
            return Admission(True, f"from the shared seats ({used} of {cap} in use; {total_reserved} reserved for "
                                   f"{_listed(reserved)})", project)
        return Admission(True, f"taken from the free seats ({in_use} of {issued} in use before it)", project)
    # only reservations can refuse a pool with free seats (without them cap == issued)
    who = f"{mine_text} has {mine} of its {own} reserved in use and " if own else ""
    return Admission(False, (
        f"{who}all {cap} shared seat(s) are in use ({in_use} of {issued} in use, "
        f"{total_reserved} reserved for {_listed(reserved)}); "
        f"the {issued - in_use} free seat(s) are reserved for "
        f"{'others' if any('=' in str(k) for k in reserved) else 'other projects'}"
    ))


def _listed(reserved: dict[str, int]) -> str:
    """The holders of ``reserved``: project names as they are, ``reserve`` policies in words (``user alice``)."""
    return ", ".join(k if "=" not in k else holder_text(k) for k in sorted(reserved))


def reserved_for_others(
    issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None,
    reserves: Iterable[str], among: Iterable[str],
) -> list[str]:
    """The reservation holders in ``among`` (``reserve`` policies) that refused a request :func:`admit`
    denied: empty unless it would be admitted without them, else those holding unused seats for others."""
    among = [key for key in among if key in reserved]
    reserves = list(reserves)
    without = {k: n for k, n in reserved.items() if k not in among}
    if not among or not admit(issued, without, usage, project, [k for k in reserves if k in without]).granted:
        return []
    return [key for key in among if key not in reserves and usage.get(key, 0) < reserved[key]]


def charge_for(holders: list[list[str | None]], reserved: dict[str, int], usage: dict[str | None, int]) -> str | None:
    """What a held seat is charged to once no session it could be charged to holds it.

    ``holders``: for each session still holding the seat, oldest first, what it may be charged to
    (:func:`charges`: its project, then its ``reserve`` policies); ``usage``: seats per charge with the
    seat still charged as before. The first of those with a reserved seat free comes first (the seat
    then counts within that reservation, as seed 003 has reserved licenses taken before the shared
    ones); otherwise the oldest holder's project, and the seat counts beyond the reservations
    (SPEC.md: a session whose seat key is in use always joins it, so a project without a reservation
    may keep a seat opened from another's reservation).
    """
    for keys in holders:
        for key in keys:
            if key and usage.get(key, 0) < reserved.get(key, 0):
                return key
    return holders[0][0]
