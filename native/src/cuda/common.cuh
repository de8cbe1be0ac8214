// common.cuh - what every unit of the CUDA backend shares (not part of the ABI): errors and the
// checks that return them, the SM count, alignment and the expert width.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

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

}  // namespace lmoe_cuda
