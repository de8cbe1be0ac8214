#!/usr/bin/env python3
"""On demand (native/python/run-transformers-check.sh; torch 2.11.0 + transformers 5.17.0 from the
peers venv): HF transformers' NemotronH on the library, checked and timed.

Checks (exit 1 when one fails):
  * a tiny NemotronH (odd sizes, 3 MoE layers + mamba + attention, non-zero correction bias),
    saved with save_pretrained and loaded back, in float32 and bfloat16: logits with
    experts_implementation="latentmoe" and with patch() against transformers' "eager" forward
    (f32: <= 1e-5 relative; bf16: against an f32 forward of the same bf16 weights, no worse than
    a small multiple of transformers' own bf16 error), 16 greedy tokens identical in f32;
  * unpatch() restores transformers' forward; bad inputs raise clear errors (no crash).
Benchmark: prefill and per-token decode of the tiny model (eager, grouped_mm = transformers'
default, latentmoe experts, patch) and of one Super-shaped MoE layer (transformers NemotronHMoE
grouped_mm / eager vs patch), medians over repeated calls.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

import latentmoe.transformers as lt
from latentmoe import kernels as K
from transformers import AutoModelForCausalLM, NemotronHConfig

FAIL = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAIL.append(what)


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def tiny_config():
    cfg = NemotronHConfig(
        vocab_size=101, hidden_size=88, layers_block_type=["moe", "linear_attention", "moe", "full_attention", "moe"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=40,
        mamba_num_heads=4, mamba_head_dim=16, n_groups=2, ssm_state_size=8, chunk_size=16,
        n_routed_experts=9, num_experts_per_tok=3, moe_intermediate_size=52,
        moe_shared_expert_intermediate_size=36, moe_latent_size=40, routed_scaling_factor=2.5,
        use_mamba_kernels=False, eos_token_id=None, pad_token_id=0)
    cfg.architectures = ["NemotronHForCausalLM"]
    return cfg


def save_tiny(path):
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(tiny_config(), dtype=torch.float32)
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "e_score_correction_bias"):
                mod.e_score_correction_bias.copy_(torch.randn(mod.e_score_correction_bias.shape) * 0.05)
            if hasattr(mod, "up_proj") and isinstance(mod.up_proj, torch.nn.Parameter):
                mod.up_proj.normal_(0, 0.15)   # larger expert weights than the 0.02 init: the
                mod.down_proj.normal_(0, 0.15)  # MoE output then matters in the logits
    model.save_pretrained(path)


def load(path, dtype, impl):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, experts_implementation=impl)
    return m.eval()


@torch.no_grad()
def logits_of(model, ids):
    return model(input_ids=ids).logits.float()


@torch.no_grad()
def greedy(model, ids, n=16):
    return model.generate(input_ids=ids, max_new_tokens=n, do_sample=False, min_new_tokens=n)[:, ids.shape[1]:]


def correctness(path):
    ids = torch.randint(0, 101, (2, 19), generator=torch.Generator().manual_seed(7))
    eager = load(path, torch.float32, "eager")
    bias = eager.model.layers[0].mixer.gate.e_score_correction_bias
    check(bias.dtype == torch.float32 and float(bias.abs().max()) > 0,
          "loaded correction bias is f32 and non-zero (max |b| = %.3g)" % float(bias.abs().max()))
    ref = logits_of(eager, ids)
    ours = load(path, torch.float32, "latentmoe")
    check(ours.config._experts_implementation == "latentmoe", "from_pretrained(experts_implementation='latentmoe')")
    e1 = rel(logits_of(ours, ids), ref)
    check(e1 <= 1e-5, "f32 logits, latentmoe experts vs eager: rel err %.3g (<= 1e-5)" % e1)
    n = lt.patch(eager)
    e2 = rel(logits_of(eager, ids), ref)
    check(n == 3 and e2 <= 1e-5, "f32 logits, patch() (%d MoE layers) vs eager: rel err %.3g (<= 1e-5)" % (n, e2))
    g_patch = greedy(eager, ids)
    lt.unpatch(eager)
    e3 = rel(logits_of(eager, ids), ref)
    check(e3 == 0.0, "unpatch() restores transformers' forward (rel err %.3g)" % e3)
    g_ref, g_exp = greedy(eager, ids), greedy(ours, ids)
    check(torch.equal(g_ref, g_exp) and torch.equal(g_ref, g_patch),
          "16 greedy tokens identical in f32 (eager %s, latentmoe %s, patch %s)"
          % (g_ref[0].tolist(), g_exp[0].tolist(), g_patch[0].tolist()))
    eager.set_experts_implementation("latentmoe")
    e4 = rel(logits_of(eager, ids), ref)
    check(e4 <= 1e-5, "set_experts_implementation('latentmoe'): rel err %.3g" % e4)
    eager.set_experts_implementation("eager")
    del ours

    # bf16: the same checkpoint in bfloat16; reference = f32 forward of the bf16-rounded weights
    bdir = os.path.join(os.path.dirname(path), "tiny-bf16")
    load(path, torch.bfloat16, "eager").save_pretrained(bdir)
    ref16 = logits_of(load(bdir, torch.float32, "eager"), ids)
    eb = load(bdir, torch.bfloat16, "eager")
    l_eager = logits_of(eb, ids)
    lb = load(bdir, torch.bfloat16, "latentmoe")
    l_exp = logits_of(lb, ids)
    lt.patch(eb)
    l_patch = logits_of(eb, ids)
    lt.unpatch(eb)
    err_eager, err_exp, err_patch = rel(l_eager, ref16), rel(l_exp, ref16), rel(l_patch, ref16)
    print("      bf16 vs f32 forward of the same weights: transformers eager %.3g, latentmoe experts %.3g, "
          "patch %.3g; latentmoe vs eager %.3g" % (err_eager, err_exp, err_patch, rel(l_exp, l_eager)))
    bound = max(2 * err_eager, 1e-2)
    check(err_exp <= bound and err_patch <= bound,
          "bf16 logits within bf16 accuracy (<= max(2 x transformers' own bf16 error, 1e-2) = %.3g)" % bound)
    return eb


def bad_inputs(path):
    torch_ = torch
    m = load(path, torch_.float32, "latentmoe")
    moe = m.model.layers[0].mixer
    ex = moe.experts
    z = torch_.randn(5, ex.up_proj.shape[2])
    tw = torch_.rand(5, 3)
    cases = {}

    def expect(what, fn, exc=(ValueError, NotImplementedError)):
        try:
            fn()
        except exc as e:
            cases[what] = str(e)
            return
        except Exception as e:  # a wrong exception type is a failure too
            cases[what] = "WRONG EXCEPTION %s: %s" % (type(e).__name__, e)
            return
        cases[what] = "NO ERROR"

    expect("top-K id out of range", lambda: lt.experts_forward(ex, z, torch_.full((5, 3), 9), tw))
    expect("negative top-K id", lambda: lt.experts_forward(ex, z, torch_.full((5, 3), -1), tw))
    expect("activations on another device", lambda: lt.experts_forward(ex, z.to("meta"), torch_.zeros(5, 3, dtype=torch_.long), tw))
    expect("bf16 activations to the kernels", lambda: K.grouped_experts(
        lt._experts_weights(ex)[0], lt._experts_weights(ex)[1], z.bfloat16(), torch_.zeros(5, 1, dtype=torch_.long), tw[:, :1]))
    expect("strided activations to the kernels", lambda: K.grouped_experts(
        lt._experts_weights(ex)[0], lt._experts_weights(ex)[1], torch_.randn(5, 2 * z.shape[1])[:, ::2],
        torch_.zeros(5, 1, dtype=torch_.long), tw[:, :1]))
    # non-contiguous expert weights (each expert's matrix transposed in memory)
    saved = ex.up_proj.data
    ex.up_proj.data = saved.transpose(1, 2).contiguous().transpose(1, 2)
    expect("non-contiguous expert weights", lambda: lt.experts_forward(ex, z, torch_.zeros(5, 3, dtype=torch_.long), tw))
    ex.up_proj.data = saved
    ex.__dict__.pop("_latentmoe_experts", None)
    # dtype mismatch between weights: half the layer in f16
    m16 = load(path, torch_.float32, "eager")
    m16.model.layers[0].mixer.experts.half()
    expect("float16 expert weights (patch)", lambda: lt.patch(m16))
    # weights freed by the caller under the library's back (storage resized to 0)
    mf = load(path, torch_.float32, "eager")
    lt.patch(mf)
    ids = torch_.randint(0, 101, (1, 5))
    mf(input_ids=ids)
    mf.model.layers[2].mixer.experts.down_proj.data.untyped_storage().resize_(0)
    expect("expert weights freed before the call", lambda: mf(input_ids=ids))
    # unsupported semantics
    cfg = tiny_config()
    cfg.mlp_hidden_act = "silu"
    ms = AutoModelForCausalLM.from_config(cfg)
    expect("mlp_hidden_act silu (non-gated)", lambda: lt.patch(ms))
    cfg = tiny_config()
    cfg.mlp_bias = True
    expect("mlp_bias true", lambda: lt.patch(AutoModelForCausalLM.from_config(cfg)))
    for what, msg in cases.items():
        check(not msg.startswith(("NO ERROR", "WRONG")), "bad input raises: %-38s -> %s" % (what, msg[:150]))


def timed(fn, min_calls=5, min_s=1.0, max_calls=400):
    fn()
    ts, start = [], time.perf_counter()
    while len(ts) < min_calls or (len(ts) < max_calls and time.perf_counter() - start < min_s):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), len(ts)


@torch.no_grad()
def bench_tiny(path, dtype, prompt=64, reps=3):
    rows = []
    ids = torch.randint(0, 101, (1, prompt), generator=torch.Generator().manual_seed(3))
    for impl in ("eager", "grouped_mm", "latentmoe", "patch"):
        m = load(path, dtype, "eager" if impl == "patch" else impl)
        if impl == "patch":
            lt.patch(m)
        try:
            m(input_ids=ids)
        except RuntimeError as e:  # e.g. torch._grouped_mm on the CPU wants 16-byte strides
            print("  tiny %-8s %-10s cannot run: %s" % (str(dtype).replace("torch.", ""), impl, e), flush=True)
            rows.append(dict(model="tiny", dtype=str(dtype).replace("torch.", ""), impl=impl, error=str(e)))
            continue
        pre = min(timed(lambda: m(input_ids=ids))[0] for _ in range(reps))
        # decode: 32 new tokens after the prompt, per token
        def gen():
            m.generate(input_ids=ids, max_new_tokens=32, min_new_tokens=32, do_sample=False)
        g = min(timed(gen, min_calls=3, min_s=2.0)[0] for _ in range(reps))
        dec = (g - pre) / 32
        rows.append(dict(model="tiny", dtype=str(dtype).replace("torch.", ""), impl=impl, prefill_ms=pre,
                         decode_ms_per_token=dec))
        print("  tiny %-8s %-10s prefill(T=%d) %.2f ms, decode %.3f ms/token" % (rows[-1]["dtype"], impl, prompt, pre, dec), flush=True)
    return rows


@torch.no_grad()
def bench_super(tokens=(1, 4, 64), reps=3):
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMoE
    cfg = NemotronHConfig(hidden_size=4096, moe_latent_size=1024, n_routed_experts=512, num_experts_per_tok=22,
                          moe_intermediate_size=2688, moe_shared_expert_intermediate_size=5376,
                          routed_scaling_factor=5.0, norm_topk_prob=True, mlp_hidden_act="relu2",
                          layers_block_type=["moe"])
    t0 = time.perf_counter()
    torch.manual_seed(5)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            moe = NemotronHMoE(cfg, layer_idx=0)
        moe = moe.to_empty(device="cpu")
    finally:
        torch.set_default_dtype(old)
    for name, p in moe.named_parameters():
        p.uniform_(-1 / p.shape[-1] ** 0.5, 1 / p.shape[-1] ** 0.5)
    moe.gate.register_buffer("e_score_correction_bias", torch.randn(512) * 0.01)
    moe.eval()
    print("  Super-shaped NemotronHMoE: bf16 weights initialised in %.1f s" % (time.perf_counter() - t0), flush=True)
    rows = []
    for t in tokens:
        x = torch.randn(1, t, 4096, generator=torch.Generator().manual_seed(t)).bfloat16()
        res = {}
        for impl in ("grouped_mm", "eager", "patch"):
            if impl == "patch":
                moe.forward = lt.LatentMoEForward.forward.__get__(moe)
            else:
                moe.__dict__.pop("forward", None)
                moe.config._experts_implementation_internal = impl
            try:
                y = moe(x)
            except RuntimeError as e:
                print("  super layer T=%d %s cannot run: %s" % (t, impl, e), flush=True)
                res[impl] = (float("nan"), None)
                continue
            ms = min(timed(lambda: moe(x), min_calls=3, min_s=1.0, max_calls=50)[0] for _ in range(reps))
            res[impl] = (ms, y.float())
        moe.__dict__.pop("forward", None)
        e = rel(res["patch"][1], res["eager"][1]) if res["eager"][1] is not None else float("nan")
        row = dict(model="super-layer", dtype="bfloat16", tokens=t, hf_grouped_mm_ms=res["grouped_mm"][0],
                   hf_eager_ms=res["eager"][0], latentmoe_patch_ms=res["patch"][0], rel_err_vs_eager=e)
        rows.append(row)
        print("  super layer T=%-4d HF grouped_mm %.2f ms, HF eager %.2f ms, latentmoe patch %.2f ms "
              "(rel err vs eager %.2g)" % (t, row["hf_grouped_mm_ms"], row["hf_eager_ms"], row["latentmoe_patch_ms"], e),
              flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--no-super", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        K.kernel_library().lmoe_cpu_set_num_threads(args.threads)
    import transformers
    print("torch %s, transformers %s, %d torch threads, %d library threads, library %s"
          % (torch.__version__, transformers.__version__, torch.get_num_threads(),
             K.kernel_library().lmoe_cpu_num_threads(), os.environ.get("LATENTMOE_LIB")), flush=True)
    lt.register()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny")
        save_tiny(path)
        print("== correctness (tiny NemotronH saved with save_pretrained and loaded back)")
        correctness(path)
        print("== bad inputs")
        bad_inputs(path)
        if not args.no_bench:
            print("== benchmark: tiny model (medians, best of 3 rounds)")
            rows += bench_tiny(path, torch.float32) + bench_tiny(path, torch.bfloat16)
    if not args.no_bench and not args.no_super:
        print("== benchmark: one Super-shaped MoE layer (d 4096, l 1024, N 512, K 22, m 2688, ms 5376), bf16")
        rows += bench_super()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(torch=torch.__version__, threads=torch.get_num_threads(), rows=rows, failures=FAIL), f, indent=1)
    print("== %d checks failed" % len(FAIL) if FAIL else "== all checks passed")
    sys.exit(1 if FAIL else 0)


if __name__ == "__main__":
    main()
