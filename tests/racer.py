"""An adversary in a shared state folder: swaps names for symlinks the instant inotify reports them.

Run by tests/test_security.py as a member of the state's group (never by lictools)::

    python racer.py FOLDER created REGEX VICTIM   # a new name matching REGEX becomes a symlink to VICTIM
    python racer.py FOLDER closed NAME#N VICTIM   # NAME, right after its N-th close, becomes that symlink

It prints READY once watching and ``SWAPPED name`` for every swap, until it is killed.
inotify is reached through ctypes (the stdlib has no binding); Linux only.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys

IN_CLOSE_NOWRITE = 0x10
IN_CREATE = 0x100


def main(folder: str, mode: str, pattern: str, victim: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    mask = IN_CREATE if mode == "created" else IN_CLOSE_NOWRITE
    if fd < 0 or libc.inotify_add_watch(fd, folder.encode(), mask) < 0:
        raise SystemExit(f"inotify: {os.strerror(ctypes.get_errno())}")
    wanted = re.compile(pattern) if mode == "created" else None
    name_closed, _, nth = pattern.partition("#")
    closes = 0
    swapped: set[str] = set()  # its own symlinks raise IN_CREATE too: swap each name once
    print("READY", flush=True)
    while True:
        data = os.read(fd, 1 << 16)
        offset = 0
        while offset < len(data):
            _, event_mask, _, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode(errors="replace")
            offset += 16 + length
            if wanted is None and name == name_closed and event_mask & mask:
                closes += 1
                if closes != int(nth or 1):
                    continue
            if name in swapped:
                continue
            if (wanted.fullmatch(name) if wanted else name == name_closed) and event_mask & mask:
                swapped.add(name)
                path = os.path.join(folder, name)
                link = os.path.join(folder, f".racer-{os.getpid()}")
                try:  # a symlink renamed over the name: it is never missing, not even for an instant
                    os.symlink(victim, link)
                    os.rename(link, path)
                    print(f"SWAPPED {name}", flush=True)
                except OSError:
                    pass


if __name__ == "__main__":
    main(*sys.argv[1:5])
