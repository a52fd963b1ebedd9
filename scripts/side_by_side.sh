#!/usr/bin/env bash
# `echolab load` next to the tcp-echo-benchmark crate, against the same server, same load
# (closed loop, depth 1, CONNS x SIZE, DURATION seconds), raw protocol (the other tool
# does not speak echolab's framing). The two clients alternate (ABBA order, so a drift
# in the machine's background load does not favour either), REPEATS runs each, per
# server model; each client's CPU (user+sys) comes from /usr/bin/time.
#
# Knobs: MODELS, CONNS, SIZE, DURATION, REPEATS, LOAD_ARGS (extra `echolab load` flags).
# A MODELS entry with a slash is a reference server taking a PORT (tools/anchors):
#   MODELS=/tmp/anchors-bin/epoll_et scripts/side_by_side.sh
# Needs tcp-echo-benchmark on PATH or in $TEB (kept out of this repository):
#   cargo install tcp-echo-benchmark --root /tmp/tools && export TEB=/tmp/tools/bin/tcp-echo-benchmark
set -euo pipefail

MODELS=${MODELS:-"mio threads"}
CONNS=${CONNS:-50}
SIZE=${SIZE:-512}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
TEB=${TEB:-tcp-echo-benchmark}
# Extra `echolab load` flags, e.g. LOAD_ARGS="--threads 2".
LOAD_ARGS=${LOAD_ARGS:-}
# WARMUP=500ms: echolab load warms up first and its figures (responses, and its own CPU
# from --json) cover only the measured window — the warm-up excluded, as issue 16 takes
# the figure; tcp-echo-benchmark has no warm-up and is timed whole either way.
WARMUP=${WARMUP:-0}

cd "$(dirname "$0")/.."
command -v "$TEB" >/dev/null || { echo "tcp-echo-benchmark not found; set TEB" >&2; exit 1; }
cargo build --release --quiet --bin echolab
. scripts/lib.sh
WORK=$(mktemp -d)
trap 'stop_server; rm -rf "$WORK"' EXIT

machine_line
echo "load: $CONNS conns x $SIZE B, depth 1, ${DURATION} s, raw protocol, $REPEATS runs per tool, echolab load --warmup $WARMUP${LOAD_ARGS:+; echolab load $LOAD_ARGS}"

# Prints "responses cpu_seconds" for one run of one client.
run_client() {
    local tool=$1 addr=$2 out=$WORK/out time=$WORK/time responses
    case $tool in
        tcp-echo-benchmark)
            /usr/bin/time -f '%U %S' -o "$time" \
                "$TEB" -a "$addr" -l "$SIZE" -c "$CONNS" -t "$DURATION" >"$out"
            # "Total: N requests, M responses"
            responses=$(sed -n 's/^Total: .* \([0-9]*\) responses$/\1/p' "$out") ;;
        echolab)
            /usr/bin/time -f '%U %S' -o "$time" \
                "$ECHOLAB" load --addr "$addr" --protocol raw --conns "$CONNS" --size "$SIZE" \
                --duration "$DURATION" --warmup "$WARMUP" --json $LOAD_ARGS >"$out"
            grep -q '"errors":{[^}]*[1-9]' "$out" && { echo "echolab load: errors: $(cat "$out")" >&2; exit 1; }
            responses=$(grep -o '"responses":[0-9]*' "$out" | cut -d: -f2)
            if [[ $WARMUP != 0 ]]; then
                python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["client_cpu_user_s"], d["client_cpu_sys_s"])' "$out" >"$time"
            fi ;;
    esac
    echo "$responses $(awk '{ print $1 + $2 }' "$time")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '\n%-8s %-20s %4s %12s %14s %18s\n' model tool run responses/s "client CPU-s" "CPU-s per 1M resp"
for model in $MODELS; do
    if [[ $model == */* ]]; then
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$model" "$port" >"$WORK/server" &
        SERVER_PID=$!
        addr=127.0.0.1:$port
        for _ in $(seq 50); do grep -q 'listening' "$WORK/server" && break; sleep 0.1; done
        model=$(basename "$model")
    else
        start_server "$WORK/server" "$model" --protocol raw
        addr=$SERVER_ADDR
    fi
    [[ -n $addr ]] || { echo "server $model did not start" >&2; exit 1; }
    : >"$WORK/rows"
    for run in $(seq "$REPEATS"); do
        order="tcp-echo-benchmark echolab"
        if ((run % 2 == 0)); then order="echolab tcp-echo-benchmark"; fi
        for tool in $order; do
            run_client "$tool" "$addr" >"$WORK/result"
            read -r responses cpu <"$WORK/result"
            awk -v m="$model" -v t="$tool" -v r="$run" -v n="$responses" -v c="$cpu" -v d="$DURATION" \
                'BEGIN { printf "%-8s %-20s %4d %12.0f %14.2f %18.2f\n", m, t, r, n / d, c, c / n * 1e6 }' |
                tee -a "$WORK/rows"
        done
    done
    stop_server
    for tool in tcp-echo-benchmark echolab; do
        rps=$(awk -v t="$tool" '$2 == t { print $4 }' "$WORK/rows" | median)
        cpu=$(awk -v t="$tool" '$2 == t { print $6 }' "$WORK/rows" | median)
        echo "$model $tool $rps $cpu" >>"$WORK/medians"
    done
done

printf '\nmedians\n%-8s %-20s %12s %18s %14s\n' model tool responses/s "CPU-s per 1M resp" "CPU vs teb"
awk '{ if ($2 == "tcp-echo-benchmark") base[$1] = $4;
       printf "%-8s %-20s %12.0f %18.2f %13.0f%%\n", $1, $2, $3, $4, 100 * $4 / base[$1] }' "$WORK/medians"
