"""The kernel-ABI bindings (latentmoe.kernels) on caller-owned numpy weights: against the float64
reference and bit for bit against the engine layer on the same checkpoint, the experts-only path,
and every kind of bad input raising before (or instead of) a crash."""
import numpy as np
import pytest

import latentmoe
from latentmoe import kernels as K
from conftest import make_checkpoint, to_bf16_bits


def rel_err(y, ref):
    return float(np.abs(np.asarray(y, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def config_of(ckpt):
    c = ckpt.cfg
    return K.Config(hidden_size=c["hidden_size"], latent_size=c["moe_latent_size"] or 0,
                    num_experts=c["n_routed_experts"], top_k=c["num_experts_per_tok"],
                    expert_intermediate_size=c["moe_intermediate_size"],
                    shared_intermediate_size=c["moe_shared_expert_intermediate_size"],
                    activation="swiglu" if c["mlp_hidden_act"] == "silu" else "relu2",
                    scoring=c["scoring_func"], norm_topk_prob=c["norm_topk_prob"],
                    routed_scaling_factor=c["routed_scaling_factor"])


def weights_of(ckpt, cfg, *, bf16=False, fused=True):
    """The checkpoint's matrices as numpy arrays (uint16 bf16 bits when bf16): experts fused into
    one [N, rows, cols] array each, or lists of per-expert matrices."""
    conv = (lambda a: to_bf16_bits(a)) if bf16 else (lambda a: np.ascontiguousarray(a, np.float32))
    w = ckpt.w
    ex = (lambda lst: conv(np.stack(lst))) if fused else (lambda lst: [conv(a) for a in lst])
    kw = dict(gate=np.ascontiguousarray(w["gate"], np.float32), gate_bias=w["bias"].astype(np.float32),
              expert_up=ex(w["eu"]), expert_down=ex(w["ed"]))
    if w["eg"]:
        kw["expert_gate"] = ex(w["eg"])
    if cfg.latent_size:
        kw.update(latent_down=conv(w["down"]), latent_up=conv(w["up"]))
    if cfg.shared_intermediate_size:
        kw.update(shared_up=conv(w["su"]), shared_down=conv(w["sd"]))
        if "sg" in w:
            kw["shared_gate"] = conv(w["sg"])
    return K.Weights(cfg, **kw), kw


def xs(d, t=7, seed=5):
    return np.random.default_rng(seed).uniform(-1, 1, size=(t, d)).astype(np.float32)


@pytest.mark.parametrize("name,fused", [("ckpt_f32", True), ("ckpt_f32", False), ("ckpt_swiglu", True)])
def test_forward_matches_reference_and_engine(request, name, fused):
    ckpt = request.getfixturevalue(name)
    cfg = config_of(ckpt)
    w, _ = weights_of(ckpt, cfg, fused=fused)
    x = xs(cfg.hidden_size)
    y = np.full((x.shape[0], cfg.hidden_size), np.nan, np.float32)  # poisoned: unwritten rows fail
    y, ids, wts = K.forward(cfg, w, x, out=y)
    err = rel_err(y, ckpt.reference(x, ids))
    print("%s fused=%s: rel err %.3g" % (name, fused, err))
    assert err <= 1e-5
    with latentmoe.Layer(ckpt.path, ckpt.layer) as layer:
        y_eng, ids_eng, wts_eng = layer.forward_raw(x)
    assert np.array_equal(ids, ids_eng) and np.array_equal(wts.view(np.uint32), wts_eng.view(np.uint32))
    assert np.array_equal(y.view(np.uint32), y_eng.view(np.uint32)), "kernel ABI != engine layer, bits"


def test_bf16_weights_are_used_in_place(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c", d=80, l=48, n=11, k=4, m=40, ms=24, dtype="BF16", seed=21)
    cfg = config_of(ckpt)
    w, kw = weights_of(ckpt, cfg, bf16=True)
    assert w.weight_dtype == K.BF16 and w.gate_dtype == K.F32
    # the per-expert pointers point into the caller's fused arrays (no copy)
    up = kw["expert_up"]
    assert [w._c.expert_up[e].data for e in range(cfg.num_experts)] == \
        [up.ctypes.data + e * up.strides[0] for e in range(cfg.num_experts)]
    assert w._c.latent_down.data == kw["latent_down"].ctypes.data
    x = xs(cfg.hidden_size, t=13)
    y, ids, _ = K.forward(cfg, w, x)
    assert rel_err(y, ckpt.reference(x, ids)) <= 1e-5  # f32 accumulation on the stored bf16 values


def test_router_and_grouped_experts(ckpt_f32):
    cfg = config_of(ckpt_f32)
    w, _ = weights_of(ckpt_f32, cfg)
    x = xs(cfg.hidden_size, t=9, seed=3)
    ids, wts = K.router_topk(cfg, w, x)
    _, ids_f, wts_f = K.forward(cfg, w, x)
    assert np.array_equal(ids, ids_f) and np.array_equal(wts, wts_f)
    # experts alone on given latent rows, routing in int64 (as torch.topk returns) and any order
    rng = np.random.default_rng(9)
    z = rng.uniform(-1, 1, size=(9, cfg.width)).astype(np.float32)
    ids64 = np.stack([rng.permutation(cfg.num_experts)[:cfg.top_k] for _ in range(9)]).astype(np.int64)
    tw = rng.uniform(0.1, 1, size=(9, cfg.top_k)).astype(np.float32)
    ew = w.experts_only()
    acc = K.grouped_experts(cfg.experts_only(), ew, z, ids64, tw)
    eu, ed = ckpt_f32.w["eu"], ckpt_f32.w["ed"]
    ref = np.zeros((9, cfg.width))
    for t in range(9):
        for k in range(cfg.top_k):
            e = ids64[t, k]
            h = np.maximum(z[t].astype(np.float64) @ eu[e].T.astype(np.float64), 0) ** 2
            ref[t] += float(tw[t, k]) * (h @ ed[e].T.astype(np.float64))
    err = rel_err(acc, ref)
    print("grouped_experts rel err %.3g" % err)
    assert err <= 1e-5
    empty = K.grouped_experts(cfg.experts_only(), ew, z[:0], ids64[:0], tw[:0])
    assert empty.shape == (0, cfg.width)


def test_bad_inputs_raise(ckpt_f32):
    cfg = config_of(ckpt_f32)
    w, kw = weights_of(ckpt_f32, cfg)
    x = xs(cfg.hidden_size)
    n, m, l = cfg.num_experts, cfg.expert_intermediate_size, cfg.width

    def build(**over):
        return K.Weights(cfg, **{**kw, **over})

    bad_weights = {
        "gate transposed (wrong strides)": dict(gate=np.asfortranarray(kw["gate"])),
        "expert slices not contiguous": dict(expert_up=np.ascontiguousarray(
            np.swapaxes(kw["expert_up"], 1, 2)).swapaxes(1, 2)),
        "expert slices strided": dict(expert_up=np.zeros((n, m, 2 * l), np.float32)[:, :, ::2]),
        "expert list too short": dict(expert_up=list(kw["expert_up"][:-1])),
        "float64 weights": dict(latent_down=kw["latent_down"].astype(np.float64)),
        "float16 weights": dict(latent_down=kw["latent_down"].astype(np.float16)),
        "wrong shape": dict(latent_up=kw["latent_up"][:, :-1].copy()),
        "latent missing": dict(latent_down=None),
        "bias not f32": dict(gate_bias=to_bf16_bits(kw["gate_bias"])),
        "not an array": dict(gate=kw["gate"].tolist()),
    }
    for what, over in bad_weights.items():
        with pytest.raises((ValueError, TypeError)) as e:
            build(**over)
        print("%-32s -> %s" % (what, e.value))
    bad_x = {
        "float64 x": x.astype(np.float64),
        "bf16 bits x": to_bf16_bits(x),
        "strided x": xs(cfg.hidden_size, t=14)[::2],
        "transposed x": np.asfortranarray(x),
        "wrong width": x[:, 1:].copy(),
    }
    for what, bad in bad_x.items():
        with pytest.raises(ValueError) as e:
            K.forward(cfg, w, bad)
        print("%-32s -> %s" % (what, e.value))
    ec, ew = cfg.experts_only(), w.experts_only()
    z = xs(cfg.width, t=3)
    tw = np.full((3, cfg.top_k), 0.5, np.float32)
    for what, ids in {"id = N": np.full((3, cfg.top_k), n), "id < 0": np.full((3, cfg.top_k), -1),
                      "int64 id 2**32 + 1": np.full((3, cfg.top_k), 2 ** 32 + 1, np.int64),
                      "float ids": np.zeros((3, cfg.top_k), np.float32),
                      "ids shape": np.zeros((3, cfg.top_k + 1), np.int32)}.items():
        with pytest.raises(ValueError) as e:
            K.grouped_experts(ec, ew, z, ids, tw)
        print("%-32s -> %s" % (what, e.value))
    with pytest.raises(ValueError, match="experts_only"):
        K.grouped_experts(cfg, w, z, np.zeros((3, cfg.top_k), np.int32), tw)
    # the library's own range check (a caller bypassing the Python check) is an error, not a crash
    lib = K.kernel_library()
    bad_ids = np.full((3, cfg.top_k), n, np.int32)
    offs, rows = np.empty(n + 1, np.int32), np.empty(3 * cfg.top_k, np.int32)
    out = np.empty((3 * cfg.top_k, cfg.width), np.float32)
    import ctypes
    st = lib.lmoe_cpu_dispatch(ctypes.byref(ec.c), ctypes.byref(ew._c), z.ctypes.data, 3,
                               bad_ids.ctypes.data, offs.ctypes.data, rows.ctypes.data, out.ctypes.data)
    assert st == 1 and b"out of range" in lib.lmoe_last_error()


def test_weights_freed_or_changed_by_the_caller(ckpt_f32):
    cfg = config_of(ckpt_f32)
    w, kw = weights_of(ckpt_f32, cfg)
    x = xs(cfg.hidden_size)
    y0 = K.forward(cfg, w, x)[0]
    # The caller frees a weight's buffer (numpy resize without refcheck reallocates it).
    victim = kw["shared_down"].copy()
    w2 = K.Weights(cfg, **{**kw, "shared_down": victim})
    assert np.array_equal(K.forward(cfg, w2, x)[0], y0)
    victim.resize((victim.size + 4096,), refcheck=False)
    with pytest.raises(ValueError, match="shared_down changed"):
        K.forward(cfg, w2, x)
    w.release()
    with pytest.raises(ValueError, match="released"):
        K.forward(cfg, w, x)
