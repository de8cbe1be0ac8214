#!/usr/bin/env python3
"""CPU peers for ./latentmoe peers: the HF transformers NemotronHMoE module (its `eager` and its
`grouped_mm` experts implementation, the better one counting) and a plain PyTorch LatentMoE whose
experts run as two torch._grouped_mm calls, all on the checkpoint and inputs our side wrote
(PeersCommand), each timed and checked against our output (rel. Frobenius error <= 1e-2). Also
measures torch's own dense bf16 GEMM rate on the same threads (the library torch itself uses).
Prints the table and writes peers.json."""
import argparse, json, os, sys, time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open


def load_config(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        return json.load(f)


def build_hf(cj, ckpt):
    from transformers.models.nemotron_h.configuration_nemotron_h import NemotronHConfig
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMoE
    cfg = NemotronHConfig(hidden_size=cj["hidden_size"], moe_latent_size=cj.get("moe_latent_size"),
                          n_routed_experts=cj["n_routed_experts"], num_experts_per_tok=cj["num_experts_per_tok"],
                          moe_intermediate_size=cj["moe_intermediate_size"],
                          moe_shared_expert_intermediate_size=cj["moe_shared_expert_intermediate_size"],
                          routed_scaling_factor=cj["routed_scaling_factor"], norm_topk_prob=cj["norm_topk_prob"],
                          mlp_hidden_act=cj["mlp_hidden_act"], n_group=1, topk_group=1, mlp_bias=False,
                          layers_block_type=["moe"])
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            moe = NemotronHMoE(cfg, layer_idx=0)
        moe = moe.to_empty(device="cpu")
    finally:
        torch.set_default_dtype(old)
    p = "backbone.layers.0.mixer."
    n = cj["n_routed_experts"]
    with torch.no_grad(), safe_open(os.path.join(ckpt, "model.safetensors"), framework="pt") as f:
        for e in range(n):
            moe.experts.up_proj.data[e].copy_(f.get_tensor(f"{p}experts.{e}.up_proj.weight"))
            moe.experts.down_proj.data[e].copy_(f.get_tensor(f"{p}experts.{e}.down_proj.weight"))
            if (e + 1) % 64 == 0 or e + 1 == n:
                print(f"\r  loading experts {e + 1}/{n}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        moe.gate.weight.data.copy_(f.get_tensor(p + "gate.weight"))
        moe.gate.register_buffer("e_score_correction_bias", f.get_tensor(p + "gate.e_score_correction_bias").float())
        if cj.get("moe_latent_size"):
            moe.fc1_latent_proj.weight.data.copy_(f.get_tensor(p + "fc1_latent_proj.weight"))
            moe.fc2_latent_proj.weight.data.copy_(f.get_tensor(p + "fc2_latent_proj.weight"))
        moe.shared_experts.up_proj.weight.data.copy_(f.get_tensor(p + "shared_experts.up_proj.weight"))
        moe.shared_experts.down_proj.weight.data.copy_(f.get_tensor(p + "shared_experts.down_proj.weight"))
    return moe.eval()


class PlainLatentMoE:
    """A straightforward PyTorch LatentMoE: fp32 router + top-K, bf16 weights and GEMMs, the routed
    experts as two torch._grouped_mm calls over the tokens sorted by expert, fp32 weighted
    accumulation. Shares the HF module's weight tensors (the transposed views are not copies)."""

    def __init__(self, moe, cj):
        self.gate = moe.gate.weight.detach().float()              # fp32 routing, converted once
        self.bias = moe.gate.e_score_correction_bias.detach().float()
        self.latent = bool(cj.get("moe_latent_size"))
        if self.latent:
            self.fc1 = moe.fc1_latent_proj.weight.detach()
            self.fc2 = moe.fc2_latent_proj.weight.detach()
        self.up = moe.experts.up_proj.detach()
        self.down = moe.experts.down_proj.detach()
        self.up_t = self.up.transpose(1, 2)                       # [N, w, m] views for grouped_mm
        self.down_t = self.down.transpose(1, 2)
        self.su = moe.shared_experts.up_proj.weight.detach()
        self.sd = moe.shared_experts.down_proj.weight.detach()
        self.k = cj["num_experts_per_tok"]
        self.norm = cj["norm_topk_prob"]
        self.scale = cj["routed_scaling_factor"]

    @torch.no_grad()
    def __call__(self, x):                                         # x [T, d] fp32
        s = torch.sigmoid(x @ self.gate.t())
        ids = torch.topk(s + self.bias, self.k, dim=-1).indices
        w = s.gather(1, ids)
        if self.norm:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * self.scale
        xb = x.to(torch.bfloat16)
        z = xb @ self.fc1.t() if self.latent else xb
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.up.shape[0])
        offs = torch.cumsum(counts, 0).to(torch.int32)
        tok = order // self.k
        zs = z[tok].contiguous()                                   # rows in expert order
        h = torch.relu(torch._grouped_mm(zs, self.up_t, offs=offs)).square()
        y = torch._grouped_mm(h, self.down_t, offs=offs)
        acc = torch.zeros(z.shape, dtype=torch.float32)
        acc.index_add_(0, tok, y.float() * w.reshape(-1)[order][:, None])
        out = acc.to(torch.bfloat16) @ self.fc2.t() if self.latent else acc
        out = out.float() + (torch.relu(xb @ self.su.t()).square() @ self.sd.t()).float()
        return out


def time_calls(fn, x, min_calls=5, min_s=2.0, max_calls=200):
    fn(x); fn(x)                                                   # warm-up
    ts = []
    start = time.perf_counter()
    while len(ts) < min_calls or (len(ts) < max_calls and time.perf_counter() - start < min_s):
        t0 = time.perf_counter()
        fn(x)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), len(ts)


def dense_gemm_gflops(threads, shapes=((4096, 5376, 4096), (1024, 2688, 1024)), min_s=1.0):
    """torch's own bf16 GEMM (x @ w.t(), w [N, K] as nn.Linear stores it) on the same threads:
    best of 3 rounds of min_s seconds per shape; GFLOP/s per shape (M, N, K)."""
    out = []
    g = torch.Generator().manual_seed(1)
    for m, n, k in shapes:
        a = torch.rand(m, k, generator=g).to(torch.bfloat16)
        b = torch.rand(n, k, generator=g).to(torch.bfloat16)
        a @ b.t()
        best = 0.0
        for _ in range(3):
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < min_s / 3 or calls < 2:
                a @ b.t()
                calls += 1
            best = max(best, 2.0 * m * n * k * calls / (time.perf_counter() - t0) / 1e9)
        out.append(dict(m=m, n=n, k=k, gflops=best))
    return out


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=None, help="default: the thread count our side used")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ours = json.load(open(os.path.join(args.work, "ours.json")))
    args.threads = args.threads or ours["threads"]
    torch.set_num_threads(args.threads)
    ckpt = ours["checkpoint"]
    cj = load_config(ckpt)
    t0 = time.perf_counter()
    hf = build_hf(cj, ckpt)
    plain = PlainLatentMoE(hf, cj)
    print(f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, "
          f"{torch.get_num_threads()} threads, weights loaded in {time.perf_counter() - t0:.1f} s; "
          f"ours: precision {ours.get('precision', 'exact')}, kernel {ours.get('kernel', '?')}")

    def hf_call(x):
        with torch.no_grad():
            return hf(x.to(torch.bfloat16).unsqueeze(0)).squeeze(0).float()

    def hf_impl(name):
        hf.experts.config._experts_implementation = name    # read by the experts' dispatch at each call

    gemm = dense_gemm_gflops(args.threads)
    for g in gemm:
        print(f"torch dense bf16 GEMM {g['m']}x{g['n']}x{g['k']}: {g['gflops']:.1f} GFLOP/s on {args.threads} threads",
              flush=True)

    rows = []
    for r in ours["rows"]:
        t = r["tokens"]
        x = torch.from_numpy(np.load(os.path.join(args.work, f"x_{t}.npy")))
        y_ours = np.load(os.path.join(args.work, f"y_ours_{t}.npy"))
        hf_ms, hf_n, e_hf = {}, {}, {}
        for impl in ("eager", "grouped_mm"):
            hf_impl(impl)
            e_hf[impl] = rel_err(hf_call(x).numpy(), y_ours)
            hf_ms[impl], hf_n[impl] = time_calls(hf_call, x)
        best = min(hf_ms, key=hf_ms.get)
        y_plain = plain(x).numpy()
        e_plain = rel_err(y_plain, y_ours)
        pl_ms, pl_n = time_calls(plain, x)
        row = dict(tokens=t, ours_ms=r["median_ms"], hf_ms=hf_ms[best], hf_impl=best,
                   hf_eager_ms=hf_ms["eager"], hf_grouped_mm_ms=hf_ms["grouped_mm"], plain_ms=pl_ms,
                   hf_over_ours=hf_ms[best] / r["median_ms"], plain_over_ours=pl_ms / r["median_ms"],
                   rel_err_hf=max(e_hf.values()), rel_err_plain=e_plain,
                   agree=bool(max(e_hf.values()) <= 1e-2 and e_plain <= 1e-2))
        rows.append(row)
        print(f"  T={t}: ours {r['median_ms']:.2f} ms, HF eager {hf_ms['eager']:.2f} ms ({hf_n['eager']} calls), "
              f"HF grouped_mm {hf_ms['grouped_mm']:.2f} ms ({hf_n['grouped_mm']} calls), plain {pl_ms:.2f} ms ({pl_n} calls), "
              f"rel err HF {max(e_hf.values()):.2e}, plain {e_plain:.2e}", file=sys.stderr, flush=True)

    print()
    print(f"{'tokens':>6} {'ours_ms':>10} {'hf_eager':>10} {'hf_grp_mm':>10} {'plain_ms':>10} {'hf/ours':>8} "
          f"{'plain/ours':>10} {'relerr_hf':>10} {'relerr_plain':>12} {'agree':>6}")
    for r in rows:
        print(f"{r['tokens']:>6} {r['ours_ms']:>10.2f} {r['hf_eager_ms']:>10.2f} {r['hf_grouped_mm_ms']:>10.2f} "
              f"{r['plain_ms']:>10.2f} {r['hf_over_ours']:>7.2f}x {r['plain_over_ours']:>9.2f}x "
              f"{r['rel_err_hf']:>10.2e} {r['rel_err_plain']:>12.2e} {str(r['agree']):>6}")
    print("(hf/ours: the better of HF's eager and grouped_mm experts)")
    slower = [r for r in rows if r["hf_over_ours"] < 1 or r["plain_over_ours"] < 1]
    if slower:
        for r in slower:
            print(f"ours is NOT faster at T={r['tokens']}: HF/ours {r['hf_over_ours']:.2f}x, plain/ours {r['plain_over_ours']:.2f}x")
    else:
        print("ours is faster than both peers at every T")
    bad = [r for r in rows if not r["agree"]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(torch=torch.__version__, transformers=__import__("transformers").__version__,
                           threads=args.threads, shape=ours["shape"], torch_dense_bf16_gemm=gemm,
                           precision=ours.get("precision"), rows=rows), f, indent=2)
        print("wrote", args.json)
    if bad:
        print("OUTPUTS DISAGREE (rel. Frobenius > 1e-2) at T =", [r["tokens"] for r in bad])
        sys.exit(1)


if __name__ == "__main__":
    main()
