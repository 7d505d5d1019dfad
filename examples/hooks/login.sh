#!/usr/bin/env bash
# Login hook: take a seat for this user before the client starts; refuse the login when denied.
# Usage: login.sh POOL [extra acquire options...]     e.g. login.sh genero-prod --client gdc --monitor "$FGLSERVER"
# The session id is kept in $LICTOOLS_SESSION_DIR (default: $XDG_RUNTIME_DIR or /tmp) for logout.sh.
set -u
pool=${1:?usage: login.sh POOL [acquire options...]}
shift
dir=${LICTOOLS_SESSION_DIR:-${XDG_RUNTIME_DIR:-/tmp}}
file="$dir/lictools-$pool-$(id -un).session"
lictools=${LICTOOLS_BIN:-lictools}

# A retried login reuses its session id, so it never takes a second seat.
session=$(cat "$file" 2>/dev/null || true)
args=(acquire "$pool" --pid "$PPID" "$@")
[ -n "$session" ] && args+=(--session "$session")

session=$("$lictools" "${args[@]}")
status=$?
if [ "$status" -eq 0 ]; then
    printf '%s\n' "$session" > "$file"
    exit 0
fi
case $status in
    3) echo "No license seat is free for $pool; try again later." >&2 ;;
    5) echo "The license state is busy; try again in a moment." >&2 ;;
    *) echo "License check failed (lictools exit $status)." >&2 ;;
esac
exit "$status"
