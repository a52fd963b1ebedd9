#!/usr/bin/env bash
# What a server costs while nobody talks: start MODEL, open CONNS idle connections,
# let it settle, then count over SECS seconds the server tree's CPU time and its
# voluntary context switches (each one a wake-up: a thread or process that slept and
# was woken, by data, a timer or a timeout).
#
# usage: scripts/idle_cost.sh MODEL [CONNS] [SECS]
# env: ECHOLAB (default target/release/echolab), SERVE_ARGS (extra serve flags)
set -euo pipefail
model=$1 conns=${2:-1000} secs=${3:-5}
. "$(dirname "$0")/lib.sh"
ulimit -n $((conns + 256)) 2>/dev/null || true
out=$(mktemp)
trap 'stop_server; rm -f "$out" "$out.err"' EXIT
# shellcheck disable=SC2086
start_server "$out" "$model" --idle-timeout 0 ${SERVE_ARGS:-}
addr=$SERVER_ADDR

# "cpu_ns switches" summed over every thread of every process in the server's tree
# (schedstat's nanoseconds are exact: stat's clock ticks would round each of a
# thousand threads' few microseconds down to zero)
sample() { echo "$(tree_ns "$SERVER_PID") $(tree_wakeups "$SERVER_PID")"; }

python3 - "$addr" "$conns" "$secs" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(int(sys.argv[2]))]
time.sleep(float(sys.argv[3]) + 3)
PY
holder=$!
sleep 2
read -r t0 s0 < <(sample)
sleep "$secs"
read -r t1 s1 < <(sample)
wait $holder 2>/dev/null || true
echo "$model: $conns idle connections, ${secs} s: CPU $(echo "scale=3; ($t1 - $t0) / 10000000 / $secs" | bc)% of a core, $(( (s1 - s0) / secs )) wake-ups/s"
