#!/usr/bin/env bash
# Responses per server CPU-second of an echolab model against a C reference server, as
# ../shared/anchors/README.md defines the figure: tcp-echo-benchmark drives each server
# in turn (interleaved pairs), and the server's own CPU (utime + stime of its whole
# process tree, /proc/PID/stat) is read just before and after each run.
#
# usage: scripts/vs_anchor.sh MODEL ANCHOR [CONNS] [LEN] [PAIRS] [SECS]
#   MODEL  an echolab model (served with --protocol raw)
#   ANCHOR a reference server built by ../shared/anchors/build.sh: epoll_et,
#          uring_echo or uring_multishot
# env: ECHOLAB (default target/release/echolab), ANCH (default /tmp/anchors-bin),
#      SERVE_ARGS (extra `echolab serve` flags, e.g. "--workers 2")
set -euo pipefail
model=$1 anchor=$2 conns=${3:-50} len=${4:-64} pairs=${5:-3} secs=${6:-4}
echolab=${ECHOLAB:-target/release/echolab}
anch=${ANCH:-/tmp/anchors-bin}
tck=$(getconf CLK_TCK)

tree_ticks() { # utime + stime of a process and its descendants, in clock ticks
    local total=0 pid
    for pid in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        [ -r /proc/$pid/stat ] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$pid/stat)))
    done
    echo $total
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One measured run against a server already listening at $2 (pid $1): "responses cpu_secs".
measure() {
    local pid=$1 addr=$2 before after out
    before=$(tree_ticks "$pid")
    out=$("$anch/tcp-echo-benchmark" -a "$addr" -c "$conns" -l "$len" -t "$secs" 2>&1)
    after=$(tree_ticks "$pid")
    local responses
    # "Total: N requests, M responses"
    responses=$(echo "$out" | awk '/^Total:/ { print $4 }')
    echo "${responses:-0} $(echo "scale=3; ($after - $before) / $tck" | bc)"
}

start_model() {
    local out; out=$(mktemp)
    # shellcheck disable=SC2086
    "$echolab" serve "$model" --protocol raw --addr 127.0.0.1:0 ${SERVE_ARGS:-} > "$out" &
    local pid=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    echo "$pid $(head -1 "$out" | awk '{ print $3 }')"
}

start_anchor() {
    local port; port=$(free_port)
    "$anch/$anchor" "$port" > /dev/null 2>&1 &
    local pid=$!
    sleep 0.3
    echo "$pid 127.0.0.1:$port"
}

echo "machine: $(nproc) CPUs, $(uname -r); $conns conns x $len B, $secs s per run, $pairs pairs"
ratios=()
for pair in $(seq "$pairs"); do
    read -r mpid maddr < <(start_model)
    read -r mresp mcpu < <(measure "$mpid" "$maddr")
    kill -TERM "$mpid"; wait "$mpid" 2>/dev/null || true
    read -r apid aaddr < <(start_anchor)
    read -r aresp acpu < <(measure "$apid" "$aaddr")
    kill -TERM "$apid"; wait "$apid" 2>/dev/null || true
    m=$(echo "scale=0; $mresp / $mcpu" | bc); a=$(echo "scale=0; $aresp / $acpu" | bc)
    r=$(echo "scale=3; $m / $a" | bc)
    ratios+=("$r")
    echo "pair $pair: $model $mresp resp / $mcpu s = $m per CPU-s; $anchor $aresp / $acpu s = $a per CPU-s; ratio $r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median ratio $model / $anchor: $median"
