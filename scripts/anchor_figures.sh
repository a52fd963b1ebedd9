#!/usr/bin/env bash
# Every figure the performance goals (issues 16 and 17, docs/benchmarking.md) are stated
# in, taken at one commit on one machine, one after the other, into one log:
#
#   1. mio against the C edge-triggered epoll server, responses per server CPU-second,
#      at 50 x 64 B and 500 x 512 B (vs_anchor.sh), and its p50 at 1 x 64 B;
#   2. the load generator against tcp-echo-benchmark, both driving the C epoll server
#      at 50 x 512 B (side_by_side.sh, the warm-up excluded);
#   3. uring against uring_multishot, tokio and reactors against epoll_et (50 x 64 B);
#   4. reactors against mio at 100 connections: responses/s, Jain, per-loop counts
#      (loop_balance.sh);
#   5. idle cost of the blocking models (1,000 idle connections: wake-ups/s and CPU) and
#      idle memory of mio (10,000 connections).
#
# usage: scripts/anchor_figures.sh [LOG]        (default LOG: /tmp/anchor-figures.log)
# env:   PAIRS (vs_anchor pairs, default 7), ANCH (default /tmp/anchors-bin, built by
#        tools/anchors/build.sh), QUICK=1 (fewer pairs and shorter runs: a smoke test)
# Takes about 8 minutes; nothing else should run on the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${1:-/tmp/anchor-figures.log}
export ANCH=${ANCH:-/tmp/anchors-bin}
pairs=${PAIRS:-7}
secs=4
repeats=3
if [[ ${QUICK:-} == 1 ]]; then pairs=1 secs=1 repeats=1; fi
[[ -x $ANCH/epoll_et && -x $ANCH/tcp-echo-benchmark ]] ||
    { echo "no reference servers in $ANCH: run tools/anchors/build.sh" >&2; exit 1; }
cargo build --release --quiet --bin echolab

section() { printf '\n## %s\n\n' "$*"; }
{
    echo "# anchor figures, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    machine_line
    echo "$(rustc --version)"

    section "mio / epoll_et, responses per server CPU-second, 50 x 64 B"
    scripts/vs_anchor.sh mio epoll_et 50 64 "$pairs" "$secs"
    section "mio / epoll_et, responses per server CPU-second, 500 x 512 B"
    scripts/vs_anchor.sh mio epoll_et 500 512 "$pairs" "$secs"
    section "mio / epoll_et, p50 round trip at 1 x 64 B"
    FIGURE=p50 scripts/vs_anchor.sh mio epoll_et 1 64 "$pairs" "$secs"

    section "echolab load / tcp-echo-benchmark against epoll_et, 50 x 512 B"
    MODELS=$ANCH/epoll_et TEB=$ANCH/tcp-echo-benchmark WARMUP=500ms REPEATS=$repeats \
        DURATION=$((secs + 1)) CONNS=50 SIZE=512 scripts/side_by_side.sh

    section "uring / uring_multishot, 50 x 64 B"
    scripts/vs_anchor.sh uring uring_multishot 50 64 "$pairs" "$secs"
    section "tokio / epoll_et, 50 x 64 B"
    scripts/vs_anchor.sh tokio epoll_et 50 64 "$repeats" "$secs"
    section "reactors / epoll_et, 50 x 64 B"
    scripts/vs_anchor.sh reactors epoll_et 50 64 "$repeats" "$secs"

    section "reactors against mio, 100 x 64 B"
    REPEATS=$pairs DURATION=$((secs - 1 > 0 ? secs - 1 : 1)) scripts/loop_balance.sh

    section "blocking models at rest: 1,000 idle connections"
    for model in threads fork pool iterative; do
        scripts/idle_cost.sh "$model" 1000 $((secs + 1))
    done
    section "idle memory: mio, 10,000 connections"
    scripts/conn-memory.sh mio 10000
    echo
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$log"
