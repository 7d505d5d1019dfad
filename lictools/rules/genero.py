"""genero: Four Js Genero BDL runtime licenses, counted the way fglWrt / FLM count them.

Seed 001_f4c482de6d79ae5e.txt, the sentences this module implements:

- "When a user requests an application, the gasd starts a DVM to handle the request. It is the
  DVM that consumes a license. For example, one license is used when an application is started
  from a User Agent."
  -> feature ``runtime`` (the only one, so ``--feature`` is optional); a session is one DVM.
- "If within this application, a RUN or a RUN WITHOUT WAITING is executed, the same license is
  used, even if the first User Agent opens new User Agents."
  -> ``--parent SESSION``: the child joins the seat of its root DVM and takes the root's
  ``--client`` and ``--monitor`` (what it gives itself is ignored).
- "If, however, an application is started in another User Agent (without RUN or RUN WITHOUT
  WAITING), a new license is used."
  -> without ``--parent`` an HTTP or text-mode session is its own root and takes its own seat.
- "If you open two tabs in a browser, and each tab connects to its own DVM, then it is just as if
  two browsers were being used, and two (2) runtime licenses are used."
- "GDC-HTTP and GDCAX do not have the same license counting rules as the GDC has in other
  connection modes (rlogin, telnet or ssh). For the latter, one license is consumed per GDC
  monitor, no matter the number of applications launched. This is also true for GJC-HTTP and GJC
  Applet versus GJC in other connection modes."
  -> ``--client gdc`` / ``gjc`` (direct mode): seat key ``monitor:<kind>:<ID>`` from ``--monitor``,
  which is required for these kinds (exit 2 without it, or blank: counting them per DVM would
  silently over-count). A GDC monitor and a GJC are two front ends, so the kind is in the key.
  Which monitor ids name one front end everywhere is option ``monitor_scope``: ``auto`` (default)
  scopes a node-relative address (``localhost:1``, ``127.0.0.1:0``, ``:2``, ``[::1]:1``: an
  ssh-forwarded ``FGLSERVER`` names a front end of that server only) by ``--node``, key
  ``monitor:<kind>:<ID>@<NODE>``, and keeps every other id global (a front-end id, ``FrontEndId2``,
  or a real address: one GDC monitor connecting to two servers of one pool is one seat); ``node``
  scopes every id by node; ``global`` scopes none (lictools before issue 10). A seat opened with
  the key of before (``monitor:<ID>``) is still joined by a DVM of the same front end while it is
  held. ``gdc-http``, ``gdcax``, ``gwc``, ``gbc``, ``gjc-http``, ``gjc-applet``, ``tui``
  and no ``--client`` at all: seat key ``dvm:<root session>``, one seat per root DVM.
- "A license is freed when the applications closes, or to be more exact, when the DVM is shut
  down." -> the engine frees the seat with the last DVM holding it.
- "If, however, the user does not exit the application but instead closes the User Agent, the DVM
  continues to run until the application times out (the number of seconds is set for the
  USER_AGENT timeout)." -> ``detach`` keeps the session for option ``user_agent_timeout`` (300 s).
- "To determine the number of licenses used, run "fglWrt -u" followed by "fglWrt -a info users"."
  -> ``lictools gc --check-pids`` and ``lictools info users`` (lictools/output/fglwrt.py).

Research (vendors.md 1.5): a full pool makes the DVM print ``-6017 User limit exceeded. Cannot
run this program.`` (DENIAL_TEXT).

Parents and roots: every session records its root DVM (``Session.root``; a root records itself).
A child's root is found, in this order, from the live parent, from live sessions whose root is the
parent (the parent was a root that has exited), or from live siblings with the same parent (the
parent was a child that has exited). So a child still joins its root's seat while any DVM of the
tree holds it, whatever happened to the parent. When nothing of the parent's tree is left the
request is refused with exit 4 (``unknown parent``): the seat it would have shared is gone, and
the caller should acquire without ``--parent`` to take a seat of its own.
"""

from __future__ import annotations

from lictools.errors import NotFoundError, UsageError
from lictools.host import machine_name
from lictools.model import Pool, Request, Session
from lictools.rules.base import FrontEnd, Option, Seat, SessionView, choice, seconds
from lictools.rules.base import no_lease_advice as lease_advice
from lictools.rules.base import no_option_warnings as option_warnings
from lictools.rules.base import no_reservation_file as parse_reservation_file

NAME = "genero"
TITLE = "Four Js Genero BDL"
SUMMARY = "one runtime seat per root DVM (RUN children share it), or per front-end monitor for GDC/GJC direct mode"
FEATURES: tuple[str, ...] = ("runtime",)
FEATURE_TITLES = {"runtime": "runtime"}
DEFAULT_LEASE = 3600
DETACH_OPTION = "user_agent_timeout"
DENIAL_TEXT: str | None = "-6017 User limit exceeded. Cannot run this program."

__all__ = [  # what this module provides as a rule (lictools.rules.base.Rule)
    "NAME", "TITLE", "SUMMARY", "FEATURES", "FEATURE_TITLES", "OPTIONS", "DEFAULT_LEASE", "DETACH_OPTION",
    "DENIAL_TEXT", "seat_key", "front_end", "lease_advice", "parse_reservation_file", "option_warnings",
]

DIRECT_CLIENTS = ("gdc", "gjc")
"""Front ends in direct mode (rlogin, telnet, ssh): one seat per front-end monitor."""
HTTP_CLIENTS = ("gdc-http", "gdcax", "gwc", "gbc", "gjc-http", "gjc-applet")
"""Front ends through the web server (GAS): one seat per root DVM."""
TEXT_CLIENTS = ("tui",)
"""Text terminal: one seat per root DVM."""
CLIENTS = DIRECT_CLIENTS + HTTP_CLIENTS + TEXT_CLIENTS

OPTIONS = {
    "user_agent_timeout": Option(
        "300", seconds,
        "seconds a detached DVM (user agent closed without exiting) keeps its seat: the GAS USER_AGENT timeout",
    ),
    "monitor_scope": Option(
        "auto", choice("auto", "global", "node"),
        "which direct-mode monitors are one front end on every node: auto = all but node-relative addresses "
        "(localhost, 127.*, :N), which are per --node; node = none; global = all",
    ),
}

LOOPBACK_HOSTS = frozenset({"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "::1", "0.0.0.0"})
"""Host parts of an ``FGLSERVER`` address that name the node the DVM runs on (besides ``127.*``)."""


def cx_mode(client: str | None) -> str | None:
    """``direct``, ``gas`` or None (text terminal or unknown), as fglWrt's ``cx-mode``."""
    if client in DIRECT_CLIENTS:
        return "direct"
    if client in HTTP_CLIENTS:
        return "gas"
    return None


def front_end(session: Session) -> FrontEnd:
    """fglWrt groups direct-mode DVMs under their monitor (``FrontEndId2``), GAS ones under the GUI server.

    The address on the ``GUI Server`` line (vendors.md 1.3) is the front end's: in direct mode the
    monitor's ``FGLSERVER`` address (``10.0.0.5:0``), or the client host when the monitor is a
    front-end id (``{...}``); through the GAS the client host.
    """
    mode = cx_mode(session.client)
    if mode == "direct":
        monitor = session.monitor or session.seat
        address = session.host if monitor.startswith("{") else monitor
        return FrontEnd("monitor", monitor, mode, address)
    if mode == "gas":
        return FrontEnd("gui-server", session.host, mode, session.host)
    return FrontEnd("terminal", session.host, None)


def node_relative(monitor: str) -> bool:
    """Does a monitor id name an address of the node the DVM runs on (``FGLSERVER`` is ``host:display``)?

    ``localhost:1``, ``127.0.0.1:0``, ``:2``, ``[::1]:1`` do; a front-end id (``{...}``, ``FrontEndId2``),
    a host name or another address do not.
    """
    text = monitor.strip()
    if text.startswith("{"):
        return False
    if text.startswith("["):
        host = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        host = text.split(":", 1)[0]
    else:
        host = text  # a bare name, or an IPv6 address
    host = host.lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host.startswith("::1:")


def monitor_key(client: str, monitor: str, node: str, pool: Pool) -> tuple[str, bool]:
    """(seat key, scoped by node?) of a direct-mode front end, per the pool's ``monitor_scope``."""
    scope = pool.options.get("monitor_scope", "auto")
    scoped = scope == "node" or (scope == "auto" and node_relative(monitor))
    key = f"monitor:{client}:{monitor}"
    return (f"{key}@{machine_name(node)}" if scoped else key), scoped


def _old_monitor_seat(view: SessionView, request: Request, pool: Pool, key: str) -> str | None:
    """The seat a DVM of the same front end opened with the key of before (``monitor:<ID>``), while only that one is held."""
    legacy = f"monitor:{request.monitor}"
    feature = request.feature or ""
    if view.count_seat_sessions(pool.name, feature, key) or not view.count_seat_sessions(pool.name, feature, legacy):
        return None
    for holder in view.find_sessions(pool=pool.name, feature=feature, seat=legacy):
        if holder.client and holder.monitor and monitor_key(holder.client, holder.monitor, holder.node, pool)[0] == key:
            return legacy
    return None


def find_tree(view: SessionView, pool: str, parent: str, asking: str | None = None) -> tuple[str, Session] | None:
    """(root id, a live session of the root's tree) for a ``--parent`` id, or None when none is left.

    Asked again about a live child (``asking``, as ``explain`` does), the answer is the tree it
    joined when it started, even if the parent's id now names another DVM (a reused id).
    """
    own = view.get_session(asking) if asking else None
    if own is not None and own.parent == parent and own.root and own.root != own.id:
        return own.root, own
    live = view.get_session(parent)
    if live is not None:
        return (live.root or live.id), live
    # the parent was a root that exited while its children live on
    for session in view.find_sessions(pool=pool, root=parent):
        return parent, session
    # the parent was a child that exited: its other children know the root
    for session in view.find_sessions(pool=pool, parent=parent):
        return (session.root or session.id), session
    return None


def _held_by_others(view: SessionView, request: Request, pool: Pool, key: str) -> bool:
    """Does a live session other than the request's own hold ``key``? (asking again about a live
    session, as ``explain`` does, must give the key it holds)"""
    holders = view.count_seat_sessions(pool.name, request.feature or "", key)
    if not holders:
        return False
    own = view.get_session(request.session)
    return holders > (1 if own is not None and own.pool == pool.name and own.seat == key else 0)


def seat_key(request: Request, pool: Pool, view: SessionView) -> Seat:
    if request.parent is not None:
        if request.parent == request.session:
            raise UsageError(f"session {request.session} cannot be its own --parent")
        found = find_tree(view, pool.name, request.parent, request.session)
        if found is None:
            raise NotFoundError(
                f"unknown parent session {request.parent}: no DVM of its tree is running in pool {pool.name}; "
                "acquire without --parent to take a seat of its own"
            )
        root, member = found
        if member.pool != pool.name:
            raise UsageError(f"parent session {request.parent} is in pool {member.pool}, not {pool.name}")
        if member.id == request.parent:
            how = "its parent"
        elif member.id == request.session:
            how = "the tree it joined when it started"
        else:
            how = f"DVM {member.id} of the same tree"
        return Seat(
            member.seat,
            f"started by RUN / RUN WITHOUT WAITING from {request.parent}: shares the seat of root DVM {root} "
            f"(found through {how})",
            root=root,
            # a RUN child is counted like its root: same client kind, same monitor, same seat
            inherits=(("client", member.client), ("monitor", member.monitor)),
        )
    client = request.client
    if client is not None and client not in CLIENTS:
        raise UsageError(f"unknown --client {client!r} for product genero; known: {', '.join(CLIENTS)}")
    if client in DIRECT_CLIENTS:
        if not request.monitor or not request.monitor.strip():
            raise UsageError(
                f"--client {client} is direct mode (one seat per front-end monitor): give --monitor ID "
                "(for example \"$FGLSERVER\" or the front-end id); it was missing or blank"
            )
        key, scoped = monitor_key(client, request.monitor, request.node, pool)
        why = (
            f"{client.upper()} in direct mode: one seat per front-end monitor ({request.monitor}), however many "
            "applications it runs; " + (
                f"a node-relative address names a front end of its node only ({machine_name(request.node)})"
                if scoped else "the same front end from every node of the pool"
            )
        )
        old = _old_monitor_seat(view, request, pool, key)
        if old is not None:
            key = old
            why += f"; it joins seat {old}, opened by the same front end before monitor keys named the kind"
        return Seat(key, why, root=request.session)
    if client in HTTP_CLIENTS:
        why = f"{client.upper()} through the web server: one seat per root DVM (each browser tab with its own DVM is another seat)"
    elif client == "tui":
        why = "text-mode DVM: one seat per root DVM"
    else:
        why = "no --client given: one seat per root DVM"
    key = f"dvm:{request.session}"
    generation = 1
    while _held_by_others(view, request, pool, key):
        # the id is reused (a hook's $$) while RUN children of an exited root with that id live on
        generation += 1
        key = f"dvm:{request.session}#{generation}"
    if generation > 1:
        why += f"; id {request.session} is reused while DVMs started from an earlier root with that id live on, so it takes key {key}"
    return Seat(key, why, root=request.session)
