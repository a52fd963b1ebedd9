#!/usr/bin/env bash
# A model's syscalls over COUNT round trips of 64 B on one connection, counted by
# `strace -f -c` (start-up and shutdown included): the blocks on each model page and
# docs/strace/MODEL.txt.
#
#   scripts/strace-counts.sh MODEL [COUNT]          (default COUNT: 1000)
#   for m in $(target/release/echolab models --names); do
#       scripts/strace-counts.sh "$m" > docs/strace/"$m".txt; done
#
# Prints a header (machine, commit, date, command) and strace's table. strace stops the
# server at every call, so read what a message costs in calls, not in time: the pause
# lets the next message arrive before the server waits, and hides waits a real run makes
# (scripts/syscalls.sh counts with perf, which does not stop it). Stream models are
# pinged over TCP, udp-* models over UDP. Needs strace and the release build.
set -euo pipefail
model=${1:?usage: scripts/strace-counts.sh MODEL [COUNT]}
count=${2:-1000}
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }
[[ -x $ECHOLAB ]] || { echo "no $ECHOLAB: run cargo build --release (or set ECHOLAB)" >&2; exit 1; }
transport=tcp
[[ $model == udp-* ]] && transport=udp
dir=$(mktemp -d)
tracer=
cleanup() {
    set +e
    # TERM to the server, never to strace: strace would detach and leave it running.
    [[ -n $tracer ]] && pkill -TERM -P "$tracer" 2>/dev/null
    [[ -n $tracer ]] && wait "$tracer" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

strace -f -c -o "$dir/strace.txt" "$ECHOLAB" serve "$model" --addr 127.0.0.1:0 \
    >"$dir/server.out" 2>"$dir/server.err" &
tracer=$!
addr=
for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$dir/server.out")
    [[ -n $addr ]] && break
    kill -0 "$tracer" 2>/dev/null || break
    sleep 0.1
done
[[ -n $addr ]] || { echo "echolab serve $model did not start under strace:" >&2; cat "$dir/server.err" >&2; exit 1; }
"$ECHOLAB" ping --transport "$transport" --addr "$addr" --size 64 --count "$count" >/dev/null
pkill -TERM -P "$tracer"
for _ in $(seq 100); do kill -0 "$tracer" 2>/dev/null || break; sleep 0.1; done
kill -0 "$tracer" 2>/dev/null && { echo "the server did not exit within 10 s of SIGTERM" >&2; exit 1; }
wait "$tracer" || true
tracer=
echo "# strace -f -c of \`echolab serve $model\`: $count pings of 64 B over $transport on one connection, start-up and shutdown included"
echo "# $(machine_line)"
cat "$dir/strace.txt"
