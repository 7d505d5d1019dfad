#!/usr/bin/env python3
"""Generate examples/week.csv: a working week of client starts and stops for ``lictools simulate``.

Deterministic (seeded): running it again gives the same file byte for byte. 200 users, Monday
2026-11-16 to Friday 2026-11-20 (UTC), across the three products' clients:

- **AVEVA Batch Management** (features ``mom``, ``dev``): 36 operators on 12 shop-floor nodes
  (BMC01..BMC12, three per node, early and late shifts) run one to three runtime clients at a time
  on the node; 24 engineers open Terminal Server sessions on TS01/TS02 from their PCs
  (``terminal=yes``, ``host=PCnnn``) and run development clients there, sometimes a runtime client
  too; four of them also work on the engineering node ENG01 directly.
- **Genero** (feature ``runtime``, app server GENSRV1): 40 users with a GDC in direct mode (one
  front-end monitor ``PCnnn:0`` each, two to six applications a day, some starting RUN children);
  40 users in browsers (GWC or GBC), each tab its own DVM, one to three at a time, a third of the
  tabs closed without exiting the application (``detach``: the DVM lives on until the USER_AGENT
  timeout), some applications starting RUN WITHOUT WAITING children; three DVMs hang and never stop.
- **Magic xpa** (features ``web``, ``ria``, ``threads``; projects alpha, beta, gamma): 30 Web client
  users from their PCs (one to three browser sessions), 30 RIA users on the applications ``orders``
  and ``stock``, and the projects' worker threads (short sessions every few minutes).

Stop and detach rows name only the session (no feature), as a logout hook would log them.

Usage: ``python3 examples/week.py [OUT.csv]`` (default: week.csv beside this script).
"""

from __future__ import annotations

import calendar
import csv
import os
import random
import sys
import time

COLUMNS = ["time", "event", "session", "feature", "user", "host", "node", "terminal", "app", "project", "client",
           "parent", "monitor"]
MONDAY = calendar.timegm((2026, 11, 16, 0, 0, 0))
DAYS = 5
H = 3600
M = 60


class Week:
    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.rows: list[tuple[int, int, dict[str, str]]] = []
        self.ids: dict[str, int] = {}

    def session(self, prefix: str) -> str:
        self.ids[prefix] = self.ids.get(prefix, 0) + 1
        return f"{prefix}{self.ids[prefix]:05d}"

    def add(self, t: float, event: str, session: str, **cells: str) -> None:
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(int(t))), "event": event,
               "session": session, **cells}
        self.rows.append((int(t), len(self.rows), row))

    def client(self, prefix: str, start: float, end: float | None, how: str = "stop", **cells: str) -> str:
        """One client from ``start`` to ``end`` (None: never stops); ``how`` it ends: stop or detach."""
        sid = self.session(prefix)
        self.add(start, "start", sid, **cells)
        if end is not None:
            self.add(max(end, start + 1), how, sid)
        return sid

    # ------------------------------------------------------------------ AVEVA
    def aveva(self, day: float) -> None:
        rng = self.rng
        for n in range(36):  # operators: three per node, early (06-14) or late (14-22) shift
            node = f"BMC{n % 12 + 1:02d}"
            shift = 6 * H if n // 12 != 1 else 14 * H
            if n // 12 == 2 and rng.random() < 0.5:
                shift = 6 * H  # the third operator of a node helps on either shift
            t = day + shift + rng.uniform(0, 20 * M)
            end_shift = day + shift + 8 * H - rng.uniform(0, 15 * M)
            while t < end_shift - 30 * M:
                for _ in range(rng.randint(1, 3)):  # Batch Management, MES, Skelta clients at once
                    start = t + rng.uniform(0, 5 * M)
                    stop = min(end_shift, start + rng.uniform(40 * M, 4 * H))
                    self.client("av", start, stop, feature="mom", user=f"u{n + 1:03d}", node=node,
                                app=rng.choice(["BatchManagement", "MES", "SkeltaBPM"]))
                t += rng.uniform(1 * H, 3 * H)
        for n in range(36, 60):  # engineers: Terminal Server sessions from their PCs
            user, pc = f"u{n + 1:03d}", f"PC{n + 1:03d}"
            t = day + 8 * H + rng.gauss(0, 30 * M)
            end_day = day + 17 * H + rng.gauss(0, 45 * M)
            while t < end_day - 20 * M:
                server = rng.choice(["TS01", "TS02"])
                stop = min(end_day, t + rng.uniform(30 * M, 3 * H))
                for _ in range(rng.randint(1, 3)):
                    start = t + rng.uniform(0, 10 * M)
                    self.client("av", start, stop - rng.uniform(0, 10 * M), feature="dev", user=user, host=pc,
                                node=server, terminal="yes", app=rng.choice(["IDE", "RecipeEditor", "AutomationServer"]))
                if rng.random() < 0.3:
                    self.client("av", t + 5 * M, stop, feature="mom", user=user, host=pc, node=server,
                                terminal="yes", app="BatchManagement")
                if n < 40 and rng.random() < 0.4:  # four of them also work on the engineering node
                    self.client("av", t, stop, feature="dev", user=user, node="ENG01", app="IDE")
                t = stop + rng.uniform(5 * M, 60 * M)

    # ------------------------------------------------------------------ Genero
    def genero(self, day: float, hangs: set[int]) -> None:
        rng = self.rng
        base = {"feature": "runtime", "node": "GENSRV1"}
        for n in range(60, 100):  # GDC in direct mode: one monitor per PC
            user, pc = f"u{n + 1:03d}", f"PC{n + 1:03d}"
            monitor = f"{pc}:0"
            t = day + 8 * H + rng.gauss(0, 40 * M)
            for _ in range(rng.randint(2, 6)):
                start = t + rng.uniform(0, 30 * M)
                stop = start + rng.uniform(10 * M, 2 * H)
                root = self.client("ge", start, stop, user=user, host=pc, client="gdc", monitor=monitor,
                                   app=rng.choice(["orders", "stock", "invoices", "customers"]), **base)
                if rng.random() < 0.4:  # RUN: the child runs while the parent waits
                    child_start = start + rng.uniform(1 * M, 5 * M)
                    self.client("ge", child_start, min(stop - 1, child_start + rng.uniform(2 * M, 20 * M)),
                                user=user, host=pc, client="gdc", monitor=monitor, app="report", parent=root, **base)
                t = start + rng.uniform(20 * M, 2 * H)
        for n in range(100, 140):  # browsers: each tab its own DVM
            user, pc = f"u{n + 1:03d}", f"PC{n + 1:03d}"
            kind = "gwc" if n % 2 else "gbc"
            t = day + 8 * H + rng.gauss(0, 40 * M)
            end_day = day + 17 * H + rng.gauss(0, 40 * M)
            while t < end_day:
                for _ in range(rng.randint(1, 3)):
                    start = t + rng.uniform(0, 10 * M)
                    stop = start + rng.uniform(5 * M, 90 * M)
                    hang = (day - MONDAY) // 86400 == 2 and n in hangs  # on Wednesday, once
                    if hang:
                        hangs.discard(n)
                    how = "detach" if rng.random() < 1 / 3 else "stop"
                    root = self.client("ge", start, None if hang else stop, how=how, user=user, host=pc, client=kind,
                                       app=rng.choice(["orders", "stock", "portal"]), **base)
                    if rng.random() < 0.15:  # RUN WITHOUT WAITING: may outlive the tab that started it
                        child_start = start + rng.uniform(1 * M, 4 * M)
                        self.client("ge", child_start, child_start + rng.uniform(3 * M, 40 * M), user=user, host=pc,
                                    client=kind, app="batch-print", parent=root, **base)
                t += rng.uniform(30 * M, 2 * H)

    # ------------------------------------------------------------------ Magic xpa
    def magic(self, day: float) -> None:
        rng = self.rng
        projects = ["alpha", "beta", "gamma"]
        for n in range(140, 170):  # Web clients from their PCs
            user, pc, project = f"u{n + 1:03d}", f"PC{n + 1:03d}", projects[n % 3]
            t = day + 8 * H + rng.gauss(0, 40 * M)
            for _ in range(rng.randint(1, 4)):
                for _ in range(rng.randint(1, 3)):
                    start = t + rng.uniform(0, 15 * M)
                    self.client("mx", start, start + rng.uniform(20 * M, 3 * H), feature="web", user=user, host=pc,
                                app="portal", project=project)
                t += rng.uniform(1 * H, 3 * H)
        for n in range(170, 200):  # RIA clients
            user, pc, project = f"u{n + 1:03d}", f"PC{n + 1:03d}", projects[n % 3]
            t = day + 8 * H + rng.gauss(0, 40 * M)
            for _ in range(rng.randint(1, 4)):
                for app in rng.sample(["orders", "stock"], rng.randint(1, 2)):
                    start = t + rng.uniform(0, 10 * M)
                    self.client("mx", start, start + rng.uniform(15 * M, 2 * H), how=rng.choice(["stop", "stop", "detach"]),
                                feature="ria", user=user, host=pc, app=app, project=project)
                t += rng.uniform(1 * H, 3 * H)
        t = day + 7 * H  # worker threads: short sessions every few minutes, per project
        while t < day + 19 * H:
            for project in projects:
                for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                    start = t + rng.uniform(0, 10 * M)
                    self.client("mx", start, start + rng.uniform(20, 20 * M), feature="threads", user=f"svc-{project}",
                                host="MXSRV1", node="MXSRV1", project=project)
            t += 10 * M

    def build(self) -> list[dict[str, str]]:
        hangs = {103, 117, 131}  # three browser users whose DVM hangs on Wednesday: it never stops
        for d in range(DAYS):
            day = MONDAY + d * 86400
            self.aveva(day)
            self.genero(day, hangs)
            self.magic(day)
        self.rows.sort(key=lambda r: (r[0], r[1]))
        return [row for _, _, row in self.rows]


def write(path: str) -> int:
    rows = Week().build()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "week.csv")
    print(f"{out}: {write(out)} rows", file=sys.stderr)
