#!/usr/bin/python3
"""make_act_models.py — test fixture: Conv and Gemm followed by each activation ferry fuses
into com.microsoft FusedConv/FusedGemm, so the ORT check proves every fused form runs there.

usage: make_act_models.py OUT_DIR   (writes conv_<Act>.onnx, gemm_<Act>.onnx, x4.npy, x2.npy)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
acts = {"Relu": {}, "Sigmoid": {}, "Tanh": {}, "LeakyRelu": {"alpha": 0.1},
        "HardSigmoid": {"alpha": 0.3, "beta": 0.4}, "HardSwish": {}, "Clip": None}
for name, attrs in acts.items():
    inits = [nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
             nh.from_array(rng.standard_normal(4).astype(np.float32), "B")]
    nodes = [h.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])]
    if name == "Clip":
        inits += [nh.from_array(np.array(-0.5, np.float32), "lo"), nh.from_array(np.array(0.7, np.float32), "hi")]
        nodes.append(h.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    else:
        nodes.append(h.make_node(name, ["c"], ["y"], **attrs))
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 4, 8, 8])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 14)]), f"{out}/conv_{name}.onnx")
    if name in ("HardSwish", "Clip"):  # ferry fuses these into FusedConv only
        continue
    inits = [nh.from_array(rng.standard_normal((5, 6)).astype(np.float32), "W"),
             nh.from_array(rng.standard_normal(6).astype(np.float32), "B")]
    nodes = [h.make_node("Gemm", ["x", "W", "B"], ["c"]), h.make_node(name, ["c"], ["y"], **attrs)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["N", 5])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 6])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 14)]), f"{out}/gemm_{name}.onnx")
np.save(f"{out}/x4.npy", rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
np.save(f"{out}/x2.npy", rng.standard_normal((4, 5)).astype(np.float32))
