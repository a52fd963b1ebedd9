#!/usr/bin/env bash
# Memory a server spends per idle connection, measured from /proc.
#
#   scripts/conn-memory.sh MODEL [CONNS]      (default CONNS: 1000)
#
# Starts `echolab serve MODEL` on 127.0.0.1:0, sums Pss (from /proc/PID/smaps_rollup)
# and VmRSS over the server's process tree, then holds CONNS connections open with
# `echolab load --rate` (each connection sends one 64 B message every 10 s, so it is idle
# almost all the time) and sums again. Pss splits shared pages between the processes
# that map them, so forked children are not double-counted the way VmRSS counts them.
# Kernel socket memory is not in these figures (it is the same for every model).
# Needs the release binary (`cargo build --release`) and `ulimit -n` above CONNS + 100.
set -euo pipefail

model=${1:?usage: scripts/conn-memory.sh MODEL [CONNS]}
conns=${2:-1000}
. "$(dirname "$0")/lib.sh"
[[ -x $ECHOLAB ]] || { echo "no $ECHOLAB: run cargo build --release (or set ECHOLAB)" >&2; exit 1; }

work=$(mktemp -d)
# The load runs from a copy of the binary: a client mapping the very same file would
# share its pages with the server and halve the server's Pss for them mid-measurement.
cp "$ECHOLAB" "$work/echolab-load"
load=
cleanup() {
    # No errexit here: `wait` reports the killed load's status, and the server must still
    # be stopped.
    set +e
    if [[ -n $load ]]; then kill "$load" 2>/dev/null; wait "$load" 2>/dev/null; fi
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
# --idle-timeout 0: the connections must stay open for the whole measurement.
start_server "$work/server.out" "$model" --idle-timeout 0
addr=$SERVER_ADDR

# Prints: processes threads pss_kb rss_kb (one pass over /proc, so 1,000 children are
# summed in well under a second, while every one of them is still serving).
measure() {
    local files=() pid
    for pid in $(tree_pids "$SERVER_PID"); do
        files+=("/proc/$pid/smaps_rollup" "/proc/$pid/status")
    done
    awk '
        FILENAME ~ /smaps_rollup/ && /^Pss:/ { pss += $2; procs++ }
        FILENAME ~ /status/ && /^VmRSS:/ { rss += $2 }
        FILENAME ~ /status/ && /^Threads:/ { threads += $2 }
        END { print procs + 0, threads + 0, pss + 0, rss + 0 }
    ' "${files[@]}" 2>/dev/null
}

sleep 1
read -r p0 t0 pss0 rss0 < <(measure)

# One message per connection every 10 s; --timeout 60 keeps connections that a model
# does not serve yet (iterative, pool) open instead of timing them out.
"$work/echolab-load" load --addr "$addr" --conns "$conns" --size 64 --rate "$((conns / 10))" \
    --warmup 1 --duration 30 --timeout 60 >/dev/null &
load=$!
sleep 12   # every connection is open and has had its first message due
read -r p1 t1 pss1 rss1 < <(measure)
established=$(ss -Htn state established "( sport = :${addr##*:} )" | wc -l)

per_conn() { awk -v a="$1" -v b="$2" -v n="$conns" 'BEGIN { printf "%.1f", (b - a) / n }'; }
echo "model=$model conns=$conns established_server_side=$established"
echo "before: processes=$p0 threads=$t0 pss_kb=$pss0 rss_kb=$rss0"
echo "during: processes=$p1 threads=$t1 pss_kb=$pss1 rss_kb=$rss1"
echo "per connection: pss_kb=$(per_conn "$pss0" "$pss1") rss_kb=$(per_conn "$rss0" "$rss1")"
