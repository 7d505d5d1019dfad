"""Work a command leaves for after its answer (today: the SQLite layout's periodic good copy).

A login hook waits for ``lictools acquire`` to exit, so copying a large state must not delay
it. Work is registered with :func:`later`. Inside a command (:func:`deferred`, entered by
``lictools.cli.main.run``) it waits for the command's answer: the console script then starts it
in a detached process (:func:`detach`, like ``git gc --auto``), in-process callers (tests) run it
inline. Anywhere else (a program using the stores directly) it runs at once.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

_PENDING: list[tuple[str, str, tuple[str, ...], int | None]] = []
"""(module, function, string arguments, descriptor handed over) to run once the command has answered."""


def later(module: str, function: str, *args: str, fd: int | None = None) -> None:
    """Run ``module.function(*args)`` after the command (once, however often it is asked for).

    ``fd``: a descriptor the work takes over (a claim held with flock, say); its number is passed
    as the last argument, and the work closes it.
    """
    if any(job[:3] == (module, function, args) for job in _PENDING):
        if fd is not None:
            os.close(fd)
        return
    _PENDING.append((module, function, args, fd))
    if not _deferring:
        run_inline()


_deferring = False


@contextmanager
def deferred(detach_at_end: bool) -> Iterator[None]:
    """Hold work back until the block (one command) ends; then run it inline, or leave it for :func:`detach`."""
    global _deferring
    outer, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = outer
        if not detach_at_end and not outer:
            run_inline()


def _run(module: str, function: str, args: tuple[str, ...]) -> None:
    import importlib

    getattr(importlib.import_module(module), function)(*args)


def run_inline() -> None:
    """Run the pending work in this process; a failure is left for ``lictools doctor`` to report."""
    while _PENDING:
        module, function, args, fd = _PENDING.pop(0)
        try:
            _run(module, function, args + ((str(fd),) if fd is not None else ()))
        except Exception:  # noqa: BLE001  the command has answered: nothing to report to
            pass


def detach() -> None:
    """Start the pending work in a new process of its own session, and do not wait for it."""
    if not _PENDING:
        return
    import subprocess

    import lictools

    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(lictools.__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = "import sys; from lictools.background import main; main(sys.argv[1:])"
    for module, function, args, fd in _PENDING:
        try:
            subprocess.Popen(
                [sys.executable, "-c", code, module, function, *args, *((str(fd),) if fd is not None else ())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, pass_fds=(fd,) if fd is not None else (), env=env, cwd="/",
            )
        except OSError:
            pass  # no process left to start: doctor will show a stale copy
        finally:
            if fd is not None:
                os.close(fd)  # the child holds it now
    _PENDING.clear()


def main(argv: list[str]) -> None:
    """Entry point of the detached process: at a low CPU priority, beside the commands it must not slow."""
    try:
        os.nice(10)
    except OSError:
        pass
    try:
        _run(argv[0], argv[1], tuple(argv[2:]))
    except Exception:  # noqa: BLE001
        pass
