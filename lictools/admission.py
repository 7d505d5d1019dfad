"""May a new seat open? The capacity arithmetic every product shares: reserved seats first, then the shared rest.

Seed 003 (Magic xpa): "reserve a minimum fixed amount of license threads or users for critical projects"
and "Licenses reserved for a given project are acquired by workers ... before trying to acquire
non-reserved licenses". SPEC.md section 2: reserved seats of project P are usable only by P; P draws on
its reservation first, then on the shared rest; shared = issued - sum of reservations. The pools of the
other products have no reservations, and then this is simply "fewer seats in use than issued".

``usage`` is always "seats in use per charged project" (:meth:`Transaction.seats_by_project`; None:
seats charged to no project). A seat is charged to a project one of its sessions belongs to
(:func:`charge_for` picks the project when the charged one leaves a seat others still hold).

The reservation invariant this keeps (issue 10): seats held beyond their projects' reservations
<= the shared seats, i.e. seats in use <= issued - the unused reservations. :func:`admit` never
grants past it; only an admin change made while the seats are held, and a re-charge forced by the
always-join rule, can break it, and then :func:`admit` refuses every new seat beyond a
reservation until it holds again (lictools-products(7), RESERVATIONS AND CHARGES).
"""

from __future__ import annotations

from typing import NamedTuple


class Admission(NamedTuple):
    """The answer for one request needing a new seat, with the reason in words."""

    granted: bool
    reason: str


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


def admit(issued: int, reserved: dict[str, int], usage: dict[str | None, int], project: str | None) -> Admission:
    """May a new seat be opened for ``project``? Never beyond the issued count; reserved seats first."""
    in_use = sum(usage.values())
    own = reserved.get(project, 0) if project else 0
    mine = usage.get(project, 0)
    cap = shared_capacity(issued, reserved)
    if in_use >= issued:
        # never beyond the issued count, even from a reservation made while the pool was full
        if issued == 0:
            return Admission(False, "no seats are issued for this feature (load a license with 'license add')")
        if not own:
            return Admission(False, f"all {issued} seat(s) are in use")
        if mine >= own:
            shared = f"the {cap} shared seat(s) are in use" if cap else "no seat is shared (every issued seat is reserved)"
            return Admission(False, f"all {issued} seat(s) are in use: project {project} uses its {own} reserved seat(s) itself and {shared}")
        # a full pool while a reservation has room: others hold more than the shared seats (the two
        # exceptions of the reservation invariant, SPEC.md section 2 and lictools-products(7))
        return Admission(False, (
            f"all {issued} seat(s) are in use: project {project} has {mine} of its {own} reserved seat(s) in use, "
            f"but other projects hold {shared_used(usage, reserved)} seat(s) beyond their reservations, where {cap} are "
            "shared (seats held since before a reservation or license change, or a grouped seat their clients still "
            f"hold after the project charged for it left); the next seat that frees is kept for projects below their "
            f"reservation, such as {project}"
        ))
    if own and mine < own:
        return Admission(True, f"from the {own} seat(s) reserved for project {project} ({mine} of them in use)")
    total_reserved = sum(reserved.values())
    used = shared_used(usage, reserved)
    if used < cap:
        if total_reserved:
            return Admission(True, f"from the shared seats ({used} of {cap} in use; {total_reserved} reserved for projects)")
        return Admission(True, f"taken from the free seats ({in_use} of {issued} in use before it)")
    # only reservations can refuse a pool with free seats (without them cap == issued)
    who = f"project {project} has {mine} of its {own} reserved in use and " if own else ""
    return Admission(False, (
        f"{who}all {cap} shared seat(s) are in use ({in_use} of {issued} in use, "
        f"{total_reserved} reserved for {', '.join(sorted(reserved))}); "
        f"the {issued - in_use} free seat(s) are reserved for other projects"
    ))


def charge_for(holders: list[str | None], reserved: dict[str, int], usage: dict[str | None, int]) -> str | None:
    """The project a held seat is charged to once no session of the project it was charged to holds it.

    ``holders``: the projects of the sessions still holding the seat, oldest session first; ``usage``:
    seats per charged project with the seat still charged to the project that left. A holder's project
    with a reserved seat free comes first (the seat then counts within that reservation, as seed 003
    has reserved licenses taken before the shared ones); otherwise the oldest holder's project, and
    the seat counts beyond the reservations (SPEC.md: a session whose seat key is in use always joins
    it, so a project without a reservation may keep a seat opened from another's reservation).
    """
    for project in holders:
        if project and usage.get(project, 0) < reserved.get(project, 0):
            return project
    return holders[0]
