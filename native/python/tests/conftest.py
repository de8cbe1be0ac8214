"""Fixtures: small random Nemotron-H style checkpoints written here (config.json + safetensors)
and a float64 numpy reference of the layer."""
import json
import pathlib
import struct
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the latentmoe package


def to_bf16_bits(a):
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(h):
    return (h.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors):
    """tensors: {name: (dtype 'F32'|'BF16'|'F16', float32 array of values)}."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dt, a) in tensors.items():
        if dt == "F32":
            raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif dt == "BF16":
            raw = to_bf16_bits(a).astype("<u2").tobytes()
        elif dt == "F16":
            raw = np.ascontiguousarray(a, dtype="<f2").tobytes()
        else:
            raise ValueError(dt)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rounded(a, dt):
    if dt == "BF16":
        return from_bf16_bits(to_bf16_bits(a))
    if dt == "F16":
        return a.astype(np.float16).astype(np.float32)
    return a.astype(np.float32)


class Ckpt:
    def __init__(self, path, cfg, w, layer):
        self.path, self.cfg, self.w, self.layer = path, cfg, w, layer

    def reference(self, x, ids=None):
        """float64 layer; routing by float64 scores (or the given ids, checked to be a top-K)."""
        c, w = self.cfg, self.w
        x = x.astype(np.float64)
        logits = x @ w["gate"].T.astype(np.float64)
        if c.get("scoring_func", "sigmoid") == "softmax":
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            s = e / e.sum(axis=1, keepdims=True)
        else:
            s = 1 / (1 + np.exp(-logits))
        biased = s + (w["bias"].astype(np.float64) if "bias" in w else 0)
        k = c["num_experts_per_tok"]
        if ids is None:
            ids = np.argsort(-biased, axis=1, kind="stable")[:, :k]
        else:
            for t in range(len(x)):
                chosen = biased[t, ids[t]]
                rest = np.delete(biased[t], ids[t])
                assert rest.size == 0 or rest.max() <= chosen.min() + 1e-5
        sel = np.take_along_axis(s, ids, axis=1)
        if c.get("norm_topk_prob", True):
            sel = sel / (sel.sum(axis=1, keepdims=True) + 1e-20)
        sel = sel * c.get("routed_scaling_factor", 1.0)
        latent = c.get("moe_latent_size")
        z = x @ w["down"].T.astype(np.float64) if latent else x
        swiglu = c.get("mlp_hidden_act", "relu2") in ("silu", "swiglu")

        def act(zz, up, gate):
            u = zz @ up.T.astype(np.float64)
            if swiglu:
                g = zz @ gate.T.astype(np.float64)
                return g / (1 + np.exp(-g)) * u
            return np.maximum(u, 0) ** 2

        acc = np.zeros_like(z)
        for t in range(len(x)):
            for j in range(k):
                e = ids[t, j]
                h = act(z[t:t + 1], w["eu"][e], w["eg"][e] if swiglu else None)
                acc[t] += sel[t, j] * (h @ w["ed"][e].T.astype(np.float64))[0]
        out = acc @ w["up"].T.astype(np.float64) if latent else acc
        if c.get("moe_shared_expert_intermediate_size", 0):
            h = act(x, w["su"], w.get("sg"))
            out = out + h @ w["sd"].T.astype(np.float64)
        return out


def make_checkpoint(path, *, d=64, l=32, n=8, k=3, m=48, ms=40, dtype="F32", swiglu=False,
                    softmax=False, layer=2, seed=0):
    rng = np.random.default_rng(seed)
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"hidden_size": d, "moe_latent_size": l or None, "n_routed_experts": n,
           "num_experts_per_tok": k, "moe_intermediate_size": m,
           "moe_shared_expert_intermediate_size": ms, "routed_scaling_factor": 2.5,
           "norm_topk_prob": True, "mlp_hidden_act": "silu" if swiglu else "relu2",
           "scoring_func": "softmax" if softmax else "sigmoid"}
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    wd = l or d
    p = "backbone.layers.%d.mixer." % layer
    tensors, w = {}, {"eu": [], "ed": [], "eg": []}

    def add(name, key, shape, fan_in, dt=dtype, lst=None):
        bound = 1 / np.sqrt(fan_in) if fan_in else 0.1
        a = rounded(rng.uniform(-bound, bound, size=shape).astype(np.float32), dt)
        tensors[p + name] = (dt, a)
        if lst is not None:
            w[lst].append(a)
        else:
            w[key] = a

    add("gate.weight", "gate", (n, d), d)
    add("gate.e_score_correction_bias", "bias", (n,), 0, dt="F32")
    if l:
        add("fc1_latent_proj.weight", "down", (l, d), d)
        add("fc2_latent_proj.weight", "up", (d, l), l)
    for e in range(n):
        add("experts.%d.up_proj.weight" % e, None, (m, wd), wd, lst="eu")
        if swiglu:
            add("experts.%d.gate_proj.weight" % e, None, (m, wd), wd, lst="eg")
        add("experts.%d.down_proj.weight" % e, None, (wd, m), m, lst="ed")
    if ms:
        add("shared_experts.up_proj.weight", "su", (ms, d), d)
        if swiglu:
            add("shared_experts.gate_proj.weight", "sg", (ms, d), d)
        add("shared_experts.down_proj.weight", "sd", (d, ms), ms)
    write_safetensors(path / "model.safetensors", tensors)
    return Ckpt(path, cfg, w, layer)


@pytest.fixture(scope="session")
def ckpt_f32(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("f32"))


@pytest.fixture(scope="session")
def ckpt_bf16(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("bf16"), dtype="BF16", l=0, softmax=True, layer=0)


@pytest.fixture(scope="session")
def ckpt_swiglu(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("swiglu"), swiglu=True, seed=7)


@pytest.fixture(scope="session")
def ckpt_f16(tmp_path_factory):
    """F16 weights: widened to F32 once at open (converted_bytes > 0)."""
    return make_checkpoint(tmp_path_factory.mktemp("f16"), dtype="F16", seed=3)
