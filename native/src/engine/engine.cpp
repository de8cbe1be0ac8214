// The engine ABI (latentmoe_engine.h): a layer opened from a checkpoint, run on raw pointers,
// DLPack and Arrow C Data. Weight loading follows the Java MoeWeights.fromCheckpoint rules so the
// kernels see the same bytes and produce bit-identical results.
#include "latentmoe_engine.h"

#include "checkpoint.h"

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#define LMOE_API extern "C" __attribute__((visibility("default")))

namespace lmoe {
// From the CPU backend (src/cpu/errors.cpp): the per-thread message of lmoe_last_error().
void set_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void clear_error();
}  // namespace lmoe

using lmoe::engine::Checkpoint;
using lmoe::engine::EngineError;
using lmoe::engine::JValue;
using lmoe::engine::TensorView;
using lmoe::engine::fail;
using lmoe::engine::json_type_name;

namespace {

struct Workspace {
  void* buf = nullptr;
  int64_t bytes = 0;
  std::vector<int32_t> ids;
  std::vector<float> wts;
  ~Workspace() { std::free(buf); }
};

}  // namespace

struct lmoe_layer {
  lmoe_config cfg{};
  lmoe_weights w{};
  int32_t weight_dtype = LMOE_DTYPE_F32;  // the one format of the non-gate matrices today
  std::unique_ptr<Checkpoint> ckpt;  // owns the mappings
  std::vector<lmoe_matrix> up, gate, down;  // per-expert descriptors
  std::vector<void*> owned;          // widened / realigned copies (free())
  int64_t converted_bytes = 0;
  std::mutex pool_mutex;
  std::vector<Workspace*> pool;      // idle workspaces
  std::atomic<const void*> last_input{nullptr};

  ~lmoe_layer() {
    for (void* p : owned) std::free(p);
    for (Workspace* ws : pool) delete ws;
  }
};

namespace {

constexpr const char* kOpen = "lmoe_layer_open";

// ------------------------------------------------------------------ entry point wrapper

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

[[noreturn]] void invalid(const std::string& m) { fail(LMOE_ERR_INVALID_ARGUMENT, m); }

std::string fmt_shape(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string((long long)s[i]);
  return o + "]";
}

const char* dtype_name(int dt) {
  switch (dt) {
    case LMOE_DTYPE_F32: return "F32";
    case LMOE_DTYPE_BF16: return "BF16";
    case LMOE_DTYPE_F16: return "F16";
    case LMOE_DTYPE_I32: return "I32";
  }
  return "?";
}

// ------------------------------------------------------------------ config.json (MoeConfig.fromConfigJson)

[[noreturn]] void bad_config(const std::string& m) { invalid("invalid MoE config: " + m); }

bool absent(const JValue* v) { return !v || v->kind == JValue::NUL; }

std::string show(const JValue* v) {
  if (!v) return "absent";
  switch (v->kind) {
    case JValue::INT: return std::to_string((long long)v->i);
    case JValue::DOUBLE: { char b[64]; std::snprintf(b, sizeof b, "%.17g", v->d); return b; }
    case JValue::STRING: return "'" + (v->s.size() > 64 ? v->s.substr(0, 64) + "..." : v->s) + "'";
    case JValue::BOOL: return v->b ? "true" : "false";
    default: return json_type_name(v);
  }
}

int int_key(const JValue& j, const char* key, bool has_fallback, int fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) {
    if (has_fallback) return fallback;
    bad_config(std::string("config.json has no '") + key + "'");
  }
  if (v->is_number()) {
    double dv = v->as_double();
    if (dv == std::rint(dv) && std::fabs(dv) <= (double)INT_MAX) return (int)dv;
  }
  bad_config(std::string("'") + key + "' must be an integer, got " + show(v));
}

double double_key(const JValue& j, const char* key, double fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->is_number()) return v->as_double();
  bad_config(std::string("'") + key + "' must be a number, got " + show(v));
}

bool bool_key(const JValue& j, const char* key, bool fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->kind == JValue::BOOL) return v->b;
  bad_config(std::string("'") + key + "' must be true or false, got " + show(v));
}

std::string string_key(const JValue& j, const char* key, const char* fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->kind == JValue::STRING) return v->s;
  bad_config(std::string("'") + key + "' must be a string, got " + show(v));
}

lmoe_config parse_config(const JValue& j) {
  lmoe_config c{};
  c.hidden_size = int_key(j, "hidden_size", false, 0);
  c.latent_size = absent(j.get("moe_latent_size")) ? 0 : int_key(j, "moe_latent_size", false, 0);
  c.num_experts = int_key(j, "n_routed_experts", false, 0);
  c.top_k = int_key(j, "num_experts_per_tok", false, 0);
  c.expert_intermediate_size = int_key(j, "moe_intermediate_size", false, 0);
  c.shared_intermediate_size = int_key(j, "moe_shared_expert_intermediate_size", true, 0);
  c.routed_scaling_factor = (float)double_key(j, "routed_scaling_factor", 1.0);
  c.norm_topk_prob = bool_key(j, "norm_topk_prob", true) ? 1 : 0;
  std::string act = string_key(j, "mlp_hidden_act", "relu2");
  if (act == "relu2") c.activation = LMOE_ACT_RELU2;
  else if (act == "silu" || act == "swiglu") c.activation = LMOE_ACT_SWIGLU;
  else invalid("unsupported mlp_hidden_act '" + act.substr(0, 64) + "' (relu2, silu/swiglu)");
  std::string sc = string_key(j, "scoring_func", "sigmoid");
  if (sc == "sigmoid") c.scoring = LMOE_SCORING_SIGMOID;
  else if (sc == "softmax") c.scoring = LMOE_SCORING_SOFTMAX;
  else invalid("unsupported scoring_func '" + sc.substr(0, 64) + "' (sigmoid, softmax)");
  const JValue* groups = j.get("n_group");
  if (!absent(groups) && int_key(j, "n_group", true, 1) > 1) {
    fail(LMOE_ERR_UNSUPPORTED, "invalid MoE config: group-limited routing (n_group = " + show(groups) +
                                   ") is not supported");
  }
  // MoeConfig's checks, with its messages.
  if (c.hidden_size <= 0) bad_config("hidden_size must be > 0, got " + std::to_string(c.hidden_size));
  if (c.latent_size < 0) bad_config("moe_latent_size must be >= 0, got " + std::to_string(c.latent_size));
  if (c.num_experts < 1 || c.num_experts > 2048)
    bad_config("n_routed_experts must be in 1..2048, got " + std::to_string(c.num_experts));
  if (c.top_k < 1 || c.top_k > 32)
    bad_config("num_experts_per_tok must be in 1..32, got " + std::to_string(c.top_k));
  if (c.top_k > c.num_experts)
    bad_config("num_experts_per_tok (" + std::to_string(c.top_k) + ") > n_routed_experts (" +
               std::to_string(c.num_experts) + ")");
  if (c.expert_intermediate_size <= 0)
    bad_config("moe_intermediate_size must be > 0, got " + std::to_string(c.expert_intermediate_size));
  if (c.shared_intermediate_size < 0)
    bad_config("moe_shared_expert_intermediate_size must be >= 0, got " +
               std::to_string(c.shared_intermediate_size));
  if (!std::isfinite(c.routed_scaling_factor)) bad_config("routed_scaling_factor must be finite");
  return c;
}

// ------------------------------------------------------------------ weights (MoeWeights.fromCheckpoint)

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; man <<= 1; } while ((man & 0x400) == 0);
      man &= 0x3FF;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void* alloc64(lmoe_layer* L, size_t bytes) {
  size_t n = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n ? n : 64);
  if (!p) throw std::bad_alloc();
  L->owned.push_back(p);
  L->converted_bytes += (int64_t)bytes;
  return p;
}

// Widens t to F32 into the layer's own memory (exact for BF16/F16; I32 is rounded as Java's (float)).
TensorView to_f32(lmoe_layer* L, const TensorView& t) {
  float* dst = (float*)alloc64(L, (size_t)t.numel * 4);
  const unsigned char* s = (const unsigned char*)t.data;
  for (int64_t i = 0; i < t.numel; ++i) {
    switch (t.dtype) {
      case LMOE_DTYPE_F32: std::memcpy(&dst[i], s + 4 * i, 4); break;
      case LMOE_DTYPE_BF16: {
        uint16_t b; std::memcpy(&b, s + 2 * i, 2);
        uint32_t bits = (uint32_t)b << 16; std::memcpy(&dst[i], &bits, 4);
        break;
      }
      case LMOE_DTYPE_F16: { uint16_t h; std::memcpy(&h, s + 2 * i, 2); dst[i] = f16_to_f32(h); break; }
      case LMOE_DTYPE_I32: { int32_t v; std::memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; break; }
    }
  }
  TensorView o = t;
  o.dtype = LMOE_DTYPE_F32;
  o.data = dst;
  return o;
}

// The kernels need element-size alignment; a tensor at an odd offset is copied (same bytes).
TensorView aligned(lmoe_layer* L, const TensorView& t) {
  size_t es = t.dtype == LMOE_DTYPE_BF16 || t.dtype == LMOE_DTYPE_F16 ? 2 : 4;
  if ((uintptr_t)t.data % es == 0) return t;
  void* dst = alloc64(L, (size_t)t.numel * es);
  std::memcpy(dst, t.data, (size_t)t.numel * es);
  TensorView o = t;
  o.data = dst;
  return o;
}

TensorView need(Checkpoint& ck, const std::string& name) {
  if (!ck.has(name)) invalid("checkpoint has no tensor '" + name + "'");
  return ck.tensor(name);
}

void check_matrix(const std::string& name, const TensorView& t, int64_t rows, int64_t cols) {
  if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols) {
    invalid("weight " + name + " has shape " + fmt_shape(t.shape) + ", expected [" + std::to_string((long long)rows) +
            ", " + std::to_string((long long)cols) + "]");
  }
}

TensorView conv(lmoe_layer* L, const TensorView& t, int wt) {
  if (t.dtype == wt) return aligned(L, t);
  if (t.dtype == LMOE_DTYPE_I32) invalid("weight " + t.name + " is not floating point (I32)");
  return to_f32(L, t);  // wt is F32 whenever a conversion is needed
}

void load_weights(lmoe_layer* L, int layer) {
  Checkpoint& ck = *L->ckpt;
  const lmoe_config& c = L->cfg;
  const std::string p = "backbone.layers." + std::to_string(layer) + ".mixer.";
  const bool swiglu = c.activation == LMOE_ACT_SWIGLU;
  const int n = c.num_experts;
  const bool latent = c.latent_size > 0;
  const bool shared = c.shared_intermediate_size > 0;
  TensorView gate = need(ck, p + "gate.weight");
  bool has_bias = ck.has(p + "gate.e_score_correction_bias");
  TensorView bias;
  if (has_bias) bias = ck.tensor(p + "gate.e_score_correction_bias");
  TensorView down, upl;
  if (latent) {
    down = need(ck, p + "fc1_latent_proj.weight");
    upl = need(ck, p + "fc2_latent_proj.weight");
  }
  std::vector<TensorView> eu(n), ed(n), eg(swiglu ? n : 0);
  for (int e = 0; e < n; ++e) {
    std::string ep = p + "experts." + std::to_string(e) + ".";
    eu[e] = need(ck, ep + "up_proj.weight");
    ed[e] = need(ck, ep + "down_proj.weight");
    if (swiglu) eg[e] = need(ck, ep + "gate_proj.weight");
  }
  TensorView su, sd, sg;
  if (shared) {
    su = need(ck, p + "shared_experts.up_proj.weight");
    sd = need(ck, p + "shared_experts.down_proj.weight");
    if (swiglu) sg = need(ck, p + "shared_experts.gate_proj.weight");
  }
  // One dtype for the non-gate matrices: BF16 when all are BF16, else F32.
  bool all_bf16 = true;
  auto chk = [&](const TensorView& t) { if (t.dtype != LMOE_DTYPE_BF16) all_bf16 = false; };
  for (auto& t : eu) chk(t);
  for (auto& t : ed) chk(t);
  for (auto& t : eg) chk(t);
  if (latent) { chk(down); chk(upl); }
  if (shared) { chk(su); chk(sd); if (swiglu) chk(sg); }
  const int wt = all_bf16 ? LMOE_DTYPE_BF16 : LMOE_DTYPE_F32;
  if (gate.dtype == LMOE_DTYPE_F16) gate = to_f32(L, gate);
  if (has_bias && bias.dtype != LMOE_DTYPE_F32) bias = to_f32(L, bias);
  if (has_bias && bias.shape.size() == 2 && bias.shape[0] == 1) bias.shape = {bias.shape[1]};
  if (latent) { down = conv(L, down, wt); upl = conv(L, upl, wt); }
  for (auto& t : eu) t = conv(L, t, wt);
  for (auto& t : ed) t = conv(L, t, wt);
  for (auto& t : eg) t = conv(L, t, wt);
  if (shared) { su = conv(L, su, wt); sd = conv(L, sd, wt); if (swiglu) sg = conv(L, sg, wt); }

  // MoeWeights.validate, with its messages.
  const int64_t d = c.hidden_size, l = c.latent_size, m = c.expert_intermediate_size;
  const int64_t w = latent ? l : d, ms = c.shared_intermediate_size;
  check_matrix("gate.weight", gate, n, d);
  if (gate.dtype != LMOE_DTYPE_BF16 && gate.dtype != LMOE_DTYPE_F32)
    invalid(std::string("gate.weight must be BF16 or F32, got ") + dtype_name(gate.dtype));
  gate = aligned(L, gate);
  if (has_bias) {
    if (bias.dtype != LMOE_DTYPE_F32 || bias.shape.size() != 1 || bias.shape[0] != n)
      invalid("gate.e_score_correction_bias must be F32 [" + std::to_string(n) + "], got " +
              dtype_name(bias.dtype) + fmt_shape(bias.shape));
    bias = aligned(L, bias);
  }
  if (latent) {
    check_matrix("fc1_latent_proj.weight", down, l, d);
    check_matrix("fc2_latent_proj.weight", upl, d, l);
  }
  for (int e = 0; e < n; ++e) check_matrix("experts." + std::to_string(e) + ".up_proj.weight", eu[e], m, w);
  for (int e = 0; e < n; ++e) check_matrix("experts." + std::to_string(e) + ".down_proj.weight", ed[e], w, m);
  if (swiglu)
    for (int e = 0; e < n; ++e) check_matrix("experts." + std::to_string(e) + ".gate_proj.weight", eg[e], m, w);
  if (shared) {
    check_matrix("shared_experts.up_proj.weight", su, ms, d);
    check_matrix("shared_experts.down_proj.weight", sd, d, ms);
    if (swiglu) check_matrix("shared_experts.gate_proj.weight", sg, ms, d);
  }

  // The non-gate matrices share one format (wt, an lmoe_dtype whose F32/BF16 codes are the
  // lmoe_weight_format ones); the gate has its own.
  auto mat = [](const void* data, int fmt) {
    lmoe_matrix m{};
    m.format = fmt;
    m.data = data;
    m.scale = 1.0f;
    return m;
  };
  L->up.resize(n);
  L->down.resize(n);
  if (swiglu) L->gate.resize(n);
  for (int e = 0; e < n; ++e) {
    L->up[e] = mat(eu[e].data, wt);
    L->down[e] = mat(ed[e].data, wt);
    if (swiglu) L->gate[e] = mat(eg[e].data, wt);
  }
  L->weight_dtype = wt;
  lmoe_weights& W = L->w;
  W.gate = mat(gate.data, gate.dtype);
  W.gate_bias = has_bias ? (const float*)bias.data : nullptr;
  if (latent) W.latent_down = mat(down.data, wt);
  if (latent) W.latent_up = mat(upl.data, wt);
  W.expert_up = L->up.data();
  W.expert_gate = swiglu ? L->gate.data() : nullptr;
  W.expert_down = L->down.data();
  if (shared) W.shared_up = mat(su.data, wt);
  if (shared && swiglu) W.shared_gate = mat(sg.data, wt);
  if (shared) W.shared_down = mat(sd.data, wt);
}

// ------------------------------------------------------------------ forward

lmoe_layer* check_layer(lmoe_layer* L, const char* fn) {
  if (!L) invalid(std::string(fn) + ": layer is NULL");
  return L;
}

Workspace* acquire(lmoe_layer* L) {
  {
    std::lock_guard<std::mutex> lk(L->pool_mutex);
    if (!L->pool.empty()) {
      Workspace* ws = L->pool.back();
      L->pool.pop_back();
      return ws;
    }
  }
  return new Workspace();
}

void release(lmoe_layer* L, Workspace* ws) {
  std::lock_guard<std::mutex> lk(L->pool_mutex);
  try {
    L->pool.push_back(ws);
  } catch (...) {
    delete ws;
  }
}

// x, out: T*d floats each (the caller validated shapes). Checks finiteness and overlap, then runs.
lmoe_status run_forward(lmoe_layer* L, const char* fn, const float* x, int64_t T, float* out,
                        int32_t* ids, float* wts) {
  const int64_t d = L->cfg.hidden_size;
  if (T < 0) invalid(std::string(fn) + ": num_tokens must be >= 0, got " + std::to_string((long long)T));
  if (T == 0) return LMOE_OK;
  if (T > (int64_t)INT32_MAX / L->cfg.top_k)
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
  const int64_t need = lmoe_cpu_forward_workspace_bytes(&L->cfg, T);
  if (need < 0) return LMOE_ERR_INVALID_ARGUMENT;  // message set by the kernel ABI
  Workspace* ws = acquire(L);
  struct Back {
    lmoe_layer* L;
    Workspace* ws;
    ~Back() { release(L, ws); }
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
  const size_t tk = (size_t)T * (size_t)L->cfg.top_k;
  if (!ids) {
    if (ws->ids.size() < tk) ws->ids.resize(tk);
    ids = ws->ids.data();
  }
  if (!wts) {
    if (ws->wts.size() < tk) ws->wts.resize(tk);
    wts = ws->wts.data();
  }
  lmoe_status st = lmoe_cpu_forward(&L->cfg, &L->w, x, T, ids, wts, ws->buf, ws->bytes, out);
  if (st == LMOE_OK) L->last_input.store(x, std::memory_order_relaxed);
  return st;
}

// ---- DLPack

const float* dl_data(const DLManagedTensorVersioned* m, const char* fn, const char* what, int64_t d,
                     int64_t* T, bool writable) {
  std::string w = std::string(fn) + ": " + what;
  if (!m) invalid(w + " is NULL");
  if (m->version.major != DLPACK_MAJOR_VERSION)
    invalid(w + ": DLPack major version " + std::to_string(m->version.major) + " is not supported (1 expected)");
  if (writable && (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY)) invalid(w + " is read-only");
  const DLTensor& t = m->dl_tensor;
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost)
    invalid(w + " is on device type " + std::to_string((int)t.device.device_type) +
            "; only host memory (kDLCPU, kDLCUDAHost) is supported");
  if (t.dtype.code != kDLFloat || t.dtype.bits != 32 || t.dtype.lanes != 1)
    invalid(w + " has dtype (code " + std::to_string(t.dtype.code) + ", bits " + std::to_string(t.dtype.bits) +
            ", lanes " + std::to_string(t.dtype.lanes) + "); float32 is required");
  if (t.ndim != 2) invalid(w + " has " + std::to_string(t.ndim) + " dimensions; [T, d] is required");
  if (!t.shape) invalid(w + " has a NULL shape");
  const int64_t rows = t.shape[0], cols = t.shape[1];
  if (rows < 0 || cols != d)
    invalid(w + " has shape [" + std::to_string((long long)rows) + ", " + std::to_string((long long)cols) +
            "], expected [T, " + std::to_string((long long)d) + "]");
  if (t.strides && rows > 0) {  // an empty tensor's strides mean nothing (numpy 2.4 reports 0s)
    bool ok = (t.strides[1] == 1 || cols <= 1) && (t.strides[0] == cols || rows <= 1);
    if (!ok)
      invalid(w + " has strides [" + std::to_string((long long)t.strides[0]) + ", " +
              std::to_string((long long)t.strides[1]) + "]; C-contiguous is required");
  }
  *T = rows;
  if (rows == 0) return nullptr;
  if (!t.data) invalid(w + " has NULL data");
  if (t.byte_offset > (uint64_t)INTPTR_MAX) invalid(w + " has an invalid byte_offset");
  const char* p = (const char*)t.data + t.byte_offset;
  if ((uintptr_t)p % 4) invalid(w + " data is not 4-byte aligned");
  return (const float*)p;
}

// ---- Arrow

struct Metadata {
  bool present = false;
  std::string ext_name, ext_meta;
};

Metadata read_metadata(const char* md, const std::string& w) {
  Metadata out;
  if (!md) return out;
  auto rd = [](const char* p) { int32_t v; std::memcpy(&v, p, 4); return v; };
  int32_t n = rd(md);
  if (n < 0 || n > 4096) invalid(w + ": schema metadata has an invalid pair count " + std::to_string(n));
  const char* p = md + 4;
  for (int32_t i = 0; i < n; ++i) {
    int32_t kl = rd(p);
    if (kl < 0 || kl > (1 << 20)) invalid(w + ": schema metadata has an invalid key length");
    std::string k(p + 4, (size_t)kl);
    p += 4 + kl;
    int32_t vl = rd(p);
    if (vl < 0 || vl > (1 << 24)) invalid(w + ": schema metadata has an invalid value length");
    std::string v(p + 4, (size_t)vl);
    p += 4 + vl;
    if (k == "ARROW:extension:name") { out.present = true; out.ext_name = v; }
    else if (k == "ARROW:extension:metadata") out.ext_meta = v;
  }
  return out;
}

bool any_null(const void* bitmap, int64_t from, int64_t count) {
  const unsigned char* b = (const unsigned char*)bitmap;
  for (int64_t i = from; i < from + count; ++i)
    if (!((b[i >> 3] >> (i & 7)) & 1)) return true;
  return false;
}

const float* arrow_data(const ArrowArray* a, const ArrowSchema* s, const char* fn, int64_t d, int64_t* T,
                        bool* tensor_ext) {
  std::string w = std::string(fn) + ": x";
  if (!a) invalid(w + " is NULL");
  if (!s) invalid(w + "_schema is NULL");
  if (!a->release) invalid(w + " is released");
  if (!s->release) invalid(w + "_schema is released");
  if (!s->format) invalid(w + "_schema has a NULL format");
  std::string want = "+w:" + std::to_string((long long)d);
  if (std::strncmp(s->format, want.c_str(), want.size() + 1) != 0) {
    char shown[40];
    std::snprintf(shown, sizeof shown, "%.32s", s->format);
    invalid(w + " has Arrow format '" + shown + "'; FixedSizeList<float32>[" + std::to_string((long long)d) +
            "] ('" + want + "' with child 'f') is required");
  }
  if (s->dictionary) invalid(w + " is dictionary-encoded");
  if (s->n_children != 1 || !s->children || !s->children[0] || !s->children[0]->format)
    invalid(w + "_schema must have exactly one child");
  const ArrowSchema* cs = s->children[0];
  if (std::strcmp(cs->format, "f") != 0 || cs->dictionary) {
    char shown[40];
    std::snprintf(shown, sizeof shown, "%.32s", cs->format);
    invalid(w + " has list values of Arrow format '" + shown + "'; float32 ('f') is required");
  }
  Metadata md = read_metadata(s->metadata, w);
  *tensor_ext = false;
  if (md.present) {
    if (md.ext_name != "arrow.fixed_shape_tensor")
      invalid(w + " has the unsupported extension type '" + md.ext_name.substr(0, 64) + "'");
    JValue j;
    try {
      j = lmoe::engine::json_parse(md.ext_meta.data(), md.ext_meta.size());
    } catch (const lmoe::engine::JsonError& e) {
      invalid(w + ": arrow.fixed_shape_tensor metadata: " + e.what());
    }
    const JValue* sh = j.get("shape");
    const JValue* perm = j.get("permutation");
    bool ok = sh && sh->kind == JValue::ARRAY && sh->arr.size() == 1 && sh->arr[0].kind == JValue::INT &&
              sh->arr[0].i == d;
    bool perm_ok = absent(perm) || (perm->kind == JValue::ARRAY && perm->arr.size() == 1 &&
                                    perm->arr[0].kind == JValue::INT && perm->arr[0].i == 0);
    if (!ok || !perm_ok)
      invalid(w + ": arrow.fixed_shape_tensor must have shape [" + std::to_string((long long)d) + "]");
    *tensor_ext = true;
  }
  if (a->length < 0 || a->offset < 0) invalid(w + " has a negative length or offset");
  if (a->n_buffers != 1 || !a->buffers) invalid(w + " must have 1 buffer (validity), got " + std::to_string((long long)a->n_buffers));
  if (a->n_children != 1 || !a->children || !a->children[0]) invalid(w + " must have exactly one child array");
  if (a->dictionary) invalid(w + " has a dictionary");
  const ArrowArray* c = a->children[0];
  if (!c->release) invalid(w + " has a released child array");
  if (c->n_buffers != 2 || !c->buffers) invalid(w + " child must have 2 buffers, got " + std::to_string((long long)c->n_buffers));
  if (c->n_children != 0) invalid(w + " child must have no children");
  if (c->length < 0 || c->offset < 0) invalid(w + " child has a negative length or offset");
  int64_t rows_end, need;
  if (__builtin_add_overflow(a->offset, a->length, &rows_end) || __builtin_mul_overflow(rows_end, d, &need))
    invalid(w + " offset/length overflow");
  if (c->length < need)
    invalid(w + " child has " + std::to_string((long long)c->length) + " values, fewer than the " +
            std::to_string((long long)need) + " the list array needs");
  if (a->null_count != 0 && a->buffers[0] && a->length > 0 && any_null(a->buffers[0], a->offset, a->length))
    invalid(w + " has null rows; nulls are not supported");
  int64_t first;
  if (__builtin_mul_overflow(a->offset, d, &first) || __builtin_add_overflow(first, c->offset, &first))
    invalid(w + " offset overflow");
  if (c->null_count != 0 && c->buffers[0] && a->length > 0 && any_null(c->buffers[0], first, a->length * d))
    invalid(w + " has null values; nulls are not supported");
  *T = a->length;
  if (a->length == 0) return nullptr;
  if (!c->buffers[1]) invalid(w + " child has a NULL values buffer");
  const float* p = (const float*)c->buffers[1] + first;
  if ((uintptr_t)p % 4) invalid(w + " values are not 4-byte aligned");
  return p;
}

struct OutChild {  // owned by the child array (it may be moved out and released on its own)
  float* values = nullptr;
  const void* buffers[2] = {nullptr, nullptr};
};
struct OutParent {
  const void* buffers[1] = {nullptr};
  ArrowArray child{};
  ArrowArray* children[1] = {nullptr};
};
struct OutSchema {
  std::string format, metadata;
  ArrowSchema child{};
  ArrowSchema* children[1] = {nullptr};
};

void release_child_array(ArrowArray* a) {
  if (!a || !a->release) return;
  OutChild* c = (OutChild*)a->private_data;
  std::free(c->values);
  delete c;
  a->release = nullptr;
}

void release_parent_array(ArrowArray* a) {
  if (!a || !a->release) return;
  OutParent* p = (OutParent*)a->private_data;
  for (int64_t i = 0; i < a->n_children; ++i)
    if (a->children[i] && a->children[i]->release) a->children[i]->release(a->children[i]);
  delete p;
  a->release = nullptr;
}

void release_child_schema(ArrowSchema* s) {
  if (s) s->release = nullptr;
}

void release_parent_schema(ArrowSchema* s) {
  if (!s || !s->release) return;
  OutSchema* p = (OutSchema*)s->private_data;
  for (int64_t i = 0; i < s->n_children; ++i)
    if (s->children[i] && s->children[i]->release) s->children[i]->release(s->children[i]);
  delete p;
  s->release = nullptr;
}

void put_i32(std::string& s, int32_t v) { s.append((const char*)&v, 4); }

}  // namespace

// ------------------------------------------------------------------ C entry points

LMOE_API int32_t lmoe_engine_abi_version(void) { return LMOE_ENGINE_ABI_VERSION; }

LMOE_API lmoe_status lmoe_layer_open(const char* dir, int32_t layer_index, lmoe_layer** out) {
  if (out) *out = nullptr;
  return guard([&]() -> lmoe_status {
    if (!out) invalid(std::string(kOpen) + ": out is NULL");
    if (!dir) invalid(std::string(kOpen) + ": dir is NULL");
    if (layer_index < 0) invalid(std::string(kOpen) + ": layer index " + std::to_string(layer_index) + " < 0");
    std::unique_ptr<lmoe_layer> L(new lmoe_layer());
    try {
      L->ckpt.reset(new Checkpoint(dir));
      L->cfg = parse_config(L->ckpt->config());
      load_weights(L.get(), layer_index);
    } catch (const EngineError& e) {
      fail(e.status, std::string(kOpen) + ": " + e.what());
    }
    lmoe_status st = lmoe_validate(&L->cfg, &L->w);
    if (st != LMOE_OK) fail(st, std::string(kOpen) + ": " + dir + ": " + lmoe_last_error());
    *out = L.release();
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_config(const lmoe_layer* layer, lmoe_config* out) {
  return guard([&]() -> lmoe_status {
    if (!layer) invalid("lmoe_layer_config: layer is NULL");
    if (!out) invalid("lmoe_layer_config: out is NULL");
    *out = layer->cfg;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_weight_info(const lmoe_layer* layer, int32_t* weight_dtype,
                                            int32_t* gate_dtype, int64_t* converted_bytes) {
  return guard([&]() -> lmoe_status {
    if (!layer) invalid("lmoe_layer_weight_info: layer is NULL");
    if (weight_dtype) *weight_dtype = layer->weight_dtype;
    if (gate_dtype) *gate_dtype = layer->w.gate.format;
    if (converted_bytes) *converted_bytes = layer->converted_bytes;
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_layer_forward(lmoe_layer* layer, const float* x, int64_t num_tokens, float* out,
                                        int32_t* topk_ids, float* topk_weights) {
  return guard([&]() -> lmoe_status {
    lmoe_layer* L = check_layer(layer, "lmoe_layer_forward");
    return run_forward(L, "lmoe_layer_forward", x, num_tokens, out, topk_ids, topk_weights);
  });
}

LMOE_API lmoe_status lmoe_layer_forward_dlpack(lmoe_layer* layer, const DLManagedTensorVersioned* x,
                                               DLManagedTensorVersioned* out) {
  return guard([&]() -> lmoe_status {
    const char* fn = "lmoe_layer_forward_dlpack";
    lmoe_layer* L = check_layer(layer, fn);
    const int64_t d = L->cfg.hidden_size;
    int64_t T = 0, To = 0;
    const float* xp = dl_data(x, fn, "x", d, &T, false);
    float* op = (float*)dl_data(out, fn, "out", d, &To, true);
    if (To != T)
      invalid(std::string(fn) + ": out has " + std::to_string((long long)To) + " rows but x has " +
              std::to_string((long long)T));
    return run_forward(L, fn, xp, T, op, nullptr, nullptr);
  });
}

LMOE_API lmoe_status lmoe_layer_forward_arrow(lmoe_layer* layer, const struct ArrowArray* x,
                                              const struct ArrowSchema* x_schema, struct ArrowArray* out,
                                              struct ArrowSchema* out_schema) {
  return guard([&]() -> lmoe_status {
    const char* fn = "lmoe_layer_forward_arrow";
    lmoe_layer* L = check_layer(layer, fn);
    if (!out) invalid(std::string(fn) + ": out is NULL");
    if (!out_schema) invalid(std::string(fn) + ": out_schema is NULL");
    const int64_t d = L->cfg.hidden_size;
    int64_t T = 0;
    bool ext = false;
    const float* xp = arrow_data(x, x_schema, fn, d, &T, &ext);
    // Build the output first (values 64-byte aligned), compute into it, then hand it over.
    std::unique_ptr<OutChild> oc(new OutChild());
    size_t bytes = ((size_t)T * (size_t)d * 4 + 63) / 64 * 64;
    oc->values = (float*)std::aligned_alloc(64, bytes ? bytes : 64);
    if (!oc->values) throw std::bad_alloc();
    struct FreeVals {
      OutChild* c;
      ~FreeVals() { if (c) std::free(c->values); }
    } fv{oc.get()};
    std::unique_ptr<OutParent> op(new OutParent());
    std::unique_ptr<OutSchema> os(new OutSchema());
    os->format = "+w:" + std::to_string((long long)d);
    if (ext) {
      std::string meta = "{\"shape\":[" + std::to_string((long long)d) + "]}";
      const std::string k1 = "ARROW:extension:name", v1 = "arrow.fixed_shape_tensor";
      const std::string k2 = "ARROW:extension:metadata";
      put_i32(os->metadata, 2);
      put_i32(os->metadata, (int32_t)k1.size()); os->metadata += k1;
      put_i32(os->metadata, (int32_t)v1.size()); os->metadata += v1;
      put_i32(os->metadata, (int32_t)k2.size()); os->metadata += k2;
      put_i32(os->metadata, (int32_t)meta.size()); os->metadata += meta;
    }
    lmoe_status st = run_forward(L, fn, xp, T, oc->values, nullptr, nullptr);
    if (st != LMOE_OK) return st;
    // Child array (owns its values and buffer list).
    oc->buffers[1] = oc->values;
    ArrowArray& ca = op->child;
    ca.length = T * d; ca.null_count = 0; ca.offset = 0; ca.n_buffers = 2; ca.n_children = 0;
    ca.buffers = oc->buffers; ca.children = nullptr; ca.dictionary = nullptr;
    ca.release = release_child_array; ca.private_data = oc.get();
    op->children[0] = &op->child;
    ArrowArray pa{};
    pa.length = T; pa.null_count = 0; pa.offset = 0; pa.n_buffers = 1; pa.n_children = 1;
    pa.buffers = op->buffers; pa.children = op->children; pa.dictionary = nullptr;
    pa.release = release_parent_array; pa.private_data = op.get();
    // Schema.
    ArrowSchema& cs = os->child;
    cs.format = "f"; cs.name = "item"; cs.metadata = nullptr; cs.flags = ARROW_FLAG_NULLABLE;
    cs.n_children = 0; cs.children = nullptr; cs.dictionary = nullptr;
    cs.release = release_child_schema; cs.private_data = nullptr;
    os->children[0] = &os->child;
    ArrowSchema ps{};
    ps.format = os->format.c_str(); ps.name = ""; ps.metadata = ext ? os->metadata.data() : nullptr;
    ps.flags = ARROW_FLAG_NULLABLE; ps.n_children = 1; ps.children = os->children; ps.dictionary = nullptr;
    ps.release = release_parent_schema; ps.private_data = os.get();
    fv.c = nullptr;
    oc.release();
    op.release();
    os.release();
    *out = pa;
    *out_schema = ps;
    return LMOE_OK;
  });
}

LMOE_API const void* lmoe_layer_last_input(const lmoe_layer* layer) {
  return layer ? layer->last_input.load(std::memory_order_relaxed) : nullptr;
}

LMOE_API void lmoe_layer_close(lmoe_layer* layer) { delete layer; }
