// common.cuh - what every unit of the CUDA backend shares (not part of the ABI): errors and the
// checks that return them, the SM count, alignment and the expert width.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <initializer_list>

#include "latentmoe_cuda.h"

#define LMOE_CUDA_API extern "C" __attribute__((visibility("default")))

namespace lmoe_cuda {

using bf16 = __nv_bfloat16;

// Sets the calling thread's message; returns `st`.
lmoe_status set_error(lmoe_status st, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Formats "<what>: <cudaGetErrorName>: <cudaGetErrorString>" and returns LMOE_ERR_CUDA.
lmoe_status cuda_error(cudaError_t err, const char* what);
void clear_error();

// Checks a CUDA call; on failure returns LMOE_ERR_CUDA from the enclosing function.
#define LMOE_CU(call)                                                    \
  do {                                                                   \
    cudaError_t lmoe_e_ = (call);                                        \
    if (lmoe_e_ != cudaSuccess) return ::lmoe_cuda::cuda_error(lmoe_e_, #call); \
  } while (0)
// After a kernel launch: launch-configuration errors and sticky errors.
#define LMOE_CU_LAUNCH(name)                                             \
  do {                                                                   \
    cudaError_t lmoe_e_ = cudaGetLastError();                            \
    if (lmoe_e_ != cudaSuccess) return ::lmoe_cuda::cuda_error(lmoe_e_, "launch " name); \
  } while (0)
#define LMOE_TRY(expr)                                                   \
  do {                                                                   \
    lmoe_status lmoe_s_ = (expr);                                        \
    if (lmoe_s_ != LMOE_OK) return lmoe_s_;                              \
  } while (0)

// SM count of the current device (cached per device).
lmoe_status current_sm_count(int* sm_count, int* device);
// The SM count of the current device, or 256 (an upper bound, for workspace sizing) when it cannot
// be read; clears the error in that case.
int sm_count_or_default();

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
// v rounded up to the workspace alignment (256 bytes).
inline int64_t aup(int64_t v) { return (v + 255) / 256 * 256; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
// The expert width w: latent_size for a LatentMoE, hidden_size for a standard MoE.
inline int expert_width(const lmoe_config* c) {
  return c->latent_size > 0 ? c->latent_size : c->hidden_size;
}

// Epilogue activations of the GEMMs: none, relu2, non-gated SiLU (SwiGLU: two ACT_NONE GEMMs and
// the swiglu kernel).
enum Act { ACT_NONE = 0, ACT_RELU2 = 1, ACT_SILU = 2 };

// ---- weight matrices (lmoe_cuda_matrix)
inline bool present(const lmoe_cuda_matrix& m) { return m.data != nullptr; }
inline bool is_bf16(const lmoe_cuda_matrix& m) { return m.format == LMOE_WFMT_BF16; }
inline bool is_quantized(const lmoe_cuda_matrix& m) {
  return m.format == LMOE_WFMT_FP8_E4M3 || m.format == LMOE_WFMT_NVFP4;
}
// FP8 with input scales: the caller chose W8A8 for this matrix.
inline bool is_w8a8(const lmoe_cuda_matrix& m) {
  return m.format == LMOE_WFMT_FP8_E4M3 && m.input_scales != nullptr;
}
inline const bf16* bf16_data(const lmoe_cuda_matrix& m) { return static_cast<const bf16*>(m.data); }
// Every present non-gate matrix BF16: the layer the kernels ran before ABI v3.
inline bool all_bf16(const lmoe_cuda_weights* w) {
  for (const lmoe_cuda_matrix* m : {&w->latent_down, &w->latent_up, &w->expert_up, &w->expert_gate,
                                    &w->expert_down, &w->shared_up, &w->shared_gate, &w->shared_down})
    if (present(*m) && !is_bf16(*m)) return false;
  return true;
}
inline bool any_w8a8(const lmoe_cuda_weights* w) {
  for (const lmoe_cuda_matrix* m : {&w->latent_down, &w->latent_up, &w->expert_up, &w->expert_gate,
                                    &w->expert_down, &w->shared_up, &w->shared_gate, &w->shared_down})
    if (present(*m) && is_w8a8(*m)) return true;
  return false;
}

}  // namespace lmoe_cuda
