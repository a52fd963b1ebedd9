#!/usr/bin/env python3
"""The thundering herd, or its absence: how many of N processes waiting on one shared
listener wake when one connection arrives.

1. `echolab serve prefork --workers N`: the workers block in accept(2) itself, which
   Linux queues as an *exclusive* waiter, so one connection wakes one worker.
2. For contrast, N forked Python processes that wait in poll(2) on a shared listener
   (what a pre-forked server that multiplexed would do): every poller is woken, one
   accepts, the rest find nothing and sleep again.

A wake-up is counted as a voluntary context switch (`/proc/PID/status`) of a waiting
process in the 20 ms after one connect. (prefork's idle workers have no timer of their
own, so nothing else wakes them.)

usage: scripts/accept_herd.py [ECHOLAB] [N]   (default target/release/echolab, 4)
"""
import os
import select
import socket
import subprocess
import sys
import time

ECHOLAB = sys.argv[1] if len(sys.argv) > 1 else "target/release/echolab"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 4
TRIALS = 8


def switches(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def woken(pids, connect):
    before = [switches(p) for p in pids]
    conn = connect()
    time.sleep(0.02)
    after = [switches(p) for p in pids]
    return conn, [a - b for a, b in zip(after, before)]


def prefork():
    server = subprocess.Popen(
        [ECHOLAB, "serve", "prefork", "--addr", "127.0.0.1:0", "--workers", str(N)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        host, port = server.stdout.readline().split()[-1].rsplit(":", 1)
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as f:
            workers = [int(p) for p in f.read().split()]
        time.sleep(0.3)
        for _ in range(TRIALS):
            conn, counts = woken(workers, lambda: socket.create_connection((host, int(port))))
            print(f"prefork, {N} workers in accept: woken per worker {counts}")
            conn.close()
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait()


def pollers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    addr = listener.getsockname()
    for _ in range(TRIALS):
        kids = []
        for _ in range(N):
            pid = os.fork()
            if pid == 0:
                waiter = select.poll()
                waiter.register(listener, select.POLLIN)
                while True:
                    waiter.poll()
                    try:
                        listener.accept()[0].close()
                    except BlockingIOError:
                        pass
            kids.append(pid)
        time.sleep(0.2)
        conn, counts = woken(kids, lambda: socket.create_connection(addr))
        print(f"{N} processes in poll on one listener: woken per process {counts}")
        conn.close()
        for pid in kids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    prefork()
    pollers()
