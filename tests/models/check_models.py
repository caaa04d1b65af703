#!/usr/bin/env python3
"""check_models.py — runs every model that export.py wrote through the real `ferry` binary and
compares ferry's outputs with PyTorch's, one line per model and batch size.

Usage: check_models.py FERRY MODELS_DIR [MODEL...]

For each OUT_DIR/<model>/manifest.json: `ferry inspect` must exit 0, and for each batch size
`ferry run model.onnx --input NAME=FILE ... --output-dir DIR` must exit 0 and write every output
with PyTorch's shape and values (tolerance below). Exits 1 if anything failed, 77 if MODELS_DIR holds no exported model (a failure in CTest).
"""
import json
import os
import re
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("check_models.py: skipping, numpy is not importable")
    sys.exit(77)

RUN_TIMEOUT_S = 300

# Tolerance: |got - want| <= ATOL + RTOL * |want| element-wise (np.allclose), with ATOL scaled to
# the output's magnitude. The 1e-4 relative bound is the target; the absolute floor exists
# because an element near zero is the difference of terms of the tensor's own magnitude (a dot
# product, a softmax, a residual add), so its float32 rounding error is of order eps * scale of
# those terms, not of its own size. A different (but equally valid) summation order in ferry's
# GEMM/conv than in PyTorch's oneDNN/MKL moves such elements by ~1e-7..1e-6 * scale, which a pure
# relative test would reject. ATOL = 1e-5 * max(1, max|want|) is ~100x float32 epsilon of the
# scale: loose enough for accumulation order, ten times tighter than RTOL, and far below what a
# real kernel bug (wrong padding, stride, broadcasting or a swapped gate) produces, which is an
# error of the order of the values themselves.
RTOL = 1e-4
ATOL_SCALE = 1e-5


def compare(got, want):
    """Returns (ok, message) for one output tensor."""
    if got.shape != want.shape:
        return False, f"shape {list(got.shape)}, expected {list(want.shape)}"
    if got.dtype != want.dtype:
        return False, f"dtype {got.dtype}, expected {want.dtype}"
    if want.size == 0:
        return True, "empty"
    if not np.issubdtype(want.dtype, np.floating):
        bad = int(np.count_nonzero(got != want))
        return bad == 0, f"{bad} of {want.size} elements differ" if bad else "exact"
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.all(np.isfinite(g)):
        return False, f"{int(np.count_nonzero(~np.isfinite(g)))} non-finite values"
    atol = ATOL_SCALE * max(1.0, float(np.max(np.abs(w))))
    diff = np.abs(g - w)
    max_abs = float(diff.max())
    max_rel = float((diff / (np.abs(w) + atol)).max())  # relative, bounded near zero by atol
    used = float((diff / (atol + RTOL * np.abs(w))).max())  # <= 1 exactly when allclose
    ok = bool(np.allclose(g, w, rtol=RTOL, atol=atol)) and used <= 1.0
    msg = f"max_abs {max_abs:.2e} max_rel {max_rel:.2e} ({used:.0%} of tolerance)"
    if not ok:
        worst = np.unravel_index(int(np.argmax(diff - RTOL * np.abs(w))), w.shape)
        msg += f" (at {list(map(int, worst))}: got {g[worst]:.6g}, want {w[worst]:.6g})"
    return ok, msg


def why_failed(text, n=3):
    """The useful part of ferry's output: the op types it lacks kernels for when that is the
    reason (ferry lists one node per line), else its last few lines."""
    if "unsupported ops" in text or "no kernel for" in text:
        ops = dict.fromkeys(re.findall(r'^\s*(\w+) \(node "', text, re.MULTILINE))
        if ops:
            return "no kernel for " + ", ".join(ops)
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def run(cmd):
    """Runs cmd; returns (exit code or None on timeout, combined output)."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=RUN_TIMEOUT_S)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return None, out or ""


def check_model(ferry, model_dir, name):
    """Checks one model; prints its lines and returns the number of failures."""
    with open(os.path.join(model_dir, "manifest.json")) as f:
        manifest = json.load(f)
    model = os.path.join(model_dir, manifest["model"])
    failures = 0

    rc, out = run([ferry, "inspect", model])
    if rc != 0:
        print(f"FAIL {name} inspect: exit {rc}: {why_failed(out)}")
        failures += 1

    for batch, entry in sorted(manifest["batches"].items(), key=lambda kv: int(kv[0])):
        label = f"{name} b{batch}"
        got_dir = os.path.join(model_dir, f"ferry_b{batch}")
        shutil.rmtree(got_dir, ignore_errors=True)
        cmd = [ferry, "run", model, "--output-dir", got_dir]
        for input_name, file in entry["inputs"].items():
            cmd += ["--input", f"{input_name}={os.path.join(model_dir, file)}"]
        rc, out = run(cmd)
        if rc != 0:
            why = f"timed out after {RUN_TIMEOUT_S}s" if rc is None else f"exit {rc}"
            print(f"FAIL {label}: ferry run {why}: {why_failed(out)}")
            failures += 1
            continue
        parts, ok_all = [], True
        for output_name, file in entry["outputs"].items():
            want = np.load(os.path.join(model_dir, file))
            got_path = os.path.join(got_dir, f"{output_name}.npy")
            if not os.path.exists(got_path):
                ok, msg = False, "not written"
            else:
                ok, msg = compare(np.load(got_path), want)
            ok_all &= ok
            parts.append(f"{output_name}: {msg}" if len(entry["outputs"]) > 1 else msg)
        print(f"{'PASS' if ok_all else 'FAIL'} {label}: {'; '.join(parts)}")
        failures += not ok_all
    return failures


def main():
    if len(sys.argv) < 3:
        print("usage: check_models.py FERRY MODELS_DIR [MODEL...]", file=sys.stderr)
        return 2
    ferry, models_dir, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
    names = sorted(d for d in (os.listdir(models_dir) if os.path.isdir(models_dir) else [])
                   if os.path.exists(os.path.join(models_dir, d, "manifest.json")))
    if wanted:
        missing = [n for n in wanted if n not in names]
        if missing:
            print(f"check_models.py: not exported: {', '.join(missing)}", file=sys.stderr)
            return 1
        names = wanted
    if not names:
        print(f"check_models.py: skipping, no exported models in {models_dir}")
        return 77

    failed = []
    for name in names:
        try:
            if check_model(ferry, os.path.join(models_dir, name), name):
                failed.append(name)
        except (OSError, ValueError, KeyError) as e:  # a broken manifest or .npy is a failure
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            failed.append(name)
        sys.stdout.flush()
    print(f"{len(names) - len(failed)}/{len(names)} models match PyTorch"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
