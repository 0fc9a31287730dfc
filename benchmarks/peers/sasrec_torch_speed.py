#!/usr/bin/env python3
"""SASRec speed peer: PyTorch on the CPU, configured several ways, at the shapes
of the recblocks SASRec speed bars.

Model: torch_models.SASRec, D = 50, L = 200, 2 blocks, 1 head, norm='query' (the
authors' block), positions='from_one', mask_padding_keys=False, conv1d FFN, LN eps
1e-8, pmixer initialisation; N = 9724 items (ml-latest-small; --items_1m: 3416,
ML-1M as in shared DESIGN.md section 4; or --num_items N). Inputs: random item
ids, every one of the L slots real (no padding: the most work per sequence).

Measured (median per call over repetitions after warm-up; sequences/s = batch /
median):
  infer  B = 1 and B = 128: eval mode, torch.inference_mode: scores of ALL N items
         from the last position (F[:, -1] @ E[1:].T) and torch.topk(k=10).
  train  B = 128: train mode (dropout 0.2): forward, BCE with one negative per
         position (SASRec.loss), zero_grad, backward, Adam(lr 1e-3, betas (0.9, 0.98)) step.

Configurations (each in its own process, per allocator and thread count):
  attn ref   the model as written in torch_models.py (nn.MultiheadAttention with an
             explicit [B*H, L, L] bool mask; FFN as Conv1d(k=1)): pmixer's code path.
  attn sdpa  the same function and parameters, attention by
             F.scaled_dot_product_attention(is_causal=True) (exact here: causal
             mask only, mask_padding_keys=False) and the 1x1 convs as F.linear.
  eager      out of the box.
  script     TorchScript: torch.jit.script of the inference module, falling back
             to torch.jit.trace (the JSON says which worked), then torch.jit.freeze
             and torch.jit.optimize_for_inference where they work.
  compile    torch.compile (inductor, torch._inductor.config.freezing = True) of the
             inference module, in a separate process bounded by --compile_timeout;
             skipped on failure or timeout (--no_compile to skip outright).
             Training: --compile_train also compiles the sdpa forward+loss.
  bf16       eager sdpa under torch.autocast('cpu', torch.bfloat16) (inference).
  fused      (train) Adam(fused=True).
  allocator  glibc (none preloaded), tcmalloc (libtcmalloc_minimal.so.4) and
             jemalloc (libjemalloc.so.2), preloaded by re-executing this script
             with LD_PRELOAD; /proc/self/maps confirms it is loaded.
  threads    1 and 2: OMP_NUM_THREADS, MKL_NUM_THREADS set before torch is
             imported, torch.set_num_threads(t), torch.set_num_interop_threads(1).
Every inference configuration's top-10 at B = 128 is compared with eager ref's
(top10_agree: mean overlap of the top-10 sets, 1.0 = same items).

Output: a table on stdout and, with --out FILE, JSON with the torch version, the
build summary (torch.__config__.show() BLAS/MKL/oneDNN/ISA lines, oneDNN's ISA
line from ONEDNN_VERBOSE, MKL's banner, a measured single-thread SGEMM rate),
torch.backends.cpu.get_cpu_capability(), the CPU model, and per result the
allocator, threads, configuration, median ms and sequences/s.

Usage (from the repository root):
  benchmarks/peers/.venv/bin/python benchmarks/peers/sasrec_torch_speed.py --out torch_sasrec_speed.json
  benchmarks/peers/.venv/bin/python benchmarks/peers/sasrec_torch_speed.py --quick    # ~30 s smoke run
Debian's allocators: apt-get install libtcmalloc-minimal4 libjemalloc2.
Run it on an otherwise idle machine: with 2 cores, any other load distorts the
2-thread figures (OpenMP threads wait on each other).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
ALLOCATORS = {
    "glibc": [],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
    "jemalloc": ["libjemalloc.so.2", "libjemalloc.so.1"],
}
D, L, BLOCKS, HEADS, DROPOUT, TOPK = 50, 200, 2, 1, 0.2, 10


def find_allocator(name: str):
    """Path of the allocator library, '' for glibc, None when not installed."""
    if not ALLOCATORS[name]:
        return ""
    for lib in ALLOCATORS[name]:
        for d in LIBDIRS:
            p = os.path.join(d, lib)
            if os.path.exists(p):
                return p
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_ids() -> dict:
    """vendor, family, model, stepping (the model name alone can be as vague as 'AMD EPYC')."""
    out = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k in ("vendor_id", "cpu family", "model", "stepping") and k not in out:
                    out[k.replace(" ", "_")] = v.strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return out


def cpu_flags() -> list:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(x for x in flags if x.startswith(("avx512", "amx")) or x in ("avx2", "fma"))
    except OSError:
        pass
    return []


# ======================================================================================
# worker side (imports torch)
# ======================================================================================
def build_modules(torch, num_items: int, seed: int):
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    from torch_models import SASRec, init_pmixer_

    torch.manual_seed(seed)
    model = init_pmixer_(SASRec(num_items, L, D, BLOCKS, HEADS, DROPOUT, norm="query", positions="from_one",
                                mask_padding_keys=False, ffn="conv1d", ln_eps=1e-8))

    class FastBlock(nn.Module):
        """One query-norm block on the parameters of the reference block (the same Parameter
        objects, not copies). It holds tensors, not the reference submodules, so that
        torch.jit.script does not have to compile them."""

        def __init__(self, ln_a, mha, ln_f, ffn):
            super().__init__()
            self.ln_a, self.ln_f = ln_a, ln_f
            self.in_proj_weight, self.in_proj_bias = mha.in_proj_weight, mha.in_proj_bias
            self.out_proj_weight, self.out_proj_bias = mha.out_proj.weight, mha.out_proj.bias
            self.w1, self.b1, self.w2, self.b2 = ffn.conv1.weight, ffn.conv1.bias, ffn.conv2.weight, ffn.conv2.bias
            self.drop1, self.drop2 = nn.Dropout(ffn.dropout1.p), nn.Dropout(ffn.dropout2.p)
            self.heads = int(mha.num_heads)
            self.p = float(mha.dropout)

        def forward(self, x: torch.Tensor, keep_f: torch.Tensor) -> torch.Tensor:
            bsz, n, d = x.shape[0], x.shape[1], x.shape[2]
            h = self.heads
            w, b = self.in_proj_weight, self.in_proj_bias
            q = self.ln_a(x)
            qh = F.linear(q, w[:d], b[:d]).view(bsz, n, h, d // h).transpose(1, 2)
            kv = F.linear(x, w[d:], b[d:])
            kh = kv[:, :, :d].reshape(bsz, n, h, d // h).transpose(1, 2)
            vh = kv[:, :, d:].reshape(bsz, n, h, d // h).transpose(1, 2)
            p = self.p if self.training else 0.0
            a = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=p, is_causal=True)
            a = F.linear(a.transpose(1, 2).reshape(bsz, n, d), self.out_proj_weight, self.out_proj_bias)
            x = self.ln_f(q + a)
            hid = self.drop1(torch.relu(F.linear(x, self.w1.squeeze(-1), self.b1)))
            x = x + self.drop2(F.linear(hid, self.w2.squeeze(-1), self.b2))
            return x * keep_f

    class FastSASRec(nn.Module):
        """The same function as SASRec.log2feats (norm='query', mask_padding_keys=False) with SDPA."""

        def __init__(self, m):
            super().__init__()
            self.item_emb, self.pos_emb, self.emb_dropout, self.last_layernorm = (
                m.item_emb, m.pos_emb, m.emb_dropout, m.last_layernorm)
            self.blocks = nn.ModuleList(FastBlock(*t) for t in zip(m.attention_layernorms, m.attention_layers,
                                                                      m.forward_layernorms, m.forward_layers))
            self.scale = float(D) ** 0.5

        def log2feats(self, seq: torch.Tensor) -> torch.Tensor:
            keep = seq != 0
            keep_f = keep.unsqueeze(-1).to(self.item_emb.weight.dtype)
            slots = torch.arange(seq.shape[1], device=seq.device).expand_as(seq)
            x = self.item_emb(seq) * self.scale + self.pos_emb((slots + 1) * keep.long())
            x = self.emb_dropout(x) * keep_f
            for blk in self.blocks:
                x = blk(x, keep_f)
            return self.last_layernorm(x)

    class Infer(nn.Module):
        """seq [B, L] -> (top-10 scores, top-10 column ids) over all N items."""

        def __init__(self, m, fast: bool):
            super().__init__()
            self.m = m
            self.k = int(TOPK)

        def forward(self, seq: torch.Tensor):
            feats = self.m.log2feats(seq)
            scores = feats[:, -1, :] @ self.m.item_emb.weight[1:].t()
            return torch.topk(scores, self.k, dim=1)

    fast = FastSASRec(model)
    return model, fast, Infer


def first_line(e: BaseException, limit: int = 240) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return (lines[0] if lines else repr(e))[:limit]


def time_calls(fn, warmup: int, reps: int):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def allocator_loaded() -> str:
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("tcmalloc", "jemalloc"):
        if name in maps:
            return name
    return "glibc"


def worker(args) -> int:
    threads = args.worker_threads
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.* deprecation notices
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    results, notes = [], []
    model, fast, Infer = build_modules(torch, args.num_items, args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    seqs = {b: torch.randint(1, args.num_items + 1, (b, L), generator=gen) for b in (1, 128)}
    quick = args.quick
    reps = {1: (5, 20) if quick else (30, 300), 128: (2, 5) if quick else (5, 40)}
    train_reps = (1, 3) if quick else (3, 20)
    base = dict(allocator=args.worker_allocator, allocator_loaded=allocator_loaded(), threads=threads,
                torch_threads=torch.get_num_threads())

    def record(kind, config, batch, med, ts, **extra):
        r = dict(base, kind=kind, config=config, batch=batch, median_ms=round(med * 1e3, 4),
                 min_ms=round(min(ts) * 1e3, 4), reps=len(ts), seq_per_s=round(batch / med, 1))
        r.update(extra)
        results.append(r)
        print(f"  [{args.worker_allocator} t={threads}] {kind} {config} B={batch}: {med * 1e3:.3f} ms "
              f"({batch / med:.1f} seq/s)", file=sys.stderr, flush=True)

    model.eval()
    ref_inf, fast_inf = Infer(model, False).eval(), Infer(fast, True).eval()
    reference_top = {}
    with torch.inference_mode():
        for b in (1, 128):
            reference_top[b] = ref_inf(seqs[b])

    def agree(out, b=128):
        ref_v, ref_i = reference_top[b]
        v, i = out
        overlap = sum(len(set(ri.tolist()) & set(ii.tolist())) for ri, ii in zip(ref_i, i)) / (TOPK * ref_i.shape[0])
        return round(overlap, 4), float((v.float() - ref_v).abs().max())

    def bench_infer(name, fn, context=None):
        for b in (1, 128):
            def call(b=b):
                if context is None:
                    with torch.inference_mode():
                        return fn(seqs[b])
                with torch.inference_mode(), context():
                    return fn(seqs[b])
            try:
                out = call()
                med, ts = time_calls(call, *reps[b])
            except Exception as e:  # noqa: BLE001 - a configuration that fails is reported, not fatal
                notes.append(f"infer {name} B={b}: failed: {type(e).__name__}: {first_line(e)}")
                print("  " + notes[-1], file=sys.stderr)
                return
            a, dmax = agree(out, b)
            record("infer", name, b, med, ts, top10_agree=a, max_abs_diff_top10_scores=dmax)

    if args.worker_group == "main":
        bench_infer("eager-ref", ref_inf)
        bench_infer("eager-sdpa", fast_inf)
        # TorchScript: script, else trace; then freeze + optimize_for_inference
        for attn, mod in (("sdpa", fast_inf), ("ref", ref_inf)):
            how = None
            try:
                sm = torch.jit.script(mod)
                how = "script"
            except Exception as e:  # noqa: BLE001
                notes.append(f"torch.jit.script({attn}) failed: {type(e).__name__}: {first_line(e)}; "
                             f"using torch.jit.trace")
                try:
                    with torch.no_grad():
                        sm = torch.jit.trace(mod, (seqs[128],), check_trace=False)
                    how = "trace"
                except Exception as e2:  # noqa: BLE001
                    notes.append(f"torch.jit.trace({attn}) failed too: {type(e2).__name__}: {e2}")
                    continue
            frozen = sm
            try:
                frozen = torch.jit.freeze(sm.eval())
                how += "+freeze"
                frozen = torch.jit.optimize_for_inference(frozen)
                how += "+optimize_for_inference"
            except Exception as e:  # noqa: BLE001
                notes.append(f"TorchScript {attn}: freeze/optimize_for_inference failed: {type(e).__name__}: "
                             f"{first_line(e)}")
            notes.append(f"TorchScript {attn}: {how}")
            bench_infer(f"script-{attn} ({how})", frozen)
        if "bf16" in args.worker_extras:
            bench_infer("eager-sdpa-bf16-autocast", fast_inf, lambda: torch.autocast("cpu", dtype=torch.bfloat16))

    if args.worker_group == "compile":
        import torch._inductor.config as icfg

        icfg.freezing = True
        for attn, mod in (("sdpa", fast_inf), ("ref", ref_inf)):
            if attn not in args.compile_attn.split(","):
                continue
            try:
                cm = torch.compile(mod, dynamic=False)
                for b in (1, 128):
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        cm(seqs[b])
                    notes.append(f"torch.compile {attn} B={b}: first call (compile) {time.perf_counter() - t0:.1f} s")
                    print("  " + notes[-1], file=sys.stderr, flush=True)
            except Exception as e:  # noqa: BLE001
                notes.append(f"torch.compile {attn} failed: {type(e).__name__}: {first_line(e)}")
                print("  " + notes[-1], file=sys.stderr)
                continue
            bench_infer(f"compile-{attn} (inductor, freezing)", lambda s, cm=cm: cm(s))

    # ---- training ----
    def bench_train(name, feats_module, fused=False, compiled=False):
        torch.manual_seed(args.seed)
        model.train()
        fast.train()
        kw = {"fused": True} if fused else {}
        try:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), **kw)
        except Exception as e:  # noqa: BLE001
            notes.append(f"train {name}: Adam({kw}) failed: {e}")
            return
        state = {k: v.clone() for k, v in model.state_dict().items()}
        ids = seqs[128]
        pos = torch.randint(1, args.num_items + 1, (128, L), generator=gen)
        neg = torch.randint(1, args.num_items + 1, (128, L), generator=gen)

        def fwd_loss(ids, pos, neg):
            f = feats_module.log2feats(ids)
            pl = (f * model.item_emb(pos)).sum(dim=-1)
            nl = (f * model.item_emb(neg)).sum(dim=-1)
            return model.loss(pl, nl, pos)

        step_loss = torch.compile(fwd_loss, dynamic=False) if compiled else fwd_loss

        def step():
            loss = step_loss(ids, pos, neg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        try:
            t0 = time.perf_counter()
            step()
            first = time.perf_counter() - t0
            med, ts = time_calls(step, *train_reps)
        except Exception as e:  # noqa: BLE001
            notes.append(f"train {name} failed: {type(e).__name__}: {first_line(e)}")
            print("  " + notes[-1], file=sys.stderr)
            return
        finally:
            model.load_state_dict(state)
            model.eval()
            fast.eval()
        record("train", name, 128, med, ts, first_call_s=round(first, 2))

    if args.worker_group == "main":
        bench_train("eager-ref", model)
        bench_train("eager-sdpa", fast)
        bench_train("eager-sdpa+fused-adam", fast, fused=True)
    if args.worker_group == "compile" and args.compile_train:
        bench_train("compile-sdpa (forward+loss)", fast, compiled=True)

    print(json.dumps({"results": results, "notes": notes}))
    return 0


# ======================================================================================
# parent side
# ======================================================================================
def build_info(python: str) -> dict:
    """torch build and CPU facts, from a child with MKL/oneDNN verbose on."""
    code = r"""
import json, time, torch
import torch.nn.functional as F
cfg = torch.__config__.show()
keys = ("BLAS", "LAPACK", "Math Kernel", "MKL-DNN", "oneDNN", "OpenMP", "CPU capability", "GCC")
lines = [l.strip(" -") for l in cfg.splitlines() if any(k in l for k in keys) and "Build settings" not in l]
settings = [l for l in cfg.splitlines() if "Build settings" in l]
picked = []
if settings:
    for kv in settings[0].split(":", 1)[1].split(","):
        kv = kv.strip()
        if kv.startswith(("BLAS_INFO", "LAPACK_INFO", "USE_MKL", "USE_MKLDNN", "USE_OPENMP", "TORCH_VERSION", "BUILD_TYPE")):
            picked.append(kv)
torch.set_num_threads(1)
x = torch.randn(32, 50, 200); w = torch.nn.Conv1d(50, 50, 1); w(x)
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
a @ b
t = []
for _ in range(5):
    t0 = time.perf_counter(); a @ b; t.append(time.perf_counter() - t0)
print("INFOJSON" + json.dumps({"torch": torch.__version__, "config_lines": lines, "build_settings": picked,
    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkl_available": torch.backends.mkl.is_available(),
    "mkldnn_available": torch.backends.mkldnn.is_available(),
    "sgemm_1024_1thread_gflops": round(2 * 1024**3 / min(t) / 1e9, 1)}))
"""
    env = dict(os.environ, MKL_VERBOSE="1", ONEDNN_VERBOSE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    info = {}
    for line in p.stdout.splitlines():
        if line.startswith("INFOJSON"):
            info.update(json.loads(line[len("INFOJSON"):]))
        elif line.startswith("MKL_VERBOSE oneMKL") or line.startswith("MKL_VERBOSE Intel"):
            info["mkl_banner"] = line[len("MKL_VERBOSE "):].strip()
        elif "onednn_verbose" in line and ",isa:" in line:
            info["onednn_isa"] = line.split("isa:", 1)[1].strip()
        elif "onednn_verbose" in line and ",exec," in line and ",convolution," in line and "onednn_conv_impl" not in info:
            f = line.split(",")
            info["onednn_conv_impl"] = f[f.index("convolution") + 1]  # e.g. jit_1x1:avx512_core
    if "torch" not in info:
        info["error"] = (p.stderr or p.stdout)[-2000:]
    return info


def run_worker(python, script, alloc, libpath, threads, group, args, timeout):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    if libpath:
        env["LD_PRELOAD"] = (libpath + " " + env.get("LD_PRELOAD", "")).strip()
    cmd = [python, script, "--_worker", "--_worker_allocator", alloc, "--_worker_threads", str(threads),
           "--_worker_group", group, "--num_items", str(args.num_items), "--seed", str(args.seed),
           "--compile_attn", args.compile_attn, "--_worker_extras", ",".join(args.extras)]
    if args.quick:
        cmd.append("--quick")
    if args.compile_train:
        cmd.append("--compile_train")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], [f"{alloc} t={threads} {group}: timed out after {timeout} s (skipped)"]
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    try:
        out = json.loads(last)
    except json.JSONDecodeError:
        return [], [f"{alloc} t={threads} {group}: worker failed (exit {p.returncode})"]
    out["notes"] = [f"{alloc} t={threads} {group}: {n}" for n in out["notes"]]
    out["notes"].append(f"{alloc} t={threads} {group}: worker wall time {time.perf_counter() - t0:.1f} s")
    return out["results"], out["notes"]


def print_table(results):
    rows = sorted(results, key=lambda r: (r["kind"], r["batch"], r["config"], r["threads"], r["allocator"]))
    print()
    print(f"{'kind':<6} {'B':>4} {'configuration':<52} {'alloc':<9} {'thr':>3} {'median ms':>10} "
          f"{'seq/s':>9} {'top10':>6}")
    print("-" * 106)
    prev = None
    for r in rows:
        key = (r["kind"], r["batch"])
        if prev is not None and key != prev:
            print()
        prev = key
        agree = f"{r['top10_agree']:.3f}" if "top10_agree" in r else ""
        alloc = r["allocator"] if r["allocator_loaded"] == r["allocator"] else r["allocator"] + "?"
        print(f"{r['kind']:<6} {r['batch']:>4} {r['config']:<52} {alloc:<9} {r['threads']:>3} "
              f"{r['median_ms']:>10.3f} {r['seq_per_s']:>9.1f} {agree:>6}")
    best = {}
    for r in results:
        k = (r["kind"], r["batch"])
        if k not in best or r["seq_per_s"] > best[k]["seq_per_s"]:
            if r.get("top10_agree", 1.0) >= 0.99:
                best[k] = r
    print("\nbest (top-10 agreeing with eager ref):")
    for (kind, b), r in sorted(best.items()):
        print(f"  {kind} B={b}: {r['seq_per_s']:.1f} seq/s ({r['median_ms']:.3f} ms)  {r['config']}, "
              f"{r['allocator']}, {r['threads']} thread(s)")
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num_items", type=int, default=9724, help="N (default 9724: ml-latest-small)")
    ap.add_argument("--items_1m", action="store_true", help="N = 3416 (ML-1M, as the DESIGN.md figures)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--allocators", default="glibc,tcmalloc,jemalloc")
    ap.add_argument("--no_compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--compile_attn", default="sdpa", help="which models to torch.compile: sdpa, ref or sdpa,ref")
    ap.add_argument("--compile_train", action="store_true", help="also time a compiled training step")
    ap.add_argument("--compile_timeout", type=int, default=900, help="seconds per compile worker")
    ap.add_argument("--no_bf16", action="store_true", help="skip the bf16 autocast inference configuration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="~30 s smoke run: 2 threads, tcmalloc (glibc if missing), few repetitions, no compile, no bf16")
    ap.add_argument("--out", default="", help="write the results as JSON")
    # internal: the re-executed worker
    ap.add_argument("--_worker", dest="worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_worker_allocator", dest="worker_allocator", default="glibc", help=argparse.SUPPRESS)
    ap.add_argument("--_worker_threads", dest="worker_threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--_worker_group", dest="worker_group", default="main", help=argparse.SUPPRESS)
    ap.add_argument("--_worker_extras", dest="worker_extras", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.items_1m:
        args.num_items = 3416
    if args.worker:
        args.worker_extras = args.worker_extras.split(",")
        return worker(args)

    if args.quick:
        if "--threads" not in sys.argv:
            args.threads = "2"
        if "--allocators" not in sys.argv:
            args.allocators = "tcmalloc" if find_allocator("tcmalloc") else "glibc"
        args.no_compile = True
        args.no_bf16 = True
    args.extras = [] if args.no_bf16 else ["bf16"]
    python, script = sys.executable, os.path.abspath(__file__)
    t_start = time.perf_counter()
    info = build_info(python)
    info.update(cpu_model=cpu_model(), cpu_ids=cpu_ids(), cpu_flags=cpu_flags(), logical_cpus=os.cpu_count(),
                python=platform.python_version(), num_items=args.num_items, D=D, L=L, blocks=BLOCKS, heads=HEADS,
                dropout=DROPOUT, quick=args.quick, load_average_at_start=os.getloadavg())
    print(f"torch {info.get('torch')}  CPU capability {info.get('cpu_capability')}  CPU: {info['cpu_model']} "
          f"{info['cpu_ids']}")
    for line in info.get("config_lines", []):
        print("  " + line)
    print(f"  oneDNN ISA: {info.get('onednn_isa', '?')} (1x1 conv: {info.get('onednn_conv_impl', '?')}); "
          f"MKL: {info.get('mkl_banner', '?')}; "
          f"SGEMM 1024^3 1 thread: {info.get('sgemm_1024_1thread_gflops', '?')} GFLOP/s")
    print(f"  N = {args.num_items}, D = {D}, L = {L}, {BLOCKS} blocks, {HEADS} head; load average {os.getloadavg()}",
          flush=True)

    results, notes, allocs = [], [], {}
    for alloc in args.allocators.split(","):
        path = find_allocator(alloc)
        allocs[alloc] = path
        if path is None:
            notes.append(f"{alloc}: library not found ({' or '.join(ALLOCATORS[alloc])}); skipped. Debian: "
                         f"apt-get install {'libtcmalloc-minimal4' if alloc == 'tcmalloc' else 'libjemalloc2'}")
            print(notes[-1], file=sys.stderr)
            continue
        for t in (int(x) for x in args.threads.split(",")):
            print(f"-- {alloc} ({path or 'none preloaded'}), {t} thread(s)", file=sys.stderr, flush=True)
            r, n = run_worker(python, script, alloc, path, t, "main", args, timeout=1800)
            results += r
            notes += n
            if not args.no_compile:
                r, n = run_worker(python, script, alloc, path, t, "compile", args, timeout=args.compile_timeout)
                results += r
                notes += n
    best = print_table(results)
    if notes:
        print("\nnotes:")
        for n in notes:
            print("  " + n)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; load average at the end {os.getloadavg()}")
    if args.out:
        doc = {"benchmark": "sasrec_torch_speed", "info": info, "allocator_paths": allocs, "results": results,
               "best": {f"{k[0]}_B{k[1]}": v for k, v in best.items()}, "notes": notes,
               "wall_s": round(time.perf_counter() - t_start, 1)}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
