"""test_tfs.py — the TF Serving REST API of ferry serve: model status, metadata, :predict in
row (instances) and columnar (inputs) form, and addressing by /versions/V and /labels/L
(labels.json in the repository)."""
import numpy as np

from conftest import fashion_images, mlp_numpy


def test_status(server):
    r = server.get("/v1/models/mlp")
    assert r.status_code == 200, r.text
    st = r.json()["model_version_status"]
    assert st == [{"version": "1", "state": "AVAILABLE",
                   "status": {"error_code": "OK", "error_message": ""}}]


def test_status_all_versions_and_one(server):
    st = server.get("/v1/models/multi").json()["model_version_status"]
    assert sorted(s["version"] for s in st) == ["1", "2"]
    assert all(s["state"] == "AVAILABLE" for s in st)
    one = server.get("/v1/models/multi/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]
    lab = server.get("/v1/models/multi/labels/canary").json()["model_version_status"]
    assert [s["version"] for s in lab] == ["2"]


def test_metadata(server):
    r = server.get("/v1/models/mlp/metadata")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_spec"]["name"] == "mlp"
    assert doc["model_spec"]["version"] == "1"
    sig = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    inp = sig["inputs"]["input"]
    assert inp["dtype"] == "DT_FLOAT"
    dims = [int(d["size"]) for d in inp["tensor_shape"]["dim"]]
    assert dims == [-1, 784]
    assert sig["outputs"]["logits"]["dtype"] == "DT_FLOAT"
    types = server.get("/v1/models/types/metadata").json()
    sig = types["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["i"]["dtype"] == "DT_INT64"
    assert sig["inputs"]["b"]["dtype"] == "DT_BOOL"
    v = server.get("/v1/models/multi/versions/1/metadata").json()
    assert v["model_spec"]["version"] == "1"


def test_predict_instances_single_input(server, models):
    x = fashion_images(3, offset=30)
    r = server.post("/v1/models/mlp:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    pred = np.array(r.json()["predictions"], np.float32)
    assert pred.shape == (3, 10)
    np.testing.assert_allclose(pred, mlp_numpy(models["mlp"], x), rtol=1e-4, atol=1e-4)


def test_predict_instances_named(server):
    rows = [{"f": [1, 2, 3], "i": [1, 2], "b": [True, False]},
            {"f": [0.5, 0, -1], "i": [-5, 2**40], "b": [False, False]}]
    r = server.post("/v1/models/types:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"]
    assert len(pred) == 2
    assert pred[0]["f2"] == [2, 4, 6]
    assert pred[1]["i7"] == [2, 2**40 + 7]
    assert pred[1]["nb"] == [True, True]


def test_predict_columnar(server, models):
    x = fashion_images(2, offset=40)
    r = server.post("/v1/models/mlp:predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    out = np.array(r.json()["outputs"], np.float32)
    np.testing.assert_allclose(out, mlp_numpy(models["mlp"], x), rtol=1e-4, atol=1e-4)
    r = server.post("/v1/models/types:predict",
                    json={"inputs": {"f": [[1, 1, 1]], "i": [[0, 1]], "b": [[True, True]]}})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert out["f2"] == [[2, 2, 2]] and out["i7"] == [[7, 8]] and out["nb"] == [[False, False]]


def test_predict_by_version_and_label(server):
    x = fashion_images(1, offset=50).tolist()
    p1 = np.array(server.post("/v1/models/multi/versions/1:predict",
                              json={"instances": x}).json()["predictions"])
    p2 = np.array(server.post("/v1/models/multi/versions/2:predict",
                              json={"instances": x}).json()["predictions"])
    np.testing.assert_allclose(p2 - p1, 100.0, atol=1e-3)
    stable = server.post("/v1/models/multi/labels/stable:predict", json={"instances": x})
    canary = server.post("/v1/models/multi/labels/canary:predict", json={"instances": x})
    assert stable.status_code == 200 and canary.status_code == 200, (stable.text, canary.text)
    np.testing.assert_allclose(np.array(stable.json()["predictions"]), p1, atol=1e-6)
    np.testing.assert_allclose(np.array(canary.json()["predictions"]), p2, atol=1e-6)


def test_predict_errors(server):
    # both instances and inputs
    r = server.post("/v1/models/mlp:predict", json={"instances": [[0] * 784], "inputs": [[0] * 784]})
    assert r.status_code == 400 and "error" in r.json()
    # neither
    assert server.post("/v1/models/mlp:predict", json={"signature_name": ""}).status_code == 400
    # wrong row length
    assert server.post("/v1/models/mlp:predict", json={"instances": [[0] * 783]}).status_code == 400
    # unknown model / version / label
    for path in ["/v1/models/nosuch:predict", "/v1/models/mlp/versions/7:predict",
                 "/v1/models/multi/labels/nosuch:predict"]:
        r = server.post(path, json={"instances": [[0.0] * 784]})
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert "error" in r.json()
    for path in ["/v1/models/nosuch", "/v1/models/mlp/versions/7", "/v1/models/mlp/labels/x",
                 "/v1/models/nosuch/metadata"]:
        assert server.get(path).status_code == 404, path
