#!/usr/bin/env bash
# Heartbeat: run every few minutes from cron or a systemd timer while the user may be logged in.
# Usage: heartbeat.sh POOL [the acquire options login.sh was given...]
# For every login of this user on this node it finds (the session files login.sh wrote):
#   - the login shell still runs: refresh its lease; if the session had ended (expired, removed),
#     take a seat again for that same login (same session id, the shell's PID, never cron's);
#   - the login shell is gone (killed with SIGKILL, so logout.sh never ran): give its seat back.
# It never acquires a seat for a login it does not know of.
set -u
. "$(dirname "$0")/lib.sh"
pool=${1:?usage: heartbeat.sh POOL [acquire options...]}
shift
dir=$(session_dir) || exit 1
status=0
for file in "$dir/$pool.$(uname -n)."*.session; do
    [ -s "$file" ] || continue
    read -r session shell start < "$file"
    if [ -z "$start" ] || [ "$(proc_start "$shell")" != "$start" ]; then
        lt release "$session" >/dev/null 2>&1
        rm -f "$file"
        continue
    fi
    lt refresh "$session" >/dev/null
    rc=$?
    if [ "$rc" -eq 4 ]; then
        lt acquire "$pool" --pid "$shell" --session "$session" "$@" >/dev/null
        rc=$?
    fi
    [ "$rc" -eq 0 ] || status=$rc
done
exit "$status"
