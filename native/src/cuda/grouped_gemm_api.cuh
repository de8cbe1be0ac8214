// grouped_gemm_api.cuh - the CUTLASS sm90 grouped GEMMs as the layer calls them: arguments,
// tiles, workspace sizes and the epilogue/tile dispatch. Each (epilogue, tile) is instantiated in
// its own translation unit (grouped_gemm_*.cu, from the templates of grouped_gemm.cuh), so this
// header stays light. Not part of the ABI.
#pragma once

#include "common.cuh"

namespace lmoe_cuda {

// Per expert e (group), rows r in [offsets[e], offsets[e+1]):
//   D[r, :n] = epilogue( alpha[e] * A[r, :k] . B_e^T ),  B_e = B + e*n*k, a row-major [n, k] matrix.
// A row-major [rows, k], D row-major [rows, n]. A and B bf16 (e4m3 for the FP8 kernels), D bf16,
// f32 accumulation.
struct GroupedGemmArgs {
  int num_groups;
  const int32_t* offsets;  // device [num_groups + 1]
  const void* A;
  const void* B;
  bf16* D;
  int n;
  int k;
  int sm_count;
  int device;
  void* workspace;  // device, grouped_gemm_workspace_bytes(...) bytes, 256-aligned
  size_t workspace_bytes;
  cudaStream_t stream;
  int tile;            // GgTile (the FP8 kernels have one tile)
  const float* alpha;  // device [num_groups], or NULL (1); the FP8 kernels only
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
// W8A8: e4m3 A and B, D = relu2(alpha * acc) (FC1) or alpha * acc; grouped_gemm_fp8_*.cu
size_t gg_fp8_relu2_ws(int num_groups, int sm_count);
size_t gg_fp8_identity_ws(int num_groups, int sm_count);
lmoe_status gg_fp8_relu2(const GroupedGemmArgs& a);
lmoe_status gg_fp8_identity(const GroupedGemmArgs& a);
inline size_t grouped_gemm_fp8_workspace_bytes(int num_groups, int sm_count) {
  const size_t a = gg_fp8_relu2_ws(num_groups, sm_count), b = gg_fp8_identity_ws(num_groups, sm_count);
  return a > b ? a : b;
}

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

}  // namespace lmoe_cuda
