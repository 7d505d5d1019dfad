#!/usr/bin/env bash
# Logout hook: give the seat back. Unknown (already expired or removed) sessions are fine.
# Usage: logout.sh POOL
set -u
pool=${1:?usage: logout.sh POOL}
dir=${LICTOOLS_SESSION_DIR:-${XDG_RUNTIME_DIR:-/tmp}}
file="$dir/lictools-$pool-$(id -un).session"
lictools=${LICTOOLS_BIN:-lictools}

session=$(cat "$file" 2>/dev/null) || exit 0
"$lictools" release "$session" >/dev/null
status=$?
rm -f "$file"
# 4 = the session had already ended (lease expired, admin removed it): nothing to give back
[ "$status" -eq 4 ] && exit 0
exit "$status"
