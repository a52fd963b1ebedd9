#!/usr/bin/env bash
# Several loops against one: `echolab load --conns CONNS --duration DURATION` against each
# model in MODELS in turn (interleaved, REPEATS rounds, so drift in the machine's
# background load favours none), with the server's CPU (utime + stime of its process
# tree, /proc/PID/stat) read before and after the load, and the stats line the server
# prints on SIGTERM — whose `accepted_per_worker` says how the kernel spread the
# connections over a model's loops or processes.
#
# usage: scripts/loop_balance.sh
# env:   MODELS (default "mio reactors"), CONNS (100), SIZE (64), DURATION (3),
#        REPEATS (3), SERVE_ARGS (extra `echolab serve` flags, e.g. "--workers 2"),
#        ECHOLAB (default target/release/echolab)
set -euo pipefail
MODELS=${MODELS:-"mio reactors"}
CONNS=${CONNS:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-3}
REPEATS=${REPEATS:-3}
SERVE_ARGS=${SERVE_ARGS:-}
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ -x "$ECHOLAB" ] || cargo build --release --quiet --bin echolab
tck=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'stop_server; rm -rf "$WORK"' EXIT

machine_line
echo "load: $CONNS conns x $SIZE B, depth 1, ${DURATION} s after 1 s warm-up, $REPEATS rounds${SERVE_ARGS:+; serve $SERVE_ARGS}"
printf '%-9s %5s %12s %7s %14s  %s\n' model round responses/s jain 'server µs/resp' accepted_per_worker
for round in $(seq 1 "$REPEATS"); do
    for model in $MODELS; do
        # shellcheck disable=SC2086
        start_server "$WORK/serve" "$model" $SERVE_ARGS
        addr=$SERVER_ADDR
        before=$(tree_ticks "$SERVER_PID")
        "$ECHOLAB" load --addr "$addr" --conns "$CONNS" --size "$SIZE" \
            --duration "$DURATION" --warmup 1 --json >"$WORK/load"
        after=$(tree_ticks "$SERVER_PID")
        stop_server
        python3 - "$WORK/load" "$WORK/serve" "$model" "$round" $((after - before)) "$tck" <<'EOF'
import json, sys
load = json.load(open(sys.argv[1]))
stats = json.loads(open(sys.argv[2]).read().splitlines()[-1])
model, rnd, ticks, tck = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
# Server CPU over warm-up + measured seconds, per measured-or-warm-up response: the
# load's own count covers the measured window only, so scale by the window.
total = load["responses"] * (load["seconds"] + 1.0) / load["seconds"]
us = ticks / tck * 1e6 / total if total else float("nan")
jain = load["fairness"]["jain"]
print(f"{model:<9} {rnd:>5} {load['responses_per_sec']:>12.0f} {jain:>7.3f} {us:>14.1f}  "
      f"{stats.get('accepted_per_worker', '-')}")
EOF
    done
done
