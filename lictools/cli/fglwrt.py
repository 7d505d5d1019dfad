"""``lictools fglwrt`` / ``lictools-fglwrt``: the options of Genero's ``fglWrt`` license controller, on a pool.

Scripts written against fglWrt keep working when lictools counts the seats:

    fglWrt -a info users   ->  the listing of ``lictools info users`` (``Users        : n/m`` ...)
    fglWrt -u              ->  ``lictools gc --check-pids`` for the pool's sessions on this node
    fglWrt -x PID          ->  ``lictools remove --pid PID --pool POOL`` (an admin command)
    fglWrt -i              ->  ``lictools remove --pool POOL --all`` (after a warning, as fglWrt prints)
    fglWrt -a ps           ->  the PIDs of the pool's sessions on this node, one per line
    fglWrt -a info up      ->  whether the state can be read
    fglWrt -h              ->  this list

Options of lictools' own come before the fglWrt ones: ``--pool POOL`` (default: $LICTOOLS_FGLWRT_POOL,
else the state's only pool), ``--stderr`` (write the listing to stderr, as older fglWrt builds did);
the global options (``--state`` ...) are read from the environment.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NamedTuple, TextIO

import click

from lictools.cli.common import example
from lictools.cli.options import POOLS
from lictools.errors import UsageError

if TYPE_CHECKING:
    from lictools.stores.api import StateView

USAGE = """\
Usage  : fglWrt [options]        (lictools-fglwrt, lictools fglwrt: the seats of a lictools pool)
 -u          : Checks active users.
 -i          : Clears the list of registered user sessions.
 -a opt      : Check or view options, possible options are:
               ps           : Shows processes on this machine.
               info users   : Shows all registered active users.
               info up      : Shows if license server is up.
 -x pid      : Clears the session referenced by the specified pid.
 -h          : Shows this help.
"""


class Action(NamedTuple):
    """One fglWrt request: what to do, and the PID of ``-x``."""

    kind: str  # "users" | "check" | "kill" | "clear" | "ps" | "up" | "help"
    pid: int | None = None


def parse(args: list[str]) -> Action:
    """The fglWrt options given (exactly one action); UsageError (exit 2) for anything else."""
    words = list(args)
    if not words:
        return Action("help")
    head, rest = words[0], words[1:]
    if head in ("-h", "-help") and not rest:
        return Action("help")
    if head == "-u" and not rest:
        return Action("check")
    if head == "-i" and not rest:
        return Action("clear")
    if head in ("-x", "-kill-session", "--kill-session") and len(rest) == 1:
        from lictools.validate import whole_number

        return Action("kill", whole_number(rest[0], f"{head} pid", 2**31 - 1))
    if head == "-a":
        what = " ".join(rest)
        if what in ("info users", "info user"):
            return Action("users")
        if what == "ps":
            return Action("ps")
        if what == "info up":
            return Action("up")
    shown = " ".join(words)[:80]
    raise UsageError(f"fglWrt: unsupported options {shown!r} (lictools-fglwrt -h lists those it knows)")


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]},
    epilog=example(
        "lictools-fglwrt -a info users 2>&1 | grep Users",
        "lictools fglwrt --pool genero-prod -u",
        "lictools-fglwrt -x 5144",
    ),
)
@click.option("--pool", envvar="LICTOOLS_FGLWRT_POOL", shell_complete=POOLS,
              help="The pool (default: $LICTOOLS_FGLWRT_POOL, else the state's only pool).")
@click.option("--stderr", "to_stderr", is_flag=True, help="Write the listing to stderr, as older fglWrt builds did.")
@click.option("--yes", is_flag=True, hidden=True, help="Accepted for symmetry with 'remove --all'; -i never asks.")
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def fglwrt(pool: str | None, to_stderr: bool, yes: bool, options: tuple[str, ...]) -> None:
    """fglWrt's options on a lictools pool: -a info users, -u, -x PID, -i, -a ps, -a info up, -h."""
    action = parse(list(options))
    out = sys.stderr if to_stderr and action.kind == "users" else sys.stdout
    if action.kind == "help":
        out.write(USAGE)
        return
    run(action, pool, out)


def run(action: Action, pool_name: str | None, out: TextIO) -> None:
    """Do one fglWrt action on the pool, printing what fglWrt would print.

    The listing, ``ps`` and ``info up`` read a snapshot (no lock, nothing created); ``-u``, ``-x`` and
    ``-i`` are one write transaction each.
    """
    from lictools import engine, views
    from lictools.cli.common import require_admin, snapshot, transaction
    from lictools.host import SYSTEM
    from lictools.output import fglwrt as layout

    write = out.write
    if action.kind in ("users", "up", "ps"):
        with snapshot() as view:
            pool = _pool(view, pool_name)
            if action.kind == "users":
                write(layout.render(views.listing(view, pool)))
            elif action.kind == "up":
                write("License server is up.\n")
            else:
                from lictools.host import same_machine

                here = SYSTEM.node()
                sessions = view.find_sessions(pool=pool)
                pids = sorted({s.pid for s in sessions if s.pid is not None and same_machine(s.node, here)})
                write("".join(f"{pid}\n" for pid in pids))
        return
    with transaction() as tx:
        pool = _pool(tx, pool_name)
        if action.kind == "check":
            engine.drop_dead_processes(tx, pool)
        elif action.kind == "kill":
            require_admin(tx, "fglWrt -x")
            done = engine.remove(tx, pool=pool, pid=action.pid)
            if not done.done:
                from lictools.errors import NotFoundError

                raise NotFoundError(f"fglWrt -x: no session of process {action.pid} on this node in pool {pool}")
        elif action.kind == "clear":
            require_admin(tx, "fglWrt -i")
            sys.stderr.write(f"Warning: all registered user sessions of pool {pool} are cleared.\n")
            engine.remove(tx, pool=pool, everything=True)


def _pool(tx: StateView, name: str | None) -> str:
    """The pool named, else the state's only pool."""
    from lictools import engine

    if name is not None:
        return engine.get_pool(tx, name).name
    pools = [p.name for p in tx.list_pools()]
    if len(pools) != 1:
        known = f" ({', '.join(pools)})" if pools else ""
        raise UsageError(f"fglWrt: the state has {len(pools)} pools{known}: give --pool or LICTOOLS_FGLWRT_POOL")
    return pools[0]


def main() -> None:
    """The ``lictools-fglwrt`` console script: ``lictools fglwrt`` with fglWrt's argument list."""
    from lictools.cli.main import exit_with

    exit_with(["fglwrt", *sys.argv[1:]])
