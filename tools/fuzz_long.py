#!/usr/bin/env python3
"""The long random search of the CLI fuzzing, outside CI (tests/test_fuzz_cli.py runs a fixed sample).

    .venv/bin/python tools/fuzz_long.py                       # 50,000 inputs, new random ones each run
    .venv/bin/python tools/fuzz_long.py --examples 200000 --record

Prints every wrong answer found (exit 1 when there is one). ``--record`` appends the smallest
input of each kind to tests/fuzz_regressions.json, which CI replays on every commit
(test_fuzz_regressions): a finding becomes a regression case, not a flaky CI run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_fuzz_cli import REGRESSIONS, Harness, fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50_000, help="inputs to try (default 50,000)")
    parser.add_argument("--seed", type=int, default=None, help="replay one search (default: a new random one)")
    parser.add_argument("--record", action="store_true", help="append what is found to tests/fuzz_regressions.json")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lictools-fuzz-") as tmp, Harness(Path(tmp)) as harness:
        try:
            fuzz(harness, args.examples, args.seed)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
    print(harness.report(time.monotonic() - started))
    if args.record and harness.failures:
        cases = json.loads(REGRESSIONS.read_text(encoding="utf-8"))
        for key, (argv, env, _, layout) in harness.failures.items():
            cases.append({"found": key[:120], "argv": argv, "env": env, "layout": layout})
        REGRESSIONS.write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
        print(f"recorded {len(harness.failures)} case(s) in {REGRESSIONS}")
    return 1 if harness.failures else 0


if __name__ == "__main__":
    sys.exit(main())
