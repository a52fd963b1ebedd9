# What the measurement scripts share: starting an `echolab serve` and stopping it, and
# reading a server's process tree from /proc. Sourced, never run:
#
#   . "$(dirname "$0")/lib.sh"
#
# ECHOLAB names the binary (default target/release/echolab, under CARGO_TARGET_DIR).
# shellcheck shell=bash

ECHOLAB=${ECHOLAB:-${CARGO_TARGET_DIR:-target}/release/echolab}
SERVER_PID=
SERVER_ADDR=

# start_server OUT MODEL [FLAGS...]: starts `$ECHOLAB serve MODEL --addr 127.0.0.1:0
# FLAGS...` in the background, its stdout in OUT (its stats line lands there at exit)
# and its stderr in OUT.err, and waits up to 20 s for its `listening on` line. Sets
# SERVER_PID and SERVER_ADDR (HOST:PORT); fails, saying why, if the line never comes.
start_server() {
    local out=$1 model=$2
    shift 2
    "$ECHOLAB" serve "$model" --addr 127.0.0.1:0 "$@" >"$out" 2>"$out.err" &
    SERVER_PID=$!
    SERVER_ADDR=
    for _ in $(seq 200); do
        SERVER_ADDR=$(sed -n 's/^listening on //p' "$out" 2>/dev/null)
        [[ -n $SERVER_ADDR ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "echolab serve $model did not start:" >&2
    cat "$out.err" >&2
    return 1
}

# stop_server: SIGTERM to the server start_server began, up to 10 s for it to drain and
# exit (fork and prefork reap their children first), then SIGKILL. Does nothing when no
# server runs, so it is safe in an EXIT trap.
stop_server() {
    [[ -n ${SERVER_PID:-} ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# tree_pids PID: PID and every descendant, from one snapshot of the process table (a
# fork server's thousand children are listed in one pass).
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (pid in parent) {
                p = pid
                while (p != root && p in parent && p != parent[p]) p = parent[p]
                if (p == root) print pid
            }
        }'
}

# tree_ticks PID: utime + stime of PID and every live descendant, in clock ticks
# (getconf CLK_TCK per second). A kernel with tick-based accounting samples these;
# tree_ns is exact.
tree_ticks() {
    local files=() pid
    for pid in $(tree_pids "$1"); do files+=("/proc/$pid/stat"); done
    # The fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    cat "${files[@]}" 2>/dev/null | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

# tree_ns PID: time on a CPU, in nanoseconds, of every live thread of PID and of every
# descendant (the first field of /proc/PID/task/TID/schedstat).
tree_ns() {
    local files=() pid
    for pid in $(tree_pids "$1"); do files+=(/proc/"$pid"/task/*/schedstat); done
    cat "${files[@]}" 2>/dev/null | awk '{ t += $1 } END { printf "%.0f\n", t }'
}

# tree_wakeups PID: voluntary context switches of every live thread of PID and of every
# descendant: each one a wake-up after sleeping (on data, a timer, a timeout).
tree_wakeups() {
    local files=() pid
    for pid in $(tree_pids "$1"); do files+=(/proc/"$pid"/task/*/status); done
    cat "${files[@]}" 2>/dev/null | awk '/^voluntary_ctxt_switches:/ { t += $2 } END { print t + 0 }'
}

# machine_line: the CPU, CPU count, kernel, commit (marked when the tree has changes),
# date and load average, on one line: every log a script writes starts with it, so a
# figure quoted from the log carries where and when it was made.
machine_line() {
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs," \
        "kernel $(uname -r), commit $(git describe --always --dirty 2>/dev/null || echo unknown)," \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
