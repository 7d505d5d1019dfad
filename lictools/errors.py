"""Errors that end a command, each carrying the exit code of SPEC.md section 3.

The CLI prints ``lictools: <message>`` on one stderr line and exits with ``exit_code``;
engine and store code raise these and never print.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_BUSY = 5
EXIT_DAMAGED = 6
EXIT_FORBIDDEN = 7
EXIT_CANNOT_WRITE = 8


class LictoolsError(Exception):
    """Base class: a message for the user and the process exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(LictoolsError):
    """Bad option value, unknown product or feature, invalid name (exit 2)."""

    exit_code = EXIT_USAGE


class DeniedError(LictoolsError):
    """No seat is free for this session (exit 3).

    ``verbatim``: print the message as it is, without ``lictools:`` (a vendor's own denial line,
    such as Genero's ``-6017 User limit exceeded. Cannot run this program.``).
    """

    exit_code = EXIT_DENIED

    def __init__(self, message: str, verbatim: bool = False) -> None:
        super().__init__(message)
        self.verbatim = verbatim


class NotFoundError(LictoolsError):
    """Unknown pool or session, or an expired session for ``refresh`` (exit 4)."""

    exit_code = EXIT_NOT_FOUND


class BusyError(LictoolsError):
    """The state lock was not obtained within ``--lock-timeout`` (exit 5)."""

    exit_code = EXIT_BUSY


class DamagedStateError(LictoolsError):
    """The state cannot be read (garbled, truncated, newer schema); nothing was changed (exit 6)."""

    exit_code = EXIT_DAMAGED


class ForbiddenError(LictoolsError):
    """Not allowed: an admin command by a non-admin, or another user's session (exit 7)."""

    exit_code = EXIT_FORBIDDEN


class CannotWriteError(LictoolsError):
    """The state cannot be written: no space left, a read-only filesystem, an I/O error (exit 8).

    Not "damaged" (the state is fine, nothing was changed) and not a bug: the machine refused
    the write, and the message says why.
    """

    exit_code = EXIT_CANNOT_WRITE
