#!/usr/bin/env bash
# PAM session hook for pam_exec(8): a seat for every PAM session, taken in PAM_USER's name at
# open_session and given back at close_session. Runs as root, with no HOME.
#
# /etc/pam.d/sshd (or login, or the service the client runs under), one line:
#   session required pam_exec.so quiet /usr/bin/env LICTOOLS_STATE=/var/lib/lictools/state.db LICTOOLS_BIN=/usr/local/bin/lictools /usr/local/lib/lictools/pam.sh genero-prod --client tui
#
# "required": a refused seat (exit 3) refuses the session. The session id is made from this node,
# PAM_USER and the PAM application's PID ($PPID): sshd, login, su and display managers open and
# close a PAM session in one process, so close_session finds the seat open_session took. An
# application that closes from another process leaves the seat to its lease (or to check_pids=yes,
# through --pid).
set -u
. "$(dirname "$0")/lib.sh"
pool=${1:?usage: pam.sh POOL [acquire options...]}
shift
user=${PAM_USER:?PAM_USER is not set: run me from pam_exec}
node=$(uname -n)
node=$(printf '%s' "${node:0:40}" | tr -c 'A-Za-z0-9.-' '_')
who=$(printf '%s' "${user:0:40}" | tr -c 'A-Za-z0-9._-' '_')
session="pam-$node-$who-$PPID"

case ${PAM_TYPE:-} in
    open_session)
        lt acquire "$pool" --user "$user" --session "$session" --pid "$PPID" "$@" >/dev/null
        status=$?
        [ "$status" -eq 3 ] && echo "No license seat is free for $pool; try again later." >&2
        exit "$status"
        ;;
    close_session)
        lt release "$session" >/dev/null
        status=$?
        [ "$status" -eq 4 ] && exit 0
        exit "$status"
        ;;
    *)
        exit 0   # auth, account, password: nothing to count
        ;;
esac
