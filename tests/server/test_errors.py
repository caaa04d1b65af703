"""test_errors.py — every error ferry serve must answer with the right status and a JSON
{"error": ...} body: malformed JSON, wrong or missing input names, shape and dtype mismatches,
data count against shape, bodies over the limit (413), unknown model/version/label (404), a
full queue (503 + Retry-After) and a deadline passed while queued (504). Afterwards the server
still answers, and repeating every bad request many times does not grow its memory."""
import concurrent.futures as cf
import json

import numpy as np
import pytest
import requests

from conftest import SLOW, assert_rss_flat, fashion_images, v2_input

GOOD = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                    "data": [0.0] * 784}]}


def _bad_requests():
    """(label, method, path, kwargs, expected status)"""
    row = [0.0] * 784
    inp = lambda **kw: {"inputs": [dict({"name": "input", "shape": [1, 784], "datatype": "FP32",
                                         "data": row}, **kw)]}
    return [
        ("malformed json", "post", "/v2/models/mlp/infer", {"data": b'{"inputs": [', "headers": {"Content-Type": "application/json"}}, 400),
        ("not an object", "post", "/v2/models/mlp/infer", {"data": b"[1,2,3]"}, 400),
        ("empty body", "post", "/v2/models/mlp/infer", {"data": b""}, 400),
        ("no inputs", "post", "/v2/models/mlp/infer", {"json": {"inputs": []}}, 400),
        ("wrong input name", "post", "/v2/models/mlp/infer", {"json": inp(name="image")}, 400),
        ("missing input", "post", "/v2/models/types/infer",
         {"json": {"inputs": [v2_input("f", np.ones((1, 3), np.float32))]}}, 400),
        ("duplicate input", "post", "/v2/models/mlp/infer",
         {"json": {"inputs": inp()["inputs"] * 2}}, 400),
        ("shape mismatch", "post", "/v2/models/mlp/infer",
         {"json": inp(shape=[1, 783], data=row[:783])}, 400),
        ("rank mismatch", "post", "/v2/models/mlp/infer", {"json": inp(shape=[784])}, 400),
        ("negative dim", "post", "/v2/models/mlp/infer", {"json": inp(shape=[-1, 784])}, 400),
        ("dtype mismatch", "post", "/v2/models/mlp/infer", {"json": inp(datatype="INT64",
                                                                       data=[0] * 784)}, 400),
        ("unknown dtype", "post", "/v2/models/mlp/infer", {"json": inp(datatype="FP33")}, 400),
        ("data count < shape", "post", "/v2/models/mlp/infer", {"json": inp(data=row[:700])}, 400),
        ("data count > shape", "post", "/v2/models/mlp/infer", {"json": inp(data=row + [1.0])}, 400),
        ("non-numeric data", "post", "/v2/models/mlp/infer",
         {"json": inp(data=["x"] * 784)}, 400),
        ("ragged nested data", "post", "/v2/models/mlp/infer",
         {"json": inp(shape=[2, 784], data=[row, row[:10]])}, 400),
        ("string where bool", "post", "/v2/models/types/infer",
         {"json": {"inputs": [v2_input("f", np.ones((1, 3), np.float32)),
                              v2_input("i", np.ones((1, 2), np.int64)),
                              {"name": "b", "shape": [1, 2], "datatype": "BOOL",
                               "data": ["yes", "no"]}]}}, 400),
        ("int64 overflow", "post", "/v2/models/types/infer",
         {"data": ('{"inputs":[{"name":"f","shape":[1,3],"datatype":"FP32","data":[1,2,3]},'
                   '{"name":"i","shape":[1,2],"datatype":"INT64","data":[1,99999999999999999999999]},'
                   '{"name":"b","shape":[1,2],"datatype":"BOOL","data":[true,false]}]}').encode()},
         400),
        ("batch over max_batch_size", "post", "/v2/models/types/infer",
         {"json": {"inputs": [v2_input("f", np.ones((9, 3), np.float32)),
                              v2_input("i", np.ones((9, 2), np.int64)),
                              v2_input("b", np.ones((9, 2), bool))]}}, 400),
        ("batches differ across inputs", "post", "/v2/models/types/infer",
         {"json": {"inputs": [v2_input("f", np.ones((2, 3), np.float32)),
                              v2_input("i", np.ones((1, 2), np.int64)),
                              v2_input("b", np.ones((2, 2), bool))]}}, 400),
        ("binary header past body", "post", "/v2/models/mlp/infer",
         {"data": b"{}", "headers": {"Inference-Header-Content-Length": "999"}}, 400),
        ("binary header not a number", "post", "/v2/models/mlp/infer",
         {"data": b"{}", "headers": {"Inference-Header-Content-Length": "abc"}}, 400),
        ("tfs malformed", "post", "/v1/models/mlp:predict", {"data": b"{instances"}, 400),
        ("tfs dtype", "post", "/v1/models/mlp:predict", {"json": {"instances": [["a"] * 784]}}, 400),
        ("unknown model", "post", "/v2/models/nosuch/infer", {"json": GOOD}, 404),
        ("unknown version", "post", "/v2/models/mlp/versions/42/infer", {"json": GOOD}, 404),
        ("bad version", "post", "/v2/models/mlp/versions/abc/infer", {"json": GOOD}, (400, 404)),
        ("unknown label", "post", "/v1/models/multi/labels/nosuch:predict",
         {"json": {"instances": [row]}}, 404),
        ("unknown model metadata", "get", "/v2/models/nosuch", {}, 404),
        ("unknown path", "get", "/v3/whatever", {}, 404),
        ("wrong method", "get", "/v2/models/mlp/infer", {}, (404, 405)),
    ]


@pytest.mark.parametrize("case", _bad_requests(), ids=lambda c: c[0])
def test_error_status_and_json(server, case):
    label, method, path, kw, want = case
    r = getattr(server, method)(path, **kw)
    want = want if isinstance(want, tuple) else (want,)
    assert r.status_code in want, f"{label}: {method.upper()} {path} → {r.status_code} {r.text[:300]}"
    if r.status_code != 405:
        doc = r.json()
        assert isinstance(doc.get("error"), str) and doc["error"], f"{label}: body {r.text[:300]}"


def test_error_message_names_the_problem(server):
    body = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "FP32",
                        "data": [0.0] * 784}]}
    assert "image" in server.post("/v2/models/mlp/infer", json=body).json()["error"]
    body["inputs"][0].update(name="input", shape=[1, 700])
    err = server.post("/v2/models/mlp/infer", json=body).json()["error"]
    assert "784" in err or "700" in err, err


def test_body_over_limit_is_413(limited_server):
    # 2 MiB of JSON against the 1 MiB limit the fixture configures.
    big = {"inputs": [{"name": "input", "shape": [300, 784], "datatype": "FP32",
                       "data": [0.125] * (300 * 784)}]}
    r = limited_server.post("/v2/models/mlp/infer", data=json.dumps(big).encode(),
                            headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (r.status_code, r.text[:300])
    # under the limit still works
    small = {"inputs": [{"name": "input", "shape": [8, 784], "datatype": "FP32",
                         "data": [0.125] * (8 * 784)}]}
    assert limited_server.post("/v2/models/mlp/infer", json=small).status_code == 200


def _fire(server, path, body, n, headers=None):
    def one(_):
        try:
            return requests.post(server.url(path), json=body, headers=headers or {},
                                 timeout=60 * SLOW)
        except requests.RequestException as e:
            return e
    with cf.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


SLOW_BODY = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


def test_overload_is_503_with_retry_after(server):
    res = _fire(server, "/v2/models/slowq/infer", SLOW_BODY, 24)
    codes = [getattr(r, "status_code", repr(r)) for r in res]
    assert all(c in (200, 503) for c in codes), codes
    assert codes.count(200) >= 1, codes
    assert codes.count(503) >= 1, f"24 concurrent requests on a queue of 1 all passed: {codes}"
    for r in res:
        if r.status_code == 503:
            assert r.headers.get("Retry-After", "").isdigit(), dict(r.headers)
            assert "error" in r.json()
        else:
            assert r.json()["outputs"][0]["data"] == [1.0]
    # and it recovers
    assert server.post("/v2/models/slowq/infer", json=SLOW_BODY).status_code == 200


def test_deadline_while_queued_is_504(server):
    res = _fire(server, "/v2/models/slowd/infer", SLOW_BODY, 8)
    codes = [getattr(r, "status_code", repr(r)) for r in res]
    assert all(c in (200, 504) for c in codes), codes
    assert codes.count(504) >= 1, f"8 requests on a 20 ms deadline, one instance: {codes}"
    for r in res:
        if r.status_code == 504:
            assert "error" in r.json()
    assert server.post("/v2/models/slowd/infer", json=SLOW_BODY).status_code == 200


def test_request_deadline_header_and_parameter_504(server):
    """A per-request deadline (X-Request-Timeout-Ms header, or the v2 "timeout" parameter in
    microseconds) that passes while the request waits behind others is answered 504 without
    running it."""
    res = _fire(server, "/v2/models/slow/infer", SLOW_BODY, 8,
                headers={"X-Request-Timeout-Ms": "15"})
    codes = [getattr(r, "status_code", repr(r)) for r in res]
    assert all(c in (200, 504) for c in codes), codes
    assert codes.count(504) >= 1, codes
    body = dict(SLOW_BODY, parameters={"timeout": 15000})
    res = _fire(server, "/v2/models/slow/infer", body, 8)
    codes = [getattr(r, "status_code", repr(r)) for r in res]
    assert all(c in (200, 504) for c in codes), codes
    assert codes.count(504) >= 1, codes
    r = server.post("/v2/models/slow/infer", json=SLOW_BODY,
                    headers={"X-Request-Timeout-Ms": "soon"})
    assert r.status_code == 400, r.text


def test_cancelled_when_client_goes_away(server):
    """Clients that hang up while their request waits in the queue: the scheduler drops those
    requests instead of running them (the v2 execution count shows what ran), and the server
    keeps answering. Raw sockets, so the test knows the requests are queued before it closes
    them."""
    import socket
    import time

    def executions():
        return server.get("/v2/models/slow/stats").json()["model_stats"][0]["execution_count"]

    def queued():
        return sum(float(l.rsplit(" ", 1)[1]) for l in server.get("/metrics").text.splitlines()
                   if l.startswith("ferry_queue_depth{") and 'model="slow"' in l)
    before = executions()
    n = 16
    body = json.dumps(SLOW_BODY).encode()
    req = (f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.sendall(req)
        socks.append(c)
    end = time.monotonic() + 10 * SLOW
    while queued() < n // 2 and time.monotonic() < end:
        time.sleep(0.005)
    depth = queued()
    assert depth >= n // 2, f"only {depth} requests queued"
    for c in socks:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")  # RST
        c.close()
    end = time.monotonic() + 10 * SLOW
    while queued() > 0 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2 * SLOW)
    ran = executions() - before
    assert ran <= n - depth + 2, \
        f"{ran} of {n} requests ran although {depth} were still queued when their clients left"
    assert server.post("/v2/models/slow/infer", json=SLOW_BODY).status_code == 200


def test_bad_requests_do_not_leak_or_kill(server):
    cases = _bad_requests()
    s = requests.Session()

    def round_():
        for _, method, path, kw, _ in cases:
            getattr(s, method)(server.url(path), timeout=30 * SLOW, **kw)
    for _ in range(3):
        round_()
    before = server.rss_kib()
    for _ in range(40):
        round_()
    after = server.rss_kib()
    assert server.get("/v2/health/live").status_code == 200
    x = fashion_images(1)
    assert server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]}).status_code == 200
    # 40 x ~30 bad requests: allow allocator noise, not a per-request leak.
    assert_rss_flat(before, after, "after 40 rounds of bad requests")
