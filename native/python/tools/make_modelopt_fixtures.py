#!/usr/bin/env python3
"""On demand (not in the test command): builds tiny NemotronH models with transformers, quantizes
them on the CPU with NVIDIA ModelOpt (FP8, NVFP4 and a per-layer mixed-precision case), exports
each with export_hf_checkpoint and dumps what a checkpoint loader must know: hf_quant_config.json,
config.json's quantization_config, every tensor's name/dtype/shape, which mixer modules are
quantized, and a dequantization of one FP8 and one NVFP4 expert matrix by hand compared with
ModelOpt's own fake-quantized weight.

Environment: native/python/tools/requirements-modelopt.txt (nvidia-modelopt 0.47.0, torch 2.11.0,
transformers 5.17.0), e.g.
    python3 -m venv /work/research/modelopt-venv
    /work/research/modelopt-venv/bin/pip install -r native/python/tools/requirements-modelopt.txt
    /work/research/modelopt-venv/bin/python native/python/tools/make_modelopt_fixtures.py OUT_DIR
Writes OUT_DIR/<variant>/ (config.json, hf_quant_config.json, model.safetensors, dump.txt,
fakequant.safetensors: the checked modules' original weights (.orig) and FP8 fake-quant (.fq)).
"""
import copy
import json
import os
import sys
import warnings

import torch

warnings.filterwarnings("ignore")

import modelopt.torch.quantization as mtq  # noqa: E402
from modelopt.torch.export import export_hf_checkpoint  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, NemotronHConfig  # noqa: E402

# FP4 E2M1 code -> value (sign in bit 3).
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def tiny_config(latent: bool) -> NemotronHConfig:
    # d, l, m, ms are multiples of 16 (NVFP4 blocks of 16 along the input dim), otherwise odd-ish.
    cfg = NemotronHConfig(
        vocab_size=97, hidden_size=80,
        layers_block_type=["moe", "linear_attention", "moe", "full_attention", "moe"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=48,
        mamba_num_heads=4, mamba_head_dim=16, n_groups=2, ssm_state_size=8, chunk_size=16,
        n_routed_experts=6, num_experts_per_tok=2, moe_intermediate_size=112,
        moe_shared_expert_intermediate_size=144, moe_latent_size=48 if latent else None,
        routed_scaling_factor=2.5, use_mamba_kernels=False)
    cfg.architectures = ["NemotronHForCausalLM"]
    return cfg


def build(latent: bool, seed: int):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(latent), dtype=torch.bfloat16)
    # Non-zero correction bias, kept in float32 as real checkpoints store it (from_pretrained keeps it
    # f32 through _keep_in_fp32_modules_strict; from_config(dtype=bf16) does not).
    for mod in model.modules():
        if hasattr(mod, "e_score_correction_bias"):
            n = mod.e_score_correction_bias.shape[0]
            mod.register_buffer("e_score_correction_bias", torch.randn(n) * 0.05)
    return model.eval()


def calib_loop(model):
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        ids = torch.randint(0, 97, (2, 11), generator=g)
        model(input_ids=ids)


def mixed_cfg():
    """NVFP4 conservative everywhere, but layer 0's MoE in FP8 and layer 4's routed experts off."""
    fp8 = copy.deepcopy(mtq.MAMBA_MOE_FP8_CONSERVATIVE_CFG["quant_cfg"])
    cfg = copy.deepcopy(mtq.MAMBA_MOE_NVFP4_CONSERVATIVE_CFG)
    w8 = next(e["cfg"] for e in fp8 if e.get("quantizer_name") == "*weight_quantizer")
    a8 = next(e["cfg"] for e in fp8 if e.get("quantizer_name") == "*input_quantizer")
    cfg["quant_cfg"] += [
        {"quantizer_name": "*layers.0.mixer.*weight_quantizer*", "cfg": w8},
        {"quantizer_name": "*layers.0.mixer.*input_quantizer", "cfg": a8},
        {"quantizer_name": "*layers.4.mixer.experts.*", "enable": False},
    ]
    return cfg


def quantized_weights(model):
    """Every quantized expert slice and shared-expert linear before export: its original weight and,
    for FP8 (per-tensor, CPU-capable), ModelOpt's fake-quantized weight. ModelOpt 0.47 fake-quantizes
    NVFP4 only on CUDA (tensor_quant.py asserts amax.is_cuda), so NVFP4 is checked against
    NVFP4QTensor.quantize/dequantize instead (pure torch)."""
    out = {}
    with torch.no_grad():
        for name, mod in model.named_modules():
            if hasattr(mod, "up_proj_weight_quantizers"):
                for proj in ("up_proj", "down_proj"):
                    qs, w = getattr(mod, proj + "_weight_quantizers"), getattr(mod, proj)
                    for e in range(w.shape[0]):
                        if qs[e].is_enabled:
                            out["%s.%d.%s" % (name, e, proj)] = (w[e].detach().clone(), qs[e])
            elif hasattr(mod, "weight_quantizer") and isinstance(getattr(mod, "weight", None), torch.Tensor):
                if mod.weight_quantizer.is_enabled and "experts" in name:
                    out[name] = (mod.weight.detach().clone(), mod.weight_quantizer)
    res = {}
    for k, (w, q) in out.items():
        res[k + ".orig"] = w.float().contiguous()
        if q.block_sizes is None:
            with torch.no_grad():
                res[k + ".fq"] = q(w.clone()).float().contiguous()
    return res


def dequant_fp8(w, s):
    return w.float() * s.float()


def dequant_nvfp4(packed, block_scale, scale2, low_first=True):
    """packed U8 [out, in/2], block_scale E4M3 [out, in/16], scale2 F32: value of column 2j is the
    low nibble of byte j when low_first."""
    lut = torch.tensor(E2M1)
    lo, hi = (packed & 0x0F).long(), (packed >> 4).long()
    pair = (lut[lo], lut[hi]) if low_first else (lut[hi], lut[lo])
    vals = torch.stack(pair, dim=-1).reshape(packed.shape[0], -1)
    bs = block_scale.float().repeat_interleave(16, dim=1)
    return vals * bs * scale2.float()


def dump(variant, model, out_dir, fq):
    lines = []
    say = lines.append
    hq = json.load(open(os.path.join(out_dir, "hf_quant_config.json")))
    cj = json.load(open(os.path.join(out_dir, "config.json")))
    say("== %s" % variant)
    say("hf_quant_config.json:\n" + json.dumps(hq, indent=1))
    say("config.json quantization_config:\n" + json.dumps(cj.get("quantization_config"), indent=1))
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors") and f != "fakequant.safetensors")
    tensors = {}
    for fn in files:
        with safe_open(os.path.join(out_dir, fn), "pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                tensors[k] = (sl.get_dtype(), sl.get_shape(), fn)
    say("tensors (%d):" % len(tensors))
    for k in sorted(tensors):
        dt, sh, fn = tensors[k]
        say("  %-70s %-8s %s" % (k, dt, sh))
    # dequantize every quantized expert / shared-expert matrix by hand and compare
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor
    checks = []
    with safe_open(os.path.join(out_dir, files[0]), "pt") as f:
        keys = set(f.keys())
        for name in sorted(k[:-5] for k in fq if k.endswith(".orig")):
            orig = fq[name + ".orig"]
            base = name.replace("model.layers.", "backbone.layers.")
            w = f.get_tensor(base + ".weight")
            rel = lambda deq: ((deq - orig).abs().max() / orig.abs().max()).item()
            if base + ".weight_scale" not in keys:
                checks.append("  %-44s stored %s unquantized: max|w - orig| = %.3g"
                              % (name, w.dtype, (w.float() - orig).abs().max()))
                continue
            s = f.get_tensor(base + ".weight_scale")
            if w.dtype == torch.float8_e4m3fn:
                deq = dequant_fp8(w, s)
                # export's codes: e4m3(bf16(w_bf16 * bf16(1 / weight_scale))) (a bf16 product)
                again = (orig.to(torch.bfloat16) * (1 / s).to(torch.bfloat16)).to(torch.float8_e4m3fn)
                ndiff = int((again.view(torch.uint8) != w.view(torch.uint8)).sum())
                fqd = (deq - fq[name + ".fq"]).abs().max().item()
                checks.append("  %-44s FP8 code*weight_scale: rel err vs original %.3g; codes == "
                              "e4m3(bf16(w*bf16(1/s))): %d of %d differ; max|deq - fake-quant| %.3g"
                              % (name, rel(deq), ndiff, w.numel(), fqd))
            else:
                s2 = f.get_tensor(base + ".weight_scale_2")
                deq, alt = dequant_nvfp4(w, s, s2, True), dequant_nvfp4(w, s, s2, False)
                ref = NVFP4QTensor(orig.shape, torch.float32, w).dequantize(
                    dtype=torch.float32, scale=s, double_scale=s2, block_sizes={-1: 16})
                qt, s_q, _ = NVFP4QTensor.quantize(orig.to(torch.bfloat16), 16, weights_scaling_factor_2=s2)
                same_bytes = torch.equal(qt._quantized_data, w) and torch.equal(
                    s_q.view(torch.uint8), s.view(torch.uint8))
                checks.append("  %-44s NVFP4 low-nibble-first: max|mine - NVFP4QTensor.dequantize| %.3g "
                              "(high-first %.3g); rel err vs original %.3g; bytes+scales == "
                              "NVFP4QTensor.quantize(orig): %s"
                              % (name, (deq - ref).abs().max(), (alt - ref).abs().max(), rel(deq), same_bytes))
    say("dequantization checks:")
    lines.extend(checks)
    text = "\n".join(lines) + "\n"
    open(os.path.join(out_dir, "dump.txt"), "w").write(text)
    return text


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    os.makedirs(root, exist_ok=True)
    variants = [
        ("fp8-latent", True, mtq.MAMBA_MOE_FP8_CONSERVATIVE_CFG),
        ("nvfp4-latent", True, mtq.MAMBA_MOE_NVFP4_CONSERVATIVE_CFG),
        ("nvfp4-nolatent", False, mtq.MAMBA_MOE_NVFP4_CONSERVATIVE_CFG),
        ("fp8-nolatent", False, mtq.MAMBA_MOE_FP8_CONSERVATIVE_CFG),
        ("mixed-latent", True, None),
    ]
    only = set(sys.argv[2:])
    for i, (variant, latent, qcfg) in enumerate(variants):
        if only and variant not in only:
            continue
        model = build(latent, seed=10 + i)
        qcfg = qcfg if qcfg is not None else mixed_cfg()
        model = mtq.quantize(model, qcfg, forward_loop=calib_loop)
        fq = quantized_weights(model)
        out_dir = os.path.join(root, variant)
        export_hf_checkpoint(model, export_dir=out_dir)
        save_file({k: v for k, v in fq.items()}, os.path.join(out_dir, "fakequant.safetensors"))
        print(dump(variant, model, out_dir, fq))


if __name__ == "__main__":
    main()
