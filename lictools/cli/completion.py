"""``lictools completion SHELL``: the shell completion script, and what it completes from the state.

Click's completion protocol: the script calls ``lictools`` again with ``_LICTOOLS_COMPLETE`` set, and
click asks the ``shell_complete`` functions below for pool names, the features of the pool on the
line, and live session ids. They read the state and never write it; a state that does not exist,
is busy or damaged simply completes nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import click

from lictools.cli.common import example

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from lictools.stores.api import StateView

SHELLS = ("bash", "zsh", "fish")
MOST = 200
"""At most this many completions are offered (a state with 10,000 sessions completes its first 200)."""


@click.command(epilog=example(
    'eval "$(lictools completion bash)"                 # in ~/.bashrc',
    'lictools completion zsh > "${fpath[1]}/_lictools"',
    "lictools completion fish > ~/.config/fish/completions/lictools.fish",
))
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, pool names, the features of the pool
    being typed, and live session ids complete with TAB."""
    from click.shell_completion import get_completion_class

    from lictools.cli.main import cli

    completer = get_completion_class(shell)
    assert completer is not None, "click knows every shell in SHELLS"
    click.echo(completer(cli, {}, "lictools", "_LICTOOLS_COMPLETE").source())


@contextmanager
def _state(ctx: click.Context) -> Iterator[StateView | None]:
    """The state named on the command line (or LICTOOLS_STATE), a snapshot read without the lock; None when unreadable."""
    import os

    from lictools.errors import LictoolsError
    from lictools.stores import default_state_path, open_store

    target = ctx.find_root().params.get("state") or os.environ.get("LICTOOLS_STATE") or default_state_path()
    try:
        with open_store(target, 0.5).read() as view:  # a state that does not exist: NotFoundError, nothing created
            yield view
    except (LictoolsError, OSError):
        yield None


def _items(values: list[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(v) for v in sorted(v for v in values if v.startswith(incomplete))[:MOST]]


def pools(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Pool names."""
    with _state(ctx) as tx:
        return _items([p.name for p in tx.list_pools()], incomplete) if tx else []


def features(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The features of the pool already on the command line (or of every pool)."""
    from lictools import views

    pool = ctx.params.get("pool")
    if pool is None:
        # while the option being completed still lacks its value, click leaves the POOL already
        # typed among the unparsed arguments
        pool = next((a for a in ctx.args if not a.startswith("-")), None)
    with _state(ctx) as tx:
        if tx is None:
            return []
        chosen = [p for p in tx.list_pools() if pool is None or p.name == pool]
        return _items(sorted({f for p in chosen for f in views.pool_features(p, tx)}), incomplete)


def sessions(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Live session ids."""
    with _state(ctx) as tx:
        return _items([s.id for s in tx.find_sessions()], incomplete) if tx else []
