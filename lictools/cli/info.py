"""``lictools info``: issued, in use, reserved and free seats per pool feature; ``info users``: the fglWrt listing."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, snapshot
from lictools.cli.options import POOLS

COLUMNS = ["pool", "product", "feature", "issued", "in_use", "reserved", "free", "available", "sessions", "queued"]
"""Table columns; JSON and CSV add new keys at the end, so scripts reading columns by position keep working."""


@click.command(epilog=example(
    "lictools info",
    "lictools --format csv info magic",
    "lictools info users --pool genero-prod 2>&1 | grep Users     # fglWrt -a info users",
    "lictools info --pool users                           # a pool literally named users",
))
@click.argument("words", nargs=-1, metavar="[users] [POOL]")
@click.option("--pool", "pool_option", metavar="POOL", shell_complete=POOLS,
              help="The pool, given as an option (reaches a pool named 'users': info --pool users).")
@click.option("--stderr", "to_stderr", is_flag=True,
              help="info users: write the listing to stderr, as older fglWrt builds did.")
def info(words: tuple[str, ...], pool_option: str | None, to_stderr: bool) -> None:
    """Per pool and feature: issued, in use, reserved, free, available, sessions.

    'free' is issued minus in use, reserved seats included; 'available' is what a request
    without a project may take: free seats that no reservation holds for a project.

    'info users [POOL]' prints the 'fglWrt -a info users' layout instead: per pool feature a
    'Users        : n/m' line (seats in use / issued) and the sessions grouped under their front
    end (GDC/GJC monitor, GUI server, terminal or seat key), with 'Process Id' lines.
    Without a pool every pool feature gets a block and its own 'Users' line: name the pool
    for exactly one (a single-feature product), as scripts reading one 'Users' line need.
    A first word 'users' always means this listing: reach a pool named 'users' with
    'info --pool users' (plain) or 'info users users' / 'info users --pool users' (listing).
    """
    from lictools.errors import UsageError

    listing = bool(words) and words[0] == "users"
    rest = words[1:] if listing else words
    if len(rest) > 1:
        raise UsageError(f"unexpected argument {rest[1]!r}: usage is 'info [users] [POOL]'")
    pool = rest[0] if rest else None
    if pool and pool_option and pool != pool_option:
        raise UsageError(f"two pools given: {pool!r} and --pool {pool_option!r}")
    pool = pool or pool_option
    if to_stderr and not listing:
        raise UsageError("--stderr applies to 'info users' only")
    if listing:
        _users_listing(pool, to_stderr)
        return

    from lictools import views
    from lictools.output import emit_rows

    with snapshot() as tx:
        rows = views.info(tx, pool)
    emit_rows(rows, COLUMNS, settings().fmt)


def _users_listing(pool: str | None, to_stderr: bool) -> None:
    import sys

    from lictools import views
    from lictools.output import emit_rows, fglwrt

    with snapshot() as tx:
        blocks = views.listing(tx, pool)
    out = sys.stderr if to_stderr else sys.stdout
    fmt = settings().fmt
    if fmt == "json":
        emit_rows(blocks, [], "json", out)
    elif fmt == "csv":
        emit_rows(fglwrt.session_rows(blocks), fglwrt.ROW_COLUMNS, "csv", out)
    else:
        out.write(fglwrt.render(blocks))
        out.flush()
