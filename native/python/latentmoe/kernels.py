"""ctypes bindings of the kernel ABI (native/include/latentmoe.h): the layer's steps on caller-owned
host memory, no copy of any weight.

    from latentmoe import kernels as K
    cfg = K.Config(hidden_size=d, latent_size=l, num_experts=N, top_k=K_, expert_intermediate_size=m,
                   shared_intermediate_size=ms, routed_scaling_factor=2.5)
    w = K.Weights(cfg, gate=g, gate_bias=b, latent_down=wd, latent_up=wu,
                  expert_up=up3d, expert_down=down3d, shared_up=su, shared_down=sd)
    y, ids, wts = K.forward(cfg, w, x)                          # x f32 [T, d]
    acc = K.grouped_experts(cfg.experts_only(), w.experts_only(), z, ids, wts)   # z f32 [T, l]

Weights are numpy arrays (float32, or uint16 holding bfloat16 bits) or torch CPU tensors (float32,
bfloat16); activations are float32. ``expert_up`` / ``expert_down`` are a fused 3-D tensor
``[N, m, w]`` / ``[N, w, m]`` (each expert's slice row-major; the stride between experts is free)
or a sequence of N row-major matrices; the library gets one pointer per expert into them.

Lifetime: the caller owns the weights. A ``Weights`` holds a reference to every tensor it was built
from, so they stay allocated while it lives; before each call it checks that each tensor still
has the data pointer, shape and strides it was built with and that a torch tensor's storage was
not freed (``untyped_storage().resize_(0)``), and ``release()`` drops the references (a later call
raises). Nothing here converts silently: a wrong dtype, device, shape or stride raises ``ValueError``
/ ``TypeError`` naming the argument before any native call; the library's own checks (e.g. ids out
of range) come back as :class:`latentmoe.LatentMoeError`.

The lmoe_weights struct is built in exactly one place, :func:`_c_weights`.
"""

from __future__ import annotations

import ctypes
import threading

from . import LatentMoeError, _check, lmoe_config, load_library

__all__ = ["Config", "Weights", "forward", "router_topk", "grouped_experts", "kernel_library"]

F32, BF16, F16, I32 = 0, 1, 2, 3
_DTYPE_NAME = {F32: "float32", BF16: "bfloat16", F16: "float16", I32: "int32"}
_ITEMSIZE = {F32: 4, BF16: 2, F16: 2, I32: 4}
ACT_RELU2, ACT_SWIGLU, ACT_SILU = 0, 1, 2
SCORING_SIGMOID, SCORING_SOFTMAX = 0, 1


# ---------------------------------------------------------------- the C struct (latentmoe.h)


class lmoe_matrix(ctypes.Structure):
    """One weight matrix descriptor (format F32 / BF16 here; FP8 / NVFP4 carry scales)."""
    _fields_ = [
        ("format", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
        ("data", ctypes.c_void_p),
        ("block_scales", ctypes.c_void_p),
        ("scale", ctypes.c_float),
        ("input_scale", ctypes.c_float),
    ]


class lmoe_weights(ctypes.Structure):
    _fields_ = [
        ("gate", lmoe_matrix),
        ("gate_bias", ctypes.c_void_p),
        ("latent_down", lmoe_matrix),
        ("latent_up", lmoe_matrix),
        ("expert_up", ctypes.POINTER(lmoe_matrix)),
        ("expert_gate", ctypes.POINTER(lmoe_matrix)),
        ("expert_down", ctypes.POINTER(lmoe_matrix)),
        ("shared_up", lmoe_matrix),
        ("shared_gate", lmoe_matrix),
        ("shared_down", lmoe_matrix),
    ]


_KLIB = None
_KLIB_LOCK = threading.Lock()


def kernel_library() -> ctypes.CDLL:
    """liblatentmoe.so with the kernel ABI's prototypes declared (once)."""
    global _KLIB
    with _KLIB_LOCK:
        if _KLIB is not None:
            return _KLIB
        lib = load_library()
        vp, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        cfg_p, w_p = ctypes.POINTER(lmoe_config), ctypes.POINTER(lmoe_weights)
        protos = {
            "lmoe_abi_version": (i32, []),
            "lmoe_validate": (i32, [cfg_p, w_p]),
            "lmoe_cpu_router_topk": (i32, [cfg_p, w_p, vp, i64, vp, vp]),
            "lmoe_cpu_dispatch": (i32, [cfg_p, w_p, vp, i64, vp, vp, vp, vp]),
            "lmoe_cpu_experts": (i32, [cfg_p, w_p, i64, vp, vp, vp, vp]),
            "lmoe_cpu_combine_scratch_floats": (i64, [cfg_p, i64]),
            "lmoe_cpu_combine": (i32, [cfg_p, w_p, vp, i64, vp, vp, vp, vp, vp]),
            "lmoe_cpu_forward_workspace_bytes": (i64, [cfg_p, i64]),
            "lmoe_cpu_forward": (i32, [cfg_p, w_p, vp, i64, vp, vp, vp, i64, vp]),
            "lmoe_cpu_num_threads": (i32, []),
            "lmoe_cpu_set_num_threads": (i32, [i32]),
        }
        for name, (res, args) in protos.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        if lib.lmoe_abi_version() != 2:
            raise LatentMoeError(2, "liblatentmoe.so has kernel ABI %d, this module needs 2"
                                 % lib.lmoe_abi_version())
        _KLIB = lib
        return lib


# ---------------------------------------------------------------- caller-owned tensors


class _Tensor:
    """What the library needs to know of one numpy array / torch tensor, plus the object itself
    (held, so that it stays allocated)."""

    __slots__ = ("obj", "kind", "ptr", "dtype", "shape", "strides", "device")

    def signature(self):
        return (self.ptr, self.dtype, self.shape, self.strides, self.device)


def _describe(obj, name: str) -> _Tensor:
    t = _Tensor()
    t.obj = obj
    mod = type(obj).__module__ or ""
    if mod.startswith("numpy"):
        import numpy as np
        if not isinstance(obj, np.ndarray):
            raise TypeError("%s: expected a numpy array or torch tensor, got %s" % (name, type(obj).__name__))
        codes = {np.dtype(np.float32): F32, np.dtype(np.uint16): BF16, np.dtype(np.int32): I32,
                 np.dtype(np.float16): F16}
        if obj.dtype not in codes or obj.dtype.byteorder == ">":
            raise ValueError("%s: dtype %s is not supported (float32, uint16 as bfloat16 bits, int32)"
                             % (name, obj.dtype))
        t.kind, t.dtype, t.device = "numpy", codes[obj.dtype], "cpu"
        t.ptr = obj.ctypes.data
        t.shape = tuple(int(s) for s in obj.shape)
        if any(s % obj.itemsize for s in obj.strides):
            raise ValueError("%s: strides %s are not multiples of the element size" % (name, obj.strides))
        t.strides = tuple(int(s) // obj.itemsize for s in obj.strides)
        return t
    if mod.startswith("torch"):
        import torch
        if not isinstance(obj, torch.Tensor):
            raise TypeError("%s: expected a numpy array or torch tensor, got %s" % (name, type(obj).__name__))
        codes = {torch.float32: F32, torch.bfloat16: BF16, torch.int32: I32, torch.float16: F16}
        if obj.dtype not in codes:
            raise ValueError("%s: dtype %s is not supported (float32, bfloat16, int32)" % (name, obj.dtype))
        t.kind, t.dtype = "torch", codes[obj.dtype]
        t.device = str(obj.device)
        t.shape = tuple(int(s) for s in obj.shape)
        t.strides = tuple(int(s) for s in obj.stride())
        t.ptr = obj.data_ptr() if obj.device.type != "meta" else 0
        if obj.device.type == "cpu" and obj.numel() > 0:
            # A storage freed under the tensor (resize_(0)) keeps the tensor's shape: catch it here.
            st = obj.untyped_storage()
            span = 1 + sum((s - 1) * abs(d) for s, d in zip(t.shape, t.strides))
            need = (obj.storage_offset() + span) * obj.element_size()
            if st.data_ptr() == 0 or st.nbytes() < need:
                raise ValueError("%s: the tensor's storage was freed or shrunk (%d bytes, needs %d); the "
                                 "caller owns the weights' lifetime" % (name, st.nbytes(), need))
        return t
    raise TypeError("%s: expected a numpy array or torch tensor, got %s" % (name, type(obj).__name__))


def _check_cpu(t: _Tensor, name: str) -> None:
    if t.device != "cpu":
        raise ValueError("%s is on device %s: the CPU kernels take host memory only (CUDA tensors go "
                         "through the CUDA ABI, not bound in Python yet)" % (name, t.device))


def _check_matrix(t: _Tensor, name: str, shape, dtypes) -> None:
    """A dense row-major matrix of the given shape and one of dtypes, on the CPU."""
    _check_cpu(t, name)
    if t.dtype not in dtypes:
        raise ValueError("%s has dtype %s, expected %s" % (name, _DTYPE_NAME[t.dtype],
                                                          " or ".join(_DTYPE_NAME[d] for d in dtypes)))
    if t.shape != tuple(shape):
        raise ValueError("%s has shape %s, expected %s" % (name, list(t.shape), list(shape)))
    _check_row_major(t.shape, t.strides, name)
    if t.ptr == 0 and _numel(t.shape) > 0:
        raise ValueError("%s has no data (NULL pointer)" % name)
    if t.ptr % _ITEMSIZE[t.dtype]:
        raise ValueError("%s is not aligned to its element size" % name)


def _check_row_major(shape, strides, name) -> None:
    if _numel(shape) == 0:
        return  # an empty array's strides mean nothing
    want = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s > 1 and st != want:
            raise ValueError("%s must be C-contiguous (row-major, dense): shape %s has strides %s "
                             "(elements)" % (name, list(shape), list(strides)))
        want *= s


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# ---------------------------------------------------------------- config


class Config:
    """lmoe_config: d, l (0 = standard MoE), N, K, m, ms (0 = no shared expert), activation
    ('relu2' | 'swiglu'), scoring ('sigmoid' | 'softmax'), norm_topk_prob, routed_scaling_factor."""

    def __init__(self, *, hidden_size, latent_size=0, num_experts, top_k, expert_intermediate_size,
                 shared_intermediate_size=0, activation="relu2", scoring="sigmoid",
                 norm_topk_prob=True, routed_scaling_factor=1.0):
        acts = {"relu2": ACT_RELU2, "swiglu": ACT_SWIGLU}
        scor = {"sigmoid": SCORING_SIGMOID, "softmax": SCORING_SOFTMAX}
        if activation not in acts:
            raise ValueError("activation must be one of %s, got %r" % (sorted(acts), activation))
        if scoring not in scor:
            raise ValueError("scoring must be one of %s, got %r" % (sorted(scor), scoring))
        self.hidden_size, self.latent_size = int(hidden_size), int(latent_size or 0)
        self.num_experts, self.top_k = int(num_experts), int(top_k)
        self.expert_intermediate_size = int(expert_intermediate_size)
        self.shared_intermediate_size = int(shared_intermediate_size or 0)
        self.activation, self.scoring = activation, scoring
        self.norm_topk_prob, self.routed_scaling_factor = bool(norm_topk_prob), float(routed_scaling_factor)
        self.c = lmoe_config(self.hidden_size, self.latent_size, self.num_experts, self.top_k,
                             self.expert_intermediate_size, self.shared_intermediate_size,
                             acts[activation], scor[scoring], int(self.norm_topk_prob),
                             self.routed_scaling_factor)

    @property
    def width(self) -> int:
        """The experts' width w: l for a LatentMoE, d otherwise."""
        return self.latent_size or self.hidden_size

    def experts_only(self) -> "Config":
        """The grouped experts alone as the library runs them: a standard MoE of hidden size w,
        no latent projections, no shared expert, weights taken as given (no normalisation/scale)."""
        return Config(hidden_size=self.width, num_experts=self.num_experts, top_k=self.top_k,
                      expert_intermediate_size=self.expert_intermediate_size, activation=self.activation,
                      norm_topk_prob=False, routed_scaling_factor=1.0)

    def __repr__(self):
        return ("Config(d=%d, l=%d, N=%d, K=%d, m=%d, ms=%d, %s, %s, norm=%s, scale=%g)"
                % (self.hidden_size, self.latent_size, self.num_experts, self.top_k,
                   self.expert_intermediate_size, self.shared_intermediate_size, self.activation,
                   self.scoring, self.norm_topk_prob, self.routed_scaling_factor))


# ---------------------------------------------------------------- weights


def _experts_list(obj, name, n, rows, cols, dtypes):
    """A fused [N, rows, cols] tensor or a sequence of N [rows, cols] matrices -> N _Tensors whose
    ptr points at each expert's row-major matrix (into the fused tensor: no copy)."""
    if isinstance(obj, (list, tuple)):
        if len(obj) != n:
            raise ValueError("%s: %d matrices given, expected num_experts = %d" % (name, len(obj), n))
        out = []
        for e, a in enumerate(obj):
            t = _describe(a, "%s[%d]" % (name, e))
            _check_matrix(t, "%s[%d]" % (name, e), (rows, cols), dtypes)
            out.append(t)
        return out, out
    t = _describe(obj, name)
    _check_cpu(t, name)
    if t.dtype not in dtypes:
        raise ValueError("%s has dtype %s, expected %s" % (name, _DTYPE_NAME[t.dtype],
                                                          " or ".join(_DTYPE_NAME[d] for d in dtypes)))
    if t.shape != (n, rows, cols):
        raise ValueError("%s has shape %s, expected [%d, %d, %d]" % (name, list(t.shape), n, rows, cols))
    _check_row_major(t.shape[1:], t.strides[1:], name + " (each expert's [%d, %d] slice)" % (rows, cols))
    if t.strides[0] < 0:
        raise ValueError("%s has a negative expert stride" % name)
    if t.ptr == 0 and n * rows * cols:
        raise ValueError("%s has no data (NULL pointer)" % name)
    if t.ptr % _ITEMSIZE[t.dtype]:
        raise ValueError("%s is not aligned to its element size" % name)
    size = _ITEMSIZE[t.dtype]
    views = []
    for e in range(n):
        v = _Tensor()
        v.obj, v.kind, v.dtype, v.device = obj, t.kind, t.dtype, t.device
        v.ptr, v.shape, v.strides = t.ptr + e * t.strides[0] * size, (rows, cols), t.strides[1:]
        views.append(v)
    return views, [t]


def _c_weights(m):
    """The one place that builds lmoe_weights from described tensors (m: name -> _Tensor, or a
    list of per-expert _Tensors for expert_*): one lmoe_matrix per matrix, its format the
    tensor's dtype (the F32 / BF16 codes of lmoe_weight_format equal lmoe_dtype's), scale 1."""
    def desc(t):
        return lmoe_matrix(t.dtype, 0, t.ptr, None, 1.0, 0.0) if t is not None else lmoe_matrix()

    def desc_array(key):
        ts = m.get(key)
        if ts is None:
            return None
        return (lmoe_matrix * len(ts))(*[desc(t) for t in ts])

    arrays = {k: desc_array(k) for k in ("expert_up", "expert_gate", "expert_down")}
    bias = m.get("gate_bias")
    cw = lmoe_weights(desc(m.get("gate")), bias.ptr if bias is not None else None, desc(m.get("latent_down")),
                      desc(m.get("latent_up")), arrays["expert_up"], arrays["expert_gate"],
                      arrays["expert_down"], desc(m.get("shared_up")), desc(m.get("shared_gate")),
                      desc(m.get("shared_down")))
    return cw, arrays  # the pointer arrays must outlive every call that uses cw


class Weights:
    """The layer's weights, caller-owned, described for the library (see the module docstring).
    ``gate`` may be None for a Weights used only by grouped_experts()."""

    _MATRICES = ("gate", "gate_bias", "latent_down", "latent_up", "shared_up", "shared_gate", "shared_down")

    def __init__(self, config: Config, *, gate=None, gate_bias=None, latent_down=None, latent_up=None,
                 expert_up, expert_down, expert_gate=None, shared_up=None, shared_gate=None,
                 shared_down=None):
        c = config
        d, l, n, mm, ms, w = (c.hidden_size, c.latent_size, c.num_experts, c.expert_intermediate_size,
                              c.shared_intermediate_size, c.width)
        swiglu = c.activation == "swiglu"
        wdt = (F32, BF16)
        self.config = config
        self._m, self._sources, self._experts_given = {}, [], {}

        def mat(key, obj, shape, dtypes, required, forbidden_reason=None):
            if obj is None:
                if required:
                    raise ValueError("%s is required (%s)" % (key, config))
                return
            if forbidden_reason:
                raise ValueError("%s given but %s" % (key, forbidden_reason))
            t = _describe(obj, key)
            _check_matrix(t, key, shape, dtypes)
            self._m[key] = t
            self._sources.append((key, t))

        mat("gate", gate, (n, d), wdt, False)
        mat("gate_bias", gate_bias, (n,), (F32,), False)
        mat("latent_down", latent_down, (l, d), wdt, l > 0, None if l > 0 else "latent_size is 0")
        mat("latent_up", latent_up, (d, l), wdt, l > 0, None if l > 0 else "latent_size is 0")
        mat("shared_up", shared_up, (ms, d), wdt, ms > 0, None if ms > 0 else "shared size is 0")
        mat("shared_gate", shared_gate, (ms, d), wdt, ms > 0 and swiglu,
            None if ms > 0 and swiglu else "not a SwiGLU layer with a shared expert")
        mat("shared_down", shared_down, (d, ms), wdt, ms > 0, None if ms > 0 else "shared size is 0")
        for key, obj, rows, cols in (("expert_up", expert_up, mm, w), ("expert_down", expert_down, w, mm),
                                     ("expert_gate", expert_gate, mm, w)):
            if key == "expert_gate" and not swiglu:
                if obj is not None:
                    raise ValueError("expert_gate given but the activation is relu2")
                continue
            if obj is None:
                raise ValueError("%s is required" % key)
            views, srcs = _experts_list(obj, key, n, rows, cols, wdt)
            self._m[key] = views
            self._experts_given[key] = obj
            self._sources += [("%s" % key if len(srcs) == 1 else "%s[%d]" % (key, i), s)
                              for i, s in enumerate(srcs)]
        # Each matrix keeps its own dtype (per-matrix descriptors); these name the experts' and the gate's.
        self.weight_dtype = self._m["expert_up"][0].dtype
        self.gate_dtype = self._m["gate"].dtype if "gate" in self._m else self.weight_dtype
        self._signatures = [t.signature() for _, t in self._sources]
        self._c, self._arrays = _c_weights(self._m)
        self._released = False

    @property
    def has_gate(self) -> bool:
        return "gate" in self._m

    def experts_only(self) -> "Weights":
        """The routed experts' matrices alone (for grouped_experts with config.experts_only())."""
        self._ensure_live()
        g = self._experts_given
        return Weights(self.config.experts_only(), expert_up=g["expert_up"],
                       expert_down=g["expert_down"], expert_gate=g.get("expert_gate"))

    def release(self) -> None:
        """Drops the references to the caller's tensors; any later call with these weights raises."""
        self._m, self._sources, self._experts_given, self._c, self._arrays = {}, [], {}, None, None
        self._released = True

    def _ensure_live(self) -> None:
        """Before a call: the tensors are still those described (same pointers, shapes, strides,
        storage not freed). A torch parameter replaced in place (e.g. model.to(...)) raises."""
        if self._released:
            raise ValueError("these Weights were released (Weights.release()); build new ones")
        for (key, t), sig in zip(self._sources, self._signatures):
            now = _describe(t.obj, key)
            if now.signature() != sig:
                raise ValueError("%s changed since the Weights were built (data pointer, dtype, shape, "
                                 "strides or device): build new Weights" % key)


# ---------------------------------------------------------------- activations


def _activation(x, name, shape, dtype=F32):
    t = _describe(x, name)
    _check_matrix(t, name, shape, (dtype,))
    return t


def _empty_like_kind(kind, shape, dtype):
    if kind == "torch":
        import torch
        return torch.empty(shape, dtype={F32: torch.float32, I32: torch.int32}[dtype])
    import numpy as np
    return np.empty(shape, dtype={F32: np.float32, I32: np.int32}[dtype])


def _tokens(x, name, width):
    t = _describe(x, name)
    _check_cpu(t, name)
    if t.dtype != F32:
        raise ValueError("%s has dtype %s: activations are float32 (convert explicitly)"
                         % (name, _DTYPE_NAME[t.dtype]))
    if len(t.shape) != 2 or t.shape[1] != width:
        raise ValueError("%s has shape %s, expected [T, %d]" % (name, list(t.shape), width))
    _check_matrix(t, name, t.shape, (F32,))
    return t


_WS = threading.local()


def _workspace(nbytes: int) -> int:
    """A per-thread, 64-byte aligned scratch buffer of at least nbytes; returns its address."""
    import numpy as np
    buf = getattr(_WS, "buf", None)
    if buf is None or buf.size < nbytes + 64:
        buf = np.empty(max(nbytes + 64, 1 << 16), dtype=np.uint8)
        _WS.buf = buf
    addr = buf.ctypes.data
    return addr + (-addr % 64)


def forward(config: Config, weights: Weights, x, out=None):
    """The whole layer (lmoe_cpu_forward): x float32 [T, d] -> (y [T, d], topk_ids [T, K] int32,
    topk_weights [T, K] float32), of x's kind (numpy or torch)."""
    lib = kernel_library()
    weights._ensure_live()
    if not weights.has_gate:
        raise ValueError("forward needs the router gate (Weights(gate=...))")
    c = config
    xt = _tokens(x, "x", c.hidden_size)
    T = xt.shape[0]
    y = out if out is not None else _empty_like_kind(xt.kind, (T, c.hidden_size), F32)
    yt = _activation(y, "out", (T, c.hidden_size))
    ids = _empty_like_kind(xt.kind, (T, c.top_k), I32)
    wts = _empty_like_kind(xt.kind, (T, c.top_k), F32)
    it, wt = _describe(ids, "ids"), _describe(wts, "wts")
    ws_bytes = lib.lmoe_cpu_forward_workspace_bytes(ctypes.byref(c.c), T)
    if ws_bytes < 0:
        _check(lib, 1)
    ws = _workspace(ws_bytes)
    _check(lib, lib.lmoe_cpu_forward(ctypes.byref(c.c), ctypes.byref(weights._c), xt.ptr, T, it.ptr,
                                     wt.ptr, ws, ws_bytes, yt.ptr))
    return y, ids, wts


def router_topk(config: Config, weights: Weights, x):
    """Router + top-K (lmoe_cpu_router_topk): x float32 [T, d] -> (topk_ids, topk_weights)."""
    lib = kernel_library()
    weights._ensure_live()
    if not weights.has_gate:
        raise ValueError("router_topk needs the router gate (Weights(gate=...))")
    xt = _tokens(x, "x", config.hidden_size)
    T = xt.shape[0]
    ids = _empty_like_kind(xt.kind, (T, config.top_k), I32)
    wts = _empty_like_kind(xt.kind, (T, config.top_k), F32)
    _check(lib, lib.lmoe_cpu_router_topk(ctypes.byref(config.c), ctypes.byref(weights._c), xt.ptr, T,
                                         _describe(ids, "ids").ptr, _describe(wts, "wts").ptr))
    return ids, wts


def _ids_int32(ids, n, T, K):
    """topk ids [T, K] of any integer dtype -> an int32 C-contiguous array of the same kind, checked
    in range BEFORE narrowing (an int64 2**32 + 1 must not become a valid 1)."""
    mod = type(ids).__module__ or ""
    if mod.startswith("torch"):
        import torch
        if ids.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8):
            raise ValueError("topk_ids has dtype %s, expected an integer dtype" % ids.dtype)
        if ids.device.type != "cpu":
            raise ValueError("topk_ids is on device %s: the CPU kernels take host memory only" % ids.device)
        if tuple(ids.shape) != (T, K):
            raise ValueError("topk_ids has shape %s, expected [%d, %d]" % (list(ids.shape), T, K))
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError("topk_ids has values in [%d, %d], outside [0, %d)" % (int(ids.min()), int(ids.max()), n))
        return ids.to(torch.int32).contiguous()
    import numpy as np
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        raise ValueError("topk_ids must be an integer numpy array or torch tensor, got %s"
                         % getattr(ids, "dtype", type(ids).__name__))
    if ids.shape != (T, K):
        raise ValueError("topk_ids has shape %s, expected [%d, %d]" % (list(ids.shape), T, K))
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError("topk_ids has values in [%d, %d], outside [0, %d)" % (int(ids.min()), int(ids.max()), n))
    return np.ascontiguousarray(ids, dtype=np.int32)


def grouped_experts(config: Config, weights: Weights, z, topk_ids, topk_weights, out=None):
    """The routed experts alone: out[t] = sum_k topk_weights[t,k] * expert_{topk_ids[t,k]}(z[t]),
    k in order, f32 accumulation (lmoe_cpu_dispatch + lmoe_cpu_experts + lmoe_cpu_combine of the
    standard-MoE config of hidden size w: no latent projection, no shared expert).
    z float32 [T, w], topk_ids [T, K] integer, topk_weights float32 [T, K]."""
    c = config
    if c.latent_size or c.shared_intermediate_size:
        raise ValueError("grouped_experts takes config.experts_only() (no latent, no shared expert), got %r" % c)
    lib = kernel_library()
    weights._ensure_live()
    zt = _tokens(z, "hidden_states", c.hidden_size)
    T, K, N, w = zt.shape[0], c.top_k, c.num_experts, c.hidden_size
    ids = _ids_int32(topk_ids, N, T, K)
    it = _describe(ids, "topk_ids")
    wt = _activation(topk_weights, "topk_weights", (T, K))
    y = out if out is not None else _empty_like_kind(zt.kind, (T, w), F32)
    yt = _activation(y, "out", (T, w))
    S = T * K
    import numpy as np
    offsets = np.empty(N + 1, np.int32)
    row_of_slot = np.empty(max(S, 1), np.int32)
    sorted_in = np.empty((max(S, 1), w), np.float32)
    hidden = np.empty((max(S, 1), c.expert_intermediate_size), np.float32)
    sorted_out = np.empty((max(S, 1), w), np.float32)
    cp, wp = ctypes.byref(c.c), ctypes.byref(weights._c)
    _check(lib, lib.lmoe_cpu_dispatch(cp, wp, zt.ptr, T, it.ptr, offsets.ctypes.data,
                                      row_of_slot.ctypes.data, sorted_in.ctypes.data))
    _check(lib, lib.lmoe_cpu_experts(cp, wp, T, offsets.ctypes.data, sorted_in.ctypes.data,
                                     hidden.ctypes.data, sorted_out.ctypes.data))
    # experts-only config: no latent, no shared expert -> the combine needs no scratch.
    _check(lib, lib.lmoe_cpu_combine(cp, wp, zt.ptr, T, wt.ptr, row_of_slot.ctypes.data,
                                     sorted_out.ctypes.data, None, yt.ptr))
    del ids
    return y
