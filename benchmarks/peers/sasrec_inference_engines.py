#!/usr/bin/env python3
"""SASRec inference on the CPU engines a serving engineer would pick: ONNX Runtime and
OpenVINO (f32, and OpenVINO's default precision: bf16 on AVX512-BF16 / AMX hosts), beside
PyTorch eager, at the shapes of the recblocks SASRec serving bars.

Model: the PyTorch peer's model (sasrec_torch_speed.build_modules: D = 50, L = 200, 2 blocks,
1 head, the authors' query-norm block, pmixer's initialisation), N = 9724 items
(ml-latest-small). The graph exported is what a user exports: seq [B, L] int64 ->
(top-10 scores, top-10 columns) over every item, i.e. the full forward, F[:, -1] @ E[1:].T
and topk. It is exported once to ONNX (opset 17, dynamic batch) and both engines load that
file. Inputs: random item ids, all L slots real.

Engines (each thread count in its own process, threads fixed before the engine loads):
  torch     eager, torch.inference_mode, sdpa attention (the PyTorch peer's best eager path)
  ort       onnxruntime CPUExecutionProvider, graph optimisation ORT_ENABLE_ALL,
            intra_op_num_threads = t, inter_op 1, sequential execution
  ov-f32    OpenVINO CPU plugin, INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY,
            INFERENCE_NUM_THREADS = t
  ov-default  the same with the plugin's default precision (the JSON records which one it chose)
Measured: median ms per call after warm-up; sequences/s = B / median. Every engine's top-10
at B = 128 is compared with torch's (top10_agree: mean overlap of the top-10 sets).

Usage (repository root; the peers venv of benchmarks/peers/README.md):
  benchmarks/peers/.venv/bin/python benchmarks/peers/sasrec_inference_engines.py --out engines.json
  ... --quick    # a few repetitions, for a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N_ITEMS, BATCHES, ENGINES = 9724, (1, 128), ("torch", "ort", "ov-f32", "ov-default")


def time_calls(fn, warmup: int, reps: int, min_seconds: float) -> float:
    """Median seconds per call over at least `reps` calls and `min_seconds`."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def export_onnx(path: str, seed: int) -> None:
    import torch

    sys.path.insert(0, HERE)
    from sasrec_torch_speed import build_modules

    model, fast, infer_cls = build_modules(torch, N_ITEMS, seed)
    infer = infer_cls(fast, True).eval()
    seq = torch.randint(1, N_ITEMS + 1, (2, 200))
    torch.onnx.export(infer, (seq,), path, input_names=["seq"], output_names=["scores", "columns"],
                      dynamic_axes={"seq": {0: "batch"}, "scores": {0: "batch"}, "columns": {0: "batch"}},
                      opset_version=17, dynamo=False)


def worker(args) -> int:
    """One engine at one thread count: prints one JSON object per batch size."""
    import numpy as np

    threads, engine = args.threads, args.engine
    rng = np.random.default_rng(args.seed + 1)
    inputs = {b: rng.integers(1, N_ITEMS + 1, size=(b, 200), dtype=np.int64) for b in BATCHES}
    extra = {}
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        sys.path.insert(0, HERE)
        from sasrec_torch_speed import build_modules

        _, fast, infer_cls = build_modules(torch, N_ITEMS, args.seed)
        infer = infer_cls(fast, True).eval()
        extra["version"] = torch.__version__

        def run(x):
            with torch.inference_mode():
                v, i = infer(torch.from_numpy(x))
            return i.numpy()
    elif engine == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        extra["version"] = ort.__version__

        def run(x):
            return sess.run(["columns"], {"seq": x})[0]
    else:
        import openvino as ov

        core = ov.Core()
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
        if engine == "ov-f32":
            cfg["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = core.compile_model(core.read_model(args.onnx), "CPU", cfg)
        request = compiled.create_infer_request()
        extra["version"] = ov.__version__
        extra["precision"] = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        extra["ov_threads"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))

        def run(x):
            request.infer({"seq": x})
            return request.get_output_tensor(1).data.copy()
    for b in BATCHES:
        x = inputs[b]
        med = time_calls(lambda: run(x), args.warmup, args.reps, args.min_seconds)
        top = run(x)
        print(json.dumps({"engine": engine, "threads": threads, "batch": b, "median_ms": med * 1e3,
                          "seq_per_s": b / med, "top10": top[:128].tolist(), **extra}), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--min_seconds", type=float, default=2.0)
    args = ap.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        return worker(args)
    if args.quick:
        args.warmup, args.reps, args.min_seconds = 3, 5, 0.2
    tmp = tempfile.mkdtemp(prefix="sasrec_onnx_")
    onnx_path = os.path.join(tmp, "sasrec.onnx")
    export_onnx(onnx_path, args.seed)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for engine in args.engines.split(","):
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--engine", engine, "--threads",
                   str(threads), "--onnx", onnx_path, "--seed", str(args.seed), "--warmup", str(args.warmup),
                   "--reps", str(args.reps), "--min_seconds", str(args.min_seconds)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{engine} threads={threads} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                continue
            results += [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    ref = {(r["threads"], r["batch"]): r["top10"] for r in results if r["engine"] == "torch"}
    for r in results:
        want = ref.get((r["threads"], r["batch"]))
        if want is not None:
            r["top10_agree"] = statistics.mean(len(set(a) & set(b)) / 10 for a, b in zip(r["top10"], want))
        del r["top10"]
    print("| engine | threads | batch | median ms | seq/s | top-10 agreement with torch | precision |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        print(f'| {r["engine"]} {r.get("version", "").split("-")[0]} | {r["threads"]} | {r["batch"]} | {r["median_ms"]:.3f} | '
              f'{r["seq_per_s"]:,.0f} | {r.get("top10_agree", float("nan")):.3f} | {r.get("precision", "f32")} |')
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
