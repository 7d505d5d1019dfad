"""Render results as a table (tabulate, imported only here), JSON or CSV.

JSON keys are the stable contract (SPEC.md section 3); CSV columns are the JSON keys (every key
of the rows, in order; the listed columns when there is no row), with lists joined by ``;``; tables join lists with ``,`` and show a missing time as ``never``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, TextIO

FORMATS = ("table", "json", "csv")

TABLE_LIST_ITEMS = 3
"""A table cell shows at most this many items of a list, then ``(+N more)``: no row hundreds of characters wide."""


def _cell(value: Any, joiner: str, none: str, most: int | None = None) -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        shown = list(value)[:most]
        text = joiner.join(json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v) for v in shown)
        return text + (f" (+{len(value) - len(shown)} more)" if len(shown) < len(value) else "")
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit_rows(rows: list[dict[str, Any]], columns: Iterable[str], fmt: str, out: TextIO | None = None) -> None:
    """Print a listing: every row has at least ``columns``; JSON prints whole rows."""
    out = out or sys.stdout
    columns = list(columns)
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    elif fmt == "csv":
        import csv

        if rows:
            columns = list(rows[0])  # CSV columns are the JSON keys
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c), ";", "") for c in columns])
    else:
        if not rows:
            return
        from tabulate import tabulate

        table = [[_cell(row.get(c), ",", "never" if c == "expires" else "-", TABLE_LIST_ITEMS) for c in columns]
                 for row in rows]
        out.write(tabulate(table, headers=columns, tablefmt="simple", disable_numparse=True) + "\n")


def emit_object(obj: dict[str, Any], fmt: str, plain: str | None = None, out: TextIO | None = None) -> None:
    """Print one result: JSON object, CSV header + row, or for tables ``plain`` (or key: value lines)."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump(obj, out, indent=2)
        out.write("\n")
    elif fmt == "csv":
        emit_rows([obj], obj.keys(), "csv", out)
    elif plain is not None:
        out.write(plain + "\n")
    else:
        width = max((len(k) for k in obj), default=0)
        for key, value in obj.items():
            out.write(f"{key.ljust(width)} : {_cell(value, ',', '-')}\n")
