#!/usr/bin/env bash
# Logout hook: give back the seat of this login shell ($PPID). Run it from ~/.bash_logout, or from
# the login shell's EXIT trap:  trap '/path/to/logout.sh genero-prod' EXIT
# Usage: logout.sh POOL.  A session that already ended (lease expired, removed) is fine.
set -u
. "$(dirname "$0")/lib.sh"
pool=${1:?usage: logout.sh POOL}
dir=$(session_dir) || exit 1
file=$(session_file "$pool" "$PPID") || exit 1
[ -s "$file" ] || exit 0
read -r session _ < "$file"
lt release "$session" >/dev/null
status=$?
rm -f "$file"
# 4 = the session had already ended: nothing to give back
[ "$status" -eq 4 ] && exit 0
exit "$status"
