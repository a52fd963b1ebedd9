#!/usr/bin/env python3
"""Model pages' numbers from one `echolab compare` run.

For every model in a run's results.json, renders the Markdown block of its page's
`## Numbers` section: where the figures come from (run, machine, commit, command,
repeats, the loopback floor), one table row per cell the model ran, memory per idle
connection, the run's charts and how to reproduce it. The block lives between the
marker lines `<!-- numbers:begin -->` and `<!-- numbers:end -->` of
docs/models/<model>.md; what follows the end marker is hand-written and left alone.

    scripts/model_numbers.py results/RUN                 # print every model's block
    scripts/model_numbers.py results/RUN --write         # put them into the pages
    scripts/model_numbers.py results/RUN --summary       # docs/README.md's figure columns
    scripts/model_numbers.py results/RUN --write-summary # rewrite those columns in place

Options: `--models a,b` for some models only; `--docs DIR` for another copy of docs/
(e.g. a scratch copy to look at). Models of the run only are touched: a run of the
udp scenario refreshes the udp-* pages, a run of the others the stream models' pages.
Python 3 standard library only; run from anywhere.

After a run lands in results/RUN: `--write`, then `--write-summary`, then read the diff
(`git diff docs/`): the prose under each block, and the paragraphs under docs/README.md's
table that name where its figures come from, are hand-written and may need a word.
"""
import argparse
import json
import os
import pathlib
import signal
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- numbers:begin -->", "<!-- numbers:end -->"
SUMMARY_HEADER = "| model | syscalls per message"
STREAM_CHARTS = [
    ("throughput-64B.svg", "throughput vs connections, 64 B"),
    ("cpu-per-response-64B.svg", "server CPU per response vs connections, 64 B"),
    ("crowd-cpu-per-response.svg",
     "server CPU per response of one client vs connections held (1 active + idle)"),
    ("cpu-at-rest.svg", "server CPU with an idle crowd and no traffic"),
]
UDP_CHARTS = [("udp-64B.svg", "loss and p99 latency vs offered rate, 64 B")]


def fail(message):
    sys.exit(f"model_numbers.py: {message}")


def short(x):
    """Three significant figures with a k/M suffix, as the harness's tables write them."""
    v, suffix = (x / 1e6, "M") if abs(x) >= 1e6 else (x / 1e3, "k") if abs(x) >= 1e3 else (x, "")
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:.{digits}f}{suffix}"


def spread(s):
    """The median with the min–max of the repeats (just the figure for a one-run cell)."""
    if s["min"] == s["max"]:
        return short(s["median"])
    return f"{short(s['median'])} ({short(s['min'])}–{short(s['max'])})"


def one_decimal(x):
    return f"{x:.1f}"


def rss_and_procs(s):
    return [one_decimal(s["peak_rss_kb"]["median"] / 1024), f"{s['peak_threads']}/{s['peak_processes']}"]


def key(cell):
    return (cell["scenario"], cell["conns"], cell["size"], cell["idle_conns"], cell.get("rate"))


def label(cell):
    """The harness's cell label: `throughput 100x4096`, `idle 5000+1x64`, `udp 4x64 @ 100k/s`."""
    s, conns, size, idle = cell["scenario"], cell["conns"], cell["size"], cell["idle_conns"]
    if cell.get("rate") is not None:
        return f"{s} {conns}x{size} @ {short(cell['rate'])}/s"
    if conns == 0:
        return f"{s} {idle} idle"
    return f"{s} {idle}+{conns}x{size}" if idle else f"{s} {conns}x{size}"


class Run:
    def __init__(self, directory):
        self.dir = pathlib.Path(directory).resolve()
        path = self.dir / "results.json"
        if not self.dir.is_dir():
            fail(f"no run directory {directory}")
        if not path.is_file():
            fail(f"{directory} has no results.json: not an `echolab compare` run")
        try:
            data = json.loads(path.read_text())
            self.machine, self.plan, self.summaries = data["machine"], data["plan"], data["summaries"]
        except (ValueError, KeyError) as e:
            fail(f"{path}: not a results.json this script reads ({e!r})")
        self.floor = data.get("floor")
        try:
            self.name = str(self.dir.relative_to(ROOT))
        except ValueError:
            fail(f"{directory} is not inside the repository {ROOT}: the pages could not link it")
        self.by_model = {}
        for s in self.summaries:
            self.by_model.setdefault(s["model"], {})[key(s["cell"])] = s
        self.best = {}
        for s in self.summaries:
            k = key(s["cell"])
            self.best[k] = max(self.best.get(k, 0.0), s["responses_per_sec"]["median"])
        # Models of the plan that ran a cell, in plan order.
        self.models = [m for m in self.plan["models"] if m in self.by_model]

    def link(self, from_dir):
        return os.path.relpath(self.dir / "README.md", from_dir)

    def is_datagram(self, model):
        # Older runs list the datagram models in the plan; newer ones do not, and a model
        # whose every cell is the udp scenario is one.
        if model in self.plan.get("datagram_models", []):
            return True
        mine = self.by_model.get(model, {})
        return bool(mine) and all(k[0] == "udp" for k in mine)

    def cells(self, model):
        """The model's summaries in plan order."""
        mine = self.by_model.get(model, {})
        return [mine[key(c)] for c in self.plan["cells"] if key(c) in mine]

    def cell(self, model, scenario, conns, size, idle=0):
        return self.by_model.get(model, {}).get((scenario, conns, size, idle, None))

    def reproduce(self):
        words = self.machine.get("command", "").split()
        args = words[words.index("compare"):] if "compare" in words else ["compare"]
        if "--out" in args:  # where the run was written is the runner's, not the reader's
            at = args.index("--out")
            args = args[:at] + args[at + 2:]
        return "cargo run --release -- " + " ".join(args)


def served(s):
    return s["responses_per_sec"]["max"] > 0


def latency(s, field):
    return short(s[field]["median"]) if served(s) else "–"


def cpu_per_resp(s):
    """One decimal below 100 µs (9.8), whole microseconds above (394)."""
    c = s.get("server_cpu_us_per_response")
    if not c:
        return "–"
    return one_decimal(c["median"]) if c["median"] < 100 else f"{c['median']:.0f}"


def stream_row(run, s):
    if s["cell"]["conns"] == 0:  # rest: no traffic; what doing nothing costs
        share = {k: v * 100 for k, v in s["server_cpu_share"].items()}
        at_rest = f"{share['median']:.1f}% of a core at rest"
        if share["min"] != share["max"]:
            at_rest += f" ({share['min']:.1f}–{share['max']:.1f})"
        return ["– (no traffic)", "–", "–", "–", at_rest] + rss_and_procs(s) + ["–"]
    rate, best = s["responses_per_sec"]["median"], run.best[key(s["cell"])]
    vs_best = f"{100 * rate / best:.0f}%" if rate > 0 else "–"
    return ([spread(s["responses_per_sec"]), vs_best, latency(s, "p50_us"), latency(s, "p99_us"),
             cpu_per_resp(s)] + rss_and_procs(s) + [f"{s['jain']['median']:.2f}"])


def udp_row(s):
    loss = s.get("loss_pct")
    return ([spread(s["responses_per_sec"]), f"{loss['median']:.2f}" if loss else "–",
             latency(s, "p50_us"), latency(s, "p99_us"), cpu_per_resp(s)] + rss_and_procs(s))


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    # A note may join several reasons with "|", which would split the Markdown cell.
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def repeats(plan):
    """How many runs each figure is: a median of several, or one run."""
    each = f"{plan['duration']:g} s each after {plan['warmup']:g} s warm-up"
    if plan["repeat"] == 1:
        return f"one run per cell, {each} (no repeats: each figure is one run, not a median)"
    return f"median of {plan['repeat']} runs of {each}"


def intro(run, model, page_dir):
    m, p = run.machine, run.plan
    source = (f"From the committed run [{run.name}]({run.link(page_dir)}) ({m['cpu']}, "
              f"{m['cores']} logical CPUs, kernel {m['kernel']}, commit `{m['commit']}`; "
              f"`{m['command']}`): {repeats(p)}.")
    if run.floor:
        source += (f" The machine's loopback floor before the run (a trivial blocking echo, 64 B): "
                   f"p50 {run.floor['same_cpu']['p50_us']:.1f} µs on one CPU, "
                   f"{run.floor['cross_cpu']['p50_us']:.1f} µs across CPUs.")
    if run.is_datagram(model):
        sockets = max(s["cell"]["conns"] for s in run.cells(model))
        reading = (f"Each cell is {sockets} client sockets offering datagrams at the cell's rate (open loop), "
                   "every reply verified; loss % is the share sent that got no reply. "
                   f"The client shares the {m['cores']} cores with the server — past about "
                   "50,000 datagrams/s the pair, not the server alone, is what loses — so read "
                   "ratios within the run and where loss begins, not absolutes.")
    else:
        reading = (f"The client shares the {m['cores']} cores with the server, so read ratios "
                   "within the run, not absolutes; \"vs best\" is this model's throughput as a share "
                   "of the best model's in the same cell of the same run.")
    return source + " " + reading


def memory_sentence(run, model):
    parts = []
    for s in run.cells(model):
        if s["cell"]["scenario"] in ("idle", "crowd") and s.get("memory_per_conn_kb"):
            held = s.get("idle_held")
            held = f" ({held} of {s['cell']['idle_conns']} held)" if held is not None else ""
            parts.append(f"**{one_decimal(s['memory_per_conn_kb']['median'])} KiB** "
                         f"in {label(s['cell'])}{held}")
    if not parts:
        return None
    return ("Memory per idle connection (PSS of the server tree / connections held): "
            + ", ".join(parts) + ".")


def skipped_sentence(run, model):
    datagram = run.is_datagram(model)
    ran = {key(s["cell"]) for s in run.cells(model)}
    missing = [c for c in run.plan["cells"]
               if (c["scenario"] == "udp") == datagram and key(c) not in ran]
    limit = run.plan.get("descriptor_limits", {}).get(model)
    past = [label(c) for c in missing if limit and c["conns"] + c["idle_conns"] > limit]
    other = [label(c) for c in missing if label(c) not in past]
    sentences = []
    if past:
        sentences.append(f"Past its descriptor limit of {limit}, not run: " + ", ".join(past) + ".")
    if other:
        sentences.append("Not in this run for this model: " + ", ".join(other) + ".")
    return " ".join(sentences) or None


def block(run, model, page_dir):
    throughput = "responses/s (min–max)" if run.plan["repeat"] > 1 else "responses/s"
    if run.is_datagram(model):
        headers = ["cell", throughput, "loss %", "p50 µs", "p99 µs",
                   "server CPU µs/resp", "peak RSS MiB", "threads/procs", "note"]
        rows = [[label(s["cell"])] + udp_row(s) + [s["note"]] for s in run.cells(model)]
        charts = UDP_CHARTS
    else:
        headers = ["cell", throughput, "vs best", "p50 µs", "p99 µs",
                   "server CPU µs/resp", "peak RSS MiB", "threads/procs", "Jain", "note"]
        rows = [[label(s["cell"])] + stream_row(run, s) + [s["note"]] for s in run.cells(model)]
        charts = STREAM_CHARTS
    parts = [intro(run, model, page_dir), table(headers, rows)]
    parts += [p for p in (skipped_sentence(run, model), memory_sentence(run, model)) if p]
    chart_dir = os.path.relpath(run.dir, page_dir)
    parts += [f"![{alt}]({chart_dir}/{name})" for name, alt in charts if (run.dir / name).is_file()]
    anchor = "udp-models-the-udp-scenario" if run.is_datagram(model) else "reproducing-the-committed-results"
    parts.append(f"The same run on every model, with the spread of each figure and the other charts: "
                 f"[{run.name}]({run.link(page_dir)}). Reproduce with `{run.reproduce()}` "
                 f"([benchmarking.md](../benchmarking.md#{anchor})).")
    return "\n\n".join(parts)


def replace_between_markers(text, new_block, where):
    lines = text.split("\n")
    begins = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
    ends = [i for i, l in enumerate(lines) if l.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        fail(f"{where}: needs one `{BEGIN}` line and, after it, one `{END}` line")
    return "\n".join(lines[:begins[0] + 1] + ["", new_block, ""] + lines[ends[0]:])


def write_pages(run, models, docs):
    pages = []  # every page checked before any is written
    for model in models:
        page = docs / "models" / f"{model}.md"
        if not page.is_file():
            fail(f"no page {page} for model {model}")
        text = page.read_text()
        pages.append((page, text, replace_between_markers(text, block(run, model, ROOT / "docs" / "models"), page)))
    for page, text, new in pages:
        if new != text:
            page.write_text(new)
        print(f"{page}: {'updated' if new != text else 'unchanged'}")


# docs/README.md's summary table: four figure columns per stream model.

def with_cpu(s):
    if not served(s):
        return "no replies"
    return f"{short(s['responses_per_sec']['median'])}, {cpu_per_resp(s)} µs"


def summary_columns(run, model):
    latency_cell = run.cell(model, "latency", 1, 64)
    busy = run.cell(model, "throughput", 100, 64)
    churn = run.cell(model, "churn", 10, 64)
    crowd = run.cell(model, "crowd", 1, 64, 1000)
    round_trip = with_cpu(latency_cell) if latency_cell else "—"
    hundred = "—"
    if busy:
        hundred = with_cpu(busy)
        if busy["jain"]["median"] < 0.9:
            hundred += f" (Jain {busy['jain']['median']:.2f}: starved clients)"
    per_conn = with_cpu(churn) if churn else "—"
    crowd_text = "—"
    if crowd and not served(crowd):
        crowd_text = "no: the active client got no reply"
    elif crowd:
        memory = crowd.get("memory_per_conn_kb")
        crowd_text = "yes"
        if memory:
            crowd_text += f", {one_decimal(memory['median'])} KiB per idle connection"
        crowd_text += f"; {cpu_per_resp(crowd)} µs of server CPU per response beside them"
        rest = run.cell(model, "rest", 0, 64, 1000)
        if rest and rest["server_cpu_share"]["median"] >= 0.01:
            crowd_text += f", {rest['server_cpu_share']['median'] * 100:.0f}% of a core at rest"
    return [round_trip, hundred, per_conn, crowd_text]


def stream_models(run, models):
    stream = [m for m in models if not run.is_datagram(m)]
    if not stream:
        fail(f"{run.name} has no stream (TCP) models: the summary's columns are theirs")
    return stream


def print_summary(run, models):
    headers = ["model", "round trip, 1 conn x 64 B: responses/s, server CPU per response",
               "100 conns x 64 B: responses/s, server CPU per response",
               "churn: connections/s, server CPU per connection", "1,000 idle + 1 active: served?"]
    print(table(headers, [[m] + summary_columns(run, m) for m in stream_models(run, models)]))


def write_summary(run, models, docs):
    readme = docs / "README.md"
    if not readme.is_file():
        fail(f"no {readme}")
    lines = readme.read_text().split("\n")
    starts = [i for i, l in enumerate(lines) if l.startswith(SUMMARY_HEADER)]
    if len(starts) != 1:
        fail(f"{readme}: expected one table starting `{SUMMARY_HEADER}`, found {len(starts)}")
    wanted, done = stream_models(run, models), []
    i = starts[0] + 2
    while i < len(lines) and lines[i].startswith("|"):
        cells = lines[i].split("|")
        model = cells[1].strip().strip("`")
        if model in wanted:
            if len(cells) != 8:
                fail(f"{readme}:{i + 1}: expected 6 columns in the {model} row")
            cells[3:7] = [f" {c} " for c in summary_columns(run, model)]
            lines[i] = "|".join(cells)
            done.append(model)
        i += 1
    if set(done) != set(wanted):
        fail(f"{readme}: no row for {', '.join(sorted(set(wanted) - set(done)))}; nothing written")
    readme.write_text("\n".join(lines))
    print(f"{readme}: rewrote the figure columns of {', '.join(done)} from {run.name};"
          " check the paragraphs under the table that name the runs the figures come from")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory, e.g. results/2026-11-30-vm-full")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace each page's marked block")
    action.add_argument("--summary", action="store_true", help="print docs/README.md's figure columns")
    action.add_argument("--write-summary", action="store_true", help="rewrite those columns in place")
    parser.add_argument("--models", help="comma-separated models (default: every model of the run)")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="the docs directory (default: the repository's)")
    args = parser.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    run = Run(args.run_dir)
    models = run.models
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        absent = [m for m in models if m not in run.by_model]
        if absent:
            fail(f"not in {run.name}: {', '.join(absent)} (it has: {', '.join(run.models)})")
    if not models:
        fail(f"{run.name} has no summaries")
    docs = pathlib.Path(args.docs)
    if args.write:
        write_pages(run, models, docs)
    elif args.summary:
        print_summary(run, models)
    elif args.write_summary:
        write_summary(run, models, docs)
    else:
        for model in models:
            print(f"<!-- {model} -->\n{block(run, model, ROOT / 'docs' / 'models')}\n")


if __name__ == "__main__":
    try:
        main()
    except KeyError as e:
        fail(f"results.json lacks {e}: written by a different harness version?")
