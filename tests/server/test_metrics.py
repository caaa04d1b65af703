"""test_metrics.py — /metrics in the Prometheus text format: promtool accepts it, the series
the issue names are there with bounded labels, counters move with traffic, and a real
Prometheus server scraping ferry on loopback every second answers a query for
ferry_requests_total."""
import os
import re
import shutil
import subprocess
import time

import pytest
import requests

from conftest import SLOW, fashion_images, free_port, v2_input


def _traffic(server):
    x = fashion_images(2)
    for _ in range(3):
        assert server.post("/v2/models/mlp/infer",
                           json={"inputs": [v2_input("input", x)]}).status_code == 200
    server.post("/v2/models/mlp/infer", json={"inputs": []})  # a 400
    server.post("/v2/models/nosuch/infer", json={"inputs": []})  # a 404


def _samples(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        assert m, f"unparseable sample line: {line!r}"
        out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


def test_promtool_check_metrics(server):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is not installed (Debian package prometheus)")
    _traffic(server)
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    p = subprocess.run([promtool, "check", "metrics"], input=r.content, capture_output=True)
    assert p.returncode == 0, f"promtool check metrics:\n{p.stdout.decode()}{p.stderr.decode()}"


def test_expected_series(server):
    _traffic(server)
    s = _samples(server.get("/metrics").text)
    for name in ["ferry_requests_total", "ferry_request_duration_seconds_bucket",
                 "ferry_queue_duration_seconds_bucket", "ferry_compute_duration_seconds_bucket",
                 "ferry_batch_size_bucket", "ferry_inflight_requests", "ferry_queue_depth",
                 "ferry_model_loads_total", "ferry_model_load_failures_total",
                 "ferry_model_load_duration_seconds_bucket",
                 "process_resident_memory_bytes", "process_cpu_seconds_total"]:
        assert name in s, f"{name} missing; have {sorted(s)}"
    labels = " ".join(l for l, _ in s["ferry_requests_total"])
    assert 'model="mlp"' in labels and 'code="200"' in labels and 'code="400"' in labels, labels
    # Unknown model names must not become label values (unbounded cardinality).
    assert "nosuch" not in server.get("/metrics").text
    for name in s:
        assert name.startswith(("ferry_", "process_")), f"metric {name} outside ferry_/process_"


def test_counters_move(server):
    def ok_count():
        s = _samples(server.get("/metrics").text)
        return sum(v for l, v in s.get("ferry_requests_total", [])
                   if 'model="mlp"' in l and 'code="200"' in l)
    before = ok_count()
    _traffic(server)
    assert ok_count() - before == 3


def test_prometheus_scrapes_ferry(server, tmp_path):
    prom = shutil.which("prometheus")
    if not prom:
        pytest.fail("prometheus is not installed (Debian package prometheus)")
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ferry
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        _traffic(server)
        api = f"http://127.0.0.1:{port}/api/v1/query"
        result, deadline = [], time.monotonic() + 60 * SLOW
        while time.monotonic() < deadline and not result:
            assert p.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                doc = requests.get(api, params={"query": 'ferry_requests_total{model="mlp"}'},
                                   timeout=5).json()
                if doc.get("status") == "success":
                    result = doc["data"]["result"]
            except (requests.RequestException, ValueError):
                pass
            if not result:
                time.sleep(0.5)
        assert result, "Prometheus never returned ferry_requests_total:\n" + \
            (tmp_path / "prometheus.log").read_text()[-3000:]
        assert any(float(r["value"][1]) > 0 for r in result), result
        targets = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
        health = [t["health"] for t in targets["data"]["activeTargets"]]
        assert health == ["up"], targets
    finally:
        p.terminate()
        p.wait(30)
        log.close()
