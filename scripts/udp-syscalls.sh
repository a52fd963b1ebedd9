#!/usr/bin/env bash
# Syscalls per datagram of a UDP model, counted by perf's syscall tracepoints, which
# (unlike strace, which stops the server twice per call) barely slow the server down:
# strace makes a server slow enough that the next datagram is always waiting, and
# hides the waits a real run makes.
#
#   scripts/udp-syscalls.sh MODEL [RATE]
#
# Two runs, each a fresh `echolab serve MODEL` counted over its whole life (start-up
# and shutdown included, a few dozen calls): 1,000 pings of 64 B one at a time, then
# `echolab load --transport udp` with 4 sockets at RATE datagrams/s (default 50000) for
# 2 s. Prints each syscall made more than 10 times, and per datagram received (the
# server's own count, from its stats line). Needs perf and root (or
# kernel.perf_event_paranoid <= -1); build first with `cargo build --release`.
set -euo pipefail
model=${1:?usage: scripts/udp-syscalls.sh MODEL [RATE]}
rate=${2:-50000}
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d)
trap 'stop_server; rm -rf "$dir"' EXIT

run() { # run NAME COMMAND...: one server, counted while COMMAND drives it
    local name=$1
    shift
    start_server "$dir/server.out" "$model"
    port=${SERVER_ADDR##*:}
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$SERVER_PID" -o "$dir/perf.csv" &
    local perf=$!
    sleep 0.3
    "$@" --addr "127.0.0.1:$port" > /dev/null
    stop_server
    wait "$perf" || true
    local received
    received=$(tail -1 "$dir/server.out" | sed -n 's/.*"received":\([0-9]*\).*/\1/p')
    echo "$model, $name: $received datagrams received"
    awk -F, -v n="$received" '$1 ~ /^[0-9]+$/ && $1 > 10 {
        sub("syscalls:sys_enter_", "", $3)
        printf "  %8d  %-14s %.2f per datagram\n", $1, $3, $1 / n
    }' "$dir/perf.csv" | sort -k1,1nr
}

run "1,000 pings of 64 B" "$ECHOLAB" ping --transport udp --size 64 --count 1000
run "4 sockets at $rate/s, 64 B, 2 s" "$ECHOLAB" load --transport udp --conns 4 --size 64 \
    --rate "$rate" --duration 2 --warmup 0 --timeout 0.5
