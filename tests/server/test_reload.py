"""test_reload.py — hot reload while clients keep sending requests: a new version is picked up
only once it is complete (a manifest that verifies, or a manifest-less directory that stopped
changing), the switch and every rollback (removing a version, a version policy naming an older
one) and explicit reloads happen with ZERO failed requests, load/unload cycles do not grow
memory, and SIGHUP rescans at once."""
import os
import re
import shutil
import signal
import time

import numpy as np
import pytest

from conftest import (NO_POLL_ARGS, POLL_ARGS, SLOW, Hammer, add_version, assert_rss_flat,
                      fashion_images, make_mlp_plus, mlp_numpy, v2_input, write_json,
                      write_manifest)

X = fashion_images(1, offset=7)


def _checker(ref):
    """Returns check(r) → the version tag when the answer is right for the version it names,
    None otherwise. Version k answers ref + offsets[k]."""
    offsets = {"1": 0.0, "2": 100.0, "3": 200.0}

    def check(r):
        if r.status_code != 200:
            return None
        doc = r.json()
        v = doc.get("model_version")
        if v not in offsets:
            return None
        got = np.array(doc["outputs"][0]["data"], np.float64)
        if got.shape != (10,) or not np.allclose(got, ref.ravel() + offsets[v], atol=1e-3):
            return None
        return v
    return check


def _wait(cond, timeout, what):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what}")


def _index(server):
    return {(e["name"], str(e.get("version", ""))): e
            for e in server.post("/v2/repository/index", json={}).json()}


def _load_failures(server, model):
    text = server.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ferry_model_load_failures_total") and f'model="{model}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def hot(start_server, models, tmp_path):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    add_version(repo, "m", 1, models["mlp"])
    write_json(os.path.join(repo, "m", "config.json"), {"max_batch_size": 8})
    add_version(repo, "other", 1, models["mlp"])
    s = start_server(repo, *POLL_ARGS)
    return s, repo


def test_hot_reload_and_rollback_under_load(hot, models, tmp_path):
    server, repo = hot
    ref = mlp_numpy(models["mlp"], X)
    body = {"inputs": [v2_input("input", X)]}
    ham = Hammer(server, "/v2/models/m/infer", body, _checker(ref), threads=4)
    try:
        _wait(lambda: ham.ok > 20, 30, "first answers")
        assert ham.last_tag() == "1"

        # 1. Version 2 with a manifest, copied half-way: the manifest does not verify yet.
        data = open(models["mlp_plus100"], "rb").read()
        v2 = os.path.join(repo, "m", "2")
        os.makedirs(v2)
        with open(os.path.join(v2, "model.onnx"), "wb") as f:
            f.write(data)
        write_manifest(v2, "m", 2)
        with open(os.path.join(v2, "model.onnx"), "wb") as f:
            f.write(data[:len(data) // 2])
        time.sleep(3 * SLOW)  # several polls
        assert ham.last_tag() == "1", "a version whose manifest does not verify was served"
        assert _index(server).get(("m", "2"), {}).get("state") != "READY"
        with open(os.path.join(v2, "model.onnx"), "ab") as f:
            f.write(data[len(data) // 2:])
        _wait(lambda: ham.last_tag() == "2", 30, "the switch to version 2")
        assert _index(server)[("m", "2")]["state"] == "READY"
        fails0 = _load_failures(server, "m")  # the unverified manifest may count as one

        # 2. Version 3 without a manifest, written in chunks slower than a poll: it must not be
        # loaded (nor fail to load) while it is still changing.
        make_mlp_plus(str(tmp_path / "plus200.onnx"), 200.0)
        data3 = open(str(tmp_path / "plus200.onnx"), "rb").read()
        v3 = os.path.join(repo, "m", "3")
        os.makedirs(v3)
        chunks = 12
        step = len(data3) // chunks + 1
        with open(os.path.join(v3, "model.onnx"), "wb") as f:
            for k in range(chunks):
                f.write(data3[k * step:(k + 1) * step])
                f.flush()
                time.sleep(0.25)
                assert ham.last_tag() == "2", "a manifest-less directory was served while written"
        _wait(lambda: ham.last_tag() == "3", 30, "the switch to version 3 (manifest-less)")
        assert _load_failures(server, "m") == fails0, "a half-written version was loaded"

        # 3. Rollback by removing version 3 (moved out atomically): back to 2.
        os.rename(v3, str(tmp_path / "removed-3"))
        _wait(lambda: ham.last_tag() == "2", 30, "the rollback to version 2")

        # 4. Rollback by version policy: only version 1.
        write_json(os.path.join(repo, "m", "config.json"),
                   {"max_batch_size": 8, "version_policy": {"specific": {"versions": [1]}}})
        _wait(lambda: ham.last_tag() == "1", 30, "the rollback to version 1 by policy")

        # 5. Explicit reload of the serving model, and unload/load of another model.
        n = ham.ok
        assert server.post("/v2/repository/models/m/load", json={}).status_code == 200
        for _ in range(3):
            assert server.post("/v2/repository/models/other/unload", json={}).status_code == 200
            assert server.post("/v2/repository/models/other/load", json={}).status_code == 200
        _wait(lambda: ham.ok > n + 20, 30, "answers after the reloads")
    finally:
        ham.stop()
    assert ham.failures == [], f"{len(ham.failures)} failed requests, first: {ham.failures[:5]}"
    # Requests in flight during a switch finish on the old version, so neighbours may
    # alternate briefly; the order of the phases must still show.
    tags = [t for _, t in ham.seen]
    assert tags[0] == "1" and tags[-1] == "1", tags
    assert tags.index("2") < tags.index("3") < len(tags) - 1 - tags[::-1].index("2"), tags


def test_load_unload_cycles_do_not_grow_memory(hot):
    server, repo = hot
    body = {"inputs": [v2_input("input", X)]}

    def cycle():
        assert server.post("/v2/repository/models/other/unload", json={}).status_code == 200
        assert server.post("/v2/repository/models/other/load", json={}).status_code == 200
        assert server.post("/v2/models/other/infer", json=body).status_code == 200
    for _ in range(5):
        cycle()
    before = server.rss_kib()
    for _ in range(25):
        cycle()
    after = server.rss_kib()
    assert_rss_flat(before, after, "after 25 load/unload cycles")


def test_failed_version_never_replaces_serving_one(hot, models):
    server, repo = hot
    ref = mlp_numpy(models["mlp"], X)
    body = {"inputs": [v2_input("input", X)]}
    ham = Hammer(server, "/v2/models/m/infer", body, _checker(ref), threads=2)
    try:
        _wait(lambda: ham.ok > 10, 30, "first answers")
        bad = os.path.join(repo, "m", ".tmp-bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "model.onnx"), "wb") as f:
            f.write(b"this is not an onnx model" * 100)
        os.rename(bad, os.path.join(repo, "m", "5"))
        _wait(lambda: _index(server).get(("m", "5"), {}).get("reason"), 30,
              "the failed load to show in the index")
        e = _index(server)[("m", "5")]
        assert e["state"] != "READY" and e["reason"], e
        try:
            _wait(lambda: any(l.get("level") in ("error", "warn") and "version 5" in l.get("msg", "")
                              for l in server.log_lines()), 5, "the failed load in the log")
        except AssertionError:
            raise AssertionError("the failed load is not in the JSON log:\n" + server.log()[-2000:])
        n = ham.ok
        _wait(lambda: ham.ok > n + 10, 30, "answers after the failed load")
        assert server.get("/v2/models/m/ready").status_code == 200
    finally:
        ham.stop()
    assert ham.failures == [], ham.failures[:5]
    assert {t for _, t in ham.seen} == {"1"}


def test_sighup_rescans_now(start_server, models, tmp_path):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    add_version(repo, "m", 1, models["mlp"])
    server = start_server(repo, *NO_POLL_ARGS)
    add_version(repo, "m", 2, models["mlp_plus100"], manifest=True)
    time.sleep(1)
    assert server.post("/v2/models/m/infer", json={"inputs": [v2_input("input", X)]}) \
        .json()["model_version"] == "1", "rescanned without SIGHUP with a 1-hour poll"
    server.signal(signal.SIGHUP)
    _wait(lambda: server.post("/v2/models/m/infer", json={"inputs": [v2_input("input", X)]})
          .json().get("model_version") == "2", 10, "version 2 after SIGHUP")
    assert server.proc.poll() is None


def test_label_promote_and_rollback_under_load(hot, models):
    """Promotion and rollback by moving the "stable" label in labels.json (what ferry promote
    and rollback write) while clients call /v1/models/m/labels/stable:predict: zero failed
    requests. The policy stays "latest 1": a labelled version is kept loaded anyway."""
    server, repo = hot
    ref = mlp_numpy(models["mlp"], X).ravel()
    write_json(os.path.join(repo, "m", "labels.json"), {"stable": 1})
    add_version(repo, "m", 2, models["mlp_plus100"], manifest=True)
    _wait(lambda: _index(server).get(("m", "2"), {}).get("state") == "READY", 30,
          "version 2 loaded")

    def check(r):
        if r.status_code != 200:
            return None
        got = np.array(r.json().get("predictions", [[]])[0], np.float64)
        for tag, off in (("1", 0.0), ("2", 100.0)):
            if got.shape == ref.shape and np.allclose(got, ref + off, atol=1e-3):
                return tag
        return None
    ham = Hammer(server, "/v1/models/m/labels/stable:predict", {"instances": X.tolist()},
                 check, threads=4)
    try:
        _wait(lambda: ham.ok > 20, 30, "first answers")
        assert ham.last_tag() == "1", "stable=1 but another version answered"
        t_promote = time.monotonic()
        write_json(os.path.join(repo, "m", "labels.json"), {"stable": 2})
        _wait(lambda: ham.last_tag() == "2", 30, "promotion to version 2")
        t_rollback = time.monotonic()
        write_json(os.path.join(repo, "m", "labels.json"), {"stable": 1})
        _wait(lambda: ham.last_tag() == "1", 30, "rollback to version 1")
        n = ham.ok
        _wait(lambda: ham.ok > n + 20, 30, "answers after the rollback")
    finally:
        ham.stop()
    assert ham.failures == [], \
        (f"{len(ham.failures)} failed (promotion at t={t_promote:.2f}, rollback at "
         f"t={t_rollback:.2f}); first and last: {ham.failures[:2]} {ham.failures[-1:]}")
    tl = server.get("/v1/models/m/labels/stable").json()["model_version_status"]
    assert [s["version"] for s in tl] == ["1"]
