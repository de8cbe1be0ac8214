"""Run HF transformers' Nemotron-H MoE through the library (CPU tensors; inference only).

    import latentmoe.transformers as lt
    lt.register()                                       # once: adds "latentmoe" to ExpertsInterface
    model = AutoModelForCausalLM.from_pretrained(dir, experts_implementation="latentmoe")
    # or model.set_experts_implementation("latentmoe"): every NemotronHExperts runs in the library

    lt.patch(model)      # every NemotronHMoE forward (router, latent projections, experts, combine,
                         # shared expert) becomes one lmoe_cpu_forward over the module's own weights
    lt.unpatch(model)    # restores transformers' forward

Both read the modules' parameters in place (bf16 or f32; the fused 3-D expert tensors by one pointer
per expert, no copy). Activations enter the library as float32: bf16 hidden states are widened
(one [T, d] copy) and the result is rounded back to the model's dtype. The library computes
float32 intermediates where transformers' bf16 path rounds each GEMM's output to bf16.
Outputs carry no autograd graph. CUDA tensors raise (the CUDA ABI is not bound in Python: unverified).

What transformers (5.17, models/nemotron_h/modeling_nemotron_h.py) computes and the library matches:
sigmoid router in f32 over the gate (any dtype) + e_score_correction_bias for the choice only,
top-K, weights = unbiased scores (/ (sum + 1e-20) when norm_topk_prob) * routed_scaling_factor;
non-gated experts down(act(up z)) with act = mlp_hidden_act; shared expert down(act(up x)) on the
layer input; out = fc2_latent_proj(sum_k w_k expert_k(fc1_latent_proj x)) + shared(x).
Supported: mlp_hidden_act "relu2", mlp_bias false, n_group 1. Anything else raises
NotImplementedError naming the setting (the library has no non-gated silu and no biases).
"""

from __future__ import annotations

import types

from . import kernels as K

__all__ = ["NAME", "register", "experts_forward", "patch", "unpatch", "LatentMoEForward"]

NAME = "latentmoe"


def _torch():
    import torch
    return torch


def _check_activation(act_name: str, where: str) -> None:
    if act_name != "relu2":
        raise NotImplementedError(
            "%s: mlp_hidden_act=%r is not supported by the library (transformers' NemotronH experts "
            "are non-gated, down(act(up z)); the library runs relu2 or a gated SwiGLU)" % (where, act_name))


def _experts_weights(mod):
    """(Config, Weights) for a NemotronHExperts module, rebuilt only when its parameters change."""
    up, down = mod.up_proj, mod.down_proj
    key = (up.data_ptr(), down.data_ptr(), tuple(up.shape), tuple(down.shape), up.dtype, down.dtype,
           tuple(up.stride()), tuple(down.stride()), str(up.device))
    cached = mod.__dict__.get("_latentmoe_experts")
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    if getattr(mod, "has_gate", False) or getattr(mod, "has_bias", False) or getattr(mod, "is_transposed", False):
        raise NotImplementedError("%s: gated, biased or transposed experts are not supported"
                                  % type(mod).__name__)
    _check_activation(getattr(mod.config, "mlp_hidden_act", "relu2"), type(mod).__name__)
    n, m, w = (int(s) for s in up.shape)
    cfg = K.Config(hidden_size=w, num_experts=n, top_k=1, expert_intermediate_size=m,
                   norm_topk_prob=False)
    weights = K.Weights(cfg, expert_up=up.detach(), expert_down=down.detach())
    mod.__dict__["_latentmoe_experts"] = (key, cfg, weights)
    return cfg, weights


def experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """The ExpertsInterface function: self is the experts module (up_proj [N, m, w], down_proj
    [N, w, m]), hidden_states [S, w], top_k_index [S, K], top_k_weights [S, K] ->
    sum_k top_k_weights[s, k] * expert_{top_k_index[s, k]}(hidden_states[s]), in hidden_states' dtype."""
    torch = _torch()
    cfg, weights = _experts_weights(self)
    k = int(top_k_index.shape[-1]) if top_k_index.dim() == 2 else -1
    if k < 1:
        raise ValueError("top_k_index must be [S, K], got shape %s" % list(top_k_index.shape))
    if k != cfg.top_k:
        cfg = K.Config(hidden_size=cfg.hidden_size, num_experts=cfg.num_experts, top_k=k,
                       expert_intermediate_size=cfg.expert_intermediate_size, norm_topk_prob=False)
    if hidden_states.device != self.up_proj.device:
        raise ValueError("hidden_states are on %s but the expert weights on %s"
                         % (hidden_states.device, self.up_proj.device))
    z = hidden_states if hidden_states.dtype == torch.float32 else hidden_states.float()
    tw = top_k_weights if top_k_weights.dtype == torch.float32 else top_k_weights.float()
    out = K.grouped_experts(cfg, weights, z.contiguous(), top_k_index, tw.contiguous())
    return out.to(hidden_states.dtype)


def register() -> None:
    """Adds the "latentmoe" implementation to transformers' ExpertsInterface (idempotent)."""
    from transformers.integrations.moe import ExpertsInterface
    ExpertsInterface.register(NAME, experts_forward)


# ---------------------------------------------------------------- the whole MoE layer


def _layer_weights(moe):
    """(Config, Weights) for a NemotronHMoE module over its own parameters, cached on the module and
    rebuilt when a parameter's pointer/shape/dtype changes."""
    torch = _torch()
    c = moe.config
    latent = c.moe_latent_size is not None
    params = [moe.gate.weight, moe.experts.up_proj, moe.experts.down_proj,
              moe.shared_experts.up_proj.weight, moe.shared_experts.down_proj.weight]
    if latent:
        params += [moe.fc1_latent_proj.weight, moe.fc2_latent_proj.weight]
    bias = moe.gate.e_score_correction_bias
    key = tuple((p.data_ptr(), tuple(p.shape), tuple(p.stride()), p.dtype, str(p.device))
                for p in params + [bias])
    cached = moe.__dict__.get("_latentmoe_layer")
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    where = "NemotronHMoE"
    _check_activation(c.mlp_hidden_act, where)
    if c.mlp_bias:
        raise NotImplementedError("%s: mlp_bias=true (biases on fc1/fc2_latent_proj and the shared "
                                  "expert) is not supported by the library" % where)
    if c.n_group != 1:
        raise NotImplementedError("%s: group-limited routing (n_group=%d) is not supported" % (where, c.n_group))
    n, m, w = (int(s) for s in moe.experts.up_proj.shape)
    ms = int(moe.shared_experts.up_proj.weight.shape[0])
    cfg = K.Config(hidden_size=c.hidden_size, latent_size=c.moe_latent_size or 0, num_experts=n,
                   top_k=c.num_experts_per_tok, expert_intermediate_size=m, shared_intermediate_size=ms,
                   activation="relu2", scoring="sigmoid", norm_topk_prob=c.norm_topk_prob,
                   routed_scaling_factor=c.routed_scaling_factor)
    # The correction bias is [N] floats: kept in f32 by from_pretrained; widened here otherwise.
    bias32 = bias.detach() if bias.dtype == torch.float32 else bias.detach().float()
    kw = dict(gate=moe.gate.weight.detach(), gate_bias=bias32.contiguous(),
              expert_up=moe.experts.up_proj.detach(), expert_down=moe.experts.down_proj.detach(),
              shared_up=moe.shared_experts.up_proj.weight.detach(),
              shared_down=moe.shared_experts.down_proj.weight.detach())
    if latent:
        kw.update(latent_down=moe.fc1_latent_proj.weight.detach(), latent_up=moe.fc2_latent_proj.weight.detach())
    weights = K.Weights(cfg, **kw)
    moe.__dict__["_latentmoe_layer"] = (key, cfg, weights)
    return cfg, weights


class LatentMoEForward:
    """The fused NemotronHMoE forward as a method holder: patch() binds ``forward`` to each module.
    It is also the shape a hub-kernel layer takes (a forward reading the original module's
    attributes), for whoever maps it with the `kernels` package (see README)."""

    def forward(self, hidden_states):
        cfg, weights = _layer_weights(self)
        d = cfg.hidden_size
        if hidden_states.device != self.gate.weight.device:
            raise ValueError("hidden_states are on %s but the layer's weights on %s"
                             % (hidden_states.device, self.gate.weight.device))
        x = hidden_states.reshape(-1, d)
        x32 = x if x.dtype == _torch().float32 else x.float()
        y, _, _ = K.forward(cfg, weights, x32.contiguous())
        return y.to(hidden_states.dtype).view(hidden_states.shape)


def _moe_modules(model):
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMoE
    return [m for m in model.modules() if isinstance(m, NemotronHMoE)]


def patch(model) -> int:
    """Replaces the forward of every NemotronHMoE in model by the library's fused layer; checks each
    module first (nothing is patched when one is unsupported). Returns the number patched."""
    mods = _moe_modules(model)
    for mod in mods:
        _layer_weights(mod)  # raises for an unsupported module before anything is patched
    for mod in mods:
        mod.forward = types.MethodType(LatentMoEForward.forward, mod)
    return len(mods)


def unpatch(model) -> int:
    """Restores transformers' forward on every patched NemotronHMoE; returns how many."""
    n = 0
    for mod in _moe_modules(model):
        if "forward" in mod.__dict__:
            del mod.__dict__["forward"]
            n += 1
        mod.__dict__.pop("_latentmoe_layer", None)
    return n
