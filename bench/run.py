#!/usr/bin/python3
"""run.py — times ferry against ONNX Runtime on the bench models and prints a Markdown table.

Usage: bench/run.py [--quick] [--rounds N] [--scale X] [--threads N] [--only ROW[,ROW...]]
                    [--ferry PATH] [--models DIR] [--out FILE]

Installs onnxruntime-node into bench/.deps if it is missing, exports the models
(bench/export_models.py, cached), then for every row runs `ferry bench --json` and
bench/ort_bench.js as separate processes, alternating between the two (and swapping which goes
first) for several rounds, so that both see the same load on a shared machine. A row's figure is
the median over rounds of each process's median latency. For the MLP rows both runtimes are also
timed, in the same rounds, on "mlp_io", a model with the MLP's input and output shapes and one
Slice node, and ORT's median on it is subtracted from ORT's MLP median: what is left is ORT's
work without the fixed cost of calling it from Node.js (ferry bench calls the C API directly).
The one-Identity-node model is timed too and reported beside it. See docs/performance.md.

Writes bench/results.json (every round's numbers) and exits 0; 1 if a run failed, 2 on bad
usage or when a dependency cannot be installed.
"""
import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEPS = os.path.join(HERE, ".deps")
ORT_PACKAGE = os.path.join(DEPS, "node_modules", "onnxruntime-node", "package.json")

# (row, model, batch, iterations, warmup): iterations per process in a full run; each process
# should take a second or two once ferry and ORT are about equally fast.
ROWS = [
    ("mlp b1", "mlp", 1, 4000, 400),
    ("mlp b64", "mlp", 64, 2000, 200),
    ("squeezenet1_1 b1", "squeezenet1_1", 1, 150, 10),
    ("mobilenet_v2 b1", "mobilenet_v2", 1, 100, 10),
    ("resnet18 b1", "resnet18", 1, 50, 5),
    ("resnet50 b1", "resnet50", 1, 30, 3),
    ("transformer b1", "transformer", 1, 100, 10),
]
NET_OF_CALL_COST = {"mlp"}  # rows whose ORT time is taken net of the mlp_io model's
MEMORY_ROW = "resnet50 b1"  # the row whose peak RSS and load + first run are reported
TARGET_GEOMEAN, TARGET_MAX = 0.95, 1.10
NOISY = 1.5  # a row whose rounds' medians differ by more than this factor is flagged


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_ort():
    if os.path.exists(ORT_PACKAGE):
        return
    if not shutil.which("node") or not shutil.which("npm"):
        sys.exit("run.py: node and npm are needed for the ONNX Runtime comparison "
                 "(apt-get install nodejs npm)")
    log("installing onnxruntime-node into bench/.deps")
    os.makedirs(DEPS, exist_ok=True)
    rc = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund",
                         "onnxruntime-node", "--prefix", DEPS]).returncode
    if rc != 0 or not os.path.exists(ORT_PACKAGE):
        log("run.py: npm install onnxruntime-node failed")
        sys.exit(2)


def export(models_dir, names):
    rc = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "export_models.py"), models_dir]
                        + sorted(names), stdout=sys.stderr).returncode
    if rc != 0:
        log("run.py: exporting the bench models failed")
        sys.exit(2)
    shapes = {}
    for name in names:
        with open(os.path.join(models_dir, name, "manifest.json")) as f:
            shapes[name] = json.load(f)["shape"]
    return shapes


def run_json(cmd, timeout):
    """Runs one benchmark process; returns its JSON result or {"error": ...}."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s: {' '.join(cmd)}"}
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}: {' '.join(cmd)}: {p.stderr.strip()[-500:]}"}
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no JSON from {' '.join(cmd)}: {p.stdout[-300:]}"}


def git_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_of(results, key):
    vals = [r[key] for r in results if "error" not in r and key in r]
    return statistics.median(vals) if vals else None


def spread(results):
    """Largest over smallest per-round median: how much the machine's load moved the rounds."""
    vals = [r["median_ms"] for r in results if "error" not in r and r.get("median_ms")]
    return max(vals) / min(vals) if vals else None


def fmt(x, digits=4):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def parse_args():
    ap = argparse.ArgumentParser(description="ferry vs ONNX Runtime, alternating, medians of "
                                             "medians (see docs/performance.md)")
    ap.add_argument("--quick", action="store_true", help="2 rounds, a fifth of the iterations")
    ap.add_argument("--rounds", type=int, help="rounds per row (default 5, 2 with --quick)")
    ap.add_argument("--scale", type=float, help="multiply every row's iterations by X")
    ap.add_argument("--threads", type=int, default=2, help="threads for both runtimes (2)")
    ap.add_argument("--only", help="comma-separated rows or models, e.g. mlp,resnet18")
    ap.add_argument("--ferry", default=os.path.join(ROOT, "build", "ferry"),
                    help="the ferry binary (default build/ferry)")
    ap.add_argument("--models", default=os.path.join(ROOT, "build", "bench-models"),
                    help="where the exported models are cached (default build/bench-models)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"),
                    help="JSON results (default bench/results.json)")
    a = ap.parse_args()
    a.rounds = a.rounds if a.rounds is not None else (2 if a.quick else 5)
    a.scale = a.scale if a.scale is not None else (0.2 if a.quick else 1.0)
    if a.rounds < 1 or a.scale <= 0 or a.threads < 1:
        ap.error("--rounds, --scale and --threads must be positive")
    rows = ROWS
    if a.only:
        want = {w.strip() for w in a.only.split(",") if w.strip()}
        rows = [r for r in ROWS if r[0] in want or r[1] in want]
        known = {r[0] for r in ROWS} | {r[1] for r in ROWS}
        if want - known or not rows:
            ap.error(f"--only: unknown {', '.join(sorted(want - known)) or a.only}; rows: "
                     + ", ".join(r[0] for r in ROWS))
    if not os.access(a.ferry, os.X_OK):
        ap.error(f"no ferry binary at {a.ferry}: build it (make build) or pass --ferry")
    a.rows = rows
    return a


def main():
    a = parse_args()
    ensure_ort()
    models = {r[1] for r in a.rows}
    if models & NET_OF_CALL_COST:
        models |= {"mlp_io", "identity"}
    shapes = export(a.models, models)
    node = shutil.which("node")
    ort_js = os.path.join(HERE, "ort_bench.js")
    ort_version = json.load(open(ORT_PACKAGE)).get("version", "?")

    def model_path(name):
        return os.path.join(a.models, name, "model.onnx")

    def ferry_cmd(name, batch, iters, warmup):
        return [a.ferry, "bench", model_path(name), "--batch", str(batch), "--threads",
                str(a.threads), "--iterations", str(iters), "--warmup", str(warmup), "--json"]

    def ort_cmd(name, batch, iters, warmup):
        shape = ",".join(str(batch) if d == "batch" else str(d) for d in shapes[name])
        return [node, ort_js, model_path(name), "--shape", shape, "--threads", str(a.threads),
                "--iterations", str(iters), "--warmup", str(warmup)]

    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
            "cpu": cpu_name(), "cores": os.cpu_count(), "threads": a.threads,
            "onnxruntime_node": ort_version, "rounds": a.rounds, "scale": a.scale,
            "loadavg_start": os.getloadavg()}
    rows_out, failed = [], False
    for row, name, batch, iters, warmup in a.rows:
        iters = max(5, int(iters * a.scale))
        warmup = max(1, int(warmup * a.scale))
        timeout = 600
        runs = {"ferry": [], "ort": [], "ferry_io": [], "ort_io": [], "ort_identity": []}
        for r in range(a.rounds):
            jobs = [("ferry", ferry_cmd(name, batch, iters, warmup)),
                    ("ort", ort_cmd(name, batch, iters, warmup))]
            if name in NET_OF_CALL_COST:
                jobs += [("ferry_io", ferry_cmd("mlp_io", batch, iters, warmup)),
                         ("ort_io", ort_cmd("mlp_io", batch, iters, warmup)),
                         ("ort_identity", ort_cmd("identity", batch, iters, warmup))]
            if r % 2:  # every other round the other runtime goes first
                jobs.reverse()
            for tool, cmd in jobs:
                res = run_json(cmd, timeout)
                if "error" in res:
                    log(f"{row}: {res['error']}")
                    failed = True
                runs[tool].append(res)
            log(f"{row} round {r + 1}/{a.rounds}: ferry {fmt(runs['ferry'][-1].get('median_ms'))} ms, "
                f"ORT {fmt(runs['ort'][-1].get('median_ms'))} ms"
                + (f", ORT mlp_io {fmt(runs['ort_io'][-1].get('median_ms'))} ms, ORT Identity "
                   f"{fmt(runs['ort_identity'][-1].get('median_ms'))} ms" if runs["ort_io"] else ""))
        ferry_ms, ort_ms = median_of(runs["ferry"], "median_ms"), median_of(runs["ort"], "median_ms")
        io_ms = median_of(runs["ort_io"], "median_ms")
        ident_ms = median_of(runs["ort_identity"], "median_ms")
        ort_net = ort_ms - io_ms if ort_ms is not None and io_ms is not None else ort_ms
        if io_ms is not None and ort_net is not None and ort_net <= 0:
            log(f"{row}: ORT's median is not above its mlp_io median; no net time")
            ort_net = None
        ident_net = ort_ms - ident_ms if ort_ms is not None and ident_ms is not None else None
        ratio = ferry_ms / ort_net if ferry_ms and ort_net else None
        # The same comparison made within each round, then the median: steadier when the
        # machine's speed moves between rounds (both runtimes of a round see the same load).
        per_round = []
        for i in range(a.rounds):
            f, o = runs["ferry"][i].get("median_ms"), runs["ort"][i].get("median_ms")
            io = runs["ort_io"][i].get("median_ms") if runs["ort_io"] else 0
            if f and o and io is not None and o - io > 0:
                per_round.append(f / (o - io))
        round_ratio = statistics.median(per_round) if per_round else None
        rows_out.append({
            "row": row, "model": name, "batch": batch, "iterations": iters, "warmup": warmup,
            "ferry_ms": ferry_ms, "ort_ms": ort_ms, "ort_net_ms": ort_net, "ratio": ratio,
            "ratio_per_round_median": round_ratio, "ratio_per_round": per_round,
            "ferry_io_ms": median_of(runs["ferry_io"], "median_ms"), "ort_io_ms": io_ms,
            "ort_identity_ms": ident_ms, "ort_net_of_identity_ms": ident_net,
            "ratio_net_of_identity": ferry_ms / ident_net if ferry_ms and ident_net and ident_net > 0 else None,
            # (the Identity model is left out: at batch 64 it is erratic by nature, see above)
            "spread": max(filter(None, (spread(runs[t]) for t in ("ferry", "ort", "ort_io"))),
                          default=None),
            "ferry_round_medians": [r.get("median_ms") for r in runs["ferry"]],
            "ort_round_medians": [r.get("median_ms") for r in runs["ort"]],
            "ort_io_round_medians": [r.get("median_ms") for r in runs["ort_io"]],
            "runs": runs,
        })
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = round(time.time() - started.timestamp(), 1)

    ratios = [r["ratio"] for r in rows_out if r["ratio"]]
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
    worst = max((r for r in rows_out if r["ratio"]), key=lambda r: r["ratio"], default=None)

    lines = [f"ferry vs ONNX Runtime {ort_version} (CPU), {a.threads} threads each; "
             f"{meta['date']}, commit {meta['commit']}; {meta['cpu']}, {meta['cores']} cores; "
             f"{a.rounds} rounds, medians of per-process medians.", "",
             "| model | ferry ms | ORT ms | ORT net ms | ferry/ORT | median of round ratios |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows_out:
        net = fmt(r["ort_net_ms"]) if r["ort_io_ms"] is not None else "—"
        noisy = " *" if r["spread"] and r["spread"] > NOISY else ""
        lines.append(f"| {r['row']}{noisy} | {fmt(r['ferry_ms'])} | {fmt(r['ort_ms'])} | {net} | "
                     f"{fmt(r['ratio'], 3)} | {fmt(r['ratio_per_round_median'], 3)} |")
    lines.append("")
    noisy = [r for r in rows_out if r["spread"] and r["spread"] > NOISY]
    if noisy:
        lines += [f"\\* the rounds' medians of this row differ by more than {NOISY}x ("
                  + ", ".join(f"{r['row']}: {r['spread']:.1f}x" for r in noisy)
                  + "): the machine was busy; re-run before trusting it.", ""]
    if geomean:
        ok = geomean <= TARGET_GEOMEAN and worst["ratio"] <= TARGET_MAX
        lines.append(f"Geometric mean of ferry/ORT: **{geomean:.3f}** (target ≤ {TARGET_GEOMEAN}); "
                     f"max: **{worst['ratio']:.3f}** ({worst['row']}, target ≤ {TARGET_MAX}) — "
                     f"{'target met' if ok else 'target not met'}.")
    net_rows = [r for r in rows_out if r["ort_io_ms"] is not None]
    if net_rows:
        lines += ["", "ORT net = ORT's MLP median minus its median on mlp_io (the MLP's input and "
                  "output shapes, one Slice node): the fixed cost of a run called from Node.js.", "",
                  "| row | ORT mlp_io ms | ferry mlp_io ms | ORT Identity ms | ORT net of Identity ms "
                  "| ferry/ORT net of Identity |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in net_rows:
            lines.append(f"| {r['row']} | {fmt(r['ort_io_ms'])} | {fmt(r['ferry_io_ms'])} | "
                         f"{fmt(r['ort_identity_ms'])} | {fmt(r['ort_net_of_identity_ms'])} | "
                         f"{fmt(r['ratio_net_of_identity'], 3)} |")
    mem = next((r for r in rows_out if r["row"] == MEMORY_ROW), None)
    resnet = None
    if mem:
        resnet = {}
        for tool in ("ferry", "ort"):
            load, first = median_of(mem["runs"][tool], "load_ms"), median_of(mem["runs"][tool], "first_run_ms")
            resnet[tool] = {"peak_rss_mb": median_of(mem["runs"][tool], "peak_rss_mb"),
                            "load_ms": load, "first_run_ms": first,
                            "load_plus_first_run_ms": load + first if load is not None and first is not None else None}
        lines += ["", f"{MEMORY_ROW}: memory and start-up (medians over rounds)", "",
                  "| | peak RSS MiB | load ms | first run ms | load + first run ms |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for tool, label in (("ferry", "ferry bench"), ("ort", "ORT (Node.js)")):
            t = resnet[tool]
            lines.append(f"| {label} | {fmt(t['peak_rss_mb'])} | {fmt(t['load_ms'])} | "
                         f"{fmt(t['first_run_ms'])} | {fmt(t['load_plus_first_run_ms'])} |")
        lines.append("(ORT's RSS includes Node.js and the ORT library: about 50 MiB before a "
                     "model is loaded.)")
    table = "\n".join(lines)
    print(table)

    results = {"meta": meta, "rows": rows_out, "geomean_ratio": geomean,
               "max_ratio": worst["ratio"] if worst else None,
               "max_ratio_row": worst["row"] if worst else None, "memory": resnet,
               "markdown": table}
    with open(a.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(a.out + ".tmp", a.out)
    log(f"wrote {a.out} ({meta['seconds']} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
