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
