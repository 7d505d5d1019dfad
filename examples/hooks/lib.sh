# Shared by the hooks (sourced, not run): where this user's session files live, and how lictools is called.
#
# A session file records one login shell's seat: "<session id> <shell pid> <shell start time>", named
# <pool>.<node>.<shell pid>.session in a folder private to the user that does not depend on
# XDG_RUNTIME_DIR, so a login shell, cron and a systemd timer all find it:
# $LICTOOLS_SESSION_DIR, else ~/.local/state/lictools/sessions (home from the password file when
# HOME is unset).

lictools_bin=${LICTOOLS_BIN:-lictools}

# lictools with its output pinned: whatever LICTOOLS_FORMAT a user exports, the hooks parse a table
lt() { "$lictools_bin" --format table "$@"; }

# the folder of this user's session files; refuses one that is not the user's own real folder
session_dir() {
    local dir=${LICTOOLS_SESSION_DIR:-}
    if [ -z "$dir" ]; then
        local home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
        [ -n "$home" ] || { echo "lictools hook: no home folder for $(id -un); set LICTOOLS_SESSION_DIR" >&2; return 1; }
        dir="$home/.local/state/lictools/sessions"
    fi
    (umask 077 && mkdir -p "$dir") || return 1
    if [ -L "$dir" ] || [ ! -O "$dir" ]; then
        echo "lictools hook: $dir is not a folder of $(id -un); refusing to use it" >&2
        return 1
    fi
    printf '%s\n' "$dir"
}

# the start time of process $1 (field 22 of /proc/PID/stat), empty when it does not run: a PID
# reused by another process has another start time
proc_start() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }   # the command name may hold spaces and parentheses: count after the last ')'
    set -- $stat
    printf '%s\n' "${20}"
}

# the session file of login shell $2 for pool $1
session_file() {
    case $1 in ""|*/*|.*) echo "lictools hook: bad pool name '$1'" >&2; return 1 ;; esac
    printf '%s/%s.%s.%s.session\n' "$dir" "$1" "$(uname -n)" "$2"
}
