// internal.cuh - shared declarations of the CUDA backend (not part of the ABI).
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

// ---------------------------------------------------------------- CUTLASS grouped GEMMs
// Per expert e (group), rows r in [offsets[e], offsets[e+1]):
//   D[r, :n] = epilogue( A[r, :k] . B_e^T ),  B_e = B + e*n*k, a row-major [n, k] matrix.
// A row-major [rows, k], D row-major [rows, n]. Everything bf16, f32 accumulation.
struct GroupedGemmArgs {
  int num_groups;
  const int32_t* offsets;  // device [num_groups + 1]
  const bf16* A;
  const bf16* B;
  bf16* D;
  int n;
  int k;
  int sm_count;
  int device;
  void* workspace;  // device, grouped_gemm_workspace_bytes(...) bytes, 256-aligned
  size_t workspace_bytes;
  cudaStream_t stream;
  int tile;  // GgTile
};
// CUTLASS tile of a grouped GEMM (grouped_gemm.cuh).
enum GgTile {
  GG_TILE_128x128 = 0,  // few rows per group: more CTAs
  GG_TILE_128x256 = 1,  // 1x2 cluster, many rows per group
  GG_TILE_128x192 = 2   // 1x2 cluster, relu2 only (identity runs GG_TILE_128x256)
};
// One translation unit per (epilogue, tile): grouped_gemm_{relu2,identity}[_wide].cu, _relu2_n192.cu
size_t gg_relu2_narrow_ws(int num_groups, int sm_count);
size_t gg_relu2_wide_ws(int num_groups, int sm_count);
size_t gg_relu2_n192_ws(int num_groups, int sm_count);
size_t gg_identity_narrow_ws(int num_groups, int sm_count);
size_t gg_identity_wide_ws(int num_groups, int sm_count);
lmoe_status gg_relu2_narrow(const GroupedGemmArgs& a);
lmoe_status gg_relu2_wide(const GroupedGemmArgs& a);
lmoe_status gg_relu2_n192(const GroupedGemmArgs& a);
lmoe_status gg_identity_narrow(const GroupedGemmArgs& a);
lmoe_status gg_identity_wide(const GroupedGemmArgs& a);

// Workspace for either tile.
inline size_t grouped_gemm_relu2_workspace_bytes(int num_groups, int sm_count) {
  const size_t a = gg_relu2_narrow_ws(num_groups, sm_count), b = gg_relu2_wide_ws(num_groups, sm_count);
  const size_t c = gg_relu2_n192_ws(num_groups, sm_count);
  return a > b ? (a > c ? a : c) : (b > c ? b : c);
}
inline size_t grouped_gemm_identity_workspace_bytes(int num_groups, int sm_count) {
  const size_t a = gg_identity_narrow_ws(num_groups, sm_count), b = gg_identity_wide_ws(num_groups, sm_count);
  return a > b ? a : b;
}
// D = relu(acc)^2
inline lmoe_status grouped_gemm_relu2(const GroupedGemmArgs& a) {
  return a.tile == GG_TILE_128x192   ? gg_relu2_n192(a)
         : a.tile == GG_TILE_128x256 ? gg_relu2_wide(a)
                                     : gg_relu2_narrow(a);
}
// D = acc
inline lmoe_status grouped_gemm_identity(const GroupedGemmArgs& a) {
  return a.tile == GG_TILE_128x128 ? gg_identity_narrow(a) : gg_identity_wide(a);
}

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace lmoe_cuda
