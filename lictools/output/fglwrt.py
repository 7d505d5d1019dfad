r"""The ``fglWrt -a info users`` layout (research/vendors.md section 1.3), for ``lictools info users``.

It renders the blocks of :func:`lictools.views.listing`; which front end a session is listed under,
and the product and feature titles, come from the pool's rule.

One block per pool and feature. Header lines have the label padded to column 13, then ``: ``::

    License      : initial-runtime
    Pool         : genero-prod
    Product      : Four Js Genero BDL
    Type         : runtime
    Users        : 2/5

``Users`` is seats in use / seats issued (what admin scripts grep). Sessions follow, grouped under
their front end and indented 4/8/12 spaces. Genero direct mode (GDC, GJC), with the monitor's
``FGLSERVER`` address (or the client host when the monitor is a front-end id), one line per DVM, as
the public parsers match it (``^\s*GUI Server [0-9.:]+ - Process Id [0-9]+``)::

        FrontEndId2: <monitor>
            GUI Server <front-end address> - Process Id <pid>
                host-name: <node>
                ...
                cx-mode: direct

Genero through the web server (one group per root DVM; each DVM its own ``Process Id`` line)::

        GUI Server <client host>
            Process Id <pid>
                ...
                cx-mode: gas

Text terminals and DVMs without ``--client`` use ``Terminal <client host>``; other products use
``Seat <seat key>`` (the device ID, machine or session). ``<pid>`` is the DVM's: ``--pid``, else
the process that ran ``acquire`` (its parent: the DVM or hook asking); ``gc --check-pids`` checks
``--pid`` only. A session recorded before lictools kept the caller prints ``Process Id -``. Detail keys: ``host-name`` (the node running the process), ``host-addr`` (the
client host), ``user-name``, ``app-id`` (the lictools session id), ``app-name`` (``--app``),
``cx-mode`` (Genero GUI front ends).
"""

from __future__ import annotations

from typing import Any


def _header(label: str, value: object) -> str:
    return f"{label:<13}: {value}"


def _details(s: dict[str, Any], indent: str) -> list[str]:
    lines = [f"{indent}host-name: {s['node']}", f"{indent}host-addr: {s['host']}", f"{indent}user-name: {s['user']}",
             f"{indent}app-id: {s['session']}"]
    if s["app"]:
        lines.append(f"{indent}app-name: {s['app']}")
    if s["cx_mode"]:
        lines.append(f"{indent}cx-mode: {s['cx_mode']}")
    return lines


def _pid(s: dict[str, Any]) -> str:
    """The DVM's PID: ``--pid``, else the caller's (the process that ran acquire), else ``-``."""
    pid = s["pid"] if s["pid"] is not None else s.get("caller_pid")
    return str(pid) if pid is not None else "-"


def render(blocks: list[dict[str, Any]]) -> str:
    """The text of the listing, blocks separated by an empty line, ending with a newline (or empty)."""
    out: list[str] = []
    for block in blocks:
        if out:
            out.append("")
        out.append(_header("License", ", ".join(block["licenses"]) or "(none loaded)"))
        out.append(_header("Pool", block["pool"]))
        out.append(_header("Product", block["product_title"]))
        out.append(_header("Type", block["feature_title"]))
        out.append(_header("Users", f"{block['users']}/{block['max']}"))
        for fe in block["front_ends"]:
            if fe["kind"] == "monitor":
                out.append(f"    FrontEndId2: {fe['id']}")
                for s in fe["sessions"]:
                    out.append(f"        GUI Server {s['address']} - Process Id {_pid(s)}")
                    out.extend(_details(s, " " * 12))
                continue
            head = {"gui-server": "GUI Server", "terminal": "Terminal", "seat": "Seat"}[fe["kind"]]
            out.append(f"    {head} {fe['id']}")
            for s in fe["sessions"]:
                out.append(f"        Process Id {_pid(s)}")
                out.extend(_details(s, " " * 12))
    return "\n".join(out) + ("\n" if out else "")


def session_rows(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per session (the ``--format csv`` of ``info users``)."""
    rows = []
    for block in blocks:
        for fe in block["front_ends"]:
            for s in fe["sessions"]:
                rows.append({
                    "pool": block["pool"], "feature": block["feature"], "users": f"{block['users']}/{block['max']}",
                    "front_end": f"{fe['kind']}:{fe['id']}", "seat": fe["seat"], "session": s["session"],
                    "pid": s["pid"], "user": s["user"], "host": s["host"], "node": s["node"], "cx_mode": s["cx_mode"],
                })
    return rows


ROW_COLUMNS = ["pool", "feature", "users", "front_end", "seat", "session", "pid", "user", "host", "node", "cx_mode"]
