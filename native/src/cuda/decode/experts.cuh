// decode/experts.cuh - the expert GEMVs of the decode path: FC1 per (token, k) with relu^2, and FC2
// with the weighted combine over k (kernels C and D).
// Part of the decode translation unit: included by decode/decode.cu only (its kernels share the
// trace symbols of decode/trace.cuh, which need one translation unit without relocatable code).
#pragma once

#include "decode/primitives.cuh"
#include "decode/quant.cuh"
#include "decode/trace.cuh"

namespace lmoe_cuda {
namespace {

// Quantized k blocks in flight per warp: 8 (as many bytes as the bf16 path's 4) where the
// registers allow two blocks per SM, 4 for three (8 spills there).
template <int MINB>
constexpr int kQuantUnroll = MINB >= 3 ? 4 : 8;

struct Fc1Params {
  const bf16* up;  // [N, m, W] bf16
  QMat upq;        // FP8 / NVFP4 up (fc1_kernel<.., FMT != WF_BF16, ..>)
  int m, W, K, N, slots;
  const bf16* z;  // [T, ldz]
  int64_t ldz;
  const int32_t* ids;  // [T*K]
  bf16* h;             // [T*K, m]
  const int32_t* topk_done;
  int topk_blocks;
};

// Block (slot, rb), slot fastest (CTAs of slots sharing an expert read the same rows together):
// h[slot, rb*16 + r] = relu2(up_e[rb*16 + r] . z_t). Starts as soon as the top-K blocks of the
// previous kernel have published the ids (it needs nothing else from it), so FC1 streams while
// the shared-expert down projection still runs; it completes only after that kernel (pdl_wait
// at the end), so the kernels after it may rely on everything before it.
__device__ __forceinline__ void wait_ge(const int32_t* c, int target) {
  if (threadIdx.x == 0)
    while (ld_acquire(c) < target) __nanosleep(64);
  __syncthreads();
}
// Every thread's writes, then one gpu-scope release of the block's completion.
__device__ __forceinline__ void signal_done(int32_t* c) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(c, 1);
}

// FC1 task b: (slot, row block), slot fastest. FMT: the up weights' format (FP8 / NVFP4
// dequantized in registers, the expert's scale applied to the dot product; QU k blocks of them in
// flight per warp); ACT: relu2 or SiLU.
template <int FMT = WF_BF16, int ACT = LMOE_ACT_RELU2, int QU = 8>
__device__ __forceinline__ void fc1_body(const Fc1Params& p, int b, RedBuf<1>& red) {
  const int slot = b % p.slots, rb = b / p.slots;
  const int t = slot / p.K;
  const int e = clamp_expert(__ldcg(p.ids + slot), p.N);
  const int row0 = rb * 16, rows_valid = min(16, p.m - row0);
  int kb0, kb1;
  warp_kblocks(p.W, kb0, kb1);
  float acc[1][4] = {};
  float sc = 1.f;
  if constexpr (FMT == WF_BF16) {
    warp_rows16<1, bf16>(p.up + (int64_t(e) * p.m + row0) * p.W, p.W, rows_valid,
                         p.z + int64_t(t) * p.ldz, p.ldz, 1, p.W, kb0, kb1, acc);
  } else {
    const int64_t ldw = q_row_bytes(FMT, p.W);
    warp_rows16_q<1, FMT, QU>(p.upq.data + e * p.upq.stride + row0 * ldw, ldw,
                             p.upq.bscale + e * p.upq.bs_stride + row0 * q_bs_row_bytes(FMT, p.W),
                             rows_valid, p.z + int64_t(t) * p.ldz, p.ldz, 1, p.W, kb0, kb1, acc);
    sc = __ldg(p.upq.scale + e);
  }
  block_reduce<1>(acc, red, [&](int row, int tok, float v) {
    if constexpr (FMT != WF_BF16) v *= sc;
    if (tok == 0 && row < rows_valid) p.h[int64_t(slot) * p.m + row0 + row] = __float2bfloat16_rn(act_f<ACT>(v));
  });
}

// FC1 task b of the fused kernel: (slot, group of 128 rows), slot fastest. Each warp owns 16 rows
// over the whole reduction (W is short), so there is no cross-warp reduction and no barrier: 256 KB
// per task instead of 32 KB, the loads of a warp stream back to back.
constexpr int kFc1RowsPerTask = kWarps * 16;
__device__ __forceinline__ void fc1_rows_body(const Fc1Params& p, int b) {
  const int slot = b % p.slots, rg = b / p.slots;
  const int t = slot / p.K;
  const int e = clamp_expert(__ldcg(p.ids + slot), p.N);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = rg * kFc1RowsPerTask + warp * 16, rows_valid = min(16, p.m - row0);
  if (rows_valid > 0) {  // warp-uniform
    float acc[1][4] = {};
    warp_rows16<1, bf16>(p.up + (int64_t(e) * p.m + row0) * p.W, p.W, rows_valid,
                         p.z + int64_t(t) * p.ldz, p.ldz, 1, p.W, 0, (p.W + 31) / 32, acc);
    if ((lane & 3) == 0) {  // token 0 of the mma tile: c0 (row r) and c2 (row r + 8)
      const int r = lane >> 2;
      bf16* hrow = p.h + int64_t(slot) * p.m + row0;
      if (r < rows_valid) hrow[r] = __float2bfloat16_rn(relu2f(acc[0][0]));
      if (r + 8 < rows_valid) hrow[r + 8] = __float2bfloat16_rn(relu2f(acc[0][2]));
    }
  }
}

template <int MINB, int FMT = WF_BF16, int ACT = LMOE_ACT_RELU2>
__global__ void __launch_bounds__(kThreads, MINB)
fc1_kernel(const __grid_constant__ Fc1Params p) {
  __shared__ RedBuf<1> red;
  BlockTrace trace(TRACE_FC1);
  wait_ge(p.topk_done, p.topk_blocks);
  trace.ready();
  pdl_trigger();
  fc1_body<FMT, ACT, kQuantUnroll<MINB>>(p, blockIdx.x, red);
  trace.done();
  pdl_wait();
}

// ---------------------------------------------------------------- expert FC2 + combine
struct Fc2Params {
  const bf16* down;  // [N, W, m] bf16
  QMat downq;        // FP8 / NVFP4 down (fc2_kernel<.., FMT != WF_BF16>)
  int m, W, K, N, T, KG, nrb;
  const bf16* h;        // [T*K, m]
  const int32_t* ids;   // [T*K]
  const float* wts;     // [T*K]
  float* part;          // [KG, T, W] when KG > 1
  int32_t* tickets;     // [T, nrb] when KG > 1, zero on entry
  bf16* out;            // [T, W]
  const float* add;     // [T, W] or NULL
  int prefetch;         // bytes of the first expert's rows prefetched before the PDL wait
  int MC;               // stream kernel: m chunks per expert (k group kg = k * MC + chunk)
};

// The end of an FC2 task (t, kg, cb) for all threads of the block: `tot` is this warp's weighted
// partial tile; the block sums the warps in order; with KG > 1 the k groups of one (t, cb) land
// in part[kg] and the last of them to finish (ticket) adds them in kg order.
template <class BeforeFinal, class AfterFinal>
__device__ __forceinline__ void fc2_finish(const Fc2Params& p, int t, int kg, int cb,
                                           const float (&tot)[1][4], RedBuf<1>& red, int& s_last,
                                           BeforeFinal&& before_final, AfterFinal&& after_final) {
  const int row0 = cb * 16, rows_valid = min(16, p.W - row0);
  int mrow = -1;
  float mv = 0.f;
  block_reduce<1>(tot, red, [&](int row, int tok, float v) {
    if (tok == 0 && row < rows_valid) {
      mrow = row;
      mv = v;
    }
  });
  const int c = row0 + mrow;
  if (p.KG > 1) {
    if (mrow >= 0) p.part[(int64_t(kg) * p.T + t) * p.W + c] = mv;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(&p.tickets[t * p.nrb + cb], 1) == p.KG - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    if (mrow >= 0) {
      float sum = 0.f;
      for (int g = 0; g < p.KG; ++g) sum += __ldcg(&p.part[(int64_t(g) * p.T + t) * p.W + c]);
      mv = sum;
    }
  }
  before_final();
  if (mrow >= 0) {
    const float a = p.add ? __ldcg(p.add + int64_t(t) * p.W + c) : 0.f;
    p.out[int64_t(t) * p.W + c] = __float2bfloat16_rn(mv + a);
  }
  after_final();
}

// Block (t, kg, cb), t fastest: rows [cb*16, +16) of acc[t] over experts k in
// [kg*K/KG, (kg+1)*K/KG): sum_k w[t,k] (down_e[rows] . h[t,k]).
// The ids are final when this kernel starts (FC1 published them), so each block may prefetch its
// experts' rows into L2 while FC1 drains.
// FC2 task b: (t, kg, cb), t fastest. before_final() runs (all threads) before the last k group
// of a (t, cb) writes the output; after_final() (all threads) after that write.
// FMT: the down weights' format (the expert's scale folds into its routing weight), QU as fc1_body.
template <int FMT = WF_BF16, int QU = 8, class BeforeFinal, class AfterFinal>
__device__ __forceinline__ void fc2_body(const Fc2Params& p, int b, RedBuf<1>& red, int& s_last,
                                         BeforeFinal&& before_final, AfterFinal&& after_final) {
  const int t = b % p.T, rest = b / p.T;
  const int kg = rest % p.KG, cb = rest / p.KG;
  const int k0 = kg * p.K / p.KG, k1 = (kg + 1) * p.K / p.KG;
  const int row0 = cb * 16, rows_valid = min(16, p.W - row0);
  int kb0, kb1;
  warp_kblocks(p.m, kb0, kb1);
  float tot[1][4] = {};
  for (int k = k0; k < k1; ++k) {
    const int slot = t * p.K + k;
    const int e = clamp_expert(__ldcg(p.ids + slot), p.N);
    float wk = __ldcg(p.wts + slot);
    float acc[1][4] = {};
    if constexpr (FMT == WF_BF16) {
      warp_rows16<1, bf16>(p.down + (int64_t(e) * p.W + row0) * p.m, p.m, rows_valid,
                           p.h + int64_t(slot) * p.m, p.m, 1, p.m, kb0, kb1, acc);
    } else {
      const int64_t ldw = q_row_bytes(FMT, p.m);
      warp_rows16_q<1, FMT, QU>(p.downq.data + e * p.downq.stride + row0 * ldw, ldw,
                               p.downq.bscale + e * p.downq.bs_stride + row0 * q_bs_row_bytes(FMT, p.m),
                               rows_valid, p.h + int64_t(slot) * p.m, p.m, 1, p.m, kb0, kb1, acc);
      wk *= __ldg(p.downq.scale + e);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) tot[0][i] = fmaf(wk, acc[0][i], tot[0][i]);
  }
  fc2_finish(p, t, kg, cb, tot, red, s_last, before_final, after_final);
}

template <int MINB, int FMT = WF_BF16>
__global__ void __launch_bounds__(kThreads, MINB)
fc2_kernel(const __grid_constant__ Fc2Params p) {
  __shared__ RedBuf<1> red;
  __shared__ int s_last;
  BlockTrace trace(TRACE_FC2);
  const int b = blockIdx.x;
  if (p.prefetch > 0) {
    const int t = b % p.T, rest = b / p.T;
    const int kg = rest % p.KG, cb = rest / p.KG;
    const int k0 = kg * p.K / p.KG, row0 = cb * 16, rows_valid = min(16, p.W - row0);
    const int e = clamp_expert(__ldcg(p.ids + t * p.K + k0), p.N);
    if constexpr (FMT == WF_BF16) {
      prefetch_l2(p.down + (int64_t(e) * p.W + row0) * p.m,
                  min(int64_t(p.prefetch), int64_t(rows_valid) * p.m * 2));
    } else {
      const int64_t ldw = q_row_bytes(FMT, p.m);
      prefetch_l2(p.downq.data + e * p.downq.stride + row0 * ldw,
                  min(int64_t(p.prefetch), int64_t(rows_valid) * ldw));
    }
  }
  pdl_wait();
  trace.ready();
  pdl_trigger();
  fc2_body<FMT, kQuantUnroll<MINB>>(p, b, red, s_last, [] {}, [] {});
}

}  // namespace
}  // namespace lmoe_cuda
