#!/usr/bin/env python3
"""export.py — exports the real models that tests/models checks ferry against: torchvision CNNs,
a transformer encoder, LSTM/GRU, scripted control flow and one small CNN at several opsets.

Usage: export.py OUT_DIR [MODEL...]

For every model it writes OUT_DIR/<model>/model.onnx, the inputs and PyTorch's outputs at batch
1 and batch 8 as .npy, and last a manifest.json that names them (check_models.py reads it).
A model whose manifest exists and was written by this same script and torch version is skipped,
so repeated test runs cost nothing; delete OUT_DIR/<model> to force a re-export.
Weights are random (no network here) but seeded, and BatchNorm running statistics are set from
one batch of random data so the layers do real work after folding. Exits 77 (a failed test)
when torch, torchvision or onnx cannot be imported.
"""
import hashlib
import json
import os
import sys
import time
import warnings

try:
    import numpy as np
    import onnx
    import torch
    import torchvision
    from torch import nn
    from torch.nn import functional as F
except ImportError as e:  # the model tests need a Python with torch; skip, don't fail
    print(f"export.py: skipping, cannot import {e.name}: {e}")
    sys.exit(77)

BATCHES = (1, 8)


# ---------------------------------------------------------------------------------------------
# Models. Each factory returns (module, inputs_fn, spec): inputs_fn(batch, gen) builds the
# example inputs for one batch size; spec holds the export options.

def calibrate_bn(model, shape):
    """Sets BatchNorm running statistics from one forward pass over random data (cumulative
    average, so the stats are exactly that batch's), then puts the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(*shape))
    return model.eval()


def image_inputs(size):
    return lambda batch, gen: [torch.randn(batch, 3, size, size, generator=gen)]


def torchvision_model(name):
    def make():
        model = getattr(torchvision.models, name)(weights=None)
        calibrate_bn(model, (4, 3, 224, 224))
        return model, image_inputs(224), dict(inputs=["input"], outputs=["logits"])
    return make


class SmallCNN(nn.Module):
    """The model exported at several opsets: Conv, BatchNorm, ReLU, MaxPool, AveragePool,
    Flatten, Gemm, Softmax — ops whose ONNX form changed across opsets 9..17."""
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AvgPool2d(2))
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        logits = self.fc(torch.flatten(self.features(x), 1))
        return logits, F.softmax(logits, dim=1)


def small_cnn(opset):
    def make():
        model = calibrate_bn(SmallCNN(), (4, 3, 32, 32))
        return model, image_inputs(32), dict(inputs=["input"], outputs=["logits", "probs"],
                                            opset=opset)
    return make


class ConvZoo(nn.Module):
    """Conv-family coverage: strided, dilated and depthwise Conv, ConvTranspose with
    output_padding, Resize (nearest, bilinear, bilinear align_corners), BatchNormalization that
    cannot be folded into a Conv, HardSigmoid, HardSwish, Clip (ReLU6), Concat and Slice."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.stem_bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.pw = nn.Conv2d(16, 32, 1, bias=False)
        self.down = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
        self.skip_bn = nn.BatchNorm2d(16)
        self.up2 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, groups=2)
        self.head = nn.Conv2d(16 + 8 + 3, 4, (3, 5), padding=(1, 2))

    def forward(self, x):
        y = F.relu6(self.stem_bn(self.stem(x)))               # 32 -> 16
        y = F.hardswish(self.dw(y))
        y = self.pw(y)
        y = y * F.hardsigmoid(y)
        z = F.relu(self.down(y))                              # 16 -> 8
        z = self.up(z)                                        # 8 -> 16
        z = F.relu(self.skip_bn(z + y[:, :16]))               # BatchNorm after an Add
        near = F.interpolate(z, scale_factor=2.0, mode="nearest")
        lin = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
        ac = F.interpolate(z, size=(32, 32), mode="bilinear", align_corners=True)
        t = self.up2(z)                                       # 16 -> 32
        out = self.head(torch.cat([near + lin - ac, t, x], dim=1))
        return F.hardsigmoid(out)


def conv_zoo(opset):
    """At opset 13 HardSwish is exported as x * HardSigmoid(x); from opset 14 as HardSwish."""
    model = calibrate_bn(ConvZoo(), (4, 3, 32, 32))
    # Random BatchNorm affine parameters, so the unfolded BatchNormalization is not identity.
    with torch.no_grad():
        for bn in (model.stem_bn, model.skip_bn):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return model, image_inputs(32), dict(inputs=["input"], outputs=["output"], opset=opset)


def transformer():
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.1,
                                       batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    return (model, lambda batch, gen: [torch.randn(batch, 16, 64, generator=gen)],
            dict(inputs=["input"], outputs=["output"]))


def mlp(opset):
    """At opset 13 GELU and LayerNorm are decomposed (Erf, ReduceMean, ...); at 17
    LayerNorm is one LayerNormalization node."""
    model = nn.Sequential(
        nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64),
        nn.Linear(64, 64), nn.Tanh(),
        nn.Linear(64, 10), nn.LogSoftmax(dim=1)).eval()
    return (model, lambda batch, gen: [torch.randn(batch, 32, generator=gen)],
            dict(inputs=["input"], outputs=["log_probs"], opset=opset))


class Recurrent(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(input_size=12, hidden_size=24, num_layers=2, bidirectional=True,
                        batch_first=True)

    def forward(self, x):
        out, state = self.rnn(x)
        if isinstance(state, tuple):  # LSTM: (h_n, c_n)
            return out, state[0], state[1]
        return out, state


def recurrent(cell):
    def make():
        model = Recurrent(cell).eval()
        # Different sequence lengths per batch size exercise the symbolic "seq" dim.
        seq = {1: 5, 8: 11}
        outputs = ["output", "h_n", "c_n"] if cell is nn.LSTM else ["output", "h_n"]
        axes = {"input": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}}
        for name in outputs[1:]:
            axes[name] = {1: "batch"}
        return (model, lambda batch, gen: [torch.randn(batch, seq[batch], 12, generator=gen)],
                dict(inputs=["input"], outputs=outputs, dynamic_axes=axes))
    return make


class Branchy(nn.Module):
    """Data-dependent control flow; scripted, it exports as an ONNX If with two subgraphs."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.fc_neg = nn.Linear(16, 4)

    def forward(self, x):
        y = self.fc(x)
        if bool(y.sum() > 0):
            out = torch.relu(y) * 2.0
        else:
            out = torch.sigmoid(y) - 1.0 + self.fc_neg(y).mean(dim=1, keepdim=True)
        return out


def branchy():
    model = torch.jit.script(Branchy().eval())

    def inputs(batch, gen):
        # Batch 1 takes the then-branch, batch 8 the else-branch, so both subgraphs run.
        want_positive = batch == 1
        while True:
            x = torch.randn(batch, 16, generator=gen)
            with torch.no_grad():
                if bool(model.fc(x).sum() > 0) == want_positive:
                    return [x]
    return model, inputs, dict(inputs=["input"], outputs=["output"])


class Accumulate(nn.Module):
    """A loop whose trip count is the (symbolic) sequence length; exports as ONNX Loop."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        acc = torch.zeros_like(x[:, 0])
        for i in range(x.size(1)):
            acc = torch.tanh(self.fc(acc) + x[:, i])
        return acc


def loop():
    model = torch.jit.script(Accumulate().eval())
    seq = {1: 3, 8: 6}
    return (model, lambda batch, gen: [torch.randn(batch, seq[batch], 8, generator=gen)],
            dict(inputs=["input"], outputs=["output"],
                 dynamic_axes={"input": {0: "batch", 1: "seq"}, "output": {0: "batch"}}))


MODELS = {
    "resnet18": torchvision_model("resnet18"),
    "mobilenet_v2": torchvision_model("mobilenet_v2"),
    "squeezenet1_1": torchvision_model("squeezenet1_1"),
    "transformer_encoder": transformer,
    "mlp": lambda: mlp(13),
    "mlp_opset17": lambda: mlp(17),
    "small_cnn_opset9": small_cnn(9),
    "small_cnn_opset11": small_cnn(11),
    "small_cnn_opset17": small_cnn(17),
    "conv_zoo": lambda: conv_zoo(13),
    "conv_zoo_opset17": lambda: conv_zoo(17),
    "lstm": recurrent(nn.LSTM),
    "gru": recurrent(nn.GRU),
    "if_branch": branchy,
    "loop": loop,
}


# ---------------------------------------------------------------------------------------------

def script_version():
    """Changes whenever this file or the torch version does, which invalidates the cache."""
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"{digest} torch {torch.__version__}"


def npy_name(kind, names, name, batch):
    """input_b1.npy / expected_b1.npy for the usual single tensor, with the tensor's name added
    when there are several (expected_b1_h_n.npy)."""
    return f"{kind}_b{batch}.npy" if len(names) == 1 else f"{kind}_b{batch}_{name}.npy"


def export_one(name, make, out_dir, version):
    model_dir = os.path.join(out_dir, name)
    manifest_path = os.path.join(model_dir, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("version") == version:
                print(f"{name}: cached")
                return
    os.makedirs(model_dir, exist_ok=True)
    start = time.time()
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    torch.manual_seed(seed)
    model, inputs_fn, spec = make()
    in_names, out_names = spec["inputs"], spec["outputs"]
    opset = spec.get("opset", 13)
    axes = spec.get("dynamic_axes") or {n: {0: "batch"} for n in in_names + out_names}

    gen = torch.Generator().manual_seed(seed)
    batches = {}
    for batch in BATCHES:
        xs = inputs_fn(batch, gen)
        with torch.no_grad():
            ys = model(*xs)
        ys = list(ys) if isinstance(ys, (tuple, list)) else [ys]
        entry = {"inputs": {}, "outputs": {}}
        for kind, names, tensors in (("input", in_names, xs), ("expected", out_names, ys)):
            for n, t in zip(names, tensors):
                file = npy_name(kind, names, n, batch)
                np.save(os.path.join(model_dir, file), np.ascontiguousarray(t.numpy()))
                entry["inputs" if kind == "input" else "outputs"][n] = file
        batches[str(batch)] = entry
        if batch == 1:
            example = tuple(xs)

    onnx_path = os.path.join(model_dir, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's advice is noise in a test log
        torch.onnx.export(model, example, onnx_path, opset_version=opset,
                          input_names=in_names, output_names=out_names, dynamic_axes=axes)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    ops = sorted({n.op_type for n in proto.graph.node})

    manifest = {"version": version, "model": "model.onnx", "opset": opset, "ops": ops,
                "batches": batches}
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(f"{name}: exported opset {opset} in {time.time() - start:.1f}s, ops: {' '.join(ops)}")


def main():
    if len(sys.argv) < 2:
        print("usage: export.py OUT_DIR [MODEL...]", file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    wanted = sys.argv[2:] or list(MODELS)
    unknown = [n for n in wanted if n not in MODELS]
    if unknown:
        print(f"export.py: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}",
              file=sys.stderr)
        return 2
    # One thread: PyTorch's references take seconds, and ctest runs other tests beside this one;
    # oversubscribed cores make PyTorch's thread pool many times slower, not faster.
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    version = script_version()
    failed = []
    for name in wanted:
        try:
            export_one(name, MODELS[name], out_dir, version)
        except Exception as e:  # report every model, then fail
            print(f"{name}: EXPORT FAILED: {type(e).__name__}: {e}")
            failed.append(name)
    if failed:
        print(f"export.py: {len(failed)} export(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
