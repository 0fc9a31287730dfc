import json, statistics as st
runs = ["baseline_1", "head_1", "baseline_2", "head_2"]
def load(r):
    d = json.load(open(f"{r}.json"))
    reps = {}
    for b in d["benchmarks"]:
        if b.get("run_type") == "iteration":
            reps.setdefault(b["run_name"], []).append(b)
    return reps
data = {r: load(r) for r in runs}
names = list(data["baseline_1"].keys())
def metric(name):
    if "Dare_Search" in name: return ("real_time", "us/target", 1.0, False)
    if "Tokenizer_KMeans" in name: return ("real_time", "ms", 1.0, False)
    if "Tokenizer_RqEncode" in name: return ("items_per_second", "kvec/s", 1e-3, True)
    return ("items_per_second", "queries/s", 1.0, True)
rows = []
for n in names:
    key, unit, scale, higher = metric(n)
    med = {r: st.median(b[key] for b in data[r][n]) * scale for r in runs}
    # ratio as HEAD speed / baseline speed (>1 = HEAD faster)
    def speed_ratio(h, b): return h / b if higher else b / h
    r1 = speed_ratio(med["head_1"], med["baseline_1"])
    r2 = speed_ratio(med["head_2"], med["baseline_2"])
    flag = "SLOWER" if (r1 < 0.95 and r2 < 0.95) else ""
    extra = ""
    b0 = data["head_2"][n][0]
    if "bytes_per_second" in b0:
        gb = {r: st.median(b["bytes_per_second"] for b in data[r][n]) / 1e9 for r in runs}
        extra = "GB/s " + " / ".join(f"{gb[r]:.1f}" for r in runs)
    for c in ("recall@10", "mse"):
        if c in b0: extra += f" {c} " + " / ".join(f"{st.median(b[c] for b in data[r][n]):.4g}" for r in runs)
    rows.append((n.replace("/real_time", ""), unit, med, r1, r2, flag, extra.strip()))
fmt = lambda v: f"{v:,.1f}" if v < 1e4 else f"{v:,.0f}"
print("| benchmark | unit | base 1 | HEAD 1 | base 2 | HEAD 2 | HEAD/base speed, round 1 | round 2 | flag | other counters (b1 / h1 / b2 / h2) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
for n, unit, med, r1, r2, flag, extra in rows:
    print(f"| {n} | {unit} | " + " | ".join(fmt(med[r]) for r in runs) + f" | {r1:.3f} | {r2:.3f} | {flag} | {extra} |")
