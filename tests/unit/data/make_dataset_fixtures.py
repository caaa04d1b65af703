# make_dataset_fixtures.py — writes the small .npz files test_dataset.c reads, with NumPy itself
# (so the zip layout is NumPy's: zip64 local headers, stored and deflated entries).
# Run: /usr/bin/python3 tests/unit/data/make_dataset_fixtures.py  (from the repository root)
import os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
x = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
y = np.array([0, 2, 1, 2], dtype=np.int64)
np.savez(os.path.join(here, "small.npz"), x=x, y=y)
np.savez_compressed(os.path.join(here, "small_deflate.npz"), images=np.arange(64, dtype=np.uint8).reshape(4, 4, 4), labels=y)
