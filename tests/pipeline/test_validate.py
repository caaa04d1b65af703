# test_validate.py — `ferry validate` end to end on the bundled Fashion-MNIST models and the real
# test set: metrics against scikit-learn from ferry's own predictions, the 10 s budget, gates that
# pass and fail, breaking signature changes, bad gate expressions, repository baselines,
# regression on CSV, and the reports (Markdown table, JSON, HTML rendered by headless Chromium).
#
# Run by CTest: /usr/bin/python3 -m pytest tests/pipeline -q, with FERRY (the binary), FERRY_SRC
# (the repository) and FERRY_ARTIFACTS (where screenshots go) in the environment.
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib

import numpy as np
import pytest
from sklearn import metrics as skm

FERRY = os.environ.get("FERRY", "build/ferry")
SRC = os.environ.get("FERRY_SRC", ".")
ART = os.environ.get("FERRY_ARTIFACTS", "build/test-artifacts")
SANITIZED = os.environ.get("FERRY_SANITIZED", "") not in ("", "0", "OFF")
FM = "/usr/share/datasets/fashion-mnist"
IMAGES = f"{FM}/t10k-images-idx3-ubyte.gz"
LABELS = f"{FM}/t10k-labels-idx1-ubyte.gz"
EX = os.path.join(SRC, "examples", "fashion-mnist")
CNN, WEAK, MLP = (os.path.join(EX, m) for m in ("cnn.onnx", "cnn-weak.onnx", "mlp.onnx"))
# the sanitizer build is ~10x slower: it checks a subset
LIMIT = ["--limit", "1000"] if SANITIZED else []
CLASSES = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"


def ferry(*args, timeout=300):
    return subprocess.run([FERRY, "validate", *args], capture_output=True, text=True, timeout=timeout)


def read_idx_labels(path):
    with gzip.open(path) as f:
        data = f.read()
    n = struct.unpack(">I", data[4:8])[0]
    return np.frombuffer(data[8:8 + n], dtype=np.uint8).astype(np.int64)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("validate")


@pytest.fixture(scope="module")
def cnn_run(work):
    """ferry validate on the whole test set (a subset under sanitizers), timed."""
    js, pred = work / "cnn.json", work / "cnn-probs.npy"
    t0 = time.monotonic()
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--gate", "accuracy>=0.85",
              "--report-json", str(js), "--predictions-out", str(pred), *LIMIT)
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(js.read_text()), np.load(pred), wall, r


def test_cnn_metrics_match_sklearn(cnn_run):
    report, probs, wall, _ = cnn_run
    y = read_idx_labels(LABELS)[: probs.shape[0]]
    assert probs.shape == (len(y), 10) and probs.dtype == np.float64
    pred = probs.argmax(axis=1)
    m = report["candidate"]["metrics"]
    labels = list(range(10))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    want = {
        "accuracy": skm.accuracy_score(y, pred),
        "top5_accuracy": skm.top_k_accuracy_score(y, probs, k=5, labels=labels),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y, probs, eps=1e-15, labels=labels),
    }
    for k, v in want.items():
        assert abs(m[k] - v) <= 1e-6, (k, m[k], v)
    pc = report["candidate"]["per_class"]
    assert np.allclose(pc["precision"], p, atol=1e-6, rtol=0)
    assert np.allclose(pc["recall"], r, atol=1e-6, rtol=0)
    assert np.allclose(pc["f1"], f, atol=1e-6, rtol=0)
    assert pc["support"] == s.tolist()
    assert report["candidate"]["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    # the bundled CNN's documented test accuracy (examples/fashion-mnist/README.md)
    if not SANITIZED:
        assert abs(m["accuracy"] - 0.8805) < 1e-9
    # logits went through softmax: rows are probabilities
    assert report["candidate"]["softmax_applied"] is True
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-12)
    print(f"sklearn agreement: max |diff| = {max(abs(m[k] - v) for k, v in want.items()):.2e}")


def test_cnn_on_10k_within_10_seconds(cnn_run):
    report, _, wall, _ = cnn_run
    if SANITIZED:
        pytest.skip("timed in the release build")
    assert report["data"]["samples"] == 10000
    print(f"ferry validate cnn.onnx on 10k Fashion-MNIST: {wall:.2f} s wall")
    assert wall < 10, f"took {wall:.1f} s"


def test_report_json_has_everything(cnn_run):
    report, _, _, _ = cnn_run
    for key in ("metrics", "candidate", "gates", "failures", "profile", "data", "latency_histogram_edges_ms"):
        assert key in report, key
    m = report["metrics"]
    for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_per_s", "size_mb", "peak_rss_mb"):
        assert m[k] > 0, k
    assert m["latency_p50_ms"] <= m["latency_p95_ms"] <= m["latency_p99_ms"]
    assert abs(m["size_mb"] - os.path.getsize(CNN) / 1e6) < 1e-9
    lat = report["candidate"]["latency"]
    assert lat["runs"] == 200 and sum(lat["counts"]) == 200 and len(report["latency_histogram_edges_ms"]) == len(lat["counts"]) + 1
    assert report["gates"][0]["passed"] is True and report["gates"][0]["threshold"] == 0.85
    prof = report["profile"]
    assert prof["inputs"]["kind"] == "image" and prof["inputs"]["values_per_sample"] == 784
    mi = prof["inputs"]["features"]["mean_intensity"]
    # mean intensity of the scaled images, recomputed here
    with gzip.open(IMAGES) as f:
        img = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)[: report["data"]["samples"]]
    assert abs(mi["mean"] - (img / 255.0).mean()) < 1e-9
    assert sum(mi["histogram"]["counts"]) == report["data"]["samples"]
    shares = prof["outputs"]["predicted_class_share"]
    assert len(shares) == 10 and abs(sum(shares) - 1) < 1e-9
    assert len(prof["outputs"]["class_probability"]) == 10


def test_weak_candidate_fails_every_gate_listed(work):
    js = work / "weak.json"
    r = ferry(WEAK, "--data", IMAGES, "--labels", LABELS, "--baseline", CNN,
              "--gate", "accuracy>=baseline-0.005", "--gate", "f1_macro>=baseline-0.005",
              "--gate", "accuracy>=0.5", "--gate", "latency_p95_ms<=baseline*100",
              "--gate", "size_mb<=50", "--report-json", str(js), *LIMIT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gate accuracy>=baseline-0.005 failed" in r.stderr
    assert "gate f1_macro>=baseline-0.005 failed" in r.stderr
    assert "gate accuracy>=0.5 failed" not in r.stderr
    report = json.loads(js.read_text())
    assert [g["passed"] for g in report["gates"]] == [False, False, True, True, True]
    g = report["gates"][0]
    assert abs(g["threshold"] - (report["baseline"]["metrics"]["accuracy"] - 0.005)) < 1e-12
    assert report["passed"] is False and len(report["failures"]) == 2
    assert report["signature_check"]["compatible"] is True
    agree = report["metrics"]["agreement"]
    assert 0 < agree < 1
    assert "❌ ferry validate: failed" in r.stdout and "**3 of 5 gates passed**" in r.stdout


def test_signature_change_is_breaking(work):
    r = ferry(MLP, "--data", IMAGES, "--labels", LABELS, "--baseline", CNN, "--limit", "500",
              "--gate", "accuracy>=0.5")
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'breaking change: input "input": shape [batch,1,28,28] → [batch,784]' in r.stderr
    assert "### Breaking signature change" in r.stdout
    # the same model against itself is compatible
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--baseline", CNN, "--limit", "200")
    assert r.returncode == 0 and "Signature: inputs and outputs match" in r.stdout


@pytest.mark.parametrize("expr,message", [
    ("acuracy>=0.9", 'did you mean "accuracy"'),
    ("accuracy=>0.9", 'write ">=", not "=>"'),
    ("accuracy~0.9", "expected >=, <=, > or < after the metric name"),
    ("accuracy==0.9", "only >=, <=, > and < compare"),
    ("accuracy>=", 'expected a number or "baseline"'),
    ("accuracy>=baseline-", "expected a number after the sign"),
    ("accuracy>=baseline/2", 'expected +, -, * or the end after "baseline"'),
    ("accuracy>=88%", "percentages are relative to the baseline"),
    ("agreement>=baseline", "already compares with the baseline"),
    ("accuracy>=0.9x", "unexpected text after the number"),
    ("", "empty expression"),
])
def test_bad_gate_is_a_usage_error(expr, message):
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--gate", expr)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    if expr and "did you" not in message:
        assert "^" in r.stderr  # a caret under the column


def test_missing_metrics_fail_with_a_reason(work):
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--limit", "300",
              "--gate", "mae<=0.1", "--gate", "agreement>=0.9", "--gate", "accuracy>=baseline")
    assert r.returncode == 1
    assert "mae is missing" in r.stderr
    assert "agreement is missing: this run did not compute it (it needs --baseline)" in r.stderr
    assert "no baseline to compare accuracy with" in r.stderr


def test_usage_and_input_errors_exit_2(work):
    assert ferry(CNN).returncode == 2
    assert ferry(CNN, "--data", "/nonexistent.npy", "--labels", LABELS).returncode == 2
    r = ferry(CNN, "--data", IMAGES)
    assert r.returncode == 2 and "no labels" in r.stderr
    r = ferry(CNN, "--data", IMAGES, "--labels", f"{FM}/train-labels-idx1-ubyte.gz")
    assert r.returncode == 2 and "10000 samples but 60000 labels" in r.stderr
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--class-names", "a,b")
    assert r.returncode == 2 and "2 names, the model has 10 classes" in r.stderr
    assert ferry("--help").returncode == 0


def test_repository_baseline(work):
    repo = work / "repo"
    (repo / "fmnist" / "3").mkdir(parents=True)
    shutil.copy(CNN, repo / "fmnist" / "3" / "model.onnx")
    (repo / "fmnist" / "labels.json").write_text('{"stable": 3}')
    js = work / "repo.json"
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--baseline", f"{repo}/fmnist@stable",
              "--gate", "accuracy>=baseline", "--limit", "500", "--report-json", str(js))
    assert r.returncode == 0, r.stderr
    report = json.loads(js.read_text())
    assert report["baseline"]["path"].endswith("fmnist/3/model.onnx")
    assert report["metrics"]["agreement"] == 1.0
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--baseline", f"{repo}/fmnist@canary")
    assert r.returncode == 2 and "canary" in r.stderr


def test_publish_keeps_the_report_and_serves_as_baseline(work, cnn_run):
    """The CI sequence: validate → publish --report → promote; the next validate gates against it."""
    report_path = work / "cnn.json"
    repo = work / "published"
    pub = subprocess.run([FERRY, "publish", CNN, "--repo", str(repo), "--name", "fmnist", "--label", "stable",
                          "--report", str(report_path), "--quiet"], capture_output=True, text=True)
    if pub.returncode != 0 and "unknown command" in pub.stderr:
        pytest.skip("this build has no ferry publish")
    assert pub.returncode == 0, pub.stderr
    manifest = json.loads((repo / "fmnist" / "1" / "manifest.json").read_text())
    assert manifest["metrics"]["accuracy"] == cnn_run[0]["metrics"]["accuracy"]
    assert "inputs" in manifest.get("profile", {"inputs": 1})
    js = work / "after-publish.json"
    r = ferry(WEAK, "--data", IMAGES, "--labels", LABELS, "--baseline", f"{repo}/fmnist@stable",
              "--gate", "accuracy>=baseline-0.005", "--limit", "500", "--report-json", str(js))
    assert r.returncode == 1 and "gate accuracy>=baseline-0.005 failed" in r.stderr
    assert json.loads(js.read_text())["baseline"]["path"].endswith("fmnist/1/model.onnx")


def test_regression_on_csv_matches_sklearn(work):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    w = np.array([[0.5], [-1.25], [2.0]], dtype=np.float32)
    b = np.array([0.1], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = work / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    x = rng.normal(size=(300, 3))
    y = x @ w.astype(np.float64)[:, 0] + 0.1 + rng.normal(scale=0.3, size=300)
    csv = work / "reg.csv"
    with open(csv, "w") as f:
        f.write("a,b,target,c\n")
        for row, t in zip(x, y):
            f.write(f"{row[0]!r},{row[1]!r},{t!r},{row[2]!r}\n")
    js, pred = work / "reg.json", work / "reg.npy"
    r = ferry(str(model), "--data", str(csv), "--label-column", "target", "--gate", "r2>=0.9",
              "--report-json", str(js), "--predictions-out", str(pred))
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(js.read_text())
    assert report["task"] == "regression"
    p = np.load(pred)[:, 0]
    # ferry's predictions are the model's: float32 Gemm of the float32-rounded inputs
    ref = (x.astype(np.float32) @ w + b)[:, 0]
    assert np.allclose(p, ref, atol=1e-5)
    m = report["metrics"]
    assert abs(m["mae"] - skm.mean_absolute_error(y, p)) < 1e-6
    assert abs(m["mse"] - skm.mean_squared_error(y, p)) < 1e-6
    assert abs(m["rmse"] - np.sqrt(skm.mean_squared_error(y, p))) < 1e-6
    assert abs(m["r2"] - skm.r2_score(y, p)) < 1e-6
    assert report["profile"]["inputs"]["kind"] == "tabular"
    assert set(report["profile"]["inputs"]["features"]) == {"f0", "f1", "f2"}


def md_tables(text):
    """GitHub-flavoured Markdown tables: header, delimiter row, body rows with as many cells."""
    lines, tables, i = text.splitlines(), [], 0
    while i < len(lines) - 1:
        head, delim = lines[i], lines[i + 1]
        if head.startswith("|") and re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", delim):
            cells = head.count("|") - 1
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") - 1 == cells, lines[j]
                rows.append([c.strip() for c in lines[j].strip("|").split("|")])
                j += 1
            tables.append(([c.strip() for c in head.strip("|").split("|")], rows))
            i = j
        else:
            i += 1
    return tables


def test_markdown_is_a_table_for_pr_comments(work):
    md = work / "report.md"
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--baseline", WEAK, "--limit", "1000",
              "--gate", "accuracy>=baseline-0.005", "--gate", "latency_p95_ms<=baseline*3",
              "--class-names", CLASSES, "--report-md", str(md))
    text = md.read_text()
    assert text.startswith("## ")
    assert r.stdout == text
    tables = md_tables(text)
    assert len(tables) == 3  # metrics, per class, confusion matrix
    head, rows = tables[0]
    assert head == ["Metric", "Candidate", "Baseline", "Δ", "Gate", "Result"]
    acc = next(row for row in rows if row[0] == "accuracy")
    assert acc[4] == "`accuracy>=baseline-0.005`" and acc[5] in ("✅ pass", "❌ fail")
    assert float(acc[3]) == pytest.approx(float(acc[1]) - float(acc[2]), abs=2e-4)
    assert tables[1][1][9][0] == "Ankle boot" and len(tables[2][1]) == 10


def png_pixels(path):
    """(width, height, distinct colours in a sample) of an 8-bit RGB/RGBA PNG, decoded here."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h, bpp = 8, b"", 0, 0, 3
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 7 == 0:
            for x in range(0, w, 5):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return w, h, len(colours)


def test_html_renders_in_headless_chromium(work):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed")
    html = work / "report.html"
    r = ferry(CNN, "--data", IMAGES, "--labels", LABELS, "--baseline", WEAK, "--limit", "2000",
              "--gate", "accuracy>=baseline-0.005", "--gate", "f1_macro>=0.8", "--class-names", CLASSES,
              "--report-html", str(html))
    assert r.returncode == 0, r.stderr
    page = html.read_text()
    # self-contained: no external fetches, charts are inline SVG
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count("<svg") >= 3 and "Ankle boot" in page
    os.makedirs(ART, exist_ok=True)
    shot = os.path.join(ART, "validate-report.png")
    if os.path.exists(shot):
        os.remove(shot)
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--screenshot={shot}", "--window-size=1280,2000", f"file://{html}"],
                         capture_output=True, text=True, timeout=120)
    assert os.path.exists(shot), res.stderr
    w, h, colours = png_pixels(shot)
    assert (w, h) == (1280, 2000)
    assert colours > 20, f"screenshot looks blank ({colours} colours)"
    assert os.path.getsize(shot) > 30000
    print(f"screenshot: {shot} ({os.path.getsize(shot)} bytes, {colours} colours sampled)")
