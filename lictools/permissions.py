"""Who may do what, like FlexNet's ``lmadmin`` group (``lmgrd -2 -p``).

Admins are root, the account owning the state, and members of the state's ``admin_group``
setting (``lictools config admin_group GROUP``). Admin commands: ``remove``, ``pool add|set|remove``,
``license add|remove``, ``reserve``, ``policy add|remove``, ``group set|remove``, ``apply``, ``config``
changes, ``doctor --restore`` and ``migrate --force`` over a state that is not empty. Everybody else may
acquire, and release, detach or refresh only the sessions their own account acquired.

This guards the tool, not the file: whoever can write a group-shared state file can edit it.
"""

from __future__ import annotations

import os

from lictools.errors import ForbiddenError, UsageError
from lictools.stores import rotation

SETTINGS = {
    "admin_group": "group (name or number) whose members may run admin commands, like FlexNet's lmadmin",
    rotation.SETTING: "rotate the journal into a compressed file once it holds more than this (bytes, or 64M, 1G)",
}
"""The state-wide settings (``lictools config``, a site file's ``[settings]``) and what each means."""


def check_setting(key: str, value: str) -> str:
    """``value`` as setting ``key`` stores it (exit 2 when it is not one): a group that exists, a size in bytes."""
    if key == rotation.SETTING:
        return str(rotation.parse_size(value))
    return check_group(value)


def _group_id(group: str) -> int | None:
    if group.isascii() and group.isdigit():
        return int(group) if len(group) <= 10 else None
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def check_group(group: str) -> str:
    """A group name or number that exists on this machine."""
    if _group_id(group) is None:
        raise UsageError(f"admin_group: no group called {group!r} on this machine")
    return group


def is_admin(owner_uid: int | None, admin_group: str | None) -> bool:
    """True for root, the state's owner, and members of ``admin_group``."""
    uid = os.geteuid()
    if uid == 0 or (owner_uid is not None and uid == owner_uid):
        return True
    if admin_group:
        gid = _group_id(admin_group)
        return gid is not None and (gid == os.getegid() or gid in os.getgroups())
    return False


def require_admin(owner_uid: int | None, admin_group: str | None, action: str) -> None:
    """ForbiddenError (exit 7) unless the caller is an admin."""
    if not is_admin(owner_uid, admin_group):
        who = f"group {admin_group}" if admin_group else "the state's owner and root"
        raise ForbiddenError(f"{action} is an admin command (allowed for {who})")
