// simt.cuh - small, deterministic SIMT kernels used for the dense parts of the layer (router
// logits, latent projections, shared expert), as the fallback expert GEMM, and the SwiGLU product.
// C[M,N] = A[M,K] . B[N,K]^T, A and B row-major, f32 accumulation in a fixed k order.
#pragma once

#include <math.h>

#include "common.cuh"

namespace lmoe_cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

// relu(v)^2; NaN propagates as in torch (v < 0 ? 0 : v keeps it, v > 0 ? v : 0 would not).
__device__ __forceinline__ float relu2(float v) {
  float r = v < 0.f ? 0.f : v;
  return r * r;
}
__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

template <int ACT>  // Act (common.cuh)
__device__ __forceinline__ float apply_act(float v) {
  return ACT == ACT_RELU2 ? relu2(v) : ACT == ACT_SILU ? silu(v) : v;
}

// out[row*ldo + col] = act(v)
template <class OutT, int ACT>
struct EpiStore {
  OutT* out;
  int64_t ldo;
  __device__ __forceinline__ void operator()(int row, int col, float v) const {
    v = apply_act<ACT>(v);
    out[int64_t(row) * ldo + col] = from_f<OutT>(v);
  }
};
// out[row*ldo + col] = v + add[row*ld_add + col]
template <class OutT>
struct EpiAdd {
  OutT* out;
  int64_t ldo;
  const float* add;
  int64_t ld_add;
  __device__ __forceinline__ void operator()(int row, int col, float v) const {
    out[int64_t(row) * ldo + col] = from_f<OutT>(v + add[int64_t(row) * ld_add + col]);
  }
};
// z row `row` (a token) goes to rows sorted_row_of_slot[row*K + k] of latent_sorted, k < K.
struct EpiScatter {
  bf16* out;
  int64_t ldo;
  const int32_t* sorted_row_of_slot;
  int K;
  __device__ __forceinline__ void operator()(int row, int col, float v) const {
    bf16 b = __float2bfloat16_rn(v);
    const int32_t* r = sorted_row_of_slot + int64_t(row) * K;
    for (int k = 0; k < K; ++k) out[int64_t(r[k]) * ldo + col] = b;
  }
};

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;

// One 64x64 output tile at (m0, n0); rows < m_end, cols < N. Must be called by all 256 threads.
template <class TA, class TB, class Epi>
__device__ __forceinline__ void gemm_tile(const TA* __restrict__ A, int64_t lda,
                                          const TB* __restrict__ B, int64_t ldb, int m0, int m_end,
                                          int n0, int N, int K, const Epi& epi) {
  __shared__ float As[kBK][kBM + 4];
  __shared__ float Bs[kBK][kBN + 4];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += kBK) {
#pragma unroll
    for (int q = 0; q < (kBM * kBK) / kThreads; ++q) {
      int idx = tid + q * kThreads;
      int r = idx / kBK, c = idx % kBK;
      int gr = m0 + r, gc = k0 + c;
      As[c][r] = (gr < m_end && gc < K) ? to_f(A[int64_t(gr) * lda + gc]) : 0.f;
      int gn = n0 + r;
      Bs[c][r] = (gn < N && gc < K) ? to_f(B[int64_t(gn) * ldb + gc]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int row = m0 + ty + 16 * i;
    if (row >= m_end) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int col = n0 + tx + 16 * j;
      if (col < N) epi(row, col, acc[i][j]);
    }
  }
}

template <class TA, class TB, class Epi>
__global__ void __launch_bounds__(kThreads)
gemm_nt_kernel(const TA* __restrict__ A, int64_t lda, const TB* __restrict__ B, int64_t ldb,
               int M, int N, int K, Epi epi) {
  gemm_tile(A, lda, B, ldb, int(blockIdx.x) * kBM, M, int(blockIdx.y) * kBN, N, K, epi);
}

// Small M (decode): one warp per output column, all M <= 8 rows at once; lanes split K and the
// partial sums are reduced with a fixed xor tree.
constexpr int kGemvMaxM = 8;
template <class TA, class TB, class Epi>
__global__ void __launch_bounds__(256)
gemv_nt_kernel(const TA* __restrict__ A, int64_t lda, const TB* __restrict__ B, int64_t ldb,
               int M, int N, int K, Epi epi) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n = blockIdx.x * 8 + warp;
  if (n >= N) return;
  float acc[kGemvMaxM];
#pragma unroll
  for (int i = 0; i < kGemvMaxM; ++i) acc[i] = 0.f;
  const TB* b = B + int64_t(n) * ldb;
  for (int k = lane; k < K; k += 32) {
    float bv = to_f(b[k]);
#pragma unroll
    for (int i = 0; i < kGemvMaxM; ++i)
      if (i < M) acc[i] = fmaf(to_f(A[int64_t(i) * lda + k]), bv, acc[i]);
  }
#pragma unroll
  for (int i = 0; i < kGemvMaxM; ++i) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], off);
  }
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < kGemvMaxM; ++i)
      if (i < M) epi(i, n, acc[i]);
  }
}

// h = silu(g) * u, in place into g. count elements.
template <class T>
__global__ void swiglu_kernel(T* __restrict__ g, const T* __restrict__ u, int64_t count) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    g[i] = from_f<T>(silu(to_f(g[i])) * to_f(u[i]));
}
template <class T>
lmoe_status swiglu(T* g, const T* u, int64_t count, cudaStream_t s) {
  if (count == 0) return LMOE_OK;
  int64_t b = (count + 255) / 256;
  swiglu_kernel<T><<<unsigned(b < 65536 ? b : 65536), 256, 0, s>>>(g, u, count);
  LMOE_CU_LAUNCH("swiglu");
  return LMOE_OK;
}

// h = silu(h) in place (the non-gated SiLU after an identity GEMM). count elements.
template <class T>
__global__ void silu_kernel(T* __restrict__ h, int64_t count) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    h[i] = from_f<T>(silu(to_f(h[i])));
}
template <class T>
lmoe_status silu_inplace(T* h, int64_t count, cudaStream_t s) {
  if (count == 0) return LMOE_OK;
  int64_t b = (count + 255) / 256;
  silu_kernel<T><<<unsigned(b < 65536 ? b : 65536), 256, 0, s>>>(h, count);
  LMOE_CU_LAUNCH("silu");
  return LMOE_OK;
}

// Launches C = A . B^T with epilogue `epi` on `stream`. M, N, K > 0.
template <class TA, class TB, class Epi>
lmoe_status gemm_nt(const TA* A, int64_t lda, const TB* B, int64_t ldb, int M, int N, int K,
                    const Epi& epi, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return LMOE_OK;
  if (M <= kGemvMaxM) {
    gemv_nt_kernel<TA, TB, Epi><<<(N + 7) / 8, 256, 0, stream>>>(A, lda, B, ldb, M, N, K, epi);
    LMOE_CU_LAUNCH("gemv_nt");
  } else {
    dim3 grid((M + kBM - 1) / kBM, (N + kBN - 1) / kBN);
    gemm_nt_kernel<TA, TB, Epi><<<grid, kThreads, 0, stream>>>(A, lda, B, ldb, M, N, K, epi);
    LMOE_CU_LAUNCH("gemm_nt");
  }
  return LMOE_OK;
}

}  // namespace lmoe_cuda
