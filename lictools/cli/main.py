"""``lictools``: the top-level group, global options, and the one-line error contract.

Subcommand modules are imported only when named, so ``lictools acquire`` loads the acquire
module, the engine and one store, and nothing that listings need (tabulate, csv).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from lictools import __version__
from lictools.cli.options import SECONDS
from lictools.errors import EXIT_INTERNAL, EXIT_USAGE, LictoolsError
from lictools.stores.locking import DEFAULT_TIMEOUT

# name -> (module, attribute, short help shown by ``lictools --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "pool": ("lictools.cli.pool", "pool", "Create, list, show, change and remove pools."),
    "license": ("lictools.cli.license", "license", "Load or unload issued seats (idempotent per serial)."),
    "acquire": ("lictools.cli.acquire", "acquire", "Ask for a seat; prints the session id."),
    "release": ("lictools.cli.release", "release", "End sessions now."),
    "detach": ("lictools.cli.detach", "detach", "The client went away: keep the seat until the detach timeout."),
    "refresh": ("lictools.cli.refresh", "refresh", "Extend leases (exit 4: acquire again)."),
    "users": ("lictools.cli.users", "users", "Seats in use: who holds what, from where, since when."),
    "info": ("lictools.cli.info", "info", "Issued, in use, reserved and free seats per pool feature."),
    "remove": ("lictools.cli.remove", "remove", "Admin forced release by session, user or host (lmremove)."),
    "gc": ("lictools.cli.gc", "gc", "Reap expired sessions now; --check-pids drops dead local processes."),
    "dump": ("lictools.cli.dump", "dump", "Print the whole state as readable JSON."),
    "journal": ("lictools.cli.journal", "journal", "Print journal events as JSON lines."),
    "migrate": ("lictools.cli.migrate", "migrate", "Copy this state (journal included) into another store."),
    "config": ("lictools.cli.config", "config", "State-wide settings: the admin group."),
    "doctor": ("lictools.cli.doctor", "doctor", "Check state, journal, permissions and lock; restore a good copy."),
    "reserve": ("lictools.cli.reserve", "reserve", "Per-project reserved seats; --from projectsStartup.xml."),
    "explain": ("lictools.cli.explain", "explain", "Why a session holds, shares or was refused a seat."),
    "completion": ("lictools.cli.completion", "completion", "Print the shell completion script (bash, zsh, fish)."),
    "fglwrt": ("lictools.cli.fglwrt", "fglwrt", "fglWrt's options on a pool: -a info users, -u, -x PID, -i."),
    "report": ("lictools.cli.report", "report", "Usage from the journal: peaks, seat-hours, denials; charts, HTML."),
    "metrics": ("lictools.cli.metrics", "metrics", "Prometheus text exposition of seats, sessions and denials."),
    "policy": ("lictools.cli.policy", "policy", "Pool policies: max, include, exclude, reserve (options file)."),
    "group": ("lictools.cli.group", "group", "Groups of users that policies name."),
    "apply": ("lictools.cli.apply", "apply", "Make the state what a site file (TOML) declares; --dry-run shows how."),
    "export": ("lictools.cli.export", "export", "Write the current configuration as a site file (TOML)."),
    "simulate": ("lictools.cli.simulate", "simulate", "What-if: replay client starts and stops under a rule and capacity."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The command named by ``args[0]``; a mistyped name is exit 2 with the nearest names."""
        name = args[0] if args else ""
        if name in COMMANDS or name.startswith("-"):
            return super().resolve_command(ctx, args)
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
        close += [c for c in COMMANDS if c.startswith(name) and c not in close] if name else []
        hint = f"; did you mean {' or '.join(repr(c) for c in close[:2])}?" if close else ""
        ctx.fail(f"no such command {name!r}{hint}")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


EPILOG = """\b
Example:
  id=$(lictools acquire genero-prod --user "$USER") || exit 1
  lictools release "$id"

\b
Exit codes: 0 done, 1 internal error, 2 usage error, 3 denied,
4 not found, 5 state lock busy, 6 damaged state, 7 not allowed.
See man lictools."""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state",
    envvar="LICTOOLS_STATE",
    metavar="TARGET",
    help="State file (default: state.db in your platformdirs state folder; *.json = JSON layout), or a "
         "postgresql:// URL (several hosts, one database). Env LICTOOLS_STATE.",
)
@click.option(
    "--format",
    "fmt",
    envvar="LICTOOLS_FORMAT",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output of listings and results. Env LICTOOLS_FORMAT.",
)
@click.option(
    "--lock-timeout",
    envvar="LICTOOLS_LOCK_TIMEOUT",
    type=SECONDS,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Exit 5 when one holder keeps the state lock this long while waiting for it (a lock that "
    "changes hands is waited for). Env LICTOOLS_LOCK_TIMEOUT.",
)
@click.version_option(__version__, prog_name="lictools")
@click.pass_context
def cli(ctx: click.Context, state: str | None, fmt: str, lock_timeout: float) -> None:
    """Count floating license seats the way vendor license managers count them."""
    from lictools.cli.common import Settings

    ctx.obj = Settings(state=state, fmt=fmt, lock_timeout=lock_timeout)


def one_line(message: str) -> str:
    """``message`` as one line of text: newlines become spaces, other control characters
    (CR, ESC, a right-to-left override, an undecodable byte) are shown as escapes, never sent to the terminal."""
    return "".join(
        ch if ch.isprintable() else " " if ch == "\n" else repr(ch)[1:-1]
        for ch in message
    )


def _fail(message: str, code: int, prefix: str = "lictools: ") -> int:
    if message:
        sys.stderr.write(f"{prefix}{one_line(message)}\n")
    return code


GLOBAL_OPTIONS = ("--state", "--format", "--lock-timeout")
"""Options of the lictools group that are also accepted after the command (``lictools users --format json``)."""


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options written after the command to before it, where click expects them.

    No command has an option of these names, so ``lictools users --format json`` can only mean
    ``lictools --format json users``. Arguments after ``--`` are left alone.
    """
    moved: list[str] = []
    rest: list[str] = []
    seen_command = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes_next = "=" not in arg and index + 1 < len(args)
            (moved if seen_command else rest).extend(args[index:index + 1 + takes_next])
            index += 1 + takes_next
            continue
        if not arg.startswith("-"):
            seen_command = True
        rest.append(arg)
        index += 1
    return moved + rest


def run(argv: list[str] | None = None, detach_background: bool = False) -> int:
    """Run the CLI and return the exit code; every error is one stderr line.

    Work the command left for after its answer (a good copy of the state) runs here, inline,
    unless ``detach_background``: then the caller starts it in its own process (see :func:`main`).
    """
    from lictools import background

    with background.deferred(detach_at_end=detach_background):
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        args = hoist_global_options(sys.argv[1:] if argv is None else list(argv))
        result = cli.main(args=args, prog_name="lictools", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        path = exc.ctx.command_path if exc.ctx else "lictools"
        return _fail(f"missing command (see '{path} --help')", EXIT_USAGE)
    except click.ClickException as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and isinstance(exc, click.UsageError):
            hint = f" (see '{ctx.command_path} --help')"
        return _fail(exc.format_message() + hint, exc.exit_code)
    except click.Abort:
        return _fail("interrupted", 130)
    except LictoolsError as exc:
        return _fail(exc.message, exc.exit_code, "" if getattr(exc, "verbatim", False) else "lictools: ")
    except BrokenPipeError:
        return 0
    except UnicodeError:
        return _fail("an argument or value is not valid text (undecodable bytes)", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("LICTOOLS_DEBUG") == "1":
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (LICTOOLS_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


def main() -> None:
    """Console-script entry point."""
    exit_with(None)


def exit_with(argv: list[str] | None) -> None:
    """Run ``argv`` (None: the process's arguments), answer, start any work left for later, and end
    without tearing down.

    The interpreter's own shutdown (finalising every module; filelock's exit hooks) costs a
    short command tens of milliseconds (docs/performance.md), so the process ends with
    ``os._exit`` once its output is flushed. Nothing needs that shutdown: the state lock is
    released and the transaction committed when the command ends, and the SQLite connection
    is left open on purpose (see lictools.cli.common.PROCESS_EXITS_HARD).
    """
    from lictools import background
    from lictools.cli import common

    common.PROCESS_EXITS_HARD = True
    code = run(argv, detach_background=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    background.detach()
    os._exit(code)
