// abi.cu - the layer's entry points of latentmoe_cuda.h: argument checks, one tuning snapshot
// per call, then the step (layer.cuh). The runtime entry points (devices, streams, memory,
// events, graphs) are in runtime.cu, the tuning ones in tuning.cu.
#include <math.h>

#include "layer.cuh"

namespace lmoe_cuda {
namespace {

lmoe_status validate_cfg(const lmoe_config* c) {
  if (!c) return set_error(LMOE_ERR_INVALID_ARGUMENT, "cfg is NULL");
  if (c->hidden_size <= 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "hidden_size %d <= 0", c->hidden_size);
  if (c->latent_size < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_size %d < 0", c->latent_size);
  if (c->num_experts < 1 || c->num_experts > kMaxExperts)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "num_experts %d not in 1..%d", c->num_experts, kMaxExperts);
  int kmax = c->num_experts < 32 ? c->num_experts : 32;
  if (c->top_k < 1 || c->top_k > kmax)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "top_k %d not in 1..%d", c->top_k, kmax);
  if (c->expert_intermediate_size <= 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_intermediate_size %d <= 0", c->expert_intermediate_size);
  if (c->shared_intermediate_size < 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_intermediate_size %d < 0", c->shared_intermediate_size);
  if (c->activation != LMOE_ACT_RELU2 && c->activation != LMOE_ACT_SWIGLU && c->activation != LMOE_ACT_SILU)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "activation %d unknown", c->activation);
  if (c->scoring != LMOE_SCORING_SIGMOID && c->scoring != LMOE_SCORING_SOFTMAX)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "scoring %d unknown", c->scoring);
  if (c->norm_topk_prob != 0 && c->norm_topk_prob != 1)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "norm_topk_prob %d not 0/1", c->norm_topk_prob);
  if (!isfinite(c->routed_scaling_factor))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "routed_scaling_factor not finite");
  // the GPU runs bf16 activations for both (W8A8 is chosen per matrix: lmoe_cuda_matrix)
  if (c->precision != LMOE_PRECISION_EXACT && c->precision != LMOE_PRECISION_BF16)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "precision %d unknown", c->precision);
  return LMOE_OK;
}

const char* format_name(int f) {
  switch (f) {
    case LMOE_WFMT_F32: return "F32";
    case LMOE_WFMT_BF16: return "BF16";
    case LMOE_WFMT_FP8_E4M3: return "FP8_E4M3";
    case LMOE_WFMT_NVFP4: return "NVFP4";
    default: return "?";
  }
}

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// One matrix the step reads: present, a format this matrix may have, its scale pointers exactly
// where the format wants them. Shapes of quantized layers: check_quantized_shapes.
lmoe_status check_matrix(const char* name, const lmoe_cuda_matrix& m, bool router) {
  if (!m.data) return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s is NULL", name);
  if (m.reserved != 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s.reserved must be 0, got %d", name, m.reserved);
  const int f = m.format;
  if (f < LMOE_WFMT_F32 || f > LMOE_WFMT_NVFP4)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s.format %d unknown", name, f);
  if (router && f != LMOE_WFMT_BF16 && f != LMOE_WFMT_F32)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s must be BF16 or F32, got %s", name, format_name(f));
  if (!router && f == LMOE_WFMT_F32)
    return set_error(LMOE_ERR_UNSUPPORTED, "%s is F32: the CUDA backend takes BF16, FP8_E4M3 or NVFP4 weights",
                     name);
  const bool quant = f == LMOE_WFMT_FP8_E4M3 || f == LMOE_WFMT_NVFP4;
  if (quant != (m.scales != nullptr))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, quant ? "%s is %s but scales is NULL" : "%s is %s: scales must be NULL",
                     name, format_name(f));
  if ((f == LMOE_WFMT_NVFP4) != (m.block_scales != nullptr))
    return set_error(LMOE_ERR_INVALID_ARGUMENT,
                     f == LMOE_WFMT_NVFP4 ? "%s is %s but block_scales is NULL" : "%s is %s: block_scales must be NULL",
                     name, format_name(f));
  if (m.input_scales && f == LMOE_WFMT_NVFP4)
    return set_error(LMOE_ERR_UNSUPPORTED, "%s is NVFP4 with input_scales: NVFP4 is weight-only on sm_90 "
                     "(no FP4 tensor cores); pass input_scales NULL", name);
  if (m.input_scales && !quant)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s is %s: input_scales must be NULL", name, format_name(f));
  if (quant) {
    if (!aligned(m.data, 16) || (m.block_scales && !aligned(m.block_scales, 16)))
      return set_error(LMOE_ERR_UNSUPPORTED, "%s is %s: data and block_scales must be 16-byte aligned", name,
                       format_name(f));
    if (!aligned(m.scales, 4) || (m.input_scales && !aligned(m.input_scales, 4)))
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: scales / input_scales must be 4-byte aligned", name);
  }
  return LMOE_OK;
}

// A layer with quantized matrices: every dimension a multiple of 32 (the dequantizing kernels
// read whole 16-byte rows and 16-row tiles; NVFP4 blocks of 16 never straddle a lane's chunk).
lmoe_status check_quantized_shapes(const lmoe_config* c, const char* name) {
  const int dims[4] = {c->hidden_size, expert_width(c), c->expert_intermediate_size, c->shared_intermediate_size};
  const char* names[4] = {"hidden_size", "expert width", "expert_intermediate_size", "shared_intermediate_size"};
  for (int i = 0; i < 4; ++i)
    if (dims[i] % 32)
      return set_error(LMOE_ERR_UNSUPPORTED, "%s is quantized: %s %d must be a multiple of 32", name, names[i],
                       dims[i]);
  return LMOE_OK;
}

enum Need { NEED_ROUTER = 1, NEED_DISPATCH = 2, NEED_EXPERTS = 4, NEED_COMBINE = 8, NEED_ALL = 15 };

lmoe_status validate(const lmoe_config* c, const lmoe_cuda_weights* w, int need) {
  LMOE_TRY(validate_cfg(c));
  if (!w) return set_error(LMOE_ERR_INVALID_ARGUMENT, "weights is NULL");
  const bool latent = c->latent_size > 0, swiglu = c->activation == LMOE_ACT_SWIGLU;
  const bool shared = c->shared_intermediate_size > 0;
  struct Used { const char* name; const lmoe_cuda_matrix* m; };
  Used used[10];
  int n = 0;
  if (need & NEED_ROUTER) LMOE_TRY(check_matrix("gate", w->gate, true));
  if ((need & NEED_DISPATCH) && latent) used[n++] = {"latent_down", &w->latent_down};
  if (need & NEED_EXPERTS) {
    used[n++] = {"expert_up", &w->expert_up};
    used[n++] = {"expert_down", &w->expert_down};
    if (swiglu) used[n++] = {"expert_gate", &w->expert_gate};
  }
  if (need & NEED_COMBINE) {
    if (latent) used[n++] = {"latent_up", &w->latent_up};
    if (shared) {
      used[n++] = {"shared_up", &w->shared_up};
      used[n++] = {"shared_down", &w->shared_down};
      if (swiglu) used[n++] = {"shared_gate", &w->shared_gate};
    }
  }
  for (int i = 0; i < n; ++i) LMOE_TRY(check_matrix(used[i].name, *used[i].m, false));
  for (int i = 0; i < n; ++i)
    if (is_quantized(*used[i].m)) LMOE_TRY(check_quantized_shapes(c, used[i].name));
  return LMOE_OK;
}

// FP8 / NVFP4 layers: the dequantizing kernels read the activations as 16-byte vectors.
struct NamedPtr {
  const void* p;
  const char* name;
};
lmoe_status check_quant_ptrs(const lmoe_cuda_weights* w, std::initializer_list<NamedPtr> ptrs) {
  if (all_bf16(w)) return LMOE_OK;
  for (const NamedPtr& q : ptrs)
    if (!aligned16(q.p))
      return set_error(LMOE_ERR_UNSUPPORTED, "%s must be 16-byte aligned with FP8 / NVFP4 weights", q.name);
  return LMOE_OK;
}

lmoe_status validate_tokens(const lmoe_config* c, int64_t T) {
  if (T < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "num_tokens %lld < 0", (long long)T);
  if (T * c->top_k > kMaxSlots)
    return set_error(LMOE_ERR_UNSUPPORTED, "num_tokens*top_k = %lld > %lld",
                     (long long)(T * c->top_k), (long long)kMaxSlots);
  return LMOE_OK;
}

lmoe_status need_ptr(const void* p, const char* name) {
  return p ? LMOE_OK : set_error(LMOE_ERR_INVALID_ARGUMENT, "%s is NULL", name);
}

lmoe_status check_ws(const void* ws, int64_t have, int64_t need, const char* what) {
  if (need < 0) return LMOE_ERR_INTERNAL;
  if (have < need)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace_bytes %lld < %lld", what,
                     (long long)have, (long long)need);
  if (need > 0 && !ws) return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace is NULL", what);
  if (reinterpret_cast<uintptr_t>(ws) % LMOE_CUDA_WORKSPACE_ALIGN)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace not %d-byte aligned", what,
                     LMOE_CUDA_WORKSPACE_ALIGN);
  return LMOE_OK;
}

}  // namespace
}  // namespace lmoe_cuda

using namespace lmoe_cuda;

#define API_BEGIN clear_error()
#define STREAM(s) static_cast<cudaStream_t>(s)

LMOE_CUDA_API lmoe_status lmoe_cuda_validate(const lmoe_config* cfg, const lmoe_cuda_weights* w) {
  API_BEGIN;
  return validate(cfg, w, NEED_ALL);
}

LMOE_CUDA_API int32_t lmoe_cuda_forward_path(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                             const void* x, int64_t num_tokens) {
  API_BEGIN;
  if (validate(cfg, w, NEED_ALL) != LMOE_OK) return -1;
  if (validate_tokens(cfg, num_tokens) != LMOE_OK) return -1;
  return use_decode(tuning(), cfg, w, x, num_tokens) ? LMOE_CUDA_PATH_DECODE : LMOE_CUDA_PATH_SORTED;
}

#define WS_QUERY(fn)                                             \
  API_BEGIN;                                                     \
  if (validate_cfg(cfg) != LMOE_OK || num_tokens < 0) return -1; \
  if (validate_tokens(cfg, num_tokens) != LMOE_OK) return -1;    \
  return fn(cfg, num_tokens)

LMOE_CUDA_API int64_t lmoe_cuda_router_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(router_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_dispatch_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(dispatch_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_experts_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(experts_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_combine_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(combine_ws);
}
static int64_t forward_ws_now(const lmoe_config* c, int64_t T) { return forward_ws(tuning(), c, T); }
LMOE_CUDA_API int64_t lmoe_cuda_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(forward_ws_now);
}

LMOE_CUDA_API lmoe_status lmoe_cuda_router_topk(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                                const void* x, int64_t T, int32_t* topk_ids,
                                                float* topk_weights, void* ws, int64_t ws_bytes,
                                                void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_ROUTER));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(check_ws(ws, ws_bytes, router_ws(cfg, T), "router_topk"));
  return router_step(cfg, w, static_cast<const bf16*>(x), T, topk_ids, topk_weights, ws, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_dispatch(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                             const void* x, int64_t T, const int32_t* topk_ids,
                                             int32_t* expert_offsets, int32_t* sorted_row_of_slot,
                                             void* latent_sorted, void* ws, int64_t ws_bytes,
                                             void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_DISPATCH));
  LMOE_TRY(validate_tokens(cfg, T));
  LMOE_TRY(need_ptr(expert_offsets, "expert_offsets"));
  if (T > 0) {
    LMOE_TRY(need_ptr(x, "x"));
    LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
    LMOE_TRY(need_ptr(sorted_row_of_slot, "sorted_row_of_slot"));
    LMOE_TRY(need_ptr(latent_sorted, "latent_sorted"));
    LMOE_TRY(check_quant_ptrs(w, {{x, "x"}, {latent_sorted, "latent_sorted"}}));
  }
  LMOE_TRY(check_ws(ws, ws_bytes, dispatch_ws(cfg, T), "dispatch"));
  return dispatch_step(tuning(), cfg, w, static_cast<const bf16*>(x), T, topk_ids, expert_offsets,
                       sorted_row_of_slot, static_cast<bf16*>(latent_sorted), ws, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_experts(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            int64_t T, const int32_t* expert_offsets,
                                            const void* latent_sorted, void* expert_out_sorted,
                                            void* ws, int64_t ws_bytes, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_EXPERTS));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(expert_offsets, "expert_offsets"));
  LMOE_TRY(need_ptr(latent_sorted, "latent_sorted"));
  LMOE_TRY(need_ptr(expert_out_sorted, "expert_out_sorted"));
  LMOE_TRY(check_quant_ptrs(w, {{latent_sorted, "latent_sorted"}, {expert_out_sorted, "expert_out_sorted"}}));
  LMOE_TRY(check_ws(ws, ws_bytes, experts_ws(cfg, T), "experts"));
  return experts_step(tuning(), cfg, w, T, expert_offsets, static_cast<const bf16*>(latent_sorted),
                      static_cast<bf16*>(expert_out_sorted), ws, ws_bytes, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_combine(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            const void* x, int64_t T, const float* topk_weights,
                                            const int32_t* sorted_row_of_slot,
                                            const void* expert_out_sorted, void* ws,
                                            int64_t ws_bytes, void* out, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_COMBINE));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(need_ptr(sorted_row_of_slot, "sorted_row_of_slot"));
  LMOE_TRY(need_ptr(expert_out_sorted, "expert_out_sorted"));
  LMOE_TRY(need_ptr(out, "out"));
  LMOE_TRY(check_quant_ptrs(w, {{x, "x"}, {out, "out"}, {expert_out_sorted, "expert_out_sorted"}}));
  LMOE_TRY(check_ws(ws, ws_bytes, combine_ws(cfg, T), "combine"));
  return combine_step(tuning(), cfg, w, static_cast<const bf16*>(x), T, topk_weights, sorted_row_of_slot,
                      static_cast<const bf16*>(expert_out_sorted), ws, static_cast<bf16*>(out),
                      STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_forward(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            const void* x, int64_t T, int32_t* topk_ids,
                                            float* topk_weights, void* ws, int64_t ws_bytes,
                                            void* out, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_ALL));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(need_ptr(out, "out"));
  LMOE_TRY(check_quant_ptrs(w, {{x, "x"}, {out, "out"}}));
  const Tuning tn = tuning();
  LMOE_TRY(check_ws(ws, ws_bytes, forward_ws(tn, cfg, T), "forward"));
  return forward_step(tn, cfg, w, static_cast<const bf16*>(x), T, topk_ids, topk_weights, ws,
                      ws_bytes, static_cast<bf16*>(out), STREAM(stream));
}
