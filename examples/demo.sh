#!/usr/bin/env bash
# The main job on the embedded default store (an SQLite state file): install lictools into .venv if
# needed, then create a pool with 2 seats shared per user, acquire for alice (twice: one seat) and
# bob, show carol denied (exit 3), list the seats, release them, and remove the pool.
# It works on a state file of its own in a new temporary folder, and ignores every LICTOOLS_*
# variable you may have exported, so it never touches a real state. --keep keeps that folder.
set -eu
cd "$(dirname "$0")/.."
keep=no
[ "${1:-}" = "--keep" ] && keep=yes
if [ ! -x .venv/bin/lictools ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q .
fi
for var in $(compgen -e); do
    case $var in LICTOOLS_*) unset "$var" ;; esac
done
folder=$(mktemp -d "${TMPDIR:-/tmp}/lictools-demo.XXXXXX")
[ "$keep" = yes ] || trap 'rm -rf "$folder"' EXIT
export LICTOOLS_STATE="$folder/state.db"
echo "demo state: $LICTOOLS_STATE"
lt=.venv/bin/lictools
set -x
$lt pool add demo --product generic --license seats=2 --option share=user
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
