#!/usr/bin/env bash
# Heartbeat: run every few minutes while the client runs (cron, systemd timer, or a loop).
# Refreshes the lease; when the session is gone (exit 4) it acquires again.
# Usage: heartbeat.sh POOL [acquire options...]
set -u
pool=${1:?usage: heartbeat.sh POOL [acquire options...]}
dir=${LICTOOLS_SESSION_DIR:-${XDG_RUNTIME_DIR:-/tmp}}
file="$dir/lictools-$pool-$(id -un).session"
lictools=${LICTOOLS_BIN:-lictools}

session=$(cat "$file" 2>/dev/null) || exec "$(dirname "$0")/login.sh" "$@"
"$lictools" refresh "$session" >/dev/null
status=$?
if [ "$status" -eq 4 ]; then
    rm -f "$file"
    exec "$(dirname "$0")/login.sh" "$@"
fi
exit "$status"
