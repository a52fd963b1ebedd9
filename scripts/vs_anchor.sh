#!/usr/bin/env bash
# Responses per server CPU-second of an echolab model against a C reference server, as
# tools/anchors/README.md defines the figure: tcp-echo-benchmark drives each server
# in turn, interleaved (the order alternates every pair), and the server's own CPU
# (utime + stime of its whole process tree, /proc/PID/stat) is read just before and
# after each run; the ratio per pair, and its median. Both servers start once and serve
# every pair. Beside the anchors' figure it prints the same ratio from
# /proc/PID/task/*/schedstat (exact nanoseconds: a kernel with tick-based accounting,
# CONFIG_TICK_CPU_ACCOUNTING, samples utime/stime).
#
# usage: scripts/vs_anchor.sh MODEL ANCHOR [CONNS] [LEN] [PAIRS] [SECS]
#   MODEL  an echolab model (served with --protocol raw)
#   ANCHOR a reference server built by tools/anchors/build.sh: epoll_et,
#          uring_echo or uring_multishot (or a path to any server taking a PORT)
# env: FIGURE=p50 measures latency instead: `echolab load --protocol raw` (closed loop,
#      depth 1) against each server in turn, and the ratio of the p50 round trips
#      (model / reference: below 1 is faster), e.g. `FIGURE=p50 $0 mio epoll_et 1 64 5 4`;
#      ECHOLAB (default target/release/echolab), ANCH (default /tmp/anchors-bin),
#      SERVE_ARGS (extra `echolab serve` flags, e.g. "--workers 2"), TEB
#      (tcp-echo-benchmark, default $ANCH/tcp-echo-benchmark)
set -euo pipefail

model=${1:?usage: $0 MODEL ANCHOR [CONNS] [LEN] [PAIRS] [SECS]}
anchor=${2:?usage: $0 MODEL ANCHOR [CONNS] [LEN] [PAIRS] [SECS]}
CONNS=${3:-50}
LEN=${4:-64}
PAIRS=${5:-3}
SECS=${6:-4}
ANCH=${ANCH:-/tmp/anchors-bin}
TEB=${TEB:-$ANCH/tcp-echo-benchmark}
. "$(dirname "$0")/lib.sh"
reference=$anchor
[[ $reference == */* ]] || reference=$ANCH/$anchor
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ -x "$TEB" ] || { echo "tcp-echo-benchmark not found at $TEB (run the anchors' build.sh, or set TEB)" >&2; exit 1; }
[ -x "$reference" ] || { echo "no reference server at $reference" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_server
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$reference" "$PORT" 2>"$tmp/reference.err" &
pids+=($!)
ref_pid=$!
# shellcheck disable=SC2086
start_server "$tmp/model.out" "$model" --protocol raw ${SERVE_ARGS:-}
model_pid=$SERVER_PID
model_addr=$SERVER_ADDR
sleep 0.3
kill -0 "$ref_pid" 2>/dev/null || { echo "the reference server exited:" >&2; cat "$tmp/reference.err" >&2; exit 1; }
hz=$(getconf CLK_TCK)

# One run: prints "responses cpu_ticks responses_per_cpu_second(stat) responses_per_cpu_second(schedstat)".
measure() {
    local addr=$1 pid=$2 before after ns_before ns_after responses
    before=$(tree_ticks "$pid")
    ns_before=$(tree_ns "$pid")
    responses=$("$TEB" -a "$addr" -c "$CONNS" -l "$LEN" -t "$SECS" | sed -n 's/^Total: .*requests, \([0-9]*\) responses.*/\1/p')
    after=$(tree_ticks "$pid")
    ns_after=$(tree_ns "$pid")
    awk -v r="$responses" -v t="$((after - before))" -v ns="$((ns_after - ns_before))" -v hz="$hz" \
        'BEGIN { printf "%d %d %.0f %.0f\n", r, t, (t > 0 ? r * hz / t : 0), (ns > 0 ? r * 1e9 / ns : 0) }'
}

# Per pair, the model's figure over the reference's (column COL of FILE, lines "pair side
# value..."); sorted, and their median.
median_ratio() {
    awk -v col="$1" -v label="$2" '
        { rate[$2, $1] = $col; pairs[$1] = 1 }
        END {
            n = 0
            for (p in pairs) { ratio[++n] = (rate["reference", p] > 0 ? rate["model", p] / rate["reference", p] : 0) }
            for (i = 2; i <= n; i++) { v = ratio[i]; j = i - 1; while (j > 0 && ratio[j] > v) { ratio[j + 1] = ratio[j]; j-- } ratio[j + 1] = v }
            median = (n % 2 ? ratio[(n + 1) / 2] : (ratio[n / 2] + ratio[n / 2 + 1]) / 2)
            printf "%s: ratios per pair, sorted (model / reference):", label
            for (i = 1; i <= n; i++) printf " %.2f", ratio[i]
            printf "; median %.2f\n", median
        }' "${3:-$tmp/rates}"
}

# One latency run: prints the p50 round trip in microseconds.
p50() {
    "$ECHOLAB" load --addr "$1" --protocol raw --conns "$CONNS" --size "$LEN" \
        --duration "${SECS}s" --warmup 500ms --json | grep -o '"p50":[0-9.]*' | cut -d: -f2
}

if [ "${FIGURE:-}" = p50 ]; then
    echo "machine: $(nproc) CPUs, kernel $(uname -r), $(date -u +%Y-%m-%d)"
    echo "load: echolab load --protocol raw --conns $CONNS --size $LEN --duration ${SECS}s; reference $(basename "$reference"), echolab $model"
    printf '%-5s %-16s %10s\n' pair server p50_us
    for pair in $(seq "$PAIRS"); do
        order="reference model"
        if ((pair % 2 == 0)); then order="model reference"; fi
        for side in $order; do
            if [ "$side" = reference ]; then v=$(p50 "127.0.0.1:$PORT"); name=$(basename "$reference")
            else v=$(p50 "$model_addr"); name=$model; fi
            printf '%-5s %-16s %10s\n' "$pair" "$name" "$v"
            echo "$pair $side $v" >>"$tmp/p50"
        done
    done
    median_ratio 3 "p50" "$tmp/p50"
    exit 0
fi

echo "machine: $(nproc) CPUs, kernel $(uname -r), $(date -u +%Y-%m-%d)"
echo "load: tcp-echo-benchmark -c $CONNS -l $LEN -t $SECS; reference $(basename "$reference") on 127.0.0.1:$PORT, echolab $model on $model_addr"
printf '%-5s %-16s %10s %8s %14s %18s\n' pair server responses cpu_s resp_per_cpu_s "(exact: schedstat)"
for pair in $(seq "$PAIRS"); do
    order="reference model"
    if ((pair % 2 == 0)); then order="model reference"; fi
    for side in $order; do
        if [ "$side" = reference ]; then
            read -r r t rate exact < <(measure "127.0.0.1:$PORT" "$ref_pid")
            name=$(basename "$reference")
        else
            read -r r t rate exact < <(measure "$model_addr" "$model_pid")
            name=$model
        fi
        printf '%-5s %-16s %10s %8s %14s %18s\n' "$pair" "$name" "$r" "$(awk -v t="$t" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')" "$rate" "$exact"
        echo "$pair $side $rate $exact" >>"$tmp/rates"
    done
done
median_ratio 3 "responses per server CPU-second (utime+stime)"
median_ratio 4 "responses per server CPU-second (schedstat)"
awk '{ rate[$2, $1] = $3; pairs[$1] = 1 }
     END { n = 0; for (p in pairs) r[++n] = (rate["reference", p] > 0 ? rate["model", p] / rate["reference", p] : 0)
           for (i = 2; i <= n; i++) { v = r[i]; j = i - 1; while (j > 0 && r[j] > v) { r[j + 1] = r[j]; j-- } r[j + 1] = v }
           printf "median ratio %s / %s: %.3f\n", model, anchor, (n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2) }' \
    model="$model" anchor="$(basename "$reference")" "$tmp/rates"
