"""Click parameter types shared by several commands."""

from __future__ import annotations

import click


class KeyValue(click.ParamType):
    """``KEY=VALUE`` (for ``--option`` and ``--license``)."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
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

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        result = super().convert(value, param, ctx)
        if result != result:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return result


SECONDS = Seconds()
