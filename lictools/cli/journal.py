"""``lictools journal``: the event journal as JSON lines (the source of reports); ``journal rotate``."""

from __future__ import annotations

import click

from lictools.cli.common import example, settings


@click.group(invoke_without_command=True, epilog=example(
    "lictools journal --since-seq 1200 | jq -c 'select(.event==\"deny\")'", "lictools journal rotate"))
@click.option("--since-seq", type=click.IntRange(0, 2**62), default=0, help="Only events after this sequence number.")
@click.pass_context
def journal(ctx: click.Context, since_seq: int) -> None:
    """Print journal events (grant, share, deny, release, detach, expire, remove ...) as JSON lines.

    Rotated journal files (see 'journal rotate') are read first, oldest first, then the live journal.
    """
    if ctx.invoked_subcommand is not None:
        return
    import json
    import sys

    from lictools.cli.common import store

    out = sys.stdout
    for event in store().read_journal(since_seq):
        out.write(json.dumps(event, separators=(",", ":")) + "\n")


@journal.command("rotate", epilog=example(
    "lictools journal rotate",
    "lictools --format json journal rotate",
    "lictools config journal_max_bytes 64M    # rotate by size after writes",
))
def rotate() -> None:
    """Move the journal's events into a compressed file beside the state (an admin command).

    The file is <state>.journal.<first_seq>-<last_seq>.jsonl.gz (gzip, one JSON line per event,
    each with its seq). SQLite keeps its newest event in the state; the JSON layout moves all.
    'journal', 'report', 'metrics' and 'simulate --from-journal' read across rotated files. Writes
    rotate by themselves once the journal outgrows the journal_max_bytes setting ('lictools config').
    Prints the file, the seq range and the compressed size; "nothing to rotate" (exit 0) when the
    journal holds nothing to move.
    """
    from lictools.cli.common import require_admin, snapshot, store
    from lictools.output import emit_object

    with snapshot() as view:
        require_admin(view, "journal rotate")
    done = store().rotate_journal()
    doc = {
        "rotated": done is not None,
        "file": done.file if done else None,
        "first_seq": done.first_seq if done else None,
        "last_seq": done.last_seq if done else None,
        "events": done.last_seq - done.first_seq + 1 if done else 0,
        "bytes": done.bytes if done else 0,
    }
    plain = (f"rotated events {done.first_seq} to {done.last_seq} into {done.file} ({done.bytes:,} bytes)"
             if done else "nothing to rotate")
    emit_object(doc, settings().fmt, plain)
