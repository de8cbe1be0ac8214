#!/usr/bin/env python3
"""GPU peers of the LatentMoE layer, on identical weights and inputs (run by the bundle's `peers` step:
`python3 peers/peers_gpu.py --json OUT/peers.json`).

At the Nemotron-3-Super shape (d 4096, latent 1024, N 512, K 22, m 2688, shared 5376, relu2, sigmoid
router with e_score_correction_bias, norm_topk_prob, routed_scaling_factor 5.0), for each T:

  hf_grouped_mm  HF transformers `NemotronHMoE` (transformers 5.x, LatentMoE: moe_latent_size=1024,
                 fc1/fc2_latent_proj), bf16 weights (router fp32), eval + no_grad, experts
                 implementation "grouped_mm" (what transformers 5.x picks for a model loaded with
                 from_pretrained: torch grouped GEMMs over the sorted tokens)
  hf_eager       the same module with experts implementation "eager" (its Python loop over the
                 experts that got tokens; what a standalone NemotronHMoE runs by default)
  grouped_mm     a plain PyTorch LatentMoE written here, the same math as our layer: router fp32
                 logits, sigmoid, top-K of the biased scores, unbiased normalised weights x scale;
                 z = x W_down^T; tokens sorted by expert; torch._grouped_mm up -> relu^2 ->
                 torch._grouped_mm down; fp32 weighted combine; W_up; shared expert
  ours           our CUDA layer (liblatentmoe_cuda via the bundle's Java: `bench --backend cuda
                 --checkpoint DIR --input x.npy --compare y_ref.npy`) on a Nemotron-H checkpoint
                 written here from the same weights

Every output is compared with an fp32 reference computed here from the same bf16 weights (all
tokens; relative Frobenius error <= 1e-2 required; the Python implementations' rows whose routing
differs from the reference's are left out of their error and counted as routing flips), and
hf_grouped_mm with grouped_mm. Timings: CUDA events around each call, warm-up first, median of
>= 10 calls (more for fast calls). Weights are random (seeded; uniform +-1/sqrt(fan_in), bias
+-0.1), inputs uniform [-1, 1) rounded to bf16 (so that every implementation sees the same x).

--self-test runs the formulas on tiny shapes on the CPU (no GPU, no Java): the grouped_mm
implementation, HF (both experts implementations) and the fp32 torch reference against a numpy
float64 reference, and the checkpoint writer against safetensors' reader.

Exit status: 0 when every comparison passed, 1 when one failed (or ours could not run while
required by --require-ours), 2 for usage errors / no GPU.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

SUPER = dict(hidden_size=4096, moe_latent_size=1024, n_routed_experts=512, num_experts_per_tok=22,
             moe_intermediate_size=2688, moe_shared_expert_intermediate_size=5376,
             routed_scaling_factor=5.0, norm_topk_prob=True, mlp_hidden_act="relu2")
TINY = dict(hidden_size=64, moe_latent_size=32, n_routed_experts=16, num_experts_per_tok=4,
            moe_intermediate_size=48, moe_shared_expert_intermediate_size=40,
            routed_scaling_factor=2.5, norm_topk_prob=True, mlp_hidden_act="relu2")
PREFIX = "backbone.layers.0.mixer."
TOL = 1e-2
T0 = time.perf_counter()


def log(msg):
    print(f"[peers_gpu +{time.perf_counter() - T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ weights
def make_weights(cfg, device, seed):
    """Seeded random weights on `device`: bf16 matrices, fp32 router gate and bias."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    d, l, n = cfg["hidden_size"], cfg["moe_latent_size"], cfg["n_routed_experts"]
    m, ms = cfg["moe_intermediate_size"], cfg["moe_shared_expert_intermediate_size"]

    def u(shape, fan_in, dtype=torch.bfloat16):
        a = 1.0 / math.sqrt(fan_in)
        return torch.empty(shape, dtype=dtype, device=device).uniform_(-a, a, generator=g)

    w = dict(gate=u((n, d), d, torch.float32),
             bias=torch.empty(n, dtype=torch.float32, device=device).uniform_(-0.1, 0.1, generator=g),
             fc1=u((l, d), d), fc2=u((d, l), l),
             up=u((n, m, l), l), down=u((n, l, m), m),
             su=u((ms, d), d), sd=u((d, ms), ms))
    return w


def make_x(cfg, T, device, seed):
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1000003 + T)
    x = torch.empty((T, cfg["hidden_size"]), dtype=torch.float32, device=device).uniform_(-1.0, 1.0, generator=g)
    return x.to(torch.bfloat16)  # every implementation gets exactly these values


# ------------------------------------------------------------------------------------------ checkpoint
def write_checkpoint(cfg, w, out_dir):
    """A one-layer Nemotron-H checkpoint: config.json + model.safetensors (bf16; gate and bias fp32),
    tensors named backbone.layers.0.mixer.* (README.md). Written with a plain safetensors writer
    (header + raw little-endian bytes, no copies of the expert views)."""
    os.makedirs(out_dir, exist_ok=True)
    n = cfg["n_routed_experts"]
    up, down = w["up"].cpu(), w["down"].cpu()
    entries = [("gate.weight", w["gate"].cpu()), ("gate.e_score_correction_bias", w["bias"].cpu()),
               ("fc1_latent_proj.weight", w["fc1"].cpu()), ("fc2_latent_proj.weight", w["fc2"].cpu()),
               ("shared_experts.up_proj.weight", w["su"].cpu()), ("shared_experts.down_proj.weight", w["sd"].cpu())]
    entries += [(f"experts.{e}.up_proj.weight", up[e]) for e in range(n)]
    entries += [(f"experts.{e}.down_proj.weight", down[e]) for e in range(n)]
    header, off = {}, 0
    names = {torch.float32: "F32", torch.bfloat16: "BF16"}
    for name, t in entries:
        nb = t.numel() * t.element_size()
        header[PREFIX + name] = dict(dtype=names[t.dtype], shape=list(t.shape), data_offsets=[off, off + nb])
        off += nb
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((-len(hb)) % 64)  # 64-byte aligned data section
    with open(os.path.join(out_dir, "model.safetensors"), "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for _, t in entries:
            t = t.contiguous()
            f.write(memoryview((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()).cast("B"))
    cj = dict(architectures=["NemotronHForCausalLM"], model_type="nemotron_h", n_group=1, topk_group=1,
              scoring_func="sigmoid", hybrid_override_pattern="E", num_hidden_layers=1, **cfg)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cj, f, indent=1)
    return off


def save_npy_f32(path, t):
    np.save(path, t.detach().float().cpu().numpy())


# ------------------------------------------------------------------------------------------ implementations
def route(cfg, w, x):
    """fp32 logits, sigmoid, top-K of the biased scores; unbiased weights, normalised, x scale."""
    s = torch.sigmoid(x.float() @ w["gate"].t())
    ids = torch.topk(s + w["bias"], cfg["num_experts_per_tok"], dim=-1).indices
    wt = s.gather(1, ids)
    if cfg["norm_topk_prob"]:
        wt = wt / (wt.sum(-1, keepdim=True) + 1e-20)
    return ids, wt * cfg["routed_scaling_factor"]


def grouped_mm(a, b, offs):
    """torch._grouped_mm(mat_a [M, K], mat_b [G, K, N], offs int32 cumulative row ends)."""
    f = getattr(torch, "_grouped_mm", None) or torch.nn.functional.grouped_mm
    return f(a, b, offs=offs)


class GroupedMMLatentMoE:
    """The plain PyTorch LatentMoE with torch._grouped_mm experts (same math as our layer)."""

    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.upT = w["up"].transpose(1, 2)      # [N, l, m] view: mat_b of the up GEMM
        self.downT = w["down"].transpose(1, 2)  # [N, m, l]

    @torch.no_grad()
    def __call__(self, x, return_ids=False):
        cfg, w = self.cfg, self.w
        K, N = cfg["num_experts_per_tok"], cfg["n_routed_experts"]
        T = x.shape[0]
        ids, wt = route(cfg, w, x)
        z = x @ w["fc1"].t()                                    # [T, l] bf16
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        offs = torch.cumsum(torch.bincount(flat, minlength=N), 0).to(torch.int32)
        zs = z.index_select(0, order // K)                      # [T*K, l], expert order
        h = torch.relu(grouped_mm(zs, self.upT, offs)).square()
        y = grouped_mm(h, self.downT, offs)                     # [T*K, l] bf16
        yt = torch.empty_like(y)
        yt[order] = y                                           # back to slot order t*K + k
        acc = (yt.view(T, K, -1).float() * wt.unsqueeze(-1)).sum(1)
        out = acc.to(torch.bfloat16) @ w["fc2"].t()
        out = out + torch.relu(x @ w["su"].t()).square() @ w["sd"].t()
        return (out, ids) if return_ids else out


@torch.no_grad()
def reference_fp32(cfg, w, x, ids=None, wt=None):
    """fp32 everywhere from the same bf16 weights, per-expert loop (the check's reference)."""
    K, N = cfg["num_experts_per_tok"], cfg["n_routed_experts"]
    xf = x.float()
    if ids is None:
        ids, wt = route(cfg, w, x)
    z = xf @ w["fc1"].float().t()
    acc = torch.zeros_like(z)
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=N).tolist()
    tok, wf = order // K, wt.reshape(-1)[order]
    start = 0
    for e, c in enumerate(counts):
        if c == 0:
            continue
        t = tok[start:start + c]
        h = torch.relu(z[t] @ w["up"][e].float().t()).square()
        acc.index_add_(0, t, (h @ w["down"][e].float().t()) * wf[start:start + c, None])
        start += c
    out = acc @ w["fc2"].float().t()
    return out + torch.relu(xf @ w["su"].float().t()).square() @ w["sd"].float().t(), ids


def reference_f64_numpy(cfg, w, x):
    """numpy float64 reference (self-test only)."""
    K = cfg["num_experts_per_tok"]
    f = lambda t: t.detach().double().cpu().numpy()
    xf, G, b = f(x), f(w["gate"]), f(w["bias"])
    s = 1.0 / (1.0 + np.exp(-(xf @ G.T)))
    biased = s + b
    ids = np.argsort(-biased, axis=1, kind="stable")[:, :K]
    wt = np.take_along_axis(s, ids, 1)
    if cfg["norm_topk_prob"]:
        wt = wt / (wt.sum(1, keepdims=True) + 1e-20)
    wt = wt * cfg["routed_scaling_factor"]
    z = xf @ f(w["fc1"]).T
    up, down = f(w["up"]), f(w["down"])
    acc = np.zeros_like(z)
    for t in range(xf.shape[0]):
        for k in range(K):
            e = ids[t, k]
            h = np.maximum(z[t] @ up[e].T, 0.0) ** 2
            acc[t] += wt[t, k] * (h @ down[e].T)
    out = acc @ f(w["fc2"]).T + (np.maximum(xf @ f(w["su"]).T, 0.0) ** 2) @ f(w["sd"]).T
    return out, ids


def build_hf(cfg, w, impl):
    """transformers' NemotronHMoE (LatentMoE via moe_latent_size) sharing our weight tensors."""
    from transformers.models.nemotron_h.configuration_nemotron_h import NemotronHConfig
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMoE
    hc = NemotronHConfig(n_group=1, topk_group=1, mlp_bias=False, layers_block_type=["moe"], **cfg)
    hc._experts_implementation = impl
    with torch.device("meta"):
        moe = NemotronHMoE(hc, layer_idx=0)
    P = lambda t: torch.nn.Parameter(t, requires_grad=False)
    moe.gate.weight = P(w["gate"])
    moe.gate.e_score_correction_bias = w["bias"]
    moe.fc1_latent_proj.weight = P(w["fc1"])
    moe.fc2_latent_proj.weight = P(w["fc2"])
    moe.experts.up_proj = P(w["up"])
    moe.experts.down_proj = P(w["down"])
    moe.shared_experts.up_proj.weight = P(w["su"])
    moe.shared_experts.down_proj.weight = P(w["sd"])
    leftover = [n for n, t in list(moe.named_parameters()) + list(moe.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"HF NemotronHMoE has tensors this script does not set: {leftover}")
    return moe.eval()


def hf_ids(moe, x):
    with torch.no_grad():
        return moe.gate(x)[2]


def rel_err(a, b, rows=None):
    a, b = a.double(), b.double()
    if rows is not None:
        a, b = a[rows], b[rows]
    return float(torch.linalg.norm(a - b) / max(float(torch.linalg.norm(b)), 1e-30))


def same_routing(ids_a, ids_b):
    return (ids_a.sort(-1).values == ids_b.sort(-1).values).all(-1)


def time_calls(fn, device, min_reps=10, max_reps=100, target_s=0.25, warmup=2):
    """Median / min ms per call: CUDA events around each call (host time on the CPU)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per = (time.perf_counter() - t0) / warmup
    reps = int(min(max_reps, max(min_reps, target_s / max(per, 1e-6))))
    ts = []
    if device.type == "cuda":
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize()
        ts = [a.elapsed_time(b) for a, b in ev]
    else:
        for _ in range(reps):
            s = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - s) * 1e3)
    return float(np.median(ts)), float(np.min(ts)), reps


# ------------------------------------------------------------------------------------------ ours (Java)
def find_java(args):
    here = os.path.dirname(os.path.abspath(__file__))
    bundle = args.bundle or os.path.dirname(here)
    java = args.java or os.path.join(bundle, "jre", "bin", "java")
    jars = args.classpath
    if not jars:
        jd = os.path.join(bundle, "jars")
        if os.path.isdir(jd):
            jars = ":".join(os.path.join(jd, f) for f in sorted(os.listdir(jd))
                            if f.startswith("latentmoe-") and f.endswith(".jar"))
    lib = args.native_dir or os.path.join(bundle, "lib")
    why = None
    if not (os.path.isfile(java) and os.access(java, os.X_OK)):
        why = f"no java at {java} (run from the bundle, or pass --java/--classpath/--native-dir)"
    elif not jars:
        why = f"no latentmoe-*.jar under {os.path.join(bundle, 'jars')}"
    elif not os.path.isfile(os.path.join(lib, "liblatentmoe_cuda.so")):
        why = f"no liblatentmoe_cuda.so in {lib}"
    return java, jars, lib, why


def run_ours(args, ckpt, inputs, refs, work):
    """Our layer via `bench --backend cuda --checkpoint`; returns ({T: row}, note)."""
    java, cp, lib, why = find_java(args)
    if why:
        return {}, "ours not run: " + why
    out_json = os.path.join(work, "ours.json")
    cmd = [java, "--enable-native-access=ALL-UNNAMED", f"-Dlatentmoe.native.dir={lib}", "-cp", cp,
           "dev.latentmoe.bench.Main", "bench", "--backend", "cuda", "--checkpoint", ckpt, "--layer", "0",
           "--input", ",".join(inputs), "--compare", ",".join(refs), "--no-ceilings", "--reps", "20",
           "--json", out_json]
    log(f"ours: {java} ... bench --backend cuda --checkpoint {ckpt} --input <{len(inputs)} files> --compare ...")
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=args.java_timeout)
        text, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    for line in text.splitlines():
        print("  [ours] " + line, file=sys.stderr)
    rows = {}
    if os.path.isfile(out_json):
        with open(out_json) as f:
            for r in json.load(f):
                rows[int(r["tokens"])] = r
    note = None if rc == 0 else f"ours: java exited with {rc}"
    return rows, note


# ------------------------------------------------------------------------------------------ main
def self_test():
    """Tiny shapes on the CPU: formulas vs numpy float64, HF both ways, the checkpoint writer."""
    torch.manual_seed(0)
    dev = torch.device("cpu")
    cfg = TINY
    w = make_weights(cfg, dev, 7)
    plain = GroupedMMLatentMoE(cfg, w)
    ok = True
    hf = {impl: build_hf(cfg, w, impl) for impl in ("grouped_mm", "eager")}
    for T in (1, 3, 17, 64):
        x = make_x(cfg, T, dev, 7)
        y64, ids64 = reference_f64_numpy(cfg, w, x)
        y64 = torch.from_numpy(y64)
        yref, ids_ref = reference_fp32(cfg, w, x)
        yp, ids_p = plain(x, return_ids=True)
        agree = same_routing(ids_ref, torch.from_numpy(ids64))
        res = {"fp32_ref": rel_err(yref, y64, agree), "grouped_mm": rel_err(yp.float(), y64, agree)}
        for impl, moe in hf.items():
            with torch.no_grad():
                yh = moe(x)
            a2 = agree & same_routing(hf_ids(moe, x), torch.from_numpy(ids64))
            res["hf_" + impl] = rel_err(yh.float(), y64, a2)
        lim = {"fp32_ref": 1e-5}
        bad = {k: v for k, v in res.items() if not v <= lim.get(k, TOL)}
        ok &= not bad and bool(agree.all())
        print(f"self-test T={T}: rel err vs numpy float64: " + ", ".join(f"{k} {v:.2e}" for k, v in res.items())
              + f"; routing agrees on {int(agree.sum())}/{T} tokens" + (f"  FAIL {bad}" if bad else ""))
    d = tempfile.mkdtemp(prefix="peers-selftest-")
    try:
        write_checkpoint(cfg, w, d)
        from safetensors import safe_open
        with safe_open(os.path.join(d, "model.safetensors"), framework="pt") as f:
            for key, t in [("gate.weight", w["gate"]), ("experts.5.down_proj.weight", w["down"][5]),
                           ("experts.0.up_proj.weight", w["up"][0]), ("shared_experts.down_proj.weight", w["sd"])]:
                same = torch.equal(f.get_tensor(PREFIX + key), t)
                ok &= same
                print(f"self-test checkpoint {key}: {'ok' if same else 'DIFFERS'}")
        with open(os.path.join(d, "config.json")) as f:
            cj = json.load(f)
        ok &= cj["moe_latent_size"] == cfg["moe_latent_size"] and cj["n_routed_experts"] == cfg["n_routed_experts"]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("self-test:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--tokens", default="1,4,16,64,256,4096,8192")
    ap.add_argument("--hf-eager-max-tokens", type=int, default=8192,
                    help="skip HF's eager experts loop above this T (default: no cap)")
    ap.add_argument("--budget-s", type=float, default=90.0,
                    help="skip the remaining Python timings once this many seconds have passed")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", help="folder for the checkpoint and .npy files (default: a temp folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--bundle", help="bundle root (default: the folder above this script's)")
    ap.add_argument("--java"), ap.add_argument("--classpath"), ap.add_argument("--native-dir")
    ap.add_argument("--java-timeout", type=float, default=60.0)
    ap.add_argument("--no-ours", action="store_true")
    ap.add_argument("--require-ours", action="store_true", help="fail when our layer could not run")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only for a dry run of this script")
    ap.add_argument("--shape", default="super", choices=["super", "tiny"], help="tiny: for a dry run")
    args = ap.parse_args()
    if args.self_test:
        sys.exit(self_test())
    try:
        tokens = [int(t) for t in args.tokens.split(",")]
        assert all(t >= 1 for t in tokens)
    except (ValueError, AssertionError):
        print(f"peers_gpu: --tokens must be positive integers, got '{args.tokens}'", file=sys.stderr)
        sys.exit(2)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("peers_gpu: no CUDA device visible to torch " + torch.__version__, file=sys.stderr)
        sys.exit(2)
    try:
        import transformers
        tf_version = transformers.__version__
    except Exception as e:  # HF peers are skipped, the others still run
        transformers, tf_version = None, f"unavailable ({type(e).__name__}: {e})"
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    cfg = SUPER if args.shape == "super" else TINY
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    log(f"{name}, torch {torch.__version__}, transformers {tf_version}")

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    w = make_weights(cfg, dev, args.seed)
    sync()
    log("weights generated on the GPU")
    work = args.work or tempfile.mkdtemp(prefix="lmoe-peers-")
    notes = [f"HF module: transformers {tf_version} NemotronHMoE with moe_latent_size="
             f"{cfg['moe_latent_size']} (its LatentMoE: fc1_latent_proj -> experts in the latent width -> "
             f"fc2_latent_proj; shared expert on x), router weight and bias fp32, everything else bf16"]
    rows = []
    failed = False
    try:
        ckpt = os.path.join(work, "ckpt")
        xs, inputs, refs = {}, [], []
        if not args.no_ours:
            nbytes = write_checkpoint(cfg, w, ckpt)
            log(f"checkpoint written: {ckpt} ({nbytes / 1e9:.2f} GB)")
        yrefs, idrefs = {}, {}
        for T in tokens:
            x = make_x(cfg, T, dev, args.seed)
            xs[T] = x
            yrefs[T], idrefs[T] = reference_fp32(cfg, w, x)
            if not args.no_ours:
                inputs.append(os.path.join(work, f"x_{T}.npy"))
                refs.append(os.path.join(work, f"yref_{T}.npy"))
                save_npy_f32(inputs[-1], x)
                save_npy_f32(refs[-1], yrefs[T])
        sync()
        log("inputs and fp32 references ready")

        ours, ours_note = ({}, "ours not run (--no-ours)") if args.no_ours else run_ours(args, ckpt, inputs, refs, work)
        if ours_note:
            notes.append(ours_note)
            log(ours_note)
        if not args.no_ours and ckpt and os.path.isdir(ckpt) and not args.keep:
            shutil.rmtree(ckpt, ignore_errors=True)  # free the disk early

        plain = GroupedMMLatentMoE(cfg, w)
        hf = {}
        try:
            hf = {impl: build_hf(cfg, w, impl) for impl in ("grouped_mm", "eager")}
        except Exception as e:
            notes.append(f"HF NemotronHMoE not run: {type(e).__name__}: {e}")
            log(notes[-1])
        for T in tokens:
            x, yref, idref = xs[T], yrefs[T], idrefs[T]
            row = dict(tokens=T)
            r = ours.get(T)
            row["ours_ms"] = r["median_ms"] if r else None
            row["ours_min_ms"] = r["min_ms"] if r else None
            row["rel_err_ours"] = r.get("rel_err") if r else None
            impls = [("grouped_mm", lambda x=x: plain(x))]
            if hf:
                impls.append(("hf_grouped_mm", lambda x=x: hf["grouped_mm"](x)))
            if hf and T <= args.hf_eager_max_tokens:
                impls.append(("hf_eager", lambda x=x: hf["eager"](x)))
            elif hf:
                row["hf_eager_ms"] = None
                row["hf_eager_note"] = f"skipped: T > --hf-eager-max-tokens {args.hf_eager_max_tokens}"
            outs = {}
            for key, fn in impls:
                if time.perf_counter() - T0 > args.budget_s:
                    row[key + "_ms"] = None
                    row[key + "_note"] = f"skipped: past the {args.budget_s:.0f} s budget"
                    continue
                with torch.no_grad():
                    y = fn()
                    mod = plain if key == "grouped_mm" else hf[key[3:]]
                    ids = plain(x, return_ids=True)[1] if key == "grouped_mm" else hf_ids(mod, x)
                    agree = same_routing(ids, idref)
                    flips = int((~agree).sum())
                    e = rel_err(y.float(), yref, agree if flips else None)
                    outs[key] = y
                    med, mn, reps = time_calls(fn, dev)
                row[key + "_ms"], row[key + "_min_ms"], row[key + "_reps"] = med, mn, reps
                row["rel_err_" + key] = e
                row["routing_flips_" + key] = flips
            if "grouped_mm" in outs and "hf_grouped_mm" in outs:
                row["rel_err_hf_vs_grouped_mm"] = rel_err(outs["hf_grouped_mm"].float(), outs["grouped_mm"].float())
            for key in ("hf_grouped_mm", "hf_eager", "grouped_mm"):
                a, b = row.get("ours_ms"), row.get(key + "_ms")
                row[f"ours_over_{key}"] = a / b if a and b else None
            errs = {k: v for k, v in row.items() if k.startswith("rel_err_") and v is not None}
            row["agree"] = all(v <= TOL for v in errs.values())
            failed |= not row["agree"]
            rows.append(row)
            del outs
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            log(f"T={T}: " + ", ".join(f"{k} {row.get(k + '_ms') or float('nan'):.3f} ms" for k in
                                      ("ours", "hf_grouped_mm", "hf_eager", "grouped_mm"))
                + "; rel err " + ", ".join(f"{k[8:]} {v:.2e}" for k, v in errs.items()))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            log(f"kept {work}")

    # ---------------------------------------------------------------- report
    def f(v, w_=9, p=3):
        return f"{v:>{w_}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w_}}"

    print()
    print(f"GPU peers on {name} ({args.shape} shape, bf16; ms = median of CUDA-event-timed calls; "
          f"ratio = ours / peer, < 1 means ours is faster)")
    print(f"{'T':>6} {'ours':>9} {'hf_gmm':>9} {'hf_eager':>9} {'torch_gmm':>9} {'o/hf_gmm':>9} {'o/hf_eag':>9} "
          f"{'o/torch':>9} {'err_ours':>9} {'err_hf':>9} {'err_torch':>9}")
    for r in rows:
        e = lambda k: f"{r[k]:>9.1e}" if r.get(k) is not None else f"{'-':>9}"
        print(f"{r['tokens']:>6} {f(r.get('ours_ms'))} {f(r.get('hf_grouped_mm_ms'))} {f(r.get('hf_eager_ms'))} "
              f"{f(r.get('grouped_mm_ms'))} {f(r.get('ours_over_hf_grouped_mm'), 9, 2)} {f(r.get('ours_over_hf_eager'), 9, 2)} "
              f"{f(r.get('ours_over_grouped_mm'), 9, 2)} {e('rel_err_ours')} {e('rel_err_hf_grouped_mm')} {e('rel_err_grouped_mm')}")
    for n in notes:
        print("note: " + n)
    if args.json:
        doc = dict(kind="peers_gpu", device=name, torch=torch.__version__, transformers=tf_version,
                   shape=cfg, seed=args.seed, tolerance=TOL, notes=notes,
                   implementations=dict(
                       ours="liblatentmoe_cuda forward (bundle java: bench --backend cuda --checkpoint), bf16, "
                            "CUDA events back to back, median",
                       hf_grouped_mm="transformers NemotronHMoE, experts_implementation=grouped_mm (transformers 5.x "
                                     "default for from_pretrained models)",
                       hf_eager="transformers NemotronHMoE, experts_implementation=eager (Python loop over hit experts)",
                       grouped_mm="plain PyTorch, torch._grouped_mm experts, same math as ours",
                       reference="fp32 PyTorch from the same bf16 weights, per-expert loop"),
                   rows=rows)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print("wrote " + args.json)
    if not args.no_ours and args.require_ours and any(r.get("ours_ms") is None for r in rows):
        failed = True
    if any(n.startswith("ours: java exited") for n in notes):
        failed = True
    if failed:
        print("PEERS FAILED: an output differs from the fp32 reference by more than 1e-2, or our layer failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
