#!/usr/bin/env bash
# The main job on the embedded default state file: install lictools in .venv if needed, then
# create a pool, acquire seats for two users, list them, release them, and remove the pool.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/lictools ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q .
fi
lt=.venv/bin/lictools
set -x
$lt pool add demo --product generic --license seats=2 --option share=user --exist-ok
alice=$($lt acquire demo --feature seats --user alice)
bob=$($lt acquire demo --feature seats --user bob)
$lt acquire demo --feature seats --user alice          # alice again: shares her seat
$lt acquire demo --feature seats --user carol || echo "carol denied: exit $?"
$lt users demo
$lt info demo
$lt release "$alice" "$bob"
$lt remove --user alice --pool demo
$lt info demo
$lt pool remove demo
