// decode/dense.cuh - the dense GEMV segments (router, latent down/up, shared expert) of the
// staged decode path: kernel A (dense_kernel) and kernel B (top-K beside the shared down
// projection).
// Part of the decode translation unit: included by decode/decode.cu only (its kernels share the
// trace symbols of decode/trace.cuh, which need one translation unit without relocatable code).
#pragma once

#include "decode/primitives.cuh"
#include "decode/quant.cuh"
#include "decode/trace.cuh"
#include "topk.cuh"

namespace lmoe_cuda {
namespace {

constexpr int kMaxSegs = 3;

enum DenseEpi { EPI_F32 = 0, EPI_BF16 = 1, EPI_RELU2_BF16 = 2, EPI_ADD_BF16 = 3, EPI_SILU_BF16 = 4 };

// out[tok, row] = epi( sum_k W[row, k] x[tok, k] ), rows x ntok, tasks = 16-row blocks x
// token chunks of 8*NT (row block fastest: concurrent blocks share a token chunk).
struct DenseSeg {
  const void* w;  // [rows, K], bf16 or f32 (w_f32), or FP8 / NVFP4 (fmt)
  int w_f32;
  int fmt;                // lmoe_weight_format: FP8 / NVFP4 run in dense_task_q only
  const uint8_t* bscale;  // NVFP4 block scales [rows, K/16]
  const float* scale;     // FP8 / NVFP4: the per-tensor scale (device, one float)
  int rows;
  int K;
  const bf16* x;  // [ntok, ldx]
  int64_t ldx;
  int epi;
  void* out;  // [ntok, ldo]
  int64_t ldo;
  const float* add;  // EPI_ADD_BF16: [ntok, ld_add] or NULL
  int64_t ld_add;
  int nrb;    // row blocks
  int task0;  // first block index of this segment
};
struct DenseParams {
  DenseSeg seg[kMaxSegs];
  int nseg;
  int ntok;
  int32_t* zero;  // zeroed by block 0 (FC2 tickets, top-K counter), or NULL
  int nzero;
  int prefetch;   // bytes of the block's weight rows to prefetch into L2 before the PDL wait
  int trace_tag;  // DebugTraceTag of the launch (0: not traced)
};

__device__ __forceinline__ void dense_store(const DenseSeg& s, int row, int tok, float v) {
  const int64_t o = int64_t(tok) * s.ldo + row;
  switch (s.epi) {
    case EPI_F32: static_cast<float*>(s.out)[o] = v; break;
    case EPI_BF16: static_cast<bf16*>(s.out)[o] = __float2bfloat16_rn(v); break;
    case EPI_RELU2_BF16: static_cast<bf16*>(s.out)[o] = __float2bfloat16_rn(relu2f(v)); break;
    case EPI_SILU_BF16: static_cast<bf16*>(s.out)[o] = __float2bfloat16_rn(siluf(v)); break;
    default: {
      const float a = s.add ? __ldcg(s.add + int64_t(tok) * s.ld_add + row) : 0.f;
      static_cast<bf16*>(s.out)[o] = __float2bfloat16_rn(v + a);
    }
  }
}

// The 16 weight rows of task `local` are contiguous: one L2 prefetch sweep of its first `budget`
// bytes (enough to cover the wait; more only competes with the demand loads for L2).
__device__ __forceinline__ void dense_prefetch(const DenseSeg& s, int local, int budget) {
  const int row0 = (local % s.nrb) * 16, rows = min(16, s.rows - row0);
  const int64_t rb = is_qfmt(s.fmt) ? q_row_bytes(s.fmt, s.K) : int64_t(s.K) * (s.w_f32 ? 4 : 2);
  prefetch_l2(static_cast<const char*>(s.w) + int64_t(row0) * rb, min(int64_t(budget), int64_t(rows) * rb));
}

template <int NT>
__device__ __forceinline__ void dense_task(const DenseSeg& s, int local, int ntok_total,
                                           RedBuf<NT>& red) {
  constexpr int kChunkT = NT * 8;
  const int rb = local % s.nrb, tc = local / s.nrb;
  const int row0 = rb * 16, tok0 = tc * kChunkT;
  const int rows_valid = min(16, s.rows - row0), ntok = min(kChunkT, ntok_total - tok0);
  int kb0, kb1;
  warp_kblocks(s.K, kb0, kb1);
  float acc[NT][4] = {};
  const bf16* x = s.x + int64_t(tok0) * s.ldx;
  if (s.w_f32)  // 4 tokens x f32 split: one k block in flight keeps the registers under 128
    warp_rows16<NT, float, (NT > 2 ? 1 : WFrag<float>::kUnroll)>(
        static_cast<const float*>(s.w) + int64_t(row0) * s.K, s.K, rows_valid, x, s.ldx, ntok, s.K,
        kb0, kb1, acc);
  else
    warp_rows16<NT, bf16, (NT > 2 ? 2 : WFrag<bf16>::kUnroll)>(
        static_cast<const bf16*>(s.w) + int64_t(row0) * s.K, s.K, rows_valid, x, s.ldx, ntok, s.K,
        kb0, kb1, acc);
  block_reduce<NT>(acc, red, [&](int row, int tok, float v) {
    if (row < rows_valid && tok < ntok) dense_store(s, row0 + row, tok0 + tok, v);
  });
}

// dense_task for a segment of any format: FP8 / NVFP4 weights dequantized in registers
// (quant.cuh), the per-tensor scale applied to the dot product before the epilogue; BF16 / F32
// segments as dense_task.
template <int NT>
__device__ __forceinline__ void dense_task_q(const DenseSeg& s, int local, int ntok_total,
                                             RedBuf<NT>& red) {
  if (!is_qfmt(s.fmt)) {
    dense_task<NT>(s, local, ntok_total, red);
    return;
  }
  constexpr int kChunkT = NT * 8;
  const int rb = local % s.nrb, tc = local / s.nrb;
  const int row0 = rb * 16, tok0 = tc * kChunkT;
  const int rows_valid = min(16, s.rows - row0), ntok = min(kChunkT, ntok_total - tok0);
  int kb0, kb1;
  warp_kblocks(s.K, kb0, kb1);
  float acc[NT][4] = {};
  const int64_t ldw = q_row_bytes(s.fmt, s.K);
  warp_rows16_qany<NT, (NT > 1 ? 4 : 8)>(
      s.fmt, static_cast<const uint8_t*>(s.w) + int64_t(row0) * ldw, ldw,
      s.bscale + int64_t(row0) * q_bs_row_bytes(s.fmt, s.K), rows_valid, s.x + int64_t(tok0) * s.ldx,
      s.ldx, ntok, s.K, kb0, kb1, acc);
  const float sc = __ldg(s.scale);
  block_reduce<NT>(acc, red, [&](int row, int tok, float v) {
    if (row < rows_valid && tok < ntok) dense_store(s, row0 + row, tok0 + tok, v * sc);
  });
}

// Q: some segment is FP8 / NVFP4 (dense_task_q); else the BF16 / F32 kernel as it was.
template <int NT, bool Q = false>
__global__ void __launch_bounds__(kThreads, 2)
dense_kernel(const __grid_constant__ DenseParams p) {
  __shared__ RedBuf<NT> red;
  BlockTrace trace(p.trace_tag);
  const int b = blockIdx.x;
  int s = 0;
  while (s + 1 < p.nseg && b >= p.seg[s + 1].task0) ++s;
  if (p.prefetch > 0 && p.nseg > 0) dense_prefetch(p.seg[s], b - p.seg[s].task0, p.prefetch);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  if (b == 0)
    for (int i = threadIdx.x; i < p.nzero; i += kThreads) p.zero[i] = 0;
  if (p.nseg == 0) return;
  if constexpr (Q) dense_task_q<NT>(p.seg[s], b - p.seg[s].task0, p.ntok, red);
  else dense_task<NT>(p.seg[s], b - p.seg[s].task0, p.ntok, red);
}

// ---------------------------------------------------------------- top-K + shared down
// Blocks [0, topk_blocks): top-K, one warp per token (4 warps of the block); each block then
// bumps *done. The shared-expert down projection (so = hs S_down^T, f32) fills the other blocks,
// so the memory system streams S_down while the top-K runs.
constexpr int kTopkTokPerBlock = 4;
struct TopkSdownParams {
  DenseSeg seg;  // shared down, when has_seg
  int has_seg;
  int ntok;
  const float* logits;  // [T, N]
  const float* bias;
  int N, K, softmax, norm;
  float scale;
  int32_t* ids;  // [T, K]
  float* wts;    // [T, K]
  int topk_blocks;
  int32_t* done;  // zeroed by kernel A
  int prefetch;   // bytes of S_down rows prefetched per block before the PDL wait
};

template <bool Q = false>  // Q: the shared down projection is FP8 / NVFP4
__global__ void __launch_bounds__(kThreads, 2)
topk_sdown_kernel(const __grid_constant__ TopkSdownParams p) {
  __shared__ RedBuf<2> red;
  __shared__ float s_biased[kTopkTokPerBlock][kTopkMaxExperts];
  const int b = blockIdx.x;
  const bool topk = b < p.topk_blocks;
  BlockTrace trace(topk ? TRACE_TOPK : TRACE_SDOWN);
  if (!topk && p.has_seg && p.prefetch > 0) dense_prefetch(p.seg, b - p.topk_blocks, p.prefetch);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  if (topk) {
    const int warp = threadIdx.x >> 5, t = b * kTopkTokPerBlock + warp;
    if (warp < kTopkTokPerBlock && t < p.ntok)
      warp_topk(p.logits + int64_t(t) * p.N, p.bias, p.N, p.K, p.softmax, p.norm, p.scale,
                s_biased[warp], p.ids + int64_t(t) * p.K, p.wts + int64_t(t) * p.K);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(p.done, 1);
    return;
  }
  if constexpr (Q) dense_task_q<2>(p.seg, b - p.topk_blocks, p.ntok, red);
  else dense_task<2>(p.seg, b - p.topk_blocks, p.ntok, red);
}

}  // namespace
}  // namespace lmoe_cuda
