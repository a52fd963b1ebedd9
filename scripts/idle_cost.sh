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
echolab=${ECHOLAB:-target/release/echolab}
ulimit -n $((conns + 256)) 2>/dev/null || true
out=$(mktemp)
# shellcheck disable=SC2086
"$echolab" serve "$model" --addr 127.0.0.1:0 --idle-timeout 0 ${SERVE_ARGS:-} > "$out" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
addr=$(head -1 "$out" | awk '{ print $3 }')

# "cpu_ns switches" summed over every thread of every process in the server's tree
sample() {
    python3 - "$server" <<'PY'
import os, sys
def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids += open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            pass
    return kids
ticks = switches = 0
todo = [sys.argv[1]]
while todo:
    pid = todo.pop()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        continue
    for task in tasks:
        try:
            # schedstat's first field: nanoseconds on a CPU, exact (stat's clock ticks
            # round each of a thousand threads' few microseconds down to zero)
            ticks += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
            for line in open(f"/proc/{pid}/task/{task}/status"):
                if line.startswith("voluntary_ctxt_switches"):
                    switches += int(line.split()[1])
        except OSError:
            pass
    todo += children(pid)
print(ticks, switches)
PY
}

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
