#!/usr/bin/python3
"""export_models.py — exports the models that bench/run.py times ferry and ONNX Runtime on.

Usage: export_models.py OUT_DIR [MODEL...]

Writes OUT_DIR/<model>/model.onnx (opset 13, dynamic batch on dim 0 of every input and output)
and OUT_DIR/<model>/manifest.json, which names the input and its shape with "batch" for the
dynamic dim. Weights are random but seeded; BatchNorm running statistics come from one batch of
random data, so activations stay in a realistic range. A model whose manifest was written by this
same script and torch version is skipped; delete OUT_DIR/<model> to force a re-export.
Needs torch, torchvision and onnx (Debian's /usr/bin/python3 has them).
"""
import hashlib
import json
import os
import sys
import time
import warnings

try:
    import onnx
    import torch
    import torchvision
    from onnx import TensorProto, helper
    from torch import nn
except ImportError as e:
    print(f"export_models.py: cannot import {e.name}; run it with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)

OPSET = 13

# BatchNorm calibration is shared with the test exports.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models"))
from export import calibrate_bn  # noqa: E402


def torchvision_model(name):
    def make():
        model = getattr(torchvision.models, name)(weights=None)
        return calibrate_bn(model, (2, 3, 224, 224)), [3, 224, 224]
    return make


def mlp():
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 10)).eval()
    return model, [784]


def transformer():
    layer = nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024,
                                       batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()
    return model, [128, 256]


MODELS = {
    "mlp": mlp,
    "squeezenet1_1": torchvision_model("squeezenet1_1"),
    "mobilenet_v2": torchvision_model("mobilenet_v2"),
    "resnet18": torchvision_model("resnet18"),
    "resnet50": torchvision_model("resnet50"),
    "transformer": transformer,
    # built with onnx.helper (torch exports nn.Identity as an empty graph):
    "identity": None,
    "mlp_io": None,
}


def write_tiny(name, path):
    """Models that do (almost) no work, to time what calling a runtime costs. "identity": one
    Identity node on the MLP's input shape [batch,784]. "mlp_io": the MLP's inputs and outputs,
    [batch,784] -> [batch,10], through one Slice; unlike Identity it does not hand back a copy
    of the whole input, which at batch 64 (200 KB) costs ORT more than the MLP itself."""
    if name == "identity":
        nodes, inits, out_shape = [helper.make_node("Identity", ["input"], ["output"],
                                                    name="identity")], [], ["batch", 784]
    else:
        nodes = [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["output"],
                                  name="slice")]
        inits = [helper.make_tensor(n, TensorProto.INT64, [1], [v])
                 for n, v in (("starts", 0), ("ends", 10), ("axes", 1))]
        out_shape = ["batch", 10]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, producer_name="ferry-bench",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return [784]


def script_version():
    """Changes whenever this file or the torch version does, which invalidates the cache."""
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"{digest} torch {torch.__version__}"


def export_one(name, out_dir, version):
    model_dir = os.path.join(out_dir, name)
    manifest_path = os.path.join(model_dir, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("version") == version:
                print(f"{name}: cached")
                return
    os.makedirs(model_dir, exist_ok=True)
    start = time.time()
    onnx_path = os.path.join(model_dir, "model.onnx")
    if MODELS[name] is None:
        sample_shape = write_tiny(name, onnx_path)
    else:
        seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        torch.manual_seed(seed)
        model, sample_shape = MODELS[name]()
        example = torch.randn(1, *sample_shape, generator=torch.Generator().manual_seed(seed))
        # not under torch.no_grad(): that takes the fused transformer fast path, which has no
        # ONNX export
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's advice is noise here
            torch.onnx.export(model, (example,), onnx_path, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        onnx.checker.check_model(onnx.load(onnx_path))
    manifest = {"version": version, "model": "model.onnx", "opset": OPSET, "input": "input",
                "shape": ["batch"] + sample_shape}
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(f"{name}: exported in {time.time() - start:.1f}s")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: export_models.py OUT_DIR [MODEL...]\nmodels: " + " ".join(MODELS),
              file=sys.stderr if len(sys.argv) < 2 else sys.stdout)
        return 2 if len(sys.argv) < 2 else 0
    out_dir, wanted = sys.argv[1], sys.argv[2:] or list(MODELS)
    unknown = [n for n in wanted if n not in MODELS]
    if unknown:
        print(f"export_models.py: unknown model(s) {', '.join(unknown)}; known: "
              f"{', '.join(MODELS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # the machine is shared; exporting is not what is being timed
    os.makedirs(out_dir, exist_ok=True)
    version = script_version()
    failed = []
    for name in wanted:
        try:
            export_one(name, out_dir, version)
        except Exception as e:  # report every model, then fail
            print(f"{name}: EXPORT FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
