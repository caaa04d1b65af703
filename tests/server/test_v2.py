"""test_v2.py — every Open Inference Protocol (KServe v2) REST endpoint of ferry serve, against
the real binary: health, metadata, readiness, JSON and binary infer for FP32/INT64/BOOL/BYTES,
requested outputs, config, stats, repository index/load/unload, and outputs that match
`ferry run` and a numpy forward pass of the same model."""
import json
import struct

import numpy as np
import pytest

from conftest import fashion_images, ferry_run, mlp_numpy, v2_input


def test_health_live_and_ready(server):
    for path in ["/v2/health/live", "/v2/health/ready"]:
        r = server.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)


def test_server_metadata_lists_extensions(server):
    r = server.get("/v2")
    assert r.status_code == 200
    doc = r.json()
    assert doc["name"] == "ferry"
    assert isinstance(doc["version"], str) and doc["version"]
    ext = doc["extensions"]
    for e in ["binary_tensor_data", "model_repository", "statistics"]:
        assert e in ext, f"extension {e} missing from {ext}"


def test_model_metadata(server):
    r = server.get("/v2/models/mlp")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["name"] == "mlp"
    assert "1" in doc["versions"]
    assert doc["platform"] == "onnx" or doc["platform"].startswith("onnx")
    assert doc["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
    assert doc["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    doc = server.get("/v2/models/types/versions/1").json()
    dts = {t["name"]: (t["datatype"], t["shape"]) for t in doc["inputs"] + doc["outputs"]}
    assert dts == {"f": ("FP32", [-1, 3]), "i": ("INT64", [-1, 2]), "b": ("BOOL", [-1, 2]),
                   "f2": ("FP32", [-1, 3]), "i7": ("INT64", [-1, 2]), "nb": ("BOOL", [-1, 2])}
    assert server.get("/v2/models/strings").json()["inputs"][0]["datatype"] == "BYTES"


def test_model_metadata_lists_all_versions(server):
    doc = server.get("/v2/models/multi").json()
    assert sorted(doc["versions"]) == ["1", "2"]


def test_model_ready(server):
    assert server.get("/v2/models/mlp/ready").status_code == 200
    assert server.get("/v2/models/mlp/versions/1/ready").status_code == 200
    assert server.get("/v2/models/multi/versions/2/ready").status_code == 200
    assert server.get("/v2/models/nosuch/ready").status_code in (400, 404)
    assert server.get("/v2/models/mlp/versions/9/ready").status_code in (400, 404)


def _infer(server, model, body, version=None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    r = server.post(path, json=body)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def _out(doc, name):
    for o in doc["outputs"]:
        if o["name"] == name:
            return o
    raise AssertionError(f"no output {name} in {doc}")


def test_infer_mlp_flat_matches_ferry_run_and_numpy(server, models, ferry_bin, tmp_path):
    x = fashion_images(3)
    doc = _infer(server, "mlp", {"id": "req-42", "inputs": [v2_input("input", x)]})
    assert doc["id"] == "req-42"
    assert doc["model_name"] == "mlp"
    assert doc["model_version"] == "1"
    out = _out(doc, "logits")
    assert out["datatype"] == "FP32" and out["shape"] == [3, 10]
    got = np.array(out["data"], np.float32).reshape(3, 10)
    ref_run = ferry_run(ferry_bin, models["mlp"], {"input": x}, str(tmp_path))["logits"]
    np.testing.assert_allclose(got, ref_run, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, mlp_numpy(models["mlp"], x), rtol=1e-4, atol=1e-4)


def test_infer_nested_data_equals_flat(server):
    x = fashion_images(2, offset=10)
    flat = _infer(server, "mlp", {"inputs": [v2_input("input", x)]})
    nested = _infer(server, "mlp", {"inputs": [{"name": "input", "shape": [2, 784],
                                                "datatype": "FP32", "data": x.tolist()}]})
    a = np.array(_out(flat, "logits")["data"], np.float32)
    b = np.array(_out(nested, "logits")["data"], np.float32).ravel()
    np.testing.assert_array_equal(a, b)
    assert "id" not in nested or nested["id"] in ("", None)


def test_infer_types_fp32_int64_bool(server):
    f = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.5]], np.float32)
    i = np.array([[1, -2], [2**40, -(2**40)]], np.int64)
    b = np.array([[True, False], [False, True]])
    doc = _infer(server, "types", {"inputs": [v2_input("f", f), v2_input("i", i),
                                              {"name": "b", "shape": [2, 2], "datatype": "BOOL",
                                               "data": [True, False, False, True]}]})
    f2, i7, nb = _out(doc, "f2"), _out(doc, "i7"), _out(doc, "nb")
    assert (f2["datatype"], i7["datatype"], nb["datatype"]) == ("FP32", "INT64", "BOOL")
    assert f2["shape"] == [2, 3] and i7["shape"] == [2, 2] and nb["shape"] == [2, 2]
    np.testing.assert_array_equal(np.array(f2["data"], np.float32).ravel(), (f * 2).ravel())
    # INT64 must survive JSON exactly (2**40 + 7 is not representable in float32).
    assert [int(v) for v in np.ravel(i7["data"])] == (i + 7).ravel().tolist()
    assert [bool(v) for v in np.ravel(nb["data"])] == (~b).ravel().tolist()
    assert all(isinstance(v, bool) for v in np.ravel(nb["data"]).tolist())


def test_infer_bytes(server):
    s = ["hello", "ferry"], ["", "ünïcødé"]
    doc = _infer(server, "strings", {"inputs": [{"name": "s", "shape": [2, 2],
                                                 "datatype": "BYTES", "data": list(s)}]})
    t = _out(doc, "t")
    assert t["datatype"] == "BYTES" and t["shape"] == [2, 2]
    assert list(np.ravel(np.array(t["data"], dtype=object))) == ["hello", "ferry", "", "ünïcødé"]
    n = _out(doc, "n")
    assert n["datatype"] == "INT64" and list(np.ravel(n["data"])) == [1, 1, 1, 1]


def test_requested_outputs(server):
    f = np.ones((1, 3), np.float32)
    i = np.ones((1, 2), np.int64)
    b = np.zeros((1, 2), bool)
    body = {"inputs": [v2_input("f", f), v2_input("i", i), v2_input("b", b)],
            "outputs": [{"name": "i7"}]}
    doc = _infer(server, "types", body)
    assert [o["name"] for o in doc["outputs"]] == ["i7"]
    body["outputs"] = [{"name": "nb"}, {"name": "f2"}]
    doc = _infer(server, "types", body)
    assert sorted(o["name"] for o in doc["outputs"]) == ["f2", "nb"]
    body["outputs"] = [{"name": "nosuch"}]
    r = server.post("/v2/models/types/infer", json=body)
    assert r.status_code == 400, r.text
    assert "nosuch" in r.json()["error"]


def test_infer_by_version_and_latest(server):
    x = fashion_images(1, offset=5)
    v1 = _infer(server, "multi", {"inputs": [v2_input("input", x)]}, version=1)
    v2 = _infer(server, "multi", {"inputs": [v2_input("input", x)]}, version=2)
    assert v1["model_version"] == "1" and v2["model_version"] == "2"
    a = np.array(_out(v1, "logits")["data"], np.float32)
    b = np.array(_out(v2, "logits")["data"], np.float32)
    np.testing.assert_allclose(b - a, 100.0, atol=1e-3)
    # No version named: the highest ready version answers (as in Triton and TF Serving;
    # clients that must only see promoted versions address the "stable" label).
    default = _infer(server, "multi", {"inputs": [v2_input("input", x)]})
    assert default["model_version"] == "2"


# ---- binary tensor data extension ------------------------------------------------------------

def _binary_request(header, blobs):
    js = json.dumps(header).encode()
    return js, b"".join(blobs)


def _split_binary_response(r):
    assert r.status_code == 200, (r.status_code, r.text[:500])
    hlen = r.headers.get("Inference-Header-Content-Length")
    assert hlen is not None, f"no Inference-Header-Content-Length in {dict(r.headers)}"
    hlen = int(hlen)
    body = r.content
    assert int(r.headers["Content-Length"]) == len(body)
    doc = json.loads(body[:hlen])
    blob = body[hlen:]
    outs, pos = {}, 0
    for o in doc["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            assert "data" in o
            continue
        assert "data" not in o, "an output sent as binary must not also carry JSON data"
        outs[o["name"]] = (o, blob[pos:pos + size])
        pos += size
    assert pos == len(blob), f"binary section is {len(blob)} bytes, outputs declare {pos}"
    return doc, outs


def test_binary_input_and_output_byte_exact(server):
    f = np.array([[1.5, -2.0, 3.25], [0.1, 1e-30, -7.5]], np.float32)
    i = np.array([[1, -2], [2**40, -(2**62)]], np.int64)
    b = np.array([[True, False], [False, True]])
    blobs = [f.tobytes(), i.astype("<i8").tobytes(), b.astype(np.uint8).tobytes()]
    header = {"inputs": [
        {"name": "f", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
        {"name": "i", "shape": [2, 2], "datatype": "INT64", "parameters": {"binary_data_size": 32}},
        {"name": "b", "shape": [2, 2], "datatype": "BOOL", "parameters": {"binary_data_size": 4}}],
        "outputs": [{"name": "f2", "parameters": {"binary_data": True}},
                    {"name": "i7", "parameters": {"binary_data": True}},
                    {"name": "nb", "parameters": {"binary_data": False}}]}
    js, blob = _binary_request(header, blobs)
    r = server.post("/v2/models/types/infer", data=js + blob,
                    headers={"Inference-Header-Content-Length": str(len(js)),
                             "Content-Type": "application/octet-stream"})
    doc, outs = _split_binary_response(r)
    assert set(outs) == {"f2", "i7"}
    assert outs["f2"][0]["parameters"]["binary_data_size"] == 24
    assert outs["f2"][1] == (f * np.float32(2)).astype("<f4").tobytes()
    assert outs["i7"][1] == (i + 7).astype("<i8").tobytes()
    nb = [o for o in doc["outputs"] if o["name"] == "nb"][0]
    assert [bool(v) for v in np.ravel(nb["data"])] == (~b).ravel().tolist()


def test_binary_data_output_for_all_outputs(server):
    x = fashion_images(2, offset=20)
    js, blob = _binary_request({"inputs": [{"name": "input", "shape": [2, 784],
                                            "datatype": "FP32",
                                            "parameters": {"binary_data_size": x.nbytes}}],
                                "parameters": {"binary_data_output": True}}, [x.tobytes()])
    r = server.post("/v2/models/mlp/infer", data=js + blob,
                    headers={"Inference-Header-Content-Length": str(len(js))})
    doc, outs = _split_binary_response(r)
    o, raw = outs["logits"]
    assert o["shape"] == [2, 10] and o["datatype"] == "FP32" and len(raw) == 80
    got = np.frombuffer(raw, "<f4").reshape(2, 10)
    # The same request in JSON gives the same numbers (JSON floats must round-trip float32).
    ref = _infer(server, "mlp", {"inputs": [v2_input("input", x)]})
    np.testing.assert_array_equal(got, np.array(_out(ref, "logits")["data"], np.float32)
                                  .reshape(2, 10))


def test_binary_bytes_tensor(server):
    vals = [b"ab", b"", b"ferry serve", b"xyz"]
    blob = b"".join(struct.pack("<I", len(v)) + v for v in vals)
    js, _ = _binary_request({"inputs": [{"name": "s", "shape": [2, 2], "datatype": "BYTES",
                                         "parameters": {"binary_data_size": len(blob)}}],
                             "outputs": [{"name": "t", "parameters": {"binary_data": True}}]},
                            [])
    r = server.post("/v2/models/strings/infer", data=js + blob,
                    headers={"Inference-Header-Content-Length": str(len(js))})
    doc, outs = _split_binary_response(r)
    assert outs["t"][1] == blob


def test_binary_mixed_json_and_binary_inputs(server):
    f = np.array([[1, 2, 3]], np.float32)
    i = np.array([[5, 6]], np.int64)
    header = {"inputs": [
        {"name": "f", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "i", "shape": [1, 2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
        {"name": "b", "shape": [1, 2], "datatype": "BOOL", "data": [False, False]}]}
    js = json.dumps(header).encode()
    r = server.post("/v2/models/types/infer", data=js + i.tobytes(),
                    headers={"Inference-Header-Content-Length": str(len(js))})
    assert r.status_code == 200, r.text
    doc = r.json() if "Inference-Header-Content-Length" not in r.headers else \
        json.loads(r.content[:int(r.headers["Inference-Header-Content-Length"])])
    assert [int(v) for v in np.ravel(_out(doc, "i7")["data"])] == [12, 13]
    np.testing.assert_array_equal(np.ravel(_out(doc, "f2")["data"]), (f * 2).ravel())


def test_binary_raw_body_single_input(server):
    """The raw form: Inference-Header-Content-Length: 0 and only the tensor's bytes; batch 1,
    outputs binary. Only for one-input models."""
    x = fashion_images(1, offset=60)
    r = server.post("/v2/models/mlp/infer", data=x.astype("<f4").tobytes(),
                    headers={"Inference-Header-Content-Length": "0",
                             "Content-Type": "application/octet-stream"})
    doc, outs = _split_binary_response(r)
    o, raw = outs["logits"]
    assert o["shape"] == [1, 10] and len(raw) == 40
    ref = _infer(server, "mlp", {"inputs": [v2_input("input", x)]})
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4"),
                                  np.array(_out(ref, "logits")["data"], np.float32))
    r = server.post("/v2/models/mlp/infer", data=x.tobytes()[:-4],
                    headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 400, r.text
    r = server.post("/v2/models/types/infer", data=b"\0" * 12,
                    headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 400, r.text


def test_binary_size_mismatch_is_400(server):
    header = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                          "parameters": {"binary_data_size": 3136}}]}
    js = json.dumps(header).encode()
    r = server.post("/v2/models/mlp/infer", data=js + b"\0" * 100,
                    headers={"Inference-Header-Content-Length": str(len(js))})
    assert r.status_code == 400, r.text
    r = server.post("/v2/models/mlp/infer", data=js + b"\0" * 3136,
                    headers={"Inference-Header-Content-Length": str(len(js) + 50000)})
    assert r.status_code == 400, r.text


# ---- config, stats, repository ---------------------------------------------------------------

def test_model_config(server):
    r = server.get("/v2/models/mlp/config")
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert cfg["name"] == "mlp"
    assert cfg["max_batch_size"] == 16
    assert cfg["input"][0]["name"] == "input"
    assert cfg["output"][0]["name"] == "logits"
    assert server.get("/v2/models/nosuch/config").status_code == 404


def test_model_stats_count_requests(server):
    x = fashion_images(1)
    before = server.get("/v2/models/mlp/stats").json()
    for _ in range(3):
        _infer(server, "mlp", {"inputs": [v2_input("input", x)]})
    r = server.get("/v2/models/mlp/stats")
    assert r.status_code == 200, r.text
    after = r.json()

    def success(doc):
        st = doc["model_stats"][0]
        assert st["name"] == "mlp" and st["version"] == "1"
        return st["inference_stats"]["success"]["count"], st["inference_count"]

    s0, n0 = success(before)
    s1, n1 = success(after)
    assert s1 - s0 == 3 and n1 - n0 == 3, (before, after)


def test_repository_index_unload_load(server):
    r = server.post("/v2/repository/index", json={})
    assert r.status_code == 200, r.text
    idx = {(e["name"], e["version"]): e for e in r.json()}
    for name in ["mlp", "types", "strings", "slow"]:
        assert idx[(name, "1")]["state"] == "READY", idx
    assert idx[("multi", "2")]["state"] == "READY"

    assert server.post("/v2/repository/models/types/unload", json={}).status_code == 200
    assert server.get("/v2/models/types/ready").status_code != 200
    f = v2_input("f", np.ones((1, 3), np.float32))
    r = server.post("/v2/models/types/infer", json={"inputs": [f]})
    assert r.status_code in (404, 503), r.text
    idx = {(e["name"], e.get("version", "")): e for e in
           server.post("/v2/repository/index", json={}).json()}
    assert any(k[0] == "types" and e["state"] == "UNAVAILABLE" for k, e in idx.items()), idx

    assert server.post("/v2/repository/models/types/load", json={}).status_code == 200
    assert server.get("/v2/models/types/ready").status_code == 200
    r = server.post("/v2/models/types/infer", json={"inputs": [
        f, v2_input("i", np.ones((1, 2), np.int64)), v2_input("b", np.ones((1, 2), bool))]})
    assert r.status_code == 200, r.text
    assert server.post("/v2/repository/models/nosuch/load", json={}).status_code in (400, 404)


def test_every_log_line_is_json(server):
    """Structured logging: after everything the session did so far (loads, requests, errors),
    every line the server wrote is one JSON object with ts, level and msg."""
    server.post("/v2/models/nosuch/infer", json={})
    bad = []
    for line in server.log().splitlines():
        try:
            doc = json.loads(line)
            if not all(k in doc for k in ("ts", "level", "msg")):
                bad.append(line)
        except ValueError:
            bad.append(line)
    assert not bad, f"{len(bad)} log lines are not structured JSON, e.g. {bad[:3]}"


def test_request_id_header_and_log(server):
    x = fashion_images(1)
    r = server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]},
                    headers={"X-Request-Id": "find-me-in-the-log"})
    assert r.status_code == 200
    assert r.headers.get("X-Request-Id") == "find-me-in-the-log"
    r = server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]})
    generated = r.headers.get("X-Request-Id")
    assert generated, "no X-Request-Id on a response"
    r2 = server.post("/v2/models/mlp/infer", json={"inputs": [v2_input("input", x)]})
    assert r2.headers.get("X-Request-Id") != generated, "request ids repeat"
    import time
    time.sleep(0.2)
    lines = server.log_lines()
    assert lines, "ferry serve wrote no JSON log lines"
    assert all("ts" in l and "level" in l for l in lines), lines[:3]
    ids = {l.get("request_id") for l in lines}
    assert "find-me-in-the-log" in ids and generated in ids, \
        "the access log (debug level) does not carry the request ids"
