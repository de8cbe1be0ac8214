// dispatch.cu - down-projection + dispatch: a stable counting sort of the T*K slots by expert on
// the device, then z = x W_down^T (tensor cores or SIMT) or x itself written to the sorted rows.
#include <algorithm>

#include "layer.cuh"
#include "simt.cuh"

namespace lmoe_cuda {

constexpr int kChunk = 2048;  // slots per block
static inline int64_t nchunks(int64_t slots) { return (slots + kChunk - 1) / kChunk; }

// Stable counting sort of the T*K slots by expert id, deterministic (no order-dependent
// atomics: only shared-memory histogram increments, whose totals do not depend on order).
//   count:  per chunk of kChunk slots, counts[chunk][e]
//   scan:   offsets[e] (exclusive scan over e of the totals), base[chunk][e] = offsets[e] +
//           sum of counts[c'][e] over earlier chunks c'
//   place:  within a chunk, slots in order; rank among equal ids by warp match + serial warps.
__device__ __forceinline__ int clamp_id(int e, int N) { return (e >= 0 && e < N) ? e : 0; }

__global__ void __launch_bounds__(256)
dispatch_count_kernel(const int32_t* __restrict__ ids, int64_t slots, int N, int32_t* counts) {
  __shared__ int hist[kMaxExperts];
  for (int e = threadIdx.x; e < N; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  int64_t s0 = int64_t(blockIdx.x) * kChunk;
  int64_t s1 = s0 + kChunk < slots ? s0 + kChunk : slots;
  for (int64_t i = s0 + threadIdx.x; i < s1; i += blockDim.x) atomicAdd(&hist[clamp_id(ids[i], N)], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < N; e += blockDim.x) counts[int64_t(blockIdx.x) * N + e] = hist[e];
}

// One block. Each thread owns experts [2*tid, 2*tid+2).
__global__ void __launch_bounds__(kScanThreads)
dispatch_scan_kernel(const int32_t* __restrict__ counts, int nch, int N, int32_t* __restrict__ offsets,
                     int32_t* __restrict__ base) {
  __shared__ int warp_sums[kScanThreads / 32];
  const int tid = threadIdx.x;
  int tot[2] = {0, 0};
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N)
      for (int b = 0; b < nch; ++b) tot[q] += counts[int64_t(b) * N + e];
  }
  int excl = block_exclusive_scan(tot[0] + tot[1], warp_sums);
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N) {
      offsets[e] = excl;
      int run = excl;
      for (int b = 0; b < nch; ++b) {
        base[int64_t(b) * N + e] = run;
        run += counts[int64_t(b) * N + e];
      }
      excl += tot[q];
      if (e == N - 1) offsets[N] = excl;
    }
  }
}

__global__ void __launch_bounds__(256)
dispatch_place_kernel(const int32_t* __restrict__ ids, int64_t slots, int N,
                      const int32_t* __restrict__ base, int32_t* __restrict__ sorted_row_of_slot) {
  __shared__ int cursor[kMaxExperts];
  for (int e = threadIdx.x; e < N; e += blockDim.x) cursor[e] = base[int64_t(blockIdx.x) * N + e];
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const unsigned lt_mask = (1u << lane) - 1u;
  int64_t c0 = int64_t(blockIdx.x) * kChunk;
  int64_t c1 = c0 + kChunk < slots ? c0 + kChunk : slots;
  for (int64_t s0 = c0; s0 < c1; s0 += blockDim.x) {
    int64_t slot = s0 + threadIdx.x;
    bool valid = slot < c1;
    int e = valid ? clamp_id(ids[slot], N) : -1;
    unsigned peers = __match_any_sync(0xffffffffu, e);
    int rank = __popc(peers & lt_mask);
    bool leader = (peers & lt_mask) == 0;
    for (int w = 0; w < nwarps; ++w) {
      if (warp == w && valid) {
        int row = cursor[e] + rank;
        sorted_row_of_slot[slot] = row;
      }
      __syncwarp();
      if (warp == w && valid && leader) cursor[e] += __popc(peers);
      __syncthreads();
    }
  }
}

// Standard MoE: latent_sorted[row(slot)] = x[slot / K].
__global__ void gather_rows_kernel(const bf16* __restrict__ x, int64_t slots, int K, int d,
                                   const int32_t* __restrict__ sorted_row_of_slot, bf16* __restrict__ out) {
  int64_t slot = blockIdx.x;
  if (slot >= slots) return;
  const bf16* src = x + (slot / K) * int64_t(d);
  bf16* dst = out + int64_t(sorted_row_of_slot[slot]) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
}

// out[t*K + k -> row] = z[t], 16-byte vectors (W % 8 == 0, 16-byte aligned rows).
__global__ void scatter_rows_kernel(const bf16* __restrict__ z, int64_t slots, int K, int W,
                                    const int32_t* __restrict__ sorted_row_of_slot, bf16* __restrict__ out) {
  const int64_t slot = blockIdx.x;
  if (slot >= slots) return;
  const uint4* src = reinterpret_cast<const uint4*>(z + (slot / K) * int64_t(W));
  uint4* dst = reinterpret_cast<uint4*>(out + int64_t(sorted_row_of_slot[slot]) * W);
  for (int c = threadIdx.x; c < W / 8; c += blockDim.x) dst[c] = src[c];
}

int64_t dispatch_ws(const lmoe_config* c, int64_t T) {
  int64_t nch = nchunks(T * c->top_k);
  int64_t b = 2 * aup(nch * c->num_experts * 4);
  if (c->latent_size > 0) {  // z [T, w] + tensor-core GEMM (T >= kDenseTcMinT) or dense_proj
    const int64_t tc = T >= kDenseTcMinT ? dense_tc_ws() : 0;
    b += aup(T * expert_width(c) * 2) + std::max(tc, dense_proj_ws(c, T));
  }
  return b;
}

lmoe_status dispatch_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                          const bf16* x, int64_t T, const int32_t* ids, int32_t* offsets,
                          int32_t* sorted_row_of_slot, bf16* latent_sorted, void* ws,
                          cudaStream_t s) {
  const int N = c->num_experts, K = c->top_k, d = c->hidden_size, W = expert_width(c);
  const int64_t slots = T * K;
  if (slots == 0) {
    LMOE_CU(cudaMemsetAsync(offsets, 0, sizeof(int32_t) * (N + 1), s));
    return LMOE_OK;
  }
  const int64_t nch = nchunks(slots);
  Carver cv{static_cast<char*>(ws), dispatch_ws(c, T)};
  int32_t* counts = cv.take<int32_t>(nch * N);
  int32_t* base = cv.take<int32_t>(nch * N);
  dispatch_count_kernel<<<unsigned(nch), 256, 0, s>>>(ids, slots, N, counts);
  LMOE_CU_LAUNCH("dispatch_count");
  dispatch_scan_kernel<<<1, kScanThreads, 0, s>>>(counts, int(nch), N, offsets, base);
  LMOE_CU_LAUNCH("dispatch_scan");
  dispatch_place_kernel<<<unsigned(nch), 256, 0, s>>>(ids, slots, N, base, sorted_row_of_slot);
  LMOE_CU_LAUNCH("dispatch_place");
  if (c->latent_size > 0 && is_quantized(w->latent_down)) {
    // FP8 / NVFP4 W_down: z = x W_down^T on the dequantizing kernels (qgemm.cu), then scattered.
    bf16* z = cv.take<bf16>(T * W);
    DenseProj dp;
    LMOE_TRY(dense_proj_setup(tn, dp, cv.take<char>(dense_proj_ws(c, T)), c, T, false, s));
    LMOE_TRY(dense_proj(tn, dp, w->latent_down, x, d, z, W, ACT_NONE, s));
    scatter_rows_kernel<<<unsigned(slots), 128, 0, s>>>(z, slots, K, W, sorted_row_of_slot, latent_sorted);
    LMOE_CU_LAUNCH("scatter_rows");
  } else if (c->latent_size > 0 &&
      dense_tc_ok(tn, T, {x, w->latent_down.data, latent_sorted}, {int64_t(d), int64_t(W)})) {
    // z = x W_down^T on the tensor cores, then each row copied to its K sorted rows.
    bf16* z = cv.take<bf16>(T * W);
    DenseTc tc;
    LMOE_TRY(dense_tc_setup(tn, tc, cv.take<char>(dense_tc_ws()), T, s));
    LMOE_TRY(dense_tc_gemm(tc, false, x, bf16_data(w->latent_down), z, W, d, s));
    scatter_rows_kernel<<<unsigned(slots), 128, 0, s>>>(z, slots, K, W, sorted_row_of_slot, latent_sorted);
    LMOE_CU_LAUNCH("scatter_rows");
  } else if (c->latent_size > 0) {
    // z = x W_down^T once per token, each row written to its K sorted rows.
    EpiScatter epi{latent_sorted, W, sorted_row_of_slot, K};
    LMOE_TRY(gemm_nt(x, d, bf16_data(w->latent_down), d, int(T), W, d, epi, s));
  } else {
    gather_rows_kernel<<<unsigned(slots), 256, 0, s>>>(x, slots, K, d, sorted_row_of_slot, latent_sorted);
    LMOE_CU_LAUNCH("gather_rows");
  }
  return LMOE_OK;
}

}  // namespace lmoe_cuda
