"""``lictools export``: the current configuration as a site file (``lictools apply`` of it: no change)."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings, snapshot, store


@click.command(epilog=example(
    "lictools export > site.toml",
    "lictools export --output /etc/lictools/site.toml",
    "lictools --format json export | jq '.pools | keys'",
))
@click.option("--output", "-o", metavar="FILE", help="Write to FILE (replaced whole) instead of stdout.")
def export(output: str | None) -> None:
    """Write pools, licenses, options, reservations, groups, policies and settings as a site file (TOML;
    with --format json, the same document as JSON). Sessions are state, not configuration: not written."""
    import json

    from lictools import site
    from lictools.timeutil import iso

    with snapshot() as view:
        doc = site.export(view)
        when = iso(view.now)
    if settings().fmt == "json":
        text = json.dumps(doc, indent=2) + "\n"
    else:
        text = site.to_toml(doc, f"lictools site file: exported from {store().location} at {when}\n"
                                 "apply with: lictools apply FILE (a second run prints: no change)")
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text)


def _write(path: str, text: str) -> None:
    """Replace ``path`` whole (a temp file beside it, then a rename): a reader never sees half a file."""
    import os
    import tempfile

    from lictools.errors import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(prefix=".lictools-export-", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    except OSError as exc:
        raise UsageError(f"--output {path}: {exc.strerror or exc}") from None
