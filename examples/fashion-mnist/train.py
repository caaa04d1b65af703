#!/usr/bin/env python3
"""train.py — trains the Fashion-MNIST models that ferry's examples and tests use and exports
them at opset 13 with a dynamic batch dim; output "logits" [batch,10] in each:
  mlp.onnx       784-64-64-10 MLP, input "input" [batch,784] in 0..1
  cnn.onnx       two conv+pool blocks and two dense layers, input "input" [batch,1,28,28] in 0..1
  cnn-weak.onnx  the same CNN trained on only 2,000 images for one epoch: a deliberately worse
                 candidate with the same signature, for the pipeline example's failing gate
and writes one test image of an ankle boot as ankle-boot.npy ([1,784]; reshape for the CNN).

Usage: train.py [DATA_DIR] [OUT_DIR]
  DATA_DIR defaults to /usr/share/datasets/fashion-mnist (the four IDX .gz files),
  OUT_DIR to this script's directory. Runs on one CPU thread in about five minutes.
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
from torch import nn

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
EPOCHS = 3
BATCH = 128


def read_idx(path):
    """Reads an IDX file (big-endian header: magic, then one u32 per dim) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte elements
        raise ValueError(f"{path}: not a uint8 IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} elements, file holds {arr.size}")
    return arr.reshape(dims)


def load(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = images.reshape(len(images), 28 * 28).astype(np.float32) / 255.0
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def mlp():
    return nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(),
        nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(name, model, x_train, y_train, epochs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(x_train), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"{name} epoch {epoch + 1}: train loss {total / len(x_train):.4f} "
              f"({time.time() - start:.1f}s)")
    model.eval()


def export(name, model, x_test, y_test, out_dir):
    with torch.no_grad():
        pred = model(x_test).argmax(dim=1)
    accuracy = (pred == y_test).float().mean().item()
    print(f"{name}: test accuracy {accuracy * 100:.2f}% on {len(x_test)} images")
    path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(model, x_test[:1], path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return pred


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    # One thread: the layers are too small to gain from more, and on a busy 2-core machine a
    # second thread made each step ~6x slower. It also keeps the result bit-reproducible.
    torch.set_num_threads(1)

    x_train, y_train = load(data_dir, "train")
    x_test, y_test = load(data_dir, "t10k")

    torch.manual_seed(0)
    model = mlp()
    train("mlp", model, x_train, y_train, EPOCHS)
    pred = export("mlp", model, x_test, y_test, out_dir)

    images_train = x_train.reshape(-1, 1, 28, 28)
    images_test = x_test.reshape(-1, 1, 28, 28)
    torch.manual_seed(0)
    model = cnn()
    train("cnn", model, images_train, y_train, EPOCHS)
    export("cnn", model, images_test, y_test, out_dir)

    torch.manual_seed(1)
    model = cnn()
    train("cnn-weak", model, images_train[:2000], y_train[:2000], 1)
    export("cnn-weak", model, images_test, y_test, out_dir)

    # The first ankle boot of the test set that the MLP also classifies as one, so the
    # example prints a correct answer.
    boots = [i for i in range(len(y_test)) if y_test[i] == 9 and pred[i] == 9]
    boot = x_test[boots[0]:boots[0] + 1].numpy()
    np.save(os.path.join(out_dir, "ankle-boot.npy"), boot)
    print(f"wrote the models and ankle-boot.npy (test image #{boots[0]})")


if __name__ == "__main__":
    main()
