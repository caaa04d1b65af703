#!/usr/bin/python3
"""test_publish_kill.py — kill `ferry publish` with SIGKILL at random moments, many times, and
check after every kill that no half-written version is accepted: each version directory either
does not exist or verifies (with `ferry verify` and independently with hashlib), labels.json
always parses and names a complete version, leftover temp dirs are ignored by verify and removed
by the next publish.

usage: test_publish_kill.py FERRY WORKDIR [ITERATIONS]   (FERRY_KILL_ITERATIONS overrides)
"""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FERRY, WORK = sys.argv[1], sys.argv[2]
ITERATIONS = int(os.environ.get("FERRY_KILL_ITERATIONS", sys.argv[3] if len(sys.argv) > 3 else 200))
NAME = "big"


def make_model(dirname):
    """y = (x @ A) @ B with A inside model.onnx (~11 MB) and B in weights/b.bin (~11 MB), so a
    publish copies two large files and a kill can land between or inside them."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1664, 1664), dtype=np.float32)
    b = rng.standard_normal((1664, 1664), dtype=np.float32)
    ta = numpy_helper.from_array(a, "A")
    tb = numpy_helper.from_array(b, "B")
    os.makedirs(os.path.join(dirname, "weights"), exist_ok=True)
    with open(os.path.join(dirname, "weights", "b.bin"), "wb") as f:
        f.write(tb.raw_data)
    tb.ClearField("raw_data")
    tb.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights/b.bin"), ("offset", "0"), ("length", str(b.nbytes))):
        e = tb.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "A"], ["h"]), helper.make_node("MatMul", ["h", "B"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1664])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1664])],
        [ta, tb],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = os.path.join(dirname, "big.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def manifest_ok(vdir):
    """Independent check of one version: the manifest lists model.onnx and every file's hash."""
    try:
        return manifest_matches(vdir)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def manifest_matches(vdir):
    with open(os.path.join(vdir, "manifest.json")) as f:
        m = json.load(f)
    listed = set()
    for e in m["files"]:
        p = os.path.join(vdir, e["path"])
        with open(p, "rb") as f:
            data = f.read()
        if len(data) != e["size"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            return False
        listed.add(e["path"])
    on_disk = set()
    for d, _, files in os.walk(vdir):
        for fn in files:
            on_disk.add(os.path.relpath(os.path.join(d, fn), vdir))
    return "model.onnx" in listed and on_disk - {"manifest.json"} == listed


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    model = make_model(os.path.join(WORK, "src"))
    size = os.path.getsize(model) + os.path.getsize(os.path.join(WORK, "src", "weights", "b.bin"))
    repo = os.path.join(WORK, "repo")
    mdir = os.path.join(repo, NAME)
    cmd = [FERRY, "publish", model, "--repo", repo, "--name", NAME, "--label", "canary"]

    # How long an undisturbed publish takes: kills are spread over 0..1.2x that.
    durations = []
    for _ in range(3):
        t = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        durations.append(time.monotonic() - t)
    span = sorted(durations)[1] * 1.2
    print(f"model {size / 1e6:.1f} MB in 2 files; an undisturbed publish takes "
          f"{sorted(durations)[1] * 1000:.0f} ms; killing at 0..{span * 1000:.0f} ms")

    completed = {1, 2, 3}
    seen = set(os.listdir(mdir))
    outcomes = {"no version": 0, "complete version": 0}
    max_temps = 0
    rnd = random.Random(int(os.environ.get("FERRY_KILL_SEED", "1")))
    failures = []
    verifies = 0
    r = subprocess.run([FERRY, "verify", "--repo", repo, NAME], capture_output=True, text=True)
    for it in range(ITERATIONS):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, span))
        p.send_signal(signal.SIGKILL)
        p.wait()
        now = set(os.listdir(mdir))
        new = now - seen
        temps = [n for n in now if n.startswith(".tmp-")]
        max_temps = max(max_temps, len(temps))
        versions = [n for n in new if n.isdigit()]
        if versions:
            outcomes["complete version"] += 1
        else:
            outcomes["no version"] += 1
        for v in versions:
            if not manifest_ok(os.path.join(mdir, v)):
                failures.append(f"iteration {it}: version {v} is half-written")
            completed.add(int(v))
        # ferry verify must accept the repository as it is now, temp dirs included (re-hashing an
        # unchanged repository every time only costs time, so every 8th iteration then).
        if versions or temps and it % 8 == 0:
            r = subprocess.run([FERRY, "verify", "--repo", repo, NAME], capture_output=True,
                               text=True)
            verifies += 1
        if r.returncode != 0:
            failures.append(f"iteration {it}: ferry verify failed:\n{r.stdout}{r.stderr}")
        labels_path = os.path.join(mdir, "labels.json")
        try:
            with open(labels_path) as f:
                labels = json.load(f)
            if labels.get("canary") not in completed:
                failures.append(f"iteration {it}: canary -> {labels.get('canary')}, not a complete version")
        except (OSError, ValueError) as e:
            failures.append(f"iteration {it}: labels.json unreadable: {e}")
        # Keep the repository small: drop verified versions already checked (and their labels'
        # targets stay in `completed`, so label checks still hold).
        for v in versions:
            if str(labels.get("canary")) != v:
                shutil.rmtree(os.path.join(mdir, v))
        seen = set(os.listdir(mdir))
        if failures:
            break

    # A final undisturbed publish cleans every leftover temp dir and gets a fresh number.
    r = subprocess.run(cmd, capture_output=True, text=True)
    left = [n for n in os.listdir(mdir) if n.startswith(".tmp-")]
    if r.returncode != 0:
        failures.append(f"publish after the kills failed: {r.stderr}")
    if left:
        failures.append(f"temp dirs left after a clean publish: {left}")
    r = subprocess.run([FERRY, "verify", "--repo", repo], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"final ferry verify failed:\n{r.stdout}")
    # The history is one JSON object per line even though publishes were killed mid-way.
    with open(os.path.join(mdir, "history.jsonl")) as f:
        lines = f.read().splitlines()
    for ln in lines:
        try:
            json.loads(ln)
        except ValueError:
            failures.append(f"history.jsonl has a broken line: {ln[:80]}")

    print(f"{ITERATIONS} kills: {outcomes['no version']} left no version, "
          f"{outcomes['complete version']} left a complete version; at most {max_temps} temp "
          f"dir(s) lying around at once; {verifies} ferry verify runs passed; {len(lines)} "
          "history lines, all valid JSON")
    if failures:
        print("FAIL:\n" + "\n".join(failures[:10]))
        return 1
    # Both outcomes must have happened, or the kills did not cover the publish.
    if outcomes["no version"] == 0 or outcomes["complete version"] == 0:
        print("FAIL: kills did not land both before and after the version appeared")
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
