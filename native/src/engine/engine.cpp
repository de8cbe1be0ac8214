// The entry points of latentmoe_engine.h: the layer handle's life (open, calls in flight, close)
// and the forward paths. Loading is weights.cpp's, the DLPack / Arrow structs interop.cpp's.
//
// A handle is a small shell that is never freed: lmoe_layer_close frees the layer's state (the
// mappings, the converted weights, the workspaces) once the calls in flight have returned, and
// leaves the shell marked closed, so a call on a closed handle (or a second close) is an error
// status instead of a use after free. The shell costs sizeof(lmoe_layer) (120 bytes) per
// layer ever opened.
#include "latentmoe_engine.h"

#include <atomic>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "interop.h"
#include "layer_state.h"

#define LMOE_API extern "C" __attribute__((visibility("default")))

namespace lmoe {
// From the CPU backend (src/cpu/errors.cpp): the per-thread message of lmoe_last_error().
void set_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void clear_error();
}  // namespace lmoe

using lmoe::engine::EngineError;
using lmoe::engine::LayerState;
using lmoe::engine::Workspace;
using lmoe::engine::fail;
using lmoe::engine::invalid;

struct lmoe_layer {
  static constexpr uint64_t kMagic = 0x4C4D4F454C415952ull;  // "LMOELAYR"
  static constexpr uint64_t kClosed = 1ull << 63;
  uint64_t magic = kMagic;
  std::atomic<uint64_t> state{0};  // kClosed | calls in flight
  std::mutex mutex;                // with drained: close waits for the calls in flight
  std::condition_variable drained;
  LayerState* impl = nullptr;
  std::atomic<const void*> last_input{nullptr};
};

namespace {

constexpr const char* kOpen = "lmoe_layer_open";

template <class F>
lmoe_status guard(F&& f) {
  lmoe::clear_error();
  try {
    return f();
  } catch (const EngineError& e) {
    lmoe::set_error("%s", e.what());
    return e.status;
  } catch (const std::bad_alloc&) {
    lmoe::set_error("out of memory");
    return LMOE_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    lmoe::set_error("internal error: %s", e.what());
    return LMOE_ERR_INTERNAL;
  } catch (...) {
    lmoe::set_error("internal error");
    return LMOE_ERR_INTERNAL;
  }
}

// One call on a layer: counted in flight from construction to destruction, refused once the
// layer is closed (or closing).
class Call {
 public:
  Call(const lmoe_layer* layer, const char* fn) : L_(const_cast<lmoe_layer*>(layer)) {
    if (!L_) invalid(std::string(fn) + ": layer is NULL");
    if (L_->magic != lmoe_layer::kMagic) invalid(std::string(fn) + ": not a layer handle");
    const uint64_t s = L_->state.fetch_add(1, std::memory_order_acquire);
    if (s & lmoe_layer::kClosed) {
      leave();
      L_ = nullptr;
      invalid(std::string(fn) + ": the layer is closed");
    }
  }
  ~Call() {
    if (L_) leave();
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  LayerState& state() const { return *L_->impl; }
  lmoe_layer* layer() const { return L_; }

 private:
  void leave() {
    const uint64_t s = L_->state.fetch_sub(1, std::memory_order_release) - 1;
    if (s == lmoe_layer::kClosed) {  // the last call out of a closing layer
      std::lock_guard<std::mutex> lk(L_->mutex);
      L_->drained.notify_all();
    }
  }
  lmoe_layer* L_;
};

Workspace* acquire(LayerState& L) {
  {
    std::lock_guard<std::mutex> lk(L.pool_mutex);
    if (!L.pool.empty()) {
      Workspace* ws = L.pool.back();
      L.pool.pop_back();
      return ws;
    }
  }
  return new Workspace();
}

void give_back(LayerState& L, Workspace* ws) {
  std::lock_guard<std::mutex> lk(L.pool_mutex);
  try {
    L.pool.push_back(ws);
  } catch (...) {
    delete ws;
  }
}

// x, out: T*d floats each (the caller validated shapes). Checks finiteness and overlap, then runs.
lmoe_status run_forward(const Call& call, const char* fn, const float* x, int64_t T, float* out, int32_t* ids,
                        float* wts) {
  LayerState& L = call.state();
  const int64_t d = L.cfg.hidden_size;
  if (T < 0) invalid(std::string(fn) + ": num_tokens must be >= 0, got " + std::to_string((long long)T));
  if (T == 0) return LMOE_OK;
  if (T > (int64_t)INT32_MAX / L.cfg.top_k)
    invalid(std::string(fn) + ": num_tokens * top_k must fit in int32 (num_tokens=" + std::to_string((long long)T) + ")");
  if (!x) invalid(std::string(fn) + ": x is NULL");
  if (!out) invalid(std::string(fn) + ": out is NULL");
  if ((uintptr_t)x % 4 || (uintptr_t)out % 4) invalid(std::string(fn) + ": x and out must be 4-byte aligned");
  const int64_t n = T * d;
  const uintptr_t xb = (uintptr_t)x, xe = xb + (uintptr_t)n * 4, ob = (uintptr_t)out, oe = ob + (uintptr_t)n * 4;
  if (xb < oe && ob < xe) invalid(std::string(fn) + ": out overlaps x (in-place forward is not supported)");
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    if ((bits & 0x7F800000u) == 0x7F800000u) {
      invalid(std::string(fn) + ": x[" + std::to_string((long long)(i / d)) + ", " +
              std::to_string((long long)(i % d)) + "] is " + (std::isnan(x[i]) ? "NaN" : "infinite") +
              " (non-finite inputs are rejected)");
    }
  }
  const int64_t need = lmoe_cpu_forward_workspace_bytes(&L.cfg, T);
  if (need < 0) return LMOE_ERR_INVALID_ARGUMENT;  // message set by the kernel ABI
  Workspace* ws = acquire(L);
  struct Back {
    LayerState& L;
    Workspace* ws;
    ~Back() { give_back(L, ws); }
  } back{L, ws};
  if (ws->bytes < need) {
    std::free(ws->buf);
    ws->buf = nullptr;
    ws->bytes = 0;
    size_t sz = ((size_t)need + 63) / 64 * 64;
    ws->buf = std::aligned_alloc(64, sz ? sz : 64);
    if (!ws->buf) throw std::bad_alloc();
    ws->bytes = (int64_t)sz;
  }
  const size_t tk = (size_t)T * (size_t)L.cfg.top_k;
  if (!ids) {
    if (ws->ids.size() < tk) ws->ids.resize(tk);
    ids = ws->ids.data();
  }
  if (!wts) {
    if (ws->wts.size() < tk) ws->wts.resize(tk);
    wts = ws->wts.data();
  }
  lmoe_status st = lmoe_cpu_forward(&L.cfg, &L.w, x, T, ids, wts, ws->buf, ws->bytes, out);
  if (st == LMOE_OK) call.layer()->last_input.store(x, std::memory_order_relaxed);
  return st;
}

}  // namespace

// ------------------------------------------------------------------ C entry points

LMOE_API int32_t lmoe_engine_abi_version(void) { return LMOE_ENGINE_ABI_VERSION; }

LMOE_API lmoe_status lmoe_layer_open(const char* dir, int32_t layer_index, lmoe_layer** out) {
  if (out) *out = nullptr;
  return guard([&]() -> lmoe_status {
    if (!out) invalid(std::string(kOpen) + ": out is NULL");
    if (!dir) invalid(std::string(kOpen) + ": dir is NULL");
    if (layer_index < 0) invalid(std::string(kOpen) + ": layer index " + std::to_string(layer_index) + " < 0");
    std::unique_ptr<LayerState> L(new LayerState());
    try {
      lmoe::engine::load_layer(*L, dir, layer_index);
    } catch (const EngineError& e) {
      fail(e.status, std::string(kOpen) + ": " + e.what());
    }
    lmoe_status st = lmoe_validate(&L->cfg, &L->w);
    if (st != LMOE_OK) fail(st, std::string(kOpen) + ": " + dir + ": " + lmoe_last_error());
    lmoe_layer* h = new lmoe_layer();
    h->impl = L.release();
    *out = h;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_checkpoint_config(const char* dir, int32_t layer_index, lmoe_config* out) {
  return guard([&]() -> lmoe_status {
    const char* fn = "lmoe_checkpoint_config";
    if (!out) invalid(std::string(fn) + ": out is NULL");
    if (!dir) invalid(std::string(fn) + ": dir is NULL");
    if (layer_index < 0) invalid(std::string(fn) + ": layer index " + std::to_string(layer_index) + " < 0");
    try {
      *out = lmoe::engine::read_layer_config(dir, layer_index);
    } catch (const EngineError& e) {
      fail(e.status, std::string(fn) + ": " + e.what());
    }
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_config(const lmoe_layer* layer, lmoe_config* out) {
  return guard([&]() -> lmoe_status {
    Call call(layer, "lmoe_layer_config");
    if (!out) invalid("lmoe_layer_config: out is NULL");
    *out = call.state().cfg;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_weights(const lmoe_layer* layer, const lmoe_weights** out) {
  return guard([&]() -> lmoe_status {
    Call call(layer, "lmoe_layer_weights");
    if (!out) invalid("lmoe_layer_weights: out is NULL");
    *out = &call.state().w;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_memory_info(const lmoe_layer* layer, lmoe_layer_memory* out) {
  return guard([&]() -> lmoe_status {
    Call call(layer, "lmoe_layer_memory_info");
    if (!out) invalid("lmoe_layer_memory_info: out is NULL");
    *out = call.state().memory;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_weight_info(const lmoe_layer* layer, int32_t* weight_dtype, int32_t* gate_dtype,
                                            int64_t* converted_bytes) {
  return guard([&]() -> lmoe_status {
    Call call(layer, "lmoe_layer_weight_info");
    const LayerState& L = call.state();
    if (weight_dtype) *weight_dtype = L.expert_dtype;
    if (gate_dtype) *gate_dtype = L.gate_dtype;
    if (converted_bytes) *converted_bytes = L.memory.converted_bytes;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_forward(lmoe_layer* layer, const float* x, int64_t num_tokens, float* out,
                                        int32_t* topk_ids, float* topk_weights) {
  return guard([&]() -> lmoe_status {
    Call call(layer, "lmoe_layer_forward");
    return run_forward(call, "lmoe_layer_forward", x, num_tokens, out, topk_ids, topk_weights);
  });
}

LMOE_API lmoe_status lmoe_layer_forward_dlpack(lmoe_layer* layer, const DLManagedTensorVersioned* x,
                                               DLManagedTensorVersioned* out) {
  return guard([&]() -> lmoe_status {
    const char* fn = "lmoe_layer_forward_dlpack";
    Call call(layer, fn);
    const int64_t d = call.state().cfg.hidden_size;
    int64_t T = 0, To = 0;
    const float* xp = lmoe::engine::dl_data(x, fn, "x", d, &T, false);
    float* op = (float*)lmoe::engine::dl_data(out, fn, "out", d, &To, true);
    if (To != T)
      invalid(std::string(fn) + ": out has " + std::to_string((long long)To) + " rows but x has " +
              std::to_string((long long)T));
    return run_forward(call, fn, xp, T, op, nullptr, nullptr);
  });
}

LMOE_API lmoe_status lmoe_layer_forward_arrow(lmoe_layer* layer, const struct ArrowArray* x,
                                              const struct ArrowSchema* x_schema, struct ArrowArray* out,
                                              struct ArrowSchema* out_schema) {
  return guard([&]() -> lmoe_status {
    const char* fn = "lmoe_layer_forward_arrow";
    Call call(layer, fn);
    if (!out) invalid(std::string(fn) + ": out is NULL");
    if (!out_schema) invalid(std::string(fn) + ": out_schema is NULL");
    const int64_t d = call.state().cfg.hidden_size;
    int64_t T = 0;
    bool ext = false;
    const float* xp = lmoe::engine::arrow_data(x, x_schema, fn, d, &T, &ext);
    lmoe::engine::ArrowOutput result(T, d, ext);
    lmoe_status st = run_forward(call, fn, xp, T, result.values(), nullptr, nullptr);
    if (st != LMOE_OK) return st;
    result.export_to(out, out_schema);
    return LMOE_OK;
  });
}

LMOE_API const void* lmoe_layer_last_input(const lmoe_layer* layer) {
  if (!layer || layer->magic != lmoe_layer::kMagic || (layer->state.load() & lmoe_layer::kClosed)) return nullptr;
  return layer->last_input.load(std::memory_order_relaxed);
}

LMOE_API lmoe_status lmoe_layer_close(lmoe_layer* layer) {
  return guard([&]() -> lmoe_status {
    if (!layer) return LMOE_OK;
    if (layer->magic != lmoe_layer::kMagic) invalid("lmoe_layer_close: not a layer handle");
    const uint64_t s = layer->state.fetch_or(lmoe_layer::kClosed, std::memory_order_acq_rel);
    if (s & lmoe_layer::kClosed) invalid("lmoe_layer_close: the layer is already closed");
    // New calls are refused from here on; wait for the ones in flight, then free.
    {
      std::unique_lock<std::mutex> lk(layer->mutex);
      layer->drained.wait(lk, [&] { return layer->state.load(std::memory_order_acquire) == lmoe_layer::kClosed; });
    }
    delete layer->impl;
    layer->impl = nullptr;
    return LMOE_OK;
  });
}
