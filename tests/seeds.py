"""One seed per commit for every randomised test (CLI fuzzing, property machines, crash harness).

CI must fail on the commit that caused a failure, not on a later one that drew unluckier inputs:
each commit explores its own inputs, the same ones on every run of that commit. The seed is
printed with every failure; ``LICTOOLS_TEST_SEED=N`` replays it. The long random search runs
outside CI (tools/fuzz_long.py), and what it finds becomes a regression case
(tests/fuzz_regressions.json).
"""

from __future__ import annotations

import os
import subprocess
import zlib
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def commit_seed() -> int:
    """``LICTOOLS_TEST_SEED``, else a number derived from the checked-out commit (0 outside git)."""
    given = os.environ.get("LICTOOLS_TEST_SEED")
    if given:
        return int(given)
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return zlib.crc32(head.encode()) if head else 0


def how_to_replay() -> str:
    return f"seed {commit_seed()} (replay with LICTOOLS_TEST_SEED={commit_seed()})"
