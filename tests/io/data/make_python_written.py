"""Writes python_written.safetensors with Python's own `safetensors` package.

tests/io/safetensors_test.cpp checks that recblocks reads this file and that
SafetensorsWriter writes the same bytes for the same tensors. Regenerate with

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install safetensors numpy ml_dtypes
    /tmp/stvenv/bin/python tests/io/data/make_python_written.py

(the committed file was written by safetensors 0.8.0, numpy 2.4.6, ml_dtypes 0.6.0).
Python orders the tensors by dtype, widest first (I64, F64, F32, I32, BF16, F16,
I16, I8, U8, BOOL), then by name. The metadata has one key: Python writes
several in hash order, which would not be reproducible.

Expected values (row-major):
    emb.weight  F32  [3, 2]        0.5, -1.25, 2.0, 0.125, -3.5, 1024.0
    scale       F64  []            0.1
    half        F16  [5]           1.0, -2.5, 65504.0, 2^-14, 2^-24
    bf          BF16 [2, 2]        1.0, -0.5, 3.140625, 256.0
    ids         I64  [2, 3]        0, 1, -1, 2^40, -2^62, 2^63 - 1
    pos         I32  [3]           -2^31, 0, 2^31 - 1
    i16         I16  [3]           -32768, 7, 32767
    i8          I8   [3]           -128, 0, 127
    u8          U8   [1, 2]        0, 255
    mask        BOOL [3]           true, false, true
    empty       F32  [0, 4]        (no elements)
    rank4       F32  [1, 2, 1, 2]  1, 2, 3, 4
    metadata    {"format": "pt"}
"""
import os

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

tensors = {
    "emb.weight": np.array([[0.5, -1.25], [2.0, 0.125], [-3.5, 1024.0]], dtype=np.float32),
    "scale": np.array(0.1, dtype=np.float64),
    "half": np.array([1.0, -2.5, 65504.0, 2.0**-14, 2.0**-24], dtype=np.float16),
    "bf": np.array([[1.0, -0.5], [3.140625, 256.0]], dtype=ml_dtypes.bfloat16),
    "ids": np.array([[0, 1, -1], [2**40, -(2**62), 2**63 - 1]], dtype=np.int64),
    "pos": np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32),
    "i16": np.array([-32768, 7, 32767], dtype=np.int16),
    "i8": np.array([-128, 0, 127], dtype=np.int8),
    "u8": np.array([[0, 255]], dtype=np.uint8),
    "mask": np.array([True, False, True]),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "rank4": np.arange(1, 5, dtype=np.float32).reshape(1, 2, 1, 2),
}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_written.safetensors")
save_file(tensors, path, metadata={"format": "pt"})

with open(path, "rb") as f:
    raw = f.read()
header_len = int.from_bytes(raw[:8], "little")
print(path, len(raw), "bytes; header:", raw[8 : 8 + header_len].decode())
