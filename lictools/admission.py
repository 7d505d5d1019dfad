"""May a new seat open? The capacity arithmetic every product shares: reserved seats first, then the shared rest.

Seed 003 (Magic xpa): "reserve a minimum fixed amount of license threads or users for critical projects"
and "Licenses reserved for a given project are acquired by workers ... before trying to acquire
non-reserved licenses". SPEC.md section 2: reserved seats of project P are usable only by P; P draws on
its reservation first, then on the shared rest; shared = issued - sum of reservations. The pools of the
other products have no reservations, and then this is simply "fewer seats in use than issued".

``usage`` is always "seats in use per charged project" (:meth:`Transaction.seats_by_project`; None:
seats charged to no project).
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
    if in_use >= issued:
        # never beyond the issued count, even from a reservation made while the pool was full
        if issued == 0:
            return Admission(False, "no seats are issued for this feature (load a license with 'license add')")
        held = f" (its {own} reserved seat(s) were taken by others before the reservation was made)" if own else ""
        return Admission(False, f"all {issued} seat(s) are in use{held}")
    if own and usage.get(project, 0) < own:
        return Admission(True, f"from the {own} seat(s) reserved for project {project} ({usage.get(project, 0)} of them in use)")
    total_reserved = sum(reserved.values())
    cap = shared_capacity(issued, reserved)
    used = shared_used(usage, reserved)
    if used < cap:
        if total_reserved:
            return Admission(True, f"from the shared seats ({used} of {cap} in use; {total_reserved} reserved for projects)")
        return Admission(True, f"taken from the free seats ({in_use} of {issued} in use before it)")
    # only reservations can refuse a pool with free seats (without them cap == issued)
    who = f"project {project} has {usage.get(project, 0)} of its {own} reserved in use and " if own else ""
    return Admission(False, (
        f"{who}all {cap} shared seat(s) are in use ({in_use} of {issued} in use, "
        f"{total_reserved} reserved for {', '.join(sorted(reserved))}); "
        f"the {issued - in_use} free seat(s) are reserved for other projects"
    ))
