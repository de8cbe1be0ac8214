// layer.cuh - the steps of the layer on the sorted (grouped-GEMM) path and what they share:
// router.cu, dispatch.cu, experts.cu, combine.cu, forward.cu, with the dense projections on the
// tensor cores (dense_tc.cu). The entry points (abi.cu) check the arguments and take one tuning
// snapshot, then call these. No host synchronisation anywhere. Not part of the ABI.
#pragma once

#include <initializer_list>

#include "common.cuh"
#include "grouped_gemm_api.cuh"
#include "tuning.cuh"

namespace lmoe_cuda {

constexpr int64_t kMaxSlots = int64_t(1) << 22;  // T*K limit (int32 rows, grid limits)
constexpr int kMaxExperts = 2048;
constexpr int kScanThreads = 1024;  // the one-block scans over the experts (dispatch, SIMT tiles)

// The exclusive prefix sum of `mine` over the threads of a kScanThreads block (every thread
// calls it once); warp_sums: kScanThreads / 32 ints of shared memory. Integer: exact in any order.
__device__ __forceinline__ int block_exclusive_scan(int mine, int* warp_sums) {
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int incl = mine;
  for (int off = 1; off < 32; off <<= 1) {
    int v = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += v;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int v = warp_sums[lane];
    int iv = v;
    for (int off = 1; off < 32; off <<= 1) {
      int u = __shfl_up_sync(0xffffffffu, iv, off);
      if (lane >= off) iv += u;
    }
    warp_sums[lane] = iv - v;  // exclusive
  }
  __syncthreads();
  return warp_sums[warp] + incl - mine;
}

// Bump allocator over a caller workspace.
struct Carver {
  char* base;
  int64_t size;
  int64_t used = 0;
  template <class T>
  T* take(int64_t count) {
    T* p = reinterpret_cast<T*>(base + used);
    used += aup(count * int64_t(sizeof(T)));
    return p;
  }
  bool ok() const { return used <= size; }
};

// ---------------------------------------------------------------- dense_tc.cu
// For T >= kDenseTcMinT the dense projections (latent down/up, shared expert) are real GEMMs:
// they run on the CUTLASS sm90 kernels of the experts with a single group (rows [0, T)), i.e. no
// extra CUTLASS instantiation. bf16 in/out, f32 accumulation. Below that size, and whenever the
// experts backend is SIMT or shapes/pointers do not fit TMA, the SIMT/GEMV kernels run.
constexpr int64_t kDenseTcMinT = 16;
// CUTLASS tile per token bucket: 128x256 tiles (1x2 cluster) once a GEMM has many rows per
// group, 128x128 below (more CTAs for few rows). Thresholds from H200 runs at the Super shape.
constexpr int64_t kWideMinRowsPerExpert = 128;  // experts: T*K/N
constexpr int64_t kWideMinTokensDense = 2048;   // dense projections: T

bool device_is_sm90();
// Wide (128x256) tiles for a GEMM with rows_per_group rows per group?
bool wide_tiles(const Tuning& tn, int64_t rows_per_group, int64_t min_rows);
// The relu2 FC1's tile where wide tiles run (tn.fc1_tile).
GgTile fc1_wide_tile(const Tuning& tn);
// Workspace of one dense tensor-core GEMM: offsets {0, T} + one-group CUTLASS workspace.
int64_t dense_tc_ws();
// Can the dense projections with these pointers and dimensions run on the tensor cores?
bool dense_tc_ok(const Tuning& tn, int64_t T, std::initializer_list<const void*> ptrs,
                 std::initializer_list<int64_t> dims);
struct DenseTc {
  int32_t* offs;
  void* gws;
  size_t gws_bytes;
  int sm, dev;
  int tile;  // GgTile
};
// region: dense_tc_ws() bytes, 256-aligned
lmoe_status dense_tc_setup(const Tuning& tn, DenseTc& d, void* region, int64_t T, cudaStream_t s);
// D[T, n] = act(A[T, k] . B[n, k]^T)
lmoe_status dense_tc_gemm(const DenseTc& d, bool relu2_act, const bf16* A, const bf16* B,
                          bf16* D, int n, int k, cudaStream_t s);

// ---------------------------------------------------------------- qgemm.cu
// The sorted path's products with FP8 / NVFP4 weights, group g (an expert, or the one group
// {0, T} of a dense projection) covering rows [offsets[g], offsets[g+1]) of A [rows, k] bf16:
//   D[r, :n] = act(A[r, :k] . B_g^T) in bf16, B_g dequantized with its scale (lmoe_cuda_matrix).
// Weight-only: a tensor-core kernel that dequantizes the weights in registers (decode/quant.cuh:
// 16 weight rows x 32 rows of A per block, the k range split over the warps, summed in warp order).
// W8A8 (B has input scales): A quantized to e4m3 with the group's input scale into a scratch of at
// most kW8A8ChunkRows rows at a time, then CUTLASS's FP8 grouped GEMM (alpha = input x weight
// scale) where shapes, pointers and the knobs allow it, else the dequantizing kernel on the e4m3
// rows. act: ACT_NONE, ACT_RELU2, ACT_SILU (simt.cuh's Act). A, D 16-byte aligned, k, n
// multiples of 32 (abi.cu checks).
constexpr int64_t kW8A8ChunkRows = 16384;
struct MatGemm {
  const lmoe_cuda_matrix* B;
  int G;                   // groups: B holds G matrices [n, k]
  const int32_t* offsets;  // device [G + 1]
  int64_t rows;            // host: offsets[G] (T*K for the experts, T for a dense projection)
  const bf16* A;
  int k;
  bf16* D;
  int n;
  int act;
};
// Scratch bytes of mat_gemm for G groups, up to `rows` rows and k <= k_max.
int64_t mat_gemm_ws(int G, int64_t rows, int64_t k_max);
lmoe_status mat_gemm(const Tuning& tn, const MatGemm& g, void* ws, int64_t ws_bytes, cudaStream_t s);

// Dense projections of the flows that are not all-BF16 relu2 (FP8 / NVFP4 matrices, SiLU):
// D[T, n] = act(A[T, k] . B^T) bf16 for a matrix of any format: mat_gemm for FP8 / NVFP4, the
// CUTLASS kernels (dense_tc) for BF16 where they apply, else the SIMT GEMM.
struct DenseProj {
  DenseTc tc;
  bool tc_ok;
  int32_t* offs;  // {0, T}
  void* qws;      // mat_gemm scratch (shares its bytes with the CUTLASS workspace: stream order)
  int64_t qws_bytes;
  int64_t T;
};
// Region bytes for dense_proj_setup (256-aligned).
int64_t dense_proj_ws(const lmoe_config* c, int64_t T);
lmoe_status dense_proj_setup(const Tuning& tn, DenseProj& p, void* region, const lmoe_config* c,
                             int64_t T, bool tc_ok, cudaStream_t s);
lmoe_status dense_proj(const Tuning& tn, const DenseProj& p, const lmoe_cuda_matrix& B, const bf16* A,
                       int k, bf16* D, int n, int act, cudaStream_t s);

// ---------------------------------------------------------------- the steps
// Each: its workspace bytes, and the step on validated arguments with a workspace of that size.
int64_t router_ws(const lmoe_config* c, int64_t T);
lmoe_status router_step(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                        int64_t T, int32_t* ids, float* wts, void* ws, cudaStream_t s);

int64_t dispatch_ws(const lmoe_config* c, int64_t T);
lmoe_status dispatch_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                          const bf16* x, int64_t T, const int32_t* ids, int32_t* offsets,
                          int32_t* sorted_row_of_slot, bf16* latent_sorted, void* ws,
                          cudaStream_t s);

int64_t experts_ws(const lmoe_config* c, int64_t T);
lmoe_status experts_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         int64_t T, const int32_t* offsets, const bf16* latent_sorted, bf16* out,
                         void* ws, int64_t ws_bytes, cudaStream_t s);

int64_t combine_ws(const lmoe_config* c, int64_t T);
lmoe_status combine_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         const bf16* x, int64_t T, const float* wts,
                         const int32_t* sorted_row_of_slot, const bf16* y, void* ws, bf16* out,
                         cudaStream_t s);

// forward.cu: the whole layer, decode or sorted path. The workspace covers both paths.
int64_t forward_ws(const Tuning& tn, const lmoe_config* c, int64_t T);
bool use_decode(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w, const void* x,
                int64_t T);
lmoe_status forward_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         const bf16* x, int64_t T, int32_t* ids, float* wts, void* ws,
                         int64_t ws_bytes, bf16* out, cudaStream_t s);

}  // namespace lmoe_cuda
