#!/usr/bin/env bash
# Login hook: take a seat for this login before the client starts; refuse the login when denied.
# Usage: login.sh POOL [acquire options...]   e.g. login.sh genero-prod --client gdc --monitor "$FGLSERVER"
# Run it from the login shell (~/.bash_profile): the seat belongs to that shell ($PPID), so two
# logins of one user hold two sessions, and each logout.sh frees its own. Running it again in the
# same shell (a retried login) reuses the session: never a second seat.
set -u
. "$(dirname "$0")/lib.sh"
pool=${1:?usage: login.sh POOL [acquire options...]}
shift
shell=$PPID
dir=$(session_dir) || exit 1
file=$(session_file "$pool" "$shell") || exit 1
start=$(proc_start "$shell")

args=(acquire "$pool" --pid "$shell" "$@")
if [ -s "$file" ]; then
    read -r session old_shell old_start < "$file"
    if [ "$old_start" = "$start" ]; then
        args+=(--session "$session")               # this shell logged in before: the same seat
    else
        lt release "$session" >/dev/null 2>&1      # left by an earlier shell with this PID
    fi
fi

session=$(lt "${args[@]}")
status=$?
if [ "$status" -eq 0 ]; then
    printf '%s %s %s\n' "$session" "$shell" "$start" > "$file"
    exit 0
fi
case $status in
    3) echo "No license seat is free for $pool; try again later." >&2 ;;
    5) echo "The license state is busy; try again in a moment." >&2 ;;
    *) echo "License check failed (lictools exit $status)." >&2 ;;
esac
exit "$status"
