"""A machine for the engine's host seam (lictools.host.Host) that tests set up by hand."""

from __future__ import annotations


class FakeHost:
    """Runs the processes in ``alive`` (PID -> start time) on ``node``; ``account`` is who really asks,
    ``login`` the name it claims; session ids count up."""

    def __init__(self, node: str = "n1", alive: dict[int, int] | None = None, account: tuple[int, str] = (0, "root"),
                 login: str = "u") -> None:
        self.node_name = node
        self.alive = dict(alive or {})
        self.real = account
        self.claimed = login
        self.ids = 0

    def login_user(self) -> str:
        return self.claimed

    def account(self) -> tuple[int, str]:
        return self.real

    def node(self) -> str:
        return self.node_name

    def pid_alive(self, pid: int) -> bool:
        return pid in self.alive

    def process_start(self, pid: int) -> int | None:
        return self.alive.get(pid)

    def new_id(self) -> str:
        self.ids += 1
        return f"id{self.ids}"
