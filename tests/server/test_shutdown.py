"""test_shutdown.py — SIGTERM while requests are in flight: every accepted request still gets its
200 answer, then ferry serve exits 0; it stops accepting new connections meanwhile."""
import concurrent.futures as cf
import os
import signal
import time

import requests

from conftest import SLOW, add_version, write_json

BODY = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [3.0]}]}


def test_sigterm_drains_in_flight_requests(start_server, models, tmp_path):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    add_version(repo, "slow", 1, models["slower"])
    write_json(os.path.join(repo, "slow", "config.json"), {"max_batch_size": 0, "instances": 1})
    server = start_server(repo)
    n = 6

    def one(_):
        return requests.post(server.url("/v2/models/slow/infer"), json=BODY, timeout=120 * SLOW)

    with cf.ThreadPoolExecutor(n) as ex:
        futs = [ex.submit(one, k) for k in range(n)]
        # Wait until the server has them all (queued or running), then ask it to stop.
        end, seen = time.monotonic() + 5 * SLOW, 0
        while time.monotonic() < end and seen < n:
            m = server.get("/metrics").text
            seen = sum(float(l.rsplit(" ", 1)[1]) for l in m.splitlines()
                       if l.startswith("ferry_inflight_requests"))
            time.sleep(0.01)
        assert seen >= n, f"only {seen} of {n} requests in flight before SIGTERM"
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        res = [f.result() for f in futs]
    codes = [r.status_code for r in res]
    assert codes == [200] * n, [(r.status_code, r.text[:200]) for r in res]
    assert all(r.json()["outputs"][0]["data"] == [3.0] for r in res)
    code = server.proc.wait(60 * SLOW)
    assert code == 0, f"exit {code} after SIGTERM\n{server.log()[-3000:]}"
    assert time.monotonic() - t0 < 60 * SLOW
    try:
        requests.get(server.url("/v2/health/live"), timeout=2)
        raise AssertionError("still accepting connections after exit")
    except requests.ConnectionError:
        pass


def test_default_repository_and_config_file(start_server, tmp_path):
    """No --repo: the bundled example repository (run from the source tree); --config FILE
    supplies settings (here a 1 MiB body limit and the log level)."""
    import json
    import numpy as np
    from conftest import EXAMPLES, ROOT
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"max_body_mb": 1, "log_level": "debug"}))
    server = start_server(None, "--config", str(cfg), cwd=ROOT)
    assert server.get("/v2/models/fashion-mnist/ready").status_code == 200
    x = np.load(os.path.join(EXAMPLES, "ankle-boot.npy")).astype(np.float32).reshape(1, 784)
    r = server.post("/v2/models/fashion-mnist/infer", json={"inputs": [
        {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    assert int(np.argmax(r.json()["outputs"][0]["data"])) == 9  # ankle boot
    big = b'{"inputs": [' + b" " * (2 << 20) + b"]}"
    assert server.post("/v2/models/fashion-mnist/infer", data=big).status_code == 413
    assert any(l.get("level") == "debug" for l in server.log_lines()), "log_level from --config"


def test_bad_usage_exit_codes(ferry_bin, tmp_path):
    import subprocess
    for args in (["--repo", str(tmp_path / "nosuch")], ["--port", "notaport"],
                 ["--log-level", "loud"], ["--max-body-mb", "-1"]):
        p = subprocess.run([ferry_bin, "serve", "--port", "1", *args], capture_output=True,
                           timeout=60 * SLOW)
        assert p.returncode == 2, (args, p.returncode, p.stderr.decode()[-500:])
        assert p.stderr, args
