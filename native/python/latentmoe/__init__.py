"""latentmoe: one (Latent)MoE layer of a Nemotron-H checkpoint, from Python.

Pure Python (ctypes) over the engine ABI of liblatentmoe.so (native/include/latentmoe_engine.h):

    import numpy as np, latentmoe
    with latentmoe.Layer("ckpt_dir", 3) as layer:
        y = layer.forward(x)          # x: float32 [T, d] numpy array, torch tensor or
                                      #    pyarrow FixedSizeListArray<float32>[d]; y: the same type

Inputs are read in place (zero copy) through DLPack (``__dlpack__``) or the Arrow PyCapsule
interface (``__arrow_c_array__``); the library validates them (float32, [T, d], C-contiguous,
host memory, no nulls, finite values) and raises :class:`LatentMoeError` with its message
otherwise. Nothing is converted silently: pass float32 data.

The library is found at, in order: ``$LATENTMOE_LIB`` (the .so file or its directory),
``liblatentmoe.so`` next to this package, ``<repo>/native/build/lib/liblatentmoe.so``.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import threading

__all__ = ["Layer", "LatentMoeError", "library_path", "load_library"]

# ---------------------------------------------------------------- C structs (latentmoe_engine.h)


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):  # DLPack < 1.0 ("dltensor" capsules)
    pass


DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))),
]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]


class ArrowSchema(ctypes.Structure):
    pass


ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_void_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowSchema))),
    ("dictionary", ctypes.POINTER(ArrowSchema)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class ArrowArray(ctypes.Structure):
    pass


ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
    ("dictionary", ctypes.POINTER(ArrowArray)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class lmoe_config(ctypes.Structure):
    _fields_ = [
        ("hidden_size", ctypes.c_int32),
        ("latent_size", ctypes.c_int32),
        ("num_experts", ctypes.c_int32),
        ("top_k", ctypes.c_int32),
        ("expert_intermediate_size", ctypes.c_int32),
        ("shared_intermediate_size", ctypes.c_int32),
        ("activation", ctypes.c_int32),
        ("scoring", ctypes.c_int32),
        ("norm_topk_prob", ctypes.c_int32),
        ("routed_scaling_factor", ctypes.c_float),
        ("precision", ctypes.c_int32),  # lmoe_precision: 0 exact (f32 activations), 1 bf16
    ]


kDLCPU = 1
DLPACK_FLAG_BITMASK_READ_ONLY = 1
_DTYPE_NAMES = {0: "F32", 1: "BF16", 2: "F16", 3: "I32", 4: "F8_E4M3", 5: "U8"}

# ---------------------------------------------------------------- library


class LatentMoeError(RuntimeError):
    """A failed library call: ``status`` is the lmoe_status, the message lmoe_last_error()."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def library_path() -> pathlib.Path:
    """Where liblatentmoe.so is loaded from (see the module docstring)."""
    env = os.environ.get("LATENTMOE_LIB")
    if env:
        p = pathlib.Path(env)
        return p / "liblatentmoe.so" if p.is_dir() else p
    here = pathlib.Path(__file__).resolve().parent
    for cand in (here / "liblatentmoe.so", here.parent.parent / "build" / "lib" / "liblatentmoe.so"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        "liblatentmoe.so not found: set LATENTMOE_LIB, put it next to the latentmoe package or "
        "build native/ into native/build (./latentmoe build)")


_LIB = None
_LIB_LOCK = threading.Lock()


def load_library() -> ctypes.CDLL:
    """Loads liblatentmoe.so once and declares the engine ABI's prototypes."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        lib = ctypes.CDLL(str(library_path()))
        vp, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        protos = {
            "lmoe_last_error": (ctypes.c_char_p, []),
            "lmoe_engine_abi_version": (i32, []),
            "lmoe_layer_open": (i32, [ctypes.c_char_p, i32, ctypes.POINTER(vp)]),
            "lmoe_layer_config": (i32, [vp, ctypes.POINTER(lmoe_config)]),
            "lmoe_layer_weight_info": (i32, [vp, ctypes.POINTER(i32), ctypes.POINTER(i32),
                                             ctypes.POINTER(i64)]),
            "lmoe_layer_forward": (i32, [vp, vp, i64, vp, vp, vp]),
            "lmoe_layer_forward_dlpack": (i32, [vp, vp, vp]),
            "lmoe_layer_forward_arrow": (i32, [vp, vp, vp, vp, vp]),
            "lmoe_layer_last_input": (vp, [vp]),
            "lmoe_layer_close": (i32, [vp]),
        }
        for name, (res, args) in protos.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        if lib.lmoe_engine_abi_version() != 2:
            raise LatentMoeError(2, "liblatentmoe.so has engine ABI %d, this package needs 2"
                                 % lib.lmoe_engine_abi_version())
        _LIB = lib
        return lib


def _check(lib, status: int) -> None:
    if status != 0:
        msg = lib.lmoe_last_error()
        raise LatentMoeError(status, msg.decode("utf-8", "replace") if msg else "error %d" % status)


# ---------------------------------------------------------------- capsules

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _capsule_pointer(capsule, name: bytes) -> int:
    if not _api.PyCapsule_IsValid(capsule, name):
        raise TypeError("expected a PyCapsule named %r" % name.decode())
    return _api.PyCapsule_GetPointer(capsule, name)


class _DLPackView:
    """A borrowed DLManagedTensorVersioned* for obj (kept alive, never consumed: the capsule's
    destructor still owns the tensor, so the producer's deleter runs when the view is dropped)."""

    def __init__(self, obj):
        try:
            self.capsule = obj.__dlpack__(max_version=(1, 0))
        except TypeError:  # producer without the max_version keyword (DLPack < 1.0)
            self.capsule = obj.__dlpack__()
        if _api.PyCapsule_IsValid(self.capsule, b"dltensor_versioned"):
            self.ptr = _capsule_pointer(self.capsule, b"dltensor_versioned")
        else:
            legacy = ctypes.cast(_capsule_pointer(self.capsule, b"dltensor"),
                                 ctypes.POINTER(DLManagedTensor)).contents
            # Re-wrap the legacy tensor in a versioned header (same DLTensor, no deleter).
            self.wrapper = DLManagedTensorVersioned()
            self.wrapper.version = DLPackVersion(1, 0)
            self.wrapper.flags = 0
            self.wrapper.dl_tensor = legacy.dl_tensor
            self.ptr = ctypes.addressof(self.wrapper)

    def rows(self) -> int:
        """shape[0] of the tensor (0 for a 0-d tensor); the library checks the rest."""
        t = ctypes.cast(self.ptr, ctypes.POINTER(DLManagedTensorVersioned)).contents.dl_tensor
        return int(t.shape[0]) if t.ndim >= 1 and t.shape else 0

    def data_pointer(self) -> int:
        t = ctypes.cast(self.ptr, ctypes.POINTER(DLManagedTensorVersioned)).contents.dl_tensor
        return (t.data or 0) + t.byte_offset


def _kind(x) -> str:
    mod = type(x).__module__ or ""
    if mod.startswith("numpy"):
        return "numpy"
    if mod.startswith("torch"):
        return "torch"
    if hasattr(x, "__arrow_c_array__"):
        return "arrow"
    if hasattr(x, "__dlpack__"):
        return "dlpack"
    raise TypeError("forward() takes a numpy array, a torch tensor, a pyarrow FixedSizeListArray or "
                    "any __dlpack__ / __arrow_c_array__ object, got %s" % type(x).__name__)


# ---------------------------------------------------------------- Layer


class Layer:
    """Layer ``layer_index`` of the checkpoint in ``path`` (config.json + safetensors)."""

    def __init__(self, path, layer_index: int):
        self._lib = load_library()
        handle = ctypes.c_void_p()
        _check(self._lib, self._lib.lmoe_layer_open(os.fsencode(os.fspath(path)), int(layer_index),
                                                    ctypes.byref(handle)))
        self._h = handle
        cfg = lmoe_config()
        _check(self._lib, self._lib.lmoe_layer_config(self._h, ctypes.byref(cfg)))
        self.config = {name: getattr(cfg, name) for name, _ in lmoe_config._fields_}
        self.hidden_size = cfg.hidden_size
        self.top_k = cfg.top_k

    # -- lifetime
    def close(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h:
            self._lib.lmoe_layer_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if not self._h:
            raise ValueError("layer is closed")
        return self._h

    # -- information
    def weight_info(self) -> dict:
        """{'weight_dtype', 'gate_dtype', 'converted_bytes'}: dtypes the kernels run on and the
        bytes widened at open (0 = every weight used in place from the mapped file)."""
        w, g, c = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int64()
        _check(self._lib, self._lib.lmoe_layer_weight_info(self._handle(), ctypes.byref(w),
                                                           ctypes.byref(g), ctypes.byref(c)))
        return {"weight_dtype": _DTYPE_NAMES[w.value], "gate_dtype": _DTYPE_NAMES[g.value],
                "converted_bytes": c.value}

    def last_input_pointer(self) -> int:
        """Address of the x data the last successful forward call read (zero-copy tests)."""
        return self._lib.lmoe_layer_last_input(self._handle()) or 0

    # -- forward
    def forward(self, x):
        """y = layer(x) for x [T, d] float32; y has x's type (numpy, torch, pyarrow)."""
        kind = _kind(x)
        if kind == "arrow":
            return self._forward_arrow(x)
        # The row count comes from the DLPack tensor itself: any __dlpack__ producer works, with or
        # without a .shape attribute (the library validates ndim, dtype, strides and device).
        xv = _DLPackView(x)
        rows = xv.rows()
        if kind == "torch":
            import torch
            out = torch.empty((rows, self.hidden_size), dtype=torch.float32)
        else:
            import numpy as np
            out = np.empty((rows, self.hidden_size), dtype=np.float32)
        ov = _DLPackView(out)
        _check(self._lib, self._lib.lmoe_layer_forward_dlpack(self._handle(), xv.ptr, ov.ptr))
        del xv, ov
        return out

    __call__ = forward

    def forward_raw(self, x):
        """The raw-pointer entry point on a float32 C-contiguous numpy array:
        returns (y [T, d] float32, topk_ids [T, K] int32, topk_weights [T, K] float32)."""
        import numpy as np
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 \
                or not x.flags.c_contiguous:
            raise TypeError("forward_raw takes a C-contiguous float32 numpy array [T, d]")
        if x.shape[1] != self.hidden_size:
            raise ValueError("x has shape %s, expected [T, %d]" % (x.shape, self.hidden_size))
        t = x.shape[0]
        y = np.empty((t, self.hidden_size), dtype=np.float32)
        ids = np.empty((t, self.top_k), dtype=np.int32)
        wts = np.empty((t, self.top_k), dtype=np.float32)
        _check(self._lib, self._lib.lmoe_layer_forward(
            self._handle(), x.ctypes.data if t else None, t, y.ctypes.data if t else None,
            ids.ctypes.data if t else None, wts.ctypes.data if t else None))
        return y, ids, wts

    def _forward_arrow(self, x):
        import pyarrow as pa
        schema_cap, array_cap = x.__arrow_c_array__()
        xs = _capsule_pointer(schema_cap, b"arrow_schema")
        xa = _capsule_pointer(array_cap, b"arrow_array")
        out, out_schema = ArrowArray(), ArrowSchema()
        _check(self._lib, self._lib.lmoe_layer_forward_arrow(
            self._handle(), xa, xs, ctypes.addressof(out), ctypes.addressof(out_schema)))
        del schema_cap, array_cap  # their destructors release x's exported structs
        # pyarrow moves the structs (marks them released) and calls our release callbacks later.
        return pa.Array._import_from_c(ctypes.addressof(out), ctypes.addressof(out_schema))
