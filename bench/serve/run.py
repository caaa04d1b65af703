#!/usr/bin/python3
"""run.py — ferry serve under wrk, against nginx as the HTTP ceiling of this machine.

Usage: run.py --ferry build/ferry [--mode ratio|soak|batching|all] [options]

  ratio     (default) the Fashion-MNIST MLP as a KServe v2 JSON request (784 floats,
            bench/serve/post.lua) at 32 connections; ferry serve and nginx returning a fixed
            response of the same shape alternate in one run, --rounds times; prints req/s,
            p50/p99 latency, errors and the ratio of the medians ferry/nginx (goal >= 0.25).
  soak      the same request against ferry serve for --soak-seconds (default 300), sampling
            the server's RSS every --sample-seconds; prints min/max/first/last and the largest
            deviation from the median (goal: within 5%), and the error count (goal 0).
  batching  resnet18 (bench/export_models.py: torchvision, random seeded weights) served twice
            by the same server: "resnet18_batched" (config.json max_batch_size 32 with a queue
            delay) and "resnet18_single" (max_batch_size 1); binary tensor requests of
            [1,3,224,224] at 32 connections, alternating; ratio batched/single (goal >= 1.5).

Exit status 0 when every goal of the modes run was met, 1 when one was missed, 2 on usage
errors. The machine's other load is not controlled: quote medians and say when it was shared.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LUA = os.path.join(HERE, "post.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"run.py: server exited with {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"run.py: {url} did not answer within {timeout} s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Ferry:
    def __init__(self, ferry, repo, workdir, threads=None, session_threads=None):
        self.port = free_port()
        self.log = open(os.path.join(workdir, "ferry-serve.log"), "wb")
        cmd = [ferry, "serve", "--repo", repo, "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", "warn"]
        if threads:
            cmd += ["--threads", str(threads)]
        if session_threads:
            cmd += ["--session-threads", str(session_threads)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/v2/health/ready", proc=self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.log.close()
        if code != 0:
            print(f"run.py: ferry serve exited with {code} after SIGTERM", file=sys.stderr)
        return code


class Nginx:
    def __init__(self, workdir, workers):
        self.port = free_port()
        prefix = os.path.join(workdir, "nginx")
        os.makedirs(prefix, exist_ok=True)
        conf = open(os.path.join(HERE, "nginx.conf.in")).read()
        conf = (conf.replace("@PREFIX@", prefix).replace("@PORT@", str(self.port))
                .replace("@WORKERS@", str(workers)))
        path = os.path.join(prefix, "nginx.conf")
        open(path, "w").write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", prefix, "-c", path, "-e",
                                      os.path.join(prefix, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/", proc=self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(url, seconds, connections, threads, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                        "--timeout", "10s", "-s", LUA, url], capture_output=True, text=True, env=e)
    if p.returncode != 0:
        raise SystemExit(f"run.py: wrk failed:\n{p.stdout}{p.stderr}")
    line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
    d = json.loads(line)
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["errors"] = sum(d[k] for k in d if k.startswith("err_"))
    return d


def fmt(d):
    return (f"{d['rps']:9.0f} req/s  p50 {d['p50_us'] / 1000:7.3f} ms  "
            f"p99 {d['p99_us'] / 1000:7.3f} ms  errors {d['errors']}")


def mlp_repo(workdir):
    repo = os.path.join(workdir, "repo")
    os.makedirs(os.path.join(repo, "mlp", "1"), exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, "examples", "fashion-mnist", "mlp.onnx"),
                    os.path.join(repo, "mlp", "1", "model.onnx"))
    json.dump({"max_batch_size": 32, "dynamic_batching": {"max_queue_delay_us": 0}},
              open(os.path.join(repo, "mlp", "config.json"), "w"))
    return repo


def check_mlp_answer(port):
    """One request by hand first: the benchmark only counts if ferry answers it correctly."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                                   "data": [0.5] * 784}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/mlp/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        doc = json.load(r)
    assert doc["outputs"][0]["shape"] == [1, 10], doc


def mode_ratio(a, workdir):
    ferry = Ferry(a.ferry, mlp_repo(workdir), workdir, a.threads, a.session_threads)
    nginx = Nginx(workdir, a.nginx_workers)
    try:
        check_mlp_answer(ferry.port)
        fu = f"http://127.0.0.1:{ferry.port}/v2/models/mlp/infer"
        nu = f"http://127.0.0.1:{nginx.port}/v2/models/mlp/infer"
        wrk(fu, 2, a.connections, a.wrk_threads)
        wrk(nu, 2, a.connections, a.wrk_threads)
        fr, nr = [], []
        for k in range(a.rounds):
            fr.append(wrk(fu, a.seconds, a.connections, a.wrk_threads))
            nr.append(wrk(nu, a.seconds, a.connections, a.wrk_threads))
            print(f"round {k + 1}: ferry {fmt(fr[-1])}")
            print(f"         nginx {fmt(nr[-1])}")
    finally:
        nginx.stop()
        code = ferry.stop()
    med = lambda xs, key: statistics.median(x[key] for x in xs)
    ratio = med(fr, "rps") / med(nr, "rps")
    errors = sum(x["errors"] for x in fr)
    print(f"\nMLP v2 JSON, {a.connections} connections, {a.rounds} x {a.seconds} s, medians:")
    print(f"| server | req/s | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, xs in [("ferry serve", fr), ("nginx (fixed response)", nr)]:
        print(f"| {name} | {med(xs, 'rps'):.0f} | {med(xs, 'p50_us') / 1000:.3f} | "
              f"{med(xs, 'p99_us') / 1000:.3f} |")
    ok = ratio >= 0.25 and errors == 0 and code == 0
    print(f"ratio ferry/nginx {ratio:.3f} (goal >= 0.25), ferry errors {errors}: "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def mode_soak(a, workdir):
    ferry = Ferry(a.ferry, mlp_repo(workdir), workdir, a.threads, a.session_threads)
    samples, stop = [], threading.Event()

    def sample():
        while not stop.wait(a.sample_seconds):
            samples.append((time.monotonic(), rss_kib(ferry.proc.pid)))
    try:
        check_mlp_answer(ferry.port)
        wrk(f"http://127.0.0.1:{ferry.port}/v2/models/mlp/infer", 5, a.connections,
            a.wrk_threads)  # warm-up: pools and arenas reach their working size
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        d = wrk(f"http://127.0.0.1:{ferry.port}/v2/models/mlp/infer", a.soak_seconds,
                a.connections, a.wrk_threads)
        stop.set()
        t.join()
    finally:
        code = ferry.stop()
    rss = [r for _, r in samples]
    med = statistics.median(rss)
    dev = max(abs(r - med) for r in rss) / med
    drift = (rss[-1] - rss[0]) / rss[0]
    print(f"\nsoak: {a.soak_seconds} s at {a.connections} connections: {fmt(d)}")
    print(f"RSS over {len(rss)} samples: min {min(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} "
          f"MiB, first {rss[0] / 1024:.1f}, last {rss[-1] / 1024:.1f} MiB, drift {drift:+.2%}, "
          f"largest deviation from the median {dev:.2%}")
    ok = dev <= 0.05 and d["errors"] == 0 and code == 0
    print(f"soak (goal: within 5%, zero errors): {'PASS' if ok else 'FAIL'}")
    return ok


def server_breakdown(port, models):
    """Per model, from ferry's /metrics: session runs, mean batch, compute seconds per run and
    per sample, so a poor batching ratio can be told apart (batches not forming vs slow runs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    vals = {}
    for line in text.splitlines():
        for n in models:
            for key in ["ferry_batch_size_sum", "ferry_batch_size_count",
                        "ferry_compute_duration_seconds_sum"]:
                if line.startswith(key + "{") and f'model="{n}"' in line:
                    vals[(n, key)] = vals.get((n, key), 0.0) + float(line.rsplit(" ", 1)[1])
    out = {}
    for n in models:
        runs = vals.get((n, "ferry_batch_size_count"), 0.0)
        samples = vals.get((n, "ferry_batch_size_sum"), 0.0)
        comp = vals.get((n, "ferry_compute_duration_seconds_sum"), 0.0)
        out[n] = (int(runs), samples / runs if runs else 0.0, comp / runs if runs else 0.0,
                  comp / samples if samples else 0.0)
    return out


def mode_batching(a, workdir):
    models = os.path.join(ROOT, "build", "bench-models")
    src = os.path.join(models, "resnet18", "model.onnx")
    if not os.path.exists(src):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "export_models.py"), models,
                        "resnet18"], check=True)
    repo = os.path.join(workdir, "repo-resnet")
    for name, cfg in [("resnet18_batched", {"max_batch_size": 32, "dynamic_batching":
                                            {"max_queue_delay_us": a.queue_delay_us}}),
                      ("resnet18_single", {"max_batch_size": 1})]:
        os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
        shutil.copyfile(src, os.path.join(repo, name, "1", "model.onnx"))
        json.dump(cfg, open(os.path.join(repo, name, "config.json"), "w"))
    import numpy as np
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224],
                                     "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    body = os.path.join(workdir, "resnet18-body.bin")
    open(body, "wb").write(header + x.tobytes())
    env = {"BODY_FILE": body, "IHCL": str(len(header))}
    ferry = Ferry(a.ferry, repo, workdir, a.threads, a.session_threads)
    try:
        urls = {n: f"http://127.0.0.1:{ferry.port}/v2/models/{n}/infer"
                for n in ["resnet18_batched", "resnet18_single"]}
        for u in urls.values():
            d = wrk(u, 3, a.connections, a.wrk_threads, env)
            if d["errors"]:
                raise SystemExit(f"run.py: {u}: {d['errors']} errors in the warm-up")
        res = {n: [] for n in urls}
        for k in range(a.rounds):
            for n, u in urls.items():
                res[n].append(wrk(u, a.seconds, a.connections, a.wrk_threads, env))
                print(f"round {k + 1}: {n:17s} {fmt(res[n][-1])}")
        breakdown = server_breakdown(ferry.port, list(urls))
    finally:
        code = ferry.stop()
    med = {n: statistics.median(x["rps"] for x in xs) for n, xs in res.items()}
    ratio = med["resnet18_batched"] / med["resnet18_single"]
    errors = sum(x["errors"] for xs in res.values() for x in xs)
    print(f"\nresnet18, {a.connections} connections: batched {med['resnet18_batched']:.1f} req/s, "
          f"single {med['resnet18_single']:.1f} req/s")
    for n, (runs, mean_batch, per_run, per_sample) in breakdown.items():
        print(f"{n}: {runs} runs, mean batch {mean_batch:.1f}, compute {per_run * 1000:.1f} ms per "
              f"run, {per_sample * 1000:.1f} ms per sample")
    ok = ratio >= 1.5 and errors == 0 and code == 0
    print(f"ratio batched/single {ratio:.2f} (goal >= 1.5), errors {errors}: "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ferry", default=os.path.join(ROOT, "build", "ferry"))
    p.add_argument("--mode", default="ratio", choices=["ratio", "soak", "batching", "all"])
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--threads", type=int, help="ferry serve --threads")
    p.add_argument("--session-threads", type=int, help="ferry serve --session-threads")
    p.add_argument("--nginx-workers", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--soak-seconds", type=int, default=300)
    p.add_argument("--sample-seconds", type=float, default=5)
    p.add_argument("--queue-delay-us", type=int, default=2000)
    a = p.parse_args()
    if not os.access(a.ferry, os.X_OK):
        print(f"run.py: no ferry binary at {a.ferry}", file=sys.stderr)
        return 2
    if not shutil.which("wrk"):
        print("run.py: wrk is not installed (scripts/install-deps.sh test)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="ferry-bench-serve-")
    modes = ["ratio", "soak", "batching"] if a.mode == "all" else [a.mode]
    ok = True
    try:
        for m in modes:
            print(f"== {m} ==")
            ok &= {"ratio": mode_ratio, "soak": mode_soak, "batching": mode_batching}[m](a, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
