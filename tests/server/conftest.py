"""conftest.py — fixtures for the ferry serve tests: small ONNX models, temporary model
repositories, and a Server that runs the real `ferry serve` binary on a free loopback port.

The binary comes from `--ferry PATH` (CTest passes $<TARGET_FILE:ferry_cli>) or $FERRY_BIN.
Every server is stopped with SIGTERM and must exit 0; its log is printed when a test fails.
Models are built once per session with onnx.helper (dtypes the Fashion-MNIST models lack, a
deliberately slow model for queue and deadline tests) or copied from examples/fashion-mnist.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "fashion-mnist")

# Sanitizer builds start and run several times slower; every wait scales with this.
SLOW = float(os.environ.get("FERRY_TEST_SLOW", "1"))
# Under AddressSanitizer freed memory sits in a quarantine, so RSS grows without a leak; there
# LeakSanitizer at exit (a leak makes the exit code non-zero) replaces the RSS checks.
SANITIZED = os.environ.get("FERRY_TEST_SANITIZED", "") not in ("", "0")


def assert_rss_flat(before, after, what):
    if SANITIZED:
        return
    assert after - before < max(8192, before * 0.10), f"{what}: RSS {before} KiB → {after} KiB"


def pytest_addoption(parser):
    parser.addoption("--ferry", default=os.environ.get("FERRY_BIN"),
                     help="path of the ferry binary to serve with")


@pytest.fixture(scope="session")
def ferry_bin(request):
    path = request.config.getoption("--ferry")
    if not path:
        path = os.path.join(ROOT, "build", "ferry")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no ferry binary at {path} (pass --ferry PATH or set FERRY_BIN)")
    return os.path.abspath(path)


# ---- models --------------------------------------------------------------------------------

def _save(model, path):
    import onnx
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_types_model(path):
    """Three inputs of three dtypes sharing a batch dim: f FP32 [b,3], i INT64 [b,2], b BOOL
    [b,2]; outputs f2 = f*2, i7 = i+7, nb = not b. The arithmetic makes a server that echoes its
    input fail the test."""
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Mul", ["f", "two"], ["f2"]),
         helper.make_node("Add", ["i", "seven"], ["i7"]),
         helper.make_node("Not", ["b"], ["nb"])],
        "types",
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("i", TensorProto.INT64, ["batch", 2]),
         helper.make_tensor_value_info("b", TensorProto.BOOL, ["batch", 2])],
        [helper.make_tensor_value_info("f2", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("i7", TensorProto.INT64, ["batch", 2]),
         helper.make_tensor_value_info("nb", TensorProto.BOOL, ["batch", 2])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
         helper.make_tensor("seven", TensorProto.INT64, [], [7])])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def make_strings_model(path):
    """BYTES in and out: s STRING [b,2] → Identity → t, plus n INT64 [b,2] = 1 everywhere via
    Shape/ConstantOfShape, so the server also has to handle a mixed-dtype response."""
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"]),
         helper.make_node("Shape", ["s"], ["shp"]),
         helper.make_node("ConstantOfShape", ["shp"], ["n"],
                          value=helper.make_tensor("one", TensorProto.INT64, [1], [1]))],
        "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["batch", 2])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["batch", 2]),
         helper.make_tensor_value_info("n", TensorProto.INT64, ["batch", 2])])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def make_slow_model(path, n=768, steps=10):
    """x FP32 [1,1] → y FP32 [1,1]; in between a chain of `steps` n×n MatMuls on a matrix built
    from x (so nothing can be constant-folded). Each run costs steps*2*n^3 FLOPs: tens of ms,
    enough to fill a queue of one with a handful of concurrent clients."""
    from onnx import TensorProto, helper
    nodes = [
        helper.make_node("Expand", ["x", "nn"], ["a0"]),
        helper.make_node("Mul", ["a0", "scale"], ["m0"]),
    ]
    prev = "m0"
    for k in range(steps):
        nodes.append(helper.make_node("MatMul", [prev, "m0"], [f"m{k + 1}"]))
        prev = f"m{k + 1}"
    nodes += [helper.make_node("ReduceSum", [prev], ["s"], keepdims=1, axes=[0, 1]),
              helper.make_node("Mul", ["s", "zero"], ["z"]),
              helper.make_node("Add", ["x", "z"], ["y"])]
    g = helper.make_graph(
        nodes, "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("nn", TensorProto.INT64, [2], [n, n]),
         helper.make_tensor("scale", TensorProto.FLOAT, [], [1.0 / n]),
         helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)]), path)


def make_mlp_plus(path, offset):
    """The Fashion-MNIST MLP with `offset` added to its logits: a second version whose answers
    differ from the first in a way a test can recognise (same inputs and outputs)."""
    import onnx
    from onnx import TensorProto, helper
    m = onnx.load(os.path.join(EXAMPLES, "mlp.onnx"))
    for node in m.graph.node:
        for k, out in enumerate(node.output):
            if out == "logits":
                node.output[k] = "logits_raw"
    m.graph.node.append(helper.make_node("Add", ["logits_raw", "offset"], ["logits"]))
    m.graph.initializer.append(helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]))
    _save(m, path)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {"mlp": os.path.join(EXAMPLES, "mlp.onnx")}
    for name, make in [("types", make_types_model), ("strings", make_strings_model),
                       ("slow", make_slow_model)]:
        out[name] = str(d / f"{name}.onnx")
        make(out[name])
    out["slower"] = str(d / "slower.onnx")  # ~4x slow: requests that are surely in flight
    make_slow_model(out["slower"], steps=40)
    out["mlp_plus100"] = str(d / "mlp_plus100.onnx")
    make_mlp_plus(out["mlp_plus100"], 100.0)
    return out


# ---- repositories ---------------------------------------------------------------------------

def add_version(repo, name, version, model_path, manifest=False):
    """Writes REPO/NAME/VERSION/model.onnx the way ferry publish does: into a temp dir, then a
    rename, so the server never sees it half-written. With manifest=True also writes a
    manifest.json that verifies."""
    vdir = os.path.join(repo, name, str(version))
    tmp = os.path.join(repo, name, f".tmp-{version}")
    os.makedirs(tmp, exist_ok=True)
    shutil.copyfile(model_path, os.path.join(tmp, "model.onnx"))
    if manifest:
        write_manifest(tmp, name, version)
    os.rename(tmp, vdir)
    return vdir


def write_manifest(vdir, name, version, files=None):
    import hashlib
    entries = []
    for rel in files or ["model.onnx"]:
        data = open(os.path.join(vdir, rel), "rb").read()
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    doc = {"format": 1, "model": name, "version": version,
           "created": "2026-11-23T00:00:00Z", "files": entries}
    with open(os.path.join(vdir, "manifest.json"), "w") as f:
        json.dump(doc, f)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, path)


# ---- the server -----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """One `ferry serve` process. url(path) builds addresses; stop() sends SIGTERM and returns
    the exit code."""

    def __init__(self, ferry, repo, workdir, args=(), ready_timeout=60.0, cwd=None):
        self.ferry, self.repo = ferry, repo
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, f"ferry-serve-{self.port}.log")
        self.cmd = [ferry, "serve", *(["--repo", repo] if repo else []), "--host", "127.0.0.1",
                    "--port", str(self.port), *args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=cwd)
        self.session = requests.Session()
        self._wait_ready(ready_timeout * SLOW)

    def _wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"ferry serve exited with {self.proc.returncode} before "
                                     f"it was ready:\n{self.log()}")
            try:
                if requests.get(self.url("/v2/health/ready"), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"ferry serve not ready after {timeout:.0f} s:\n{self.log()}")

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", 30 * SLOW)
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 30 * SLOW)
        return self.session.post(self.url(path), **kw)

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """The log's JSON lines, parsed (other lines are skipped)."""
        out = []
        for line in self.log().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30.0):
        """SIGTERM, then wait; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                return None
        self._log.close()
        self.session.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def start_server(ferry_bin, tmp_path_factory, request):
    """A factory: start_server(repo, *args) → a ready Server, stopped (and checked for exit 0)
    at the end of the session unless the test stopped it itself."""
    started = []
    workdir = str(tmp_path_factory.mktemp("logs"))

    def start(repo, *args, ready_timeout=60.0, cwd=None):
        s = Server(ferry_bin, str(repo) if repo else None, workdir, args, ready_timeout, cwd)
        started.append(s)
        return s

    yield start
    bad = []
    for s in started:
        if s.proc.poll() is None:
            code = s.stop()
            if code != 0:
                bad.append(f"{s.cmd}: exit {code} after SIGTERM\n{s.log()[-4000:]}")
        # A sanitizer report means a bug even if every response was right.
        if "ERROR: AddressSanitizer" in s.log() or "runtime error:" in s.log():
            bad.append(f"{s.cmd}: sanitizer report\n{s.log()[-8000:]}")
    if bad:
        pytest.fail("\n\n".join(bad))


# The main repository most endpoint tests share: every model the protocol tests need, each
# with the config.json that makes it interesting.
MAIN_CONFIGS = {
    "mlp": {"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_us": 200}},
    "types": {"max_batch_size": 8},
    "strings": {"max_batch_size": 8},
    "slow": {"max_batch_size": 0, "instances": 1},
    # one instance and a queue of one: a handful of concurrent clients overflow it (503)
    "slowq": {"max_batch_size": 0, "instances": 1, "limits": {"max_queue_size": 1}},
    # a 20 ms deadline: the second of two concurrent requests waits longer than that (504)
    "slowd": {"max_batch_size": 0, "instances": 1, "limits": {"timeout_ms": 20}},
    "multi": {"max_batch_size": 16, "version_policy": {"all": {}}},
}


@pytest.fixture(scope="session")
def main_repo(models, tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("repo"))
    for name in ["mlp", "types", "strings", "slow"]:
        add_version(repo, name, 1, models[name])
    for name in ["slowq", "slowd"]:
        add_version(repo, name, 1, models["slow"])
    # "multi": versions 1 (plain MLP) and 2 (logits + 100), labels stable=1, canary=2.
    add_version(repo, "multi", 1, models["mlp"])
    add_version(repo, "multi", 2, models["mlp_plus100"], manifest=True)
    write_json(os.path.join(repo, "multi", "labels.json"), {"stable": 1, "canary": 2})
    for name, cfg in MAIN_CONFIGS.items():
        write_json(os.path.join(repo, name, "config.json"), cfg)
    return repo


@pytest.fixture(scope="session")
def server(start_server, main_repo):
    return start_server(main_repo, "--log-level", "debug")


# A fast repository poll for the reload tests, and one that never fires (SIGHUP only).
POLL_ARGS = ("--poll-seconds", "0.5")
NO_POLL_ARGS = ("--poll-seconds", "0")

# The request body limit, set small so the 413 test does not need a huge body.
BODY_LIMIT_ARGS = ("--max-body-mb", "1")


@pytest.fixture(scope="session")
def limited_server(start_server, models, tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("repo-limited"))
    add_version(repo, "mlp", 1, models["mlp"])
    return start_server(repo, *BODY_LIMIT_ARGS)


# ---- helpers shared by the tests ------------------------------------------------------------

def fashion_images(n, offset=0):
    """n real Fashion-MNIST test images as float32 [n,784] in [0,1] (the MLP's training scale),
    read from the IDX file; falls back to the bundled ankle-boot image when the data set is not
    installed."""
    import gzip
    path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if os.path.exists(path):
        with gzip.open(path, "rb") as f:
            raw = f.read()
        imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)
        return (imgs[offset:offset + n].astype(np.float32) / 255.0)
    one = np.load(os.path.join(EXAMPLES, "ankle-boot.npy")).astype(np.float32).reshape(1, 784)
    rng = np.random.default_rng(offset)
    return np.clip(one + rng.normal(0, 0.05, (n, 784)).astype(np.float32), 0, 1)


def ferry_run(ferry, model, arrays, tmpdir):
    """Outputs of `ferry run MODEL --input name=file.npy ...` as {name: array}."""
    args = [ferry, "run", model]
    for name, arr in arrays.items():
        p = os.path.join(tmpdir, f"in-{name}.npy")
        np.save(p, arr)
        args += ["--input", f"{name}={p}"]
    outdir = os.path.join(tmpdir, "out")
    os.makedirs(outdir, exist_ok=True)
    subprocess.run(args + ["--output-dir", outdir], check=True, capture_output=True)
    return {f[:-4]: np.load(os.path.join(outdir, f)) for f in os.listdir(outdir) if f.endswith(".npy")}


def mlp_numpy(model_path, x):
    """The MLP computed with numpy from the ONNX initializers: Gemm(transB)+ReLU twice, Gemm."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(model_path)
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    h = x.astype(np.float64)
    for k, layer in enumerate(["0", "2", "4"]):
        h = h @ w[f"{layer}.weight"].T.astype(np.float64) + w[f"{layer}.bias"]
        if k < 2:
            h = np.maximum(h, 0)
    return h


def v2_input(name, arr, datatype=None):
    dt = datatype or {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64",
                      np.dtype(np.bool_): "BOOL", np.dtype(np.int32): "INT32"}[arr.dtype]
    return {"name": name, "shape": list(arr.shape), "datatype": dt, "data": arr.ravel().tolist()}


class Hammer:
    """Threads sending the same infer request in a loop until stop(); counts every response
    that is not a 200 with the right output shape, and what each answer's offset was (so a test
    can see which version answered)."""

    def __init__(self, server, path, body, check, threads=4):
        self.server, self.path, self.body, self.check = server, path, body, check
        self.ok = 0
        self.failures = []
        self.seen = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        s = requests.Session()
        while not self._stop.is_set():
            try:
                r = s.post(self.server.url(self.path), json=self.body, timeout=30 * SLOW)
                tag = self.check(r)
                with self._lock:
                    if tag is None:
                        self.failures.append(f"t={time.monotonic():.2f} {r.status_code} "
                                             f"{r.text[:300]}")
                    else:
                        self.ok += 1
                        if not self.seen or self.seen[-1][1] != tag:
                            self.seen.append((time.monotonic(), tag))
            except requests.RequestException as e:
                with self._lock:
                    self.failures.append(f"t={time.monotonic():.2f} transport: {e}")

    def last_tag(self):
        with self._lock:
            return self.seen[-1][1] if self.seen else None

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(60 * SLOW)
