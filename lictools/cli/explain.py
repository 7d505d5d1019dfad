"""``lictools explain``: why a session holds, shares or was refused a seat, in words."""

from __future__ import annotations

from typing import Any

import click

from lictools.cli.common import example, settings, snapshot, store
from lictools.cli.options import SESSIONS

SCALARS = ["session", "live", "pool", "product", "feature", "rule", "seat", "shared", "why", "cost",
           "issued", "in_use", "free", "reserved", "expires"]


@click.command(epilog=example(
    "lictools explain 3f9a1c2b7d4e5f60",
    "lictools --format json explain login-42 | jq -r .cost",
    "lictools acquire genero-prod --client gwc --dry-run   # before the fact",
))
@click.argument("session", shell_complete=SESSIONS)
def explain(session: str) -> None:
    """Explain SESSION: its rule, seat key, who shares the seat, free seats, and why it cost what it cost.

    A session that is no longer live (refused, released, expired, removed) is looked up in the
    journal: what happened to it is printed, and the exit status is 4.
    """
    from lictools import explain as explaining
    from lictools.errors import NotFoundError

    with snapshot() as view:
        doc = explaining.explain_session(view, session)
    if doc is None:
        doc = explaining.explain_ended(store().read_journal(), session)
        shown = session if len(session) <= 64 and session.isprintable() else repr(session[:64]) + "..."
        if doc is None:
            raise NotFoundError(f"unknown session {shown}")
        _emit(doc)
        what = "was refused a seat" if doc["event"] == "deny" else f"is not live ({doc['event']})"
        raise NotFoundError(f"session {shown} {what} at {doc['time']}")
    _emit(doc)


def _emit(doc: dict[str, Any]) -> None:
    from lictools.output import emit_object

    fmt = settings().fmt
    if fmt == "table":
        click.echo("\n".join(doc["lines"]))
    elif fmt == "json":
        emit_object(doc, fmt)
    else:
        emit_object({k: doc.get(k) for k in SCALARS}, fmt)
