#!/usr/bin/env python3
"""The goals of the work scenario (docs/handler-work.md), read off one committed run.

    scripts/work_goals.py results/<run>            # prints the three goals, met or not

Every figure is a median over the run's repeats, as the run's tables show it, and every
goal is a ratio of two cells of the same run (the machine is the same for both).
"""

import json
import sys
from pathlib import Path

LONG_TAIL = "long-tail"
HALF_LOAD_RATE = round(0.5 / 59.9e-6)  # 50% of one worker's capacity for the mix


def summaries(run: Path):
    data = json.loads((run / "results.json").read_text())
    return data["summaries"], data.get("machine", {})


def find(rows, model, work, rate=None):
    for s in rows:
        cell = s["cell"]
        if (
            s["model"] == model
            and cell.get("scenario") == "work"
            and cell.get("work") == work
            and cell.get("rate") == rate
        ):
            return s
    return None


def median(s, key):
    value = s.get(key) if s else None
    if isinstance(value, dict):
        return value.get("median")
    return value


def ratio(a, b):
    return a / b if a and b else None


def show(label, value, bar, higher=True):
    if value is None:
        print(f"- {label}: not in this run")
        return
    met = value >= bar if higher else value <= bar
    print(f"- {label}: {value:.2f}x (goal {'>=' if higher else '<='} {bar}x): {'met' if met else 'NOT met'}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = Path(sys.argv[1])
    rows, machine = summaries(run)
    print(f"{run}: {machine.get('cpu', '?')}, {machine.get('cores', '?')} CPUs, commit {machine.get('commit', '?')}")

    mio = find(rows, "mio", "cpu50us")
    reactors = find(rows, "reactors", "cpu50us")
    r_mio, r_reactors = median(mio, "responses_per_sec"), median(reactors, "responses_per_sec")
    print(f"1. cpu:50us, 100 connections, closed loop: mio {r_mio}, reactors {r_reactors} responses/s")
    show("reactors / mio", ratio(r_reactors, r_mio), 1.7)

    inline = find(rows, "mio", LONG_TAIL, HALF_LOAD_RATE)
    offloaded = find(rows, "mio+offload4", LONG_TAIL, HALF_LOAD_RATE)
    threads = find(rows, "threads", LONG_TAIL, HALF_LOAD_RATE)
    f_inline, f_off, f_threads = (median(s, "p99_fast_us") for s in (inline, offloaded, threads))
    print(
        f"2. long-tail mix at {HALF_LOAD_RATE}/s: fast p99 mio {f_inline} us, "
        f"mio+offload4 {f_off} us, threads {f_threads} us"
    )
    show("mio fast p99 / mio+offload4 fast p99", ratio(f_inline, f_off), 10)
    if f_threads and f_off:
        print(f"  threads / mio+offload4 fast p99: {f_threads / f_off:.2f}x (goal: close to 1)")

    print("3. block:1ms, 100 connections, closed loop (responses/s):")
    closed = {
        s["model"]: median(s, "responses_per_sec")
        for s in rows
        if s["cell"].get("scenario") == "work"
        and s["cell"].get("work") == "block1ms"
        and s["cell"].get("rate") is None
    }
    base = closed.get("mio")
    for model, value in sorted(closed.items(), key=lambda kv: -(kv[1] or 0)):
        times = f" = {value / base:.1f}x mio" if base and value else ""
        print(f"  {model:>18}: {value:,.0f}{times}")
    for model in ("threads", "fork", "mio+offload100"):
        show(f"{model} / mio", ratio(closed.get(model), base), 50)


if __name__ == "__main__":
    main()
