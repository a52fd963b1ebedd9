#!/usr/bin/env bash
# Syscalls per message of a model, counted by perf's syscall tracepoints, which (unlike
# strace, which stops the server twice per call) barely slow the server down: strace
# makes a server slow enough that the next message is always waiting, and hides the
# waits a real run makes.
#
#   scripts/syscalls.sh MODEL [RATE]
#
# Each run is a fresh `echolab serve MODEL` counted over its whole life (start-up and
# shutdown included, a few dozen calls). A stream model: 1,000 pings of 64 B one at a
# time, then `echolab load` with 1 connection for 3 s, then with 50 connections for
# 2 s (closed loop, 64 B). A udp-* model: 1,000 pings, then `echolab load --transport
# udp` with 4 sockets at RATE datagrams/s (default 50000) for 2 s. Prints the machine,
# then per run each syscall made more than 10 times, and per message the server
# answered (its own count, from its stats line). Needs perf and root (or
# kernel.perf_event_paranoid <= -1); build first with `cargo build --release`.
set -euo pipefail
model=${1:?usage: scripts/syscalls.sh MODEL [RATE]}
rate=${2:-50000}
. "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'stop_server; rm -rf "$dir"' EXIT

if [[ $model == udp-* ]]; then
    transport=udp unit=datagram counter=answered
else
    transport=tcp unit=message counter=frames
fi

run() { # run NAME COMMAND...: one server, counted while COMMAND drives it
    local name=$1
    shift
    start_server "$dir/server.out" "$model"
    port=${SERVER_ADDR##*:}
    # Every process of the server's tree: perf follows what is forked after it attaches
    # (fork's children), not the workers prefork made before.
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$(tree_pids "$SERVER_PID" | paste -sd, -)" \
        -o "$dir/perf.csv" &
    local perf=$!
    sleep 0.3
    "$@" --addr "127.0.0.1:$port" > /dev/null
    stop_server
    wait "$perf" || true
    local answered
    answered=$(tail -1 "$dir/server.out" | sed -n "s/.*\"$counter\":\([0-9]*\).*/\1/p")
    [[ ${answered:-0} -gt 0 ]] || { echo "$model, $name: the stats line counts no $unit answered" >&2; exit 1; }
    echo "$model, $name: $answered ${unit}s answered"
    awk -F, -v n="$answered" -v unit="$unit" '$1 ~ /^[0-9]+$/ && $1 > 10 {
        sub("syscalls:sys_enter_", "", $3)
        printf "  %8d  %-16s %.3f per %s\n", $1, $3, $1 / n, unit
    }' "$dir/perf.csv" | sort -k1,1nr
}

machine_line
run "1,000 pings of 64 B" "$ECHOLAB" ping --transport "$transport" --size 64 --count 1000
if [[ $transport == udp ]]; then
    run "4 sockets at $rate/s, 64 B, 2 s" "$ECHOLAB" load --transport udp --conns 4 --size 64 \
        --rate "$rate" --duration 2 --warmup 0 --timeout 0.5
else
    run "1 connection, 64 B, 3 s" "$ECHOLAB" load --conns 1 --size 64 --duration 3 --warmup 0
    run "50 connections, 64 B, 2 s" "$ECHOLAB" load --conns 50 --size 64 --duration 2 --warmup 0
fi
