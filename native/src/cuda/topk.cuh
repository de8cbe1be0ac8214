// topk.cuh - one warp selects one token's top-K experts (shared by the decode and sorted paths).
//
// The old block-per-token kernel spent ~35 us per token on K rounds of a block-wide argmax with
// two barriers each (measured with ncu on an H200). Here a warp owns a token: the biased scores
// sit in shared memory, every lane keeps its best remaining candidate (ids lane, lane+32, ...),
// and a round is two warp reductions (redux.sync): the largest order key, then the lowest id
// holding it. Only the winning lane rescans its N/32 candidates. Same selection rule as the CPU
// path: largest biased score first, ties to the lower id, NaN never before a number (all
// remaining NaN: lowest id first); weights from the unbiased scores, normalised in k order.
#pragma once

#include <math.h>
#include <stdint.h>

#include "common.cuh"

namespace lmoe_cuda {

constexpr int kTopkMaxExperts = 2048;

// Monotone map of a float to uint32: larger value -> larger key; +0 == -0; NaN -> 0, below -inf.
__device__ __forceinline__ uint32_t topk_order_key(float v) {
  if (v != v) return 0u;
  if (v == 0.f) v = 0.f;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The lane's best remaining candidate among ids lane + 32 i (i not in `taken`): key, id
// (id = 0xFFFFFFFF when none remains). Strict '>' in increasing id order keeps the lower id on ties.
__device__ __forceinline__ void topk_lane_best(const float* s_biased, int N, int lane,
                                               uint64_t taken, uint32_t& key, uint32_t& id) {
  key = 0u;
  id = 0xFFFFFFFFu;
  for (int i = 0, e = lane; e < N; ++i, e += 32) {
    if ((taken >> i) & 1ull) continue;
    const uint32_t k = topk_order_key(s_biased[e]);
    if (id == 0xFFFFFFFFu || k > key) {
      key = k;
      id = uint32_t(e);
    }
  }
}

// Whole warp (all 32 lanes) must call. l: the token's N logits (f32); s_biased: N floats of this
// warp's shared memory; ids/wts: the token's K outputs. N <= 2048, 1 <= K <= min(32, N).
__device__ __forceinline__ void warp_topk(const float* __restrict__ l, const float* __restrict__ bias,
                                          int N, int K, int softmax, int norm, float scale,
                                          float* s_biased, int32_t* __restrict__ ids,
                                          float* __restrict__ wts) {
  const unsigned full = 0xffffffffu;
  const int lane = threadIdx.x & 31;
  float mx = -INFINITY, sum = 0.f;
  if (softmax) {
    for (int e = lane; e < N; e += 32) mx = fmaxf(mx, __ldcg(l + e));
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(full, mx, off));
    for (int e = lane; e < N; e += 32) sum += expf(__ldcg(l + e) - mx);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(full, sum, off);
  }
  for (int e = lane; e < N; e += 32) {
    const float le = __ldcg(l + e);  // written by other blocks of the fused kernel: L2, not L1
    const float sc = softmax ? expf(le - mx) / sum : 1.0f / (1.0f + expf(-le));
    s_biased[e] = sc + (bias ? bias[e] : 0.f);
  }
  __syncwarp();

  uint64_t taken = 0ull;
  uint32_t key, id;
  topk_lane_best(s_biased, N, lane, taken, key, id);
  uint32_t mine = 0u;  // lane k: the k-th selected id
  for (int k = 0; k < K; ++k) {
    const uint32_t mk = __reduce_max_sync(full, key);
    const uint32_t win = __reduce_min_sync(full, key == mk ? id : 0xFFFFFFFFu);
    if (lane == k) mine = win;
    if ((win & 31u) == uint32_t(lane)) {
      taken |= 1ull << (win >> 5);
      topk_lane_best(s_biased, N, lane, taken, key, id);
    }
  }
  const float lm = __ldcg(l + (lane < K ? mine : 0));
  const float sc = softmax ? expf(lm - mx) / sum : 1.0f / (1.0f + expf(-lm));
  float tot = 0.f;
  if (norm)
    for (int k = 0; k < K; ++k) tot += __shfl_sync(full, sc, k);  // k order, like the CPU path
  if (lane < K) {
    const float v = norm ? sc / (tot + 1e-20f) : sc;
    ids[lane] = int32_t(mine);
    wts[lane] = v * scale;
  }
}

}  // namespace lmoe_cuda
