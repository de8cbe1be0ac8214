// Every entry point of latentmoe.h: library information, settings, argument checks, then the
// step (layer.h), the probe or the fill. Nothing here computes layer values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "errors.h"
#include "fill.h"
#include "gemm.h"
#include "isa.h"
#include "layer.h"
#include "probe.h"
#include "thread_pool.h"

#define LMOE_API extern "C" __attribute__((visibility("default")))

namespace lmoe {
namespace {

lmoe_status check_cfg(const char* fn, const lmoe_config* c) {
  CHECK_ARG(c != nullptr, "%s: cfg is NULL", fn);
  CHECK_ARG(c->hidden_size >= 1 && c->hidden_size <= kMaxDim,
            "%s: hidden_size must be in 1..%lld, got %d", fn, (long long)kMaxDim, c->hidden_size);
  CHECK_ARG(c->latent_size >= 0 && c->latent_size <= kMaxDim,
            "%s: latent_size must be in 0..%lld, got %d", fn, (long long)kMaxDim, c->latent_size);
  CHECK_ARG(c->num_experts >= 1 && c->num_experts <= kMaxExperts,
            "%s: num_experts must be in 1..%d, got %d", fn, kMaxExperts, c->num_experts);
  CHECK_ARG(c->top_k >= 1 && c->top_k <= std::min(kMaxTopK, (int)c->num_experts),
            "%s: top_k must be in 1..min(32, num_experts=%d), got %d", fn, c->num_experts,
            c->top_k);
  CHECK_ARG(c->expert_intermediate_size >= 1 && c->expert_intermediate_size <= kMaxDim,
            "%s: expert_intermediate_size must be in 1..%lld, got %d", fn, (long long)kMaxDim,
            c->expert_intermediate_size);
  CHECK_ARG(c->shared_intermediate_size >= 0 && c->shared_intermediate_size <= kMaxDim,
            "%s: shared_intermediate_size must be in 0..%lld, got %d", fn, (long long)kMaxDim,
            c->shared_intermediate_size);
  CHECK_ARG(c->activation == LMOE_ACT_RELU2 || c->activation == LMOE_ACT_SWIGLU ||
                c->activation == LMOE_ACT_SILU,
            "%s: unknown activation %d", fn, c->activation);
  CHECK_ARG(c->scoring == LMOE_SCORING_SIGMOID || c->scoring == LMOE_SCORING_SOFTMAX,
            "%s: unknown scoring %d", fn, c->scoring);
  CHECK_ARG(c->norm_topk_prob == 0 || c->norm_topk_prob == 1,
            "%s: norm_topk_prob must be 0 or 1, got %d", fn, c->norm_topk_prob);
  CHECK_ARG(std::isfinite(c->routed_scaling_factor), "%s: routed_scaling_factor is not finite",
            fn);
  CHECK_ARG(c->precision == LMOE_PRECISION_EXACT || c->precision == LMOE_PRECISION_BF16,
            "%s: unknown precision %d", fn, c->precision);
  return LMOE_OK;
}

lmoe_status check_tokens(const char* fn, const lmoe_config* c, int64_t T) {
  CHECK_ARG(T >= 0, "%s: num_tokens must be >= 0, got %lld", fn, (long long)T);
  CHECK_ARG(T <= std::numeric_limits<int32_t>::max() / c->top_k,
            "%s: num_tokens * top_k must fit in int32 (num_tokens=%lld)", fn, (long long)T);
  return LMOE_OK;
}

const char* format_name(int f) {
  switch (f) {
    case LMOE_WFMT_F32: return "F32";
    case LMOE_WFMT_BF16: return "BF16";
    case LMOE_WFMT_FP8_E4M3: return "FP8_E4M3";
    case LMOE_WFMT_NVFP4: return "NVFP4";
    default: return "unknown";
  }
}

// The formats the CPU kernels run today; a new kernel adds its format here. FP8 and NVFP4 run
// through the exact scalar decoding of arch/quant_scalar.cpp until vector kernels replace it.
bool cpu_has_kernel(int format) {
  return format == LMOE_WFMT_F32 || format == LMOE_WFMT_BF16 || format == LMOE_WFMT_FP8_E4M3 ||
         format == LMOE_WFMT_NVFP4;
}

// One weight matrix with `cols` input features; idx >= 0 names an expert's matrix.
lmoe_status check_matrix(const char* fn, const char* name, int idx, const lmoe_matrix& m,
                         int64_t cols, bool router) {
  char nm[96];
  if (idx >= 0) std::snprintf(nm, sizeof nm, "weights->%s[%d]", name, idx);
  else std::snprintf(nm, sizeof nm, "weights->%s", name);
  CHECK_ARG(m.data != nullptr, "%s: %s is NULL", fn, nm);
  CHECK_ARG(m.format >= LMOE_WFMT_F32 && m.format <= LMOE_WFMT_NVFP4, "%s: %s.format %d is unknown",
            fn, nm, m.format);
  CHECK_ARG(!router || m.format == LMOE_WFMT_F32 || m.format == LMOE_WFMT_BF16,
            "%s: %s must be F32 or BF16, got %s", fn, nm, format_name(m.format));
  CHECK_ARG(m.reserved == 0, "%s: %s.reserved must be 0, got %d", fn, nm, m.reserved);
  CHECK_ARG(std::isfinite(m.scale) && m.scale > 0.0f, "%s: %s.scale must be finite and > 0, got %g",
            fn, nm, (double)m.scale);
  CHECK_ARG(std::isfinite(m.input_scale) && m.input_scale >= 0.0f,
            "%s: %s.input_scale must be finite and >= 0, got %g", fn, nm, (double)m.input_scale);
  if (m.format == LMOE_WFMT_F32 || m.format == LMOE_WFMT_BF16)
    CHECK_ARG(m.scale == 1.0f, "%s: %s.scale must be 1 for %s weights, got %g", fn, nm,
              format_name(m.format), (double)m.scale);
  if (m.format == LMOE_WFMT_NVFP4) {
    CHECK_ARG(cols % 16 == 0, "%s: %s is NVFP4 but its %lld input features are not a multiple of 16",
              fn, nm, (long long)cols);
    CHECK_ARG(m.block_scales != nullptr, "%s: %s is NVFP4 but block_scales is NULL", fn, nm);
  } else {
    CHECK_ARG(m.block_scales == nullptr, "%s: %s.block_scales must be NULL for %s weights", fn, nm,
              format_name(m.format));
  }
  if (!cpu_has_kernel(m.format)) {
    set_error("%s: %s has format %s, which has no CPU kernel in this build", fn, nm,
              format_name(m.format));
    return LMOE_ERR_UNSUPPORTED;
  }
  return LMOE_OK;
}

bool absent(const lmoe_matrix& m) { return m.data == nullptr; }

lmoe_status check_w_router(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  return check_matrix(fn, "gate", -1, w->gate, c->hidden_size, true);
}

lmoe_status check_w_dispatch(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  if (c->latent_size > 0) {
    CHECK_ARG(!absent(w->latent_down), "%s: weights->latent_down is NULL (latent_size=%d)", fn,
              c->latent_size);
    TRY(check_matrix(fn, "latent_down", -1, w->latent_down, c->hidden_size, false));
  }
  return LMOE_OK;
}

lmoe_status check_w_experts(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  CHECK_ARG(w->expert_up != nullptr, "%s: weights->expert_up is NULL", fn);
  CHECK_ARG(w->expert_down != nullptr, "%s: weights->expert_down is NULL", fn);
  CHECK_ARG(!swiglu || w->expert_gate != nullptr,
            "%s: weights->expert_gate is NULL (activation is SWIGLU)", fn);
  for (int e = 0; e < c->num_experts; ++e) {
    TRY(check_matrix(fn, "expert_up", e, w->expert_up[e], width(c), false));
    TRY(check_matrix(fn, "expert_down", e, w->expert_down[e], c->expert_intermediate_size, false));
    if (swiglu) {
      TRY(check_matrix(fn, "expert_gate", e, w->expert_gate[e], width(c), false));
      CHECK_ARG(kernel_format(w->expert_gate[e].format) == kernel_format(w->expert_up[e].format),
                "%s: weights->expert_gate[%d] is %s but expert_up[%d] is %s (F32 gate rows need F32 up rows)",
                fn, e, format_name(w->expert_gate[e].format), e, format_name(w->expert_up[e].format));
    }
  }
  return LMOE_OK;
}

lmoe_status check_w_combine(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  if (c->latent_size > 0) {
    CHECK_ARG(!absent(w->latent_up), "%s: weights->latent_up is NULL (latent_size=%d)", fn,
              c->latent_size);
    TRY(check_matrix(fn, "latent_up", -1, w->latent_up, c->latent_size, false));
  }
  const int ms = c->shared_intermediate_size;
  if (ms > 0) {
    CHECK_ARG(!absent(w->shared_up), "%s: weights->shared_up is NULL (shared size %d)", fn, ms);
    CHECK_ARG(!absent(w->shared_down), "%s: weights->shared_down is NULL (shared size %d)", fn, ms);
    TRY(check_matrix(fn, "shared_up", -1, w->shared_up, c->hidden_size, false));
    TRY(check_matrix(fn, "shared_down", -1, w->shared_down, ms, false));
    if (c->activation == LMOE_ACT_SWIGLU) {
      CHECK_ARG(!absent(w->shared_gate),
                "%s: weights->shared_gate is NULL (activation is SWIGLU)", fn);
      TRY(check_matrix(fn, "shared_gate", -1, w->shared_gate, c->hidden_size, false));
      CHECK_ARG(kernel_format(w->shared_gate.format) == kernel_format(w->shared_up.format),
                "%s: weights->shared_gate is %s but shared_up is %s (F32 gate rows need F32 up rows)", fn,
                format_name(w->shared_gate.format), format_name(w->shared_up.format));
    }
  }
  return LMOE_OK;
}

// Every weight the whole layer needs.
lmoe_status check_w_all(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  TRY(check_w_router(fn, c, w));
  TRY(check_w_dispatch(fn, c, w));
  TRY(check_w_experts(fn, c, w));
  return check_w_combine(fn, c, w);
}

// The int64_t size queries: -1 (and the message) for an invalid cfg or token count.
bool size_query_ok(const char* fn, const lmoe_config* c, int64_t T) {
  clear_error();
  return check_cfg(fn, c) == LMOE_OK && check_tokens(fn, c, T) == LMOE_OK;
}

}  // namespace
}  // namespace lmoe

using namespace lmoe;

// ------------------------------------------------------------------ library, settings

LMOE_API int32_t lmoe_abi_version(void) { return LMOE_ABI_VERSION; }

LMOE_API const char* lmoe_last_error(void) { return last_error(); }

LMOE_API int32_t lmoe_cpu_best_isa(void) { return best_isa(); }

LMOE_API int32_t lmoe_cpu_isa(void) { return current_isa(); }

LMOE_API lmoe_status lmoe_cpu_set_isa(int32_t isa) {
  clear_error();
  return set_isa(isa);
}

LMOE_API int32_t lmoe_cpu_num_threads(void) { return pool_num_threads(); }

LMOE_API lmoe_status lmoe_cpu_set_num_threads(int32_t n) {
  return guarded([&]() -> lmoe_status {
    CHECK_ARG(n >= 1 && n <= 1024,
              "lmoe_cpu_set_num_threads: num_threads must be in 1..1024, got %d", (int)n);
    pool_set_num_threads(n);
    return LMOE_OK;
  });
}

LMOE_API int64_t lmoe_cpu_chunk_tokens(void) { return chunk_tokens(); }

LMOE_API lmoe_status lmoe_cpu_set_chunk_tokens(int64_t tokens) {
  return guarded([&]() -> lmoe_status {
    CHECK_ARG(tokens >= 1 && tokens <= kMaxDim,
              "lmoe_cpu_set_chunk_tokens: tokens must be in 1..%lld, got %lld",
              (long long)kMaxDim, (long long)tokens);
    set_chunk_tokens(tokens);
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_cpu_gemm_kernel(int32_t precision, const char** name,
                                          int32_t* peak_probe, int32_t* terms) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_gemm_kernel";
    CHECK_ARG(precision == LMOE_PRECISION_EXACT || precision == LMOE_PRECISION_BF16,
              "%s: unknown precision %d", fn, (int)precision);
    const GemmKernel& k = gemm_kernel(precision);
    if (name) *name = k.name;
    if (peak_probe) *peak_probe = isa_kernels().peak_probe;
    if (terms) *terms = k.terms;
    return LMOE_OK;
  });
}

// ------------------------------------------------------------------ the layer

LMOE_API lmoe_status lmoe_validate(const lmoe_config* cfg, const lmoe_weights* w) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_validate";
    TRY(check_cfg(fn, cfg));
    return check_w_all(fn, cfg, w);
  });
}

LMOE_API lmoe_status lmoe_cpu_router_topk(const lmoe_config* cfg, const lmoe_weights* w,
                                          const float* x, int64_t T, int32_t* ids, float* wts) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_router_topk";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_router(fn, cfg, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    return router_step(cfg, w, x, T, ids, wts);
  });
}

LMOE_API lmoe_status lmoe_cpu_dispatch(const lmoe_config* cfg, const lmoe_weights* w,
                                       const float* x, int64_t T, const int32_t* ids,
                                       int32_t* offsets, int32_t* row_of_slot,
                                       float* latent_sorted) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_dispatch";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_dispatch(fn, cfg, w));
    CHECK_ARG(offsets != nullptr, "%s: expert_offsets is NULL", fn);
    if (T > 0) {
      CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
      CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
      CHECK_ARG(row_of_slot != nullptr, "%s: sorted_row_of_slot is NULL", fn);
      CHECK_ARG(latent_sorted != nullptr, "%s: latent_sorted is NULL", fn);
    }
    return dispatch_step(cfg, w, x, T, ids, offsets, row_of_slot, latent_sorted);
  });
}

LMOE_API int64_t lmoe_cpu_experts_scratch_floats(const lmoe_config* cfg, int64_t T) {
  if (!size_query_ok("lmoe_cpu_experts_scratch_floats", cfg, T)) return -1;
  return T * cfg->top_k * (int64_t)cfg->expert_intermediate_size;
}

LMOE_API lmoe_status lmoe_cpu_experts(const lmoe_config* cfg, const lmoe_weights* w, int64_t T,
                                      const int32_t* offsets, const float* latent_sorted,
                                      float* hidden, float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_experts";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_experts(fn, cfg, w));
    CHECK_ARG(offsets != nullptr, "%s: expert_offsets is NULL", fn);
    if (T > 0) {
      CHECK_ARG(latent_sorted != nullptr, "%s: latent_sorted is NULL", fn);
      CHECK_ARG(hidden != nullptr, "%s: hidden_scratch is NULL", fn);
      CHECK_ARG(out != nullptr, "%s: expert_out_sorted is NULL", fn);
    }
    return experts_step(cfg, w, T, offsets, latent_sorted, hidden, out);
  });
}

LMOE_API int64_t lmoe_cpu_combine_scratch_floats(const lmoe_config* cfg, int64_t T) {
  if (!size_query_ok("lmoe_cpu_combine_scratch_floats", cfg, T)) return -1;
  return combine_scratch_floats(cfg, T);
}

LMOE_API lmoe_status lmoe_cpu_combine(const lmoe_config* cfg, const lmoe_weights* w,
                                      const float* x, int64_t T, const float* wts,
                                      const int32_t* row_of_slot, const float* y, float* scratch,
                                      float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_combine";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_combine(fn, cfg, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    CHECK_ARG(row_of_slot != nullptr, "%s: sorted_row_of_slot is NULL", fn);
    CHECK_ARG(y != nullptr, "%s: expert_out_sorted is NULL", fn);
    CHECK_ARG(out != nullptr, "%s: out is NULL", fn);
    CHECK_ARG(scratch != nullptr || combine_scratch_floats(cfg, T) == 0, "%s: scratch is NULL",
              fn);
    return combine_step(cfg, w, x, T, wts, row_of_slot, y, scratch, out);
  });
}

LMOE_API int64_t lmoe_cpu_forward_workspace_bytes(const lmoe_config* cfg, int64_t T) {
  if (!size_query_ok("lmoe_cpu_forward_workspace_bytes", cfg, T)) return -1;
  return forward_workspace_bytes(cfg, T, chunk_tokens());
}

LMOE_API lmoe_status lmoe_cpu_forward(const lmoe_config* cfg, const lmoe_weights* w,
                                      const float* x, int64_t T, int32_t* ids, float* wts,
                                      void* workspace, int64_t ws_bytes, float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_forward";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_all(fn, cfg, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    CHECK_ARG(out != nullptr, "%s: out is NULL", fn);
    CHECK_ARG(workspace != nullptr, "%s: workspace is NULL", fn);
    CHECK_ARG(((uintptr_t)workspace & 63) == 0, "%s: workspace must be 64-byte aligned", fn);
    const int64_t chunk = chunk_tokens();  // once: the workspace check and the run agree
    const int64_t need = forward_workspace_bytes(cfg, T, chunk);
    CHECK_ARG(ws_bytes >= need, "%s: workspace_bytes = %lld, need %lld", fn, (long long)ws_bytes,
              (long long)need);
    return forward_step(cfg, w, x, T, ids, wts, workspace, out, chunk);
  });
}

// ------------------------------------------------------------------ probe, fill

LMOE_API lmoe_status lmoe_cpu_membw_probe(int32_t probe, int64_t array_bytes, int32_t reps,
                                          double* best_gbps) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_membw_probe";
    CHECK_ARG(best_gbps != nullptr, "%s: best_gbps is NULL", fn);
    CHECK_ARG(probe >= LMOE_PROBE_COPY && probe <= LMOE_PROBE_READ, "%s: unknown probe %d", fn,
              (int)probe);
    CHECK_ARG(array_bytes >= 4096 && array_bytes <= ((int64_t)1 << 40),
              "%s: array_bytes must be in [4096, 2^40], got %lld", fn, (long long)array_bytes);
    CHECK_ARG(reps >= 1 && reps <= 1000, "%s: reps must be in 1..1000, got %d", fn, (int)reps);
    return membw_probe(probe, array_bytes, reps, best_gbps);
  });
}

LMOE_API lmoe_status lmoe_cpu_peak_probe(int32_t probe, double seconds, int32_t reps,
                                         double* best_gflops) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_peak_probe";
    CHECK_ARG(best_gflops != nullptr, "%s: best_gflops is NULL", fn);
    CHECK_ARG(probe >= LMOE_PEAK_SSE2 && probe <= LMOE_PEAK_AMX_BF16, "%s: unknown probe %d", fn,
              (int)probe);
    CHECK_ARG(std::isfinite(seconds) && seconds >= 1e-3 && seconds <= 60,
              "%s: seconds must be in [0.001, 60], got %g", fn, seconds);
    CHECK_ARG(reps >= 1 && reps <= 1000, "%s: reps must be in 1..1000, got %d", fn, (int)reps);
    return peak_probe(probe, seconds, reps, best_gflops);
  });
}

LMOE_API lmoe_status lmoe_fill_uniform(void* dst, int32_t dtype, int64_t count, uint64_t seed,
                                       float lo, float hi) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_fill_uniform";
    CHECK_ARG(count >= 0, "%s: count must be >= 0, got %lld", fn, (long long)count);
    if (count == 0) return LMOE_OK;
    CHECK_ARG(dst != nullptr, "%s: dst is NULL", fn);
    CHECK_ARG(dtype == LMOE_DTYPE_F32 || dtype == LMOE_DTYPE_BF16 || dtype == LMOE_DTYPE_F16,
              "%s: dtype must be F32, BF16 or F16, got %d", fn, (int)dtype);
    CHECK_ARG(std::isfinite(lo) && std::isfinite(hi) && lo < hi,
              "%s: need finite lo < hi, got [%g, %g)", fn, (double)lo, (double)hi);
    return fill_uniform(dst, dtype, count, seed, lo, hi);
  });
}
