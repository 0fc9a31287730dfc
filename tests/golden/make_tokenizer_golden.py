#!/usr/bin/python3
"""Golden files for the tokenizer tests (tests/tokenizers/), from FAISS and NumPy.

    /usr/bin/python3 tests/golden/make_tokenizer_golden.py    # (re)writes the two files below

Debian's python3 with numpy and faiss 1.7.3 (python3-faiss). No safetensors package is
needed: a minimal writer below produces the same layout (8-byte little-endian header length,
JSON header with sorted names, padded with spaces to a multiple of 8, raw little-endian data).

tokenizer_fsq.safetensors
    z.<levels>            F64 [N, C]  inputs (normal, sd 2, plus a few exact zeros and large values)
    codes.<variant>.<levels>    I32 [N, C]  codes in [0, L_c - 1] from the NumPy reference below
    index.<variant>.<levels>    I64 [N]     mixed-radix index, channel 0 least significant
    <levels> is the level list joined by "-" (8-5-5-5, 8-8-8-6-5, 2-3-4-7), <variant> paper|lucidrains.

tokenizer_rq.safetensors
    x                     F32 [N, d]  clustered synthetic data (fixed seed)
    faiss_mse.train<T>.beam<B>  F64 [4]  FAISS ResidualQuantizer(d, M, nbits) trained with
                                      train_type = Train_default (plain k-means per level),
                                      max_beam_size = T while training, B while encoding, cp.niter = 20,
                                      no subsampling, cp.seed = 1, 2, 3, 4 (one value per seed);
                                      (T, B) in (1, 1), (1, 5), (5, 5);
                                      MSE = mean over rows of ||x - decode(compute_codes(x))||²
    __metadata__: d, M, nbits, niter, threads, seeds, faiss (strings)

The test compares the mean over the seeds with recblocks' mean over its own seeds 1..4: on a
problem this small one seed moves the MSE by a few per cent either way.
"""

from __future__ import annotations

import json
import pathlib
import struct

import faiss
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
EPS = 1e-3
LEVEL_SETS = [[8, 5, 5, 5], [8, 8, 8, 6, 5], [2, 3, 4, 7]]


def write_safetensors(path: pathlib.Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    dtypes = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<i4"): "I32", np.dtype("<i8"): "I64"}
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # (ascontiguousarray would make scalars 1-d)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        raw = a.tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def fsq_codes(z: np.ndarray, levels: list[int], variant: str) -> np.ndarray:
    """The FSQ definition of ../shared/PAPERS.md, in float64."""
    lv = np.asarray(levels, dtype=np.float64)
    sign = -1.0 if variant == "paper" else 1.0
    half = (lv - 1) * (1 + sign * EPS) / 2
    offset = np.where(np.asarray(levels) % 2 == 0, 0.5, 0.0)
    shift = np.tan(offset / half) if variant == "paper" else np.arctanh(offset / half)
    bounded = np.tanh(z + shift) * half - offset
    q = np.round(bounded)  # half to even
    return (q + np.asarray(levels) // 2).astype(np.int32)


def fsq_index(codes: np.ndarray, levels: list[int]) -> np.ndarray:
    basis = np.cumprod([1] + levels[:-1]).astype(np.int64)
    return (codes.astype(np.int64) * basis).sum(axis=1)


def make_fsq() -> None:
    rng = np.random.default_rng(7)
    tensors = {}
    for levels in LEVEL_SETS:
        key = "-".join(map(str, levels))
        z = rng.normal(0.0, 2.0, size=(3000, len(levels)))
        z[:5] = 0.0
        z[5:10] = 40.0
        z[10:15] = -40.0
        tensors[f"z.{key}"] = z
        for variant in ("paper", "lucidrains"):
            codes = fsq_codes(z, levels, variant)
            assert codes.min() >= 0 and (codes.max(axis=0) < np.asarray(levels)).all()
            tensors[f"codes.{variant}.{key}"] = codes
            tensors[f"index.{variant}.{key}"] = fsq_index(codes, levels)
    write_safetensors(HERE / "tokenizer_fsq.safetensors", tensors, {"eps": json.dumps(EPS)})


def rq_data(n: int, d: int, seed: int) -> np.ndarray:
    """Clustered data: 64 Gaussian centres with anisotropic spread plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(64, d))
    scales = rng.uniform(0.1, 0.6, size=(64, d))
    lab = rng.integers(0, 64, size=n)
    return (centres[lab] + scales[lab] * rng.normal(size=(n, d))).astype(np.float32)


def make_rq() -> None:
    n, d, m, nbits, niter = 5000, 16, 3, 4, 20
    seeds = [1, 2, 3, 4]
    faiss.omp_set_num_threads(1)
    x = rq_data(n, d, 11)
    tensors = {"x": x}
    for train_beam, beam in ((1, 1), (1, 5), (5, 5)):
        mses = []
        for seed in seeds:
            rq = faiss.ResidualQuantizer(d, m, nbits)
            rq.train_type = faiss.ResidualQuantizer.Train_default
            rq.max_beam_size = train_beam
            rq.cp.niter = niter
            rq.cp.seed = seed
            rq.cp.max_points_per_centroid = 1 << 20  # no subsampling
            rq.train(x)
            rq.max_beam_size = beam
            codes = rq.compute_codes(x)
            xh = rq.decode(codes)
            mses.append(float(((x.astype(np.float64) - xh) ** 2).sum(axis=1).mean()))
        tensors[f"faiss_mse.train{train_beam}.beam{beam}"] = np.asarray(mses, dtype=np.float64)
        print(f"FAISS RQ train beam {train_beam}, encode beam {beam}: MSE per seed {mses}, mean {np.mean(mses):.6f}")
    meta = {"d": str(d), "M": str(m), "nbits": str(nbits), "niter": str(niter), "threads": "1",
            "seeds": json.dumps(seeds), "faiss": faiss.__version__}
    write_safetensors(HERE / "tokenizer_rq.safetensors", tensors, meta)


if __name__ == "__main__":
    make_fsq()
    make_rq()
