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
  if (c->activation != LMOE_ACT_RELU2 && c->activation != LMOE_ACT_SWIGLU)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "activation %d unknown", c->activation);
  if (c->scoring != LMOE_SCORING_SIGMOID && c->scoring != LMOE_SCORING_SOFTMAX)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "scoring %d unknown", c->scoring);
  if (c->norm_topk_prob != 0 && c->norm_topk_prob != 1)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "norm_topk_prob %d not 0/1", c->norm_topk_prob);
  if (!isfinite(c->routed_scaling_factor))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "routed_scaling_factor not finite");
  return LMOE_OK;
}

enum Need { NEED_ROUTER = 1, NEED_DISPATCH = 2, NEED_EXPERTS = 4, NEED_COMBINE = 8, NEED_ALL = 15 };

lmoe_status validate(const lmoe_config* c, const lmoe_cuda_weights* w, int need) {
  LMOE_TRY(validate_cfg(c));
  if (!w) return set_error(LMOE_ERR_INVALID_ARGUMENT, "weights is NULL");
  if (w->weight_dtype != LMOE_DTYPE_BF16)
    return set_error(w->weight_dtype == LMOE_DTYPE_F32 ? LMOE_ERR_UNSUPPORTED : LMOE_ERR_INVALID_ARGUMENT,
                     "weight_dtype %d: the CUDA backend takes bf16 weights only", w->weight_dtype);
  const bool latent = c->latent_size > 0, swiglu = c->activation == LMOE_ACT_SWIGLU;
  const bool shared = c->shared_intermediate_size > 0;
  if (need & NEED_ROUTER) {
    if (w->gate_dtype != LMOE_DTYPE_BF16 && w->gate_dtype != LMOE_DTYPE_F32)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "gate_dtype %d not BF16/F32", w->gate_dtype);
    if (!w->gate) return set_error(LMOE_ERR_INVALID_ARGUMENT, "gate is NULL");
  }
  if ((need & NEED_DISPATCH) && latent && !w->latent_down)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_down is NULL with latent_size > 0");
  if (need & NEED_EXPERTS) {
    if (!w->expert_up || !w->expert_down)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_up/expert_down is NULL");
    if (swiglu && !w->expert_gate)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_gate is NULL with SwiGLU");
  }
  if (need & NEED_COMBINE) {
    if (latent && !w->latent_up)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_up is NULL with latent_size > 0");
    if (shared && (!w->shared_up || !w->shared_down))
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_up/shared_down is NULL with a shared expert");
    if (shared && swiglu && !w->shared_gate)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_gate is NULL with SwiGLU");
  }
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
  const Tuning tn = tuning();
  LMOE_TRY(check_ws(ws, ws_bytes, forward_ws(tn, cfg, T), "forward"));
  return forward_step(tn, cfg, w, static_cast<const bf16*>(x), T, topk_ids, topk_weights, ws,
                      ws_bytes, static_cast<bf16*>(out), STREAM(stream));
}
