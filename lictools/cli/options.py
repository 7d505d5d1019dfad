"""Click parameter types shared by several commands."""

from __future__ import annotations

from typing import Any, Callable

import click


class KeyValue(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on; 8.1 is supported
    """``KEY=VALUE`` (for ``--option`` and ``--license``)."""

    name = "KEY=VALUE"

    def convert(
        self, value: str | tuple[str, str], param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key.strip(), val.strip()


KEY_VALUE = KeyValue()
COUNT = click.IntRange(0, 10**9)


class Seconds(click.FloatRange):
    """A number of seconds from 0 to a day; NaN (which FloatRange lets through) is refused."""

    name = "seconds"

    def __init__(self) -> None:
        super().__init__(0, 86400)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        result: float = super().convert(value, param, ctx)
        if result != result:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return result


SECONDS = Seconds()


def complete(kind: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """A ``shell_complete`` callback for pool names, features or sessions (lictools.cli.completion),
    imported only when a shell asks for completions, never on a hook's path."""

    def call(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from lictools.cli import completion

        completer: Callable[[click.Context, click.Parameter, str], list[Any]] = getattr(completion, kind)
        return completer(ctx, param, incomplete)

    return call


POOLS = complete("pools")
FEATURES = complete("features")
SESSIONS = complete("sessions")
