#!/usr/bin/env python3
"""One model's sweep over connections: the tables under each model page's "The
prediction, checked".

For each connection count: a fresh `echolab serve MODEL` on 127.0.0.1:0, then
`echolab load --conns N --size 64 --duration 2 --warmup 0 --json` against it, then
SIGTERM and the server's stats line (getrusage of the server and its reaped children,
over its whole life: start-up, the 2 s, the drain). Prints the machine, the commit and
the load average, one Markdown table row per cell, and each cell's raw load report and
stats line (lines starting `raw `), so a committed log is the source of the page's table.

    scripts/sweep.py mio                              # 1, 10, 100 connections
    scripts/sweep.py fork --conns 1,10,100,1000
    scripts/sweep.py udp-batch                        # client sockets for a udp-* model
    for m in $(target/release/echolab models --names); do scripts/sweep.py "$m"; done

ECHOLAB names the binary (default target/release/echolab). Loopback only; every cell is
bounded by its duration and a 60 s limit. Python 3 standard library only.
"""
import argparse
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMIT_S = 60


def fail(message):
    sys.exit(f"sweep.py: {message}")


def short(x):
    v, suffix = (x / 1e6, "M") if x >= 1e6 else (x / 1e3, "k") if x >= 1e3 else (x, "")
    digits = 0 if v >= 100 else 1 if v >= 10 else 2
    return f"{v:.{digits}f}{suffix}"


def micros(us):
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1000:
        return f"{us / 1000:.3g} ms"
    return f"{us:.3g} µs"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} CPUs, kernel {platform.release()}, commit {commit}"
            f"{' (with uncommitted changes)' if dirty else ''}, "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def start(binary, model):
    server = subprocess.Popen([binary, "serve", model, "--addr", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("listening on "):
        server.kill()
        fail(f"`echolab serve {model}` did not start: {line.strip()} {server.stderr.read().strip()}")
    return server, line.split()[-1]


def stop(server):
    server.send_signal(signal.SIGTERM)
    try:
        out, _ = server.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.communicate()
        fail("the server did not exit within 60 s of SIGTERM")
    for line in reversed(out.splitlines()):
        try:
            stats = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(stats, dict) and "rusage" in stats:
            return stats
    fail("the server printed no stats line")


def cell(binary, model, conns, seconds, datagram):
    server, addr = start(binary, model)
    try:
        load_cmd = [binary, "load", "--addr", addr, "--conns", str(conns), "--size", "64",
                    "--duration", f"{seconds}s", "--warmup", "0", "--json"]
        if datagram:
            load_cmd += ["--transport", "udp"]
        load = subprocess.run(load_cmd, capture_output=True, text=True, timeout=LIMIT_S)
    finally:
        stats = stop(server)
    if load.returncode != 0:
        fail(f"load against {model} with {conns} failed: {load.stderr.strip()}")
    report = json.loads(load.stdout)
    replies = stats["datagrams"]["answered"] if datagram else stats["frames"]
    if replies == 0:
        fail(f"{model} with {conns}: the server sent no reply")
    usage = stats["rusage"]
    cpu_us = (usage["user_us"] + usage["system_us"]) / replies
    lat = report["latency_us"]
    row = [str(conns), short(report["responses_per_sec"]), micros(lat["p50"]), micros(lat["p99"]),
           micros(lat["p999"]), f"{report['fairness']['jain']:.2f}", micros(cpu_us),
           f"{usage['voluntary_ctx_switches'] / replies:.2f} + "
           f"{usage['involuntary_ctx_switches'] / replies:.2f}", loadavg()]
    return row, report, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--conns", default="1,10,100", help="comma-separated (default 1,10,100)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured time per cell")
    args = parser.parse_args()
    binary = os.environ.get("ECHOLAB", str(ROOT / "target/release/echolab"))
    if not os.access(binary, os.X_OK):
        fail(f"{binary} is not an executable: `cargo build --release` first, or set ECHOLAB")
    try:
        counts = [int(c) for c in args.conns.split(",")]
    except ValueError:
        fail(f"--conns {args.conns!r}: expected numbers separated by commas")
    if not 0 < args.seconds <= 30 or any(not 0 < c <= 10000 for c in counts):
        fail("--seconds must be in (0, 30] and each --conns in 1..10000")
    datagram = args.model.startswith("udp-")
    unit = "datagram" if datagram else "message"
    print(f"# sweep {args.model}: {machine()}")
    print(f"# each cell: a fresh server, `echolab load --conns N --size 64 --duration "
          f"{args.seconds:g}s --warmup 0`{' --transport udp' if datagram else ''}; server CPU "
          f"and context switches from its stats line (getrusage, its whole life) per reply sent")
    print(f"| {'client sockets' if datagram else 'connections'} | responses/s | p50 | p99 | p99.9 "
          f"| Jain | server CPU per {unit} | context switches per {unit}: voluntary + involuntary "
          f"| load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    raws = []
    for conns in counts:
        row, report, stats = cell(binary, args.model, conns, args.seconds, datagram)
        print(f"| {' | '.join(row)} |", flush=True)
        raws.append((conns, report, stats))
    for conns, report, stats in raws:
        print(f"raw {conns} load {json.dumps(report, separators=(',', ':'))}")
        print(f"raw {conns} server {json.dumps(stats, separators=(',', ':'))}")


if __name__ == "__main__":
    main()
