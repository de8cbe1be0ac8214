// decode.cu - the few-tokens ("decode") forward path and the bandwidth-bound dense GEMVs.
//
// For small T the layer is a weight stream: every byte of the router, the latent projections,
// the shared expert and the K chosen experts of each token is read once and used for at most a
// handful of tokens. This path skips the sort/permute of the grouped-GEMM path and runs five
// launches, each a GEMV-style stream over many CTAs, chained by programmatic dependent launch
// so that each kernel's prologue (L2 prefetch of its weights) overlaps the previous one's tail:
//   A  dense:  router logits (f32), z = x W_down^T (bf16), hs = relu2(x S_up^T) (bf16);
//              also zeroes the top-K counter and the FC2 tickets
//   B  top-K (one warp per token, publishes the ids)  || shared down so = hs S_down^T (f32)
//   C  expert FC1: h[t,k] = relu2(up_e z_t) (bf16); starts once the ids are out, while B's
//      shared down still streams
//   D  expert FC2 + combine: acc[t] = sum_k w[t,k] down_e h[t,k], k in order (f32), then
//      latent: accb = bf16(acc); standard: out = bf16(acc + so)
//   E  latent only: out = bf16(accb W_up^T + so)
//
// The inner loop (warp_rows16) is a tensor-core GEMV: a warp owns 16 weight rows and a slice of
// the reduction dimension, each lane loads 16 bytes of two rows and 16 bytes of (up to) two
// tokens per 32-wide k block and feeds mma.m16n8k16 (bf16 in, f32 accumulate). The k order
// inside the mma fragments is permuted identically for weights and tokens (a dot product does
// not care), so every load is a plain 16-byte vector load. The 8 warps of a CTA split the
// reduction dimension and their partial tiles are summed in shared memory in warp order: no
// atomics, the result depends only on the shapes (deterministic, graph-capturable).
// f32 weights (the router gate) are split on the fly into three bf16 terms (hi + mid + lo, exact
// to ~2^-24 relative), so the f32 router keeps f32 accuracy on the tensor cores.
// Opt-in (LMOE_CUDA_DEC_STREAM / _STREAM_DENSE, not yet measured on a GPU): the same GEMVs as
// persistent kernels that stream through a per-warp cp.async ring (see "streamed GEMVs").
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "debug_trace.h"
#include "decode.cuh"
#include "internal.cuh"
#include "topk.cuh"

namespace lmoe_cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxSegs = 3;
constexpr int64_t kRouterNarrowMaxT = 16;  // up to here: 16-token router tasks, fused into A
// Defaults from bench/bundle/tune.sh on an H200 (bench/results/gpu/2026-11-26-bundle-h200-run4):
// no pre-wait prefetch (it competed with the demand loads for L2), ~4 FC2 blocks per SM, FC2 sized
// for 2 blocks per SM.
constexpr int kDefaultPrefetchKB = 0;
constexpr int kDefaultFc2BlocksPerSm = 4;
constexpr int kDefaultMinBlocks = 2;
constexpr int kDefaultFused = 0;
constexpr int kDefaultStream = 0;  // not yet measured on a GPU: opt-in
constexpr int kStreamMChunks = 4;  // streamed FC2: m chunks per expert

inline int64_t aup(int64_t v) { return (v + 255) / 256 * 256; }
inline bool al16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ float relu2f(float v) {
  float r = v > 0.f ? v : 0.f;
  return r * r;
}
__device__ __forceinline__ int clamp_expert(int e, int N) { return (e >= 0 && e < N) ? e : 0; }

// 16-byte streaming load of weights (not kept in L1; 256-byte L2 prefetch), zero when !ok.
__device__ __forceinline__ uint4 ld_weights(const void* p, bool ok) {
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " @p ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(int(ok)));
  return v;
}
// 16-byte load of activations (small, re-read by many CTAs: L2-cached), zero when !ok. Coherent
// (.cg, not the read-only path): in the fused kernel they were written by other blocks of the
// same grid.
__device__ __forceinline__ uint4 ld_act(const void* p, bool ok) {
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " @p ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(int(ok)));
  return v;
}

__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bits(__nv_bfloat162 v) {
  return uint32_t(__bfloat16_as_ushort(v.x)) | (uint32_t(__bfloat16_as_ushort(v.y)) << 16);
}
// (a, b) -> three bf16x2 terms with a == hi + mid + lo up to ~2^-24 |a| (each residual exact).
__device__ __forceinline__ void split3(float a, float b, uint32_t& hi, uint32_t& mid, uint32_t& lo) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  float ra = a - __low2float(h), rb = b - __high2float(h);
  __nv_bfloat162 m = __floats2bfloat162_rn(ra, rb);
  float sa = ra - __low2float(m), sb = rb - __high2float(m);
  __nv_bfloat162 l = __floats2bfloat162_rn(sa, sb);
  hi = bits(h);
  mid = bits(m);
  lo = bits(l);
}
__device__ __forceinline__ float f_of(uint32_t u) { return __uint_as_float(u); }

// One lane's 8 consecutive weights of one row.
template <class WT> struct WFrag;
template <> struct WFrag<bf16> {
  static constexpr int kUnroll = 4;  // k blocks in flight per warp
  uint4 v;
  __device__ __forceinline__ void load(const bf16* p, bool ok) { v = ld_weights(p, ok); }
};
template <> struct WFrag<float> {
  static constexpr int kUnroll = 2;
  uint4 v0, v1;
  __device__ __forceinline__ void load(const float* p, bool ok) {
    v0 = ld_weights(p, ok);
    v1 = ld_weights(p + 4, ok);
  }
};

// acc[j] += rows(a: r, b: r+8) x tokens(j*8 + r) over one 32-wide k block.
//   mma k slot 2q,2q+1 <-> k q*8+{0,1} (reg .x); slot 2q+8,+9 <-> q*8+{2,3} (.y); second mma .z/.w
template <int NT>
__device__ __forceinline__ void mma_block(const WFrag<bf16>& a, const WFrag<bf16>& b,
                                          const uint4 (&x)[NT], float (&acc)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    mma16816(acc[j], a.v.x, b.v.x, a.v.y, b.v.y, x[j].x, x[j].y);
    mma16816(acc[j], a.v.z, b.v.z, a.v.w, b.v.w, x[j].z, x[j].w);
  }
}
template <int NT>
__device__ __forceinline__ void mma_block(const WFrag<float>& a, const WFrag<float>& b,
                                          const uint4 (&x)[NT], float (&acc)[NT][4]) {
  uint32_t ta[3][4], tb[3][4];
  const uint4 a0 = a.v0, a1 = a.v1, b0 = b.v0, b1 = b.v1;
  split3(f_of(a0.x), f_of(a0.y), ta[0][0], ta[1][0], ta[2][0]);
  split3(f_of(a0.z), f_of(a0.w), ta[0][1], ta[1][1], ta[2][1]);
  split3(f_of(a1.x), f_of(a1.y), ta[0][2], ta[1][2], ta[2][2]);
  split3(f_of(a1.z), f_of(a1.w), ta[0][3], ta[1][3], ta[2][3]);
  split3(f_of(b0.x), f_of(b0.y), tb[0][0], tb[1][0], tb[2][0]);
  split3(f_of(b0.z), f_of(b0.w), tb[0][1], tb[1][1], tb[2][1]);
  split3(f_of(b1.x), f_of(b1.y), tb[0][2], tb[1][2], tb[2][2]);
  split3(f_of(b1.z), f_of(b1.w), tb[0][3], tb[1][3], tb[2][3]);
#pragma unroll
  for (int j = 0; j < NT; ++j) {
#pragma unroll
    for (int s = 2; s >= 0; --s) {  // small terms first
      mma16816(acc[j], ta[s][0], tb[s][0], ta[s][1], tb[s][1], x[j].x, x[j].y);
      mma16816(acc[j], ta[s][2], tb[s][2], ta[s][3], tb[s][3], x[j].z, x[j].w);
    }
  }
}

// This warp's share of a 16-row x (8*NT)-token tile: k blocks [kb0, kb1) of 32.
//   w: row 0 of the tile ([rows, K] row-major, leading dim ldw); rows >= rows_valid are zero.
//   x: token 0 ([ntok, K] bf16, leading dim ldx); tokens >= ntok are zero.
// K % 8 == 0, w/x 16-byte aligned, ldw/ldx multiples of 8 (16 bytes).
template <int NT, class WT, int U = WFrag<WT>::kUnroll>
__device__ __forceinline__ void warp_rows16(const WT* __restrict__ w, int64_t ldw, int rows_valid,
                                            const bf16* __restrict__ x, int64_t ldx, int ntok,
                                            int K, int kb0, int kb1, float (&acc)[NT][4]) {
  const int lane = threadIdx.x & 31, r = lane >> 2, q = lane & 3;
  const bool va = r < rows_valid, vb = r + 8 < rows_valid;
  const WT* pa = w + int64_t(va ? r : 0) * ldw + q * 8;
  const WT* pb = w + int64_t(vb ? r + 8 : 0) * ldw + q * 8;
  const bf16* px[NT];
  bool vx[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int tk = j * 8 + r;
    vx[j] = tk < ntok;
    px[j] = x + int64_t(vx[j] ? tk : 0) * ldx + q * 8;
  }
  const int kq = K - q * 8;  // this lane's chunk of block kb is in range iff kb*32 < kq
  for (int kb = kb0; kb < kb1; kb += U) {
    WFrag<WT> fa[U], fb[U];
    uint4 xv[U][NT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int k = (kb + u) * 32;
      const bool ok = (kb + u < kb1) && (k < kq);
      fa[u].load(pa + k, ok && va);
      fb[u].load(pb + k, ok && vb);
#pragma unroll
      for (int j = 0; j < NT; ++j) xv[u][j] = ld_act(px[j] + k, ok && vx[j]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) mma_block<NT>(fa[u], fb[u], xv[u], acc);
  }
}

__device__ __forceinline__ void warp_kblocks(int K, int& kb0, int& kb1) {
  const int nkb = (K + 31) / 32, warp = threadIdx.x >> 5;
  kb0 = warp * nkb / kWarps;
  kb1 = (warp + 1) * nkb / kWarps;
}

// Sums the warps' tiles in warp order and calls f(row, tok, v) for each of the 16 x 8NT tile
// elements (one or more per thread).
template <int NT>
using RedBuf = float[kWarps][NT * 4][32];
template <int NT, class F>
__device__ __forceinline__ void block_reduce(const float (&acc)[NT][4], RedBuf<NT>& red, F&& f) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[warp][j * 4 + i][lane] = acc[j][i];
  __syncthreads();
  for (int el = threadIdx.x; el < NT * 128; el += kThreads) {
    const int j = el >> 7, i = (el >> 5) & 3, l = el & 31;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += red[w][j * 4 + i][l];
    f((l >> 2) + ((i & 2) ? 8 : 0), j * 8 + (l & 3) * 2 + (i & 1), v);
  }
}

// Programmatic dependent launch (sm_90): a kernel launched with the PDL attribute may start while
// its predecessor drains; griddepcontrol.wait blocks until the predecessor has completed and its
// writes are visible (a no-op without the attribute). Before the wait a block may only touch
// what the predecessor does not write: weights (prefetched into L2) and inputs published earlier.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }
// The whole block prefetches [p, p + bytes) into L2, one 128-byte line per instruction.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = int64_t(threadIdx.x) * 128; o < bytes; o += int64_t(blockDim.x) * 128)
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(c + o));
}
__device__ __forceinline__ int ld_acquire(const int32_t* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// ---------------------------------------------------------------- block trace (diagnostic)
// With a buffer set (lmoe_cuda_debug_trace, debug_trace.h; the native bench's --trace) thread 0 of
// every decode block records its kernel, SM and %globaltimer at start and end: where the forward
// leaves the memory pipe idle (kernel boundaries, tails, waits). Without a buffer it costs one
// load per block.
__device__ DebugTraceRecord* g_trace;
__device__ int g_trace_cap;
__device__ int g_trace_n;
__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
struct BlockTrace {
  DebugTraceRecord* buf = nullptr;
  uint64_t t0 = 0, t_ready = 0, t_done = 0;
  int tag;
  __device__ explicit BlockTrace(int tag_) : tag(tag_) {
    if (threadIdx.x == 0 && tag_ != 0) {
      buf = g_trace;
      if (buf) t0 = t_ready = global_ns();
    }
  }
  // the block's dependency wait is over
  __device__ void ready() {
    if (buf) t_ready = global_ns();
  }
  // the block's work is done (before a trailing wait that only orders its completion)
  __device__ void done() {
    if (buf) t_done = global_ns();
  }
  __device__ ~BlockTrace() {
    if (!buf) return;
    uint32_t sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    const int i = atomicAdd(&g_trace_n, 1);
    if (i < g_trace_cap)
      buf[i] = DebugTraceRecord{uint32_t(tag), sm, t0, t_ready, t_done ? t_done : global_ns()};
  }
};

// ---------------------------------------------------------------- dense segments
enum DenseEpi { EPI_F32 = 0, EPI_BF16 = 1, EPI_RELU2_BF16 = 2, EPI_ADD_BF16 = 3 };

// out[tok, row] = epi( sum_k W[row, k] x[tok, k] ), rows x ntok, tasks = 16-row blocks x
// token chunks of 8*NT (row block fastest: concurrent blocks share a token chunk).
struct DenseSeg {
  const void* w;  // [rows, K], bf16 or f32 (w_f32)
  int w_f32;
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
  const int64_t esz = s.w_f32 ? 4 : 2;
  prefetch_l2(static_cast<const char*>(s.w) + int64_t(row0) * s.K * esz,
              min(int64_t(budget), int64_t(rows) * s.K * esz));
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

template <int NT>
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
  dense_task<NT>(p.seg[s], b - p.seg[s].task0, p.ntok, red);
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
  dense_task<2>(p.seg, b - p.topk_blocks, p.ntok, red);
}

// ---------------------------------------------------------------- expert FC1
struct Fc1Params {
  const bf16* up;  // [N, m, W]
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

// FC1 task b: (slot, row block), slot fastest.
__device__ __forceinline__ void fc1_body(const Fc1Params& p, int b, RedBuf<1>& red) {
  const int slot = b % p.slots, rb = b / p.slots;
  const int t = slot / p.K;
  const int e = clamp_expert(__ldcg(p.ids + slot), p.N);
  const int row0 = rb * 16, rows_valid = min(16, p.m - row0);
  int kb0, kb1;
  warp_kblocks(p.W, kb0, kb1);
  float acc[1][4] = {};
  warp_rows16<1, bf16>(p.up + (int64_t(e) * p.m + row0) * p.W, p.W, rows_valid,
                       p.z + int64_t(t) * p.ldz, p.ldz, 1, p.W, kb0, kb1, acc);
  block_reduce<1>(acc, red, [&](int row, int tok, float v) {
    if (tok == 0 && row < rows_valid) p.h[int64_t(slot) * p.m + row0 + row] = __float2bfloat16_rn(relu2f(v));
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

template <int MINB>
__global__ void __launch_bounds__(kThreads, MINB)
fc1_kernel(const __grid_constant__ Fc1Params p) {
  __shared__ RedBuf<1> red;
  BlockTrace trace(TRACE_FC1);
  wait_ge(p.topk_done, p.topk_blocks);
  trace.ready();
  pdl_trigger();
  fc1_body(p, blockIdx.x, red);
  trace.done();
  pdl_wait();
}

// ---------------------------------------------------------------- expert FC2 + combine
struct Fc2Params {
  const bf16* down;  // [N, W, m]
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
template <class BeforeFinal, class AfterFinal>
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
    const float wk = __ldcg(p.wts + slot);
    float acc[1][4] = {};
    warp_rows16<1, bf16>(p.down + (int64_t(e) * p.W + row0) * p.m, p.m, rows_valid,
                         p.h + int64_t(slot) * p.m, p.m, 1, p.m, kb0, kb1, acc);
#pragma unroll
    for (int i = 0; i < 4; ++i) tot[0][i] = fmaf(wk, acc[0][i], tot[0][i]);
  }
  fc2_finish(p, t, kg, cb, tot, red, s_last, before_final, after_final);
}

template <int MINB>
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
    prefetch_l2(p.down + (int64_t(e) * p.W + row0) * p.m,
                min(int64_t(p.prefetch), int64_t(rows_valid) * p.m * 2));
  }
  pdl_wait();
  trace.ready();
  pdl_trigger();
  fc2_body(p, b, red, s_last, [] {}, [] {});
}

// ---------------------------------------------------------------- streamed GEMVs (opt-in)
// The tasks of fc1_kernel / fc2_kernel / dense_kernel, run by a persistent grid (blocks per SM
// from the occupancy of the ring below) whose blocks take tasks blockIdx.x, + gridDim.x, ...
// Each warp streams its weight and activation chunks through a private ring of S shared-memory
// stages with cp.async, S - 1 k blocks ahead of the mma, and the stream runs on across task
// boundaries: the next tasks' loads are in flight while the block reduces the current one.
// (The one-shot kernels issue a block's loads, wait for all of them, reduce and exit, so the SM's
// memory pipe empties at every task; a 16-row dense task of the shared expert is 172 KB streamed
// in six such rounds.) A lane reads back only what it copied: the ring needs no barrier.
// FC2 tasks take one expert and one of MC chunks of m (k group kg = k * MC + chunk), so there are
// enough of them for an even spread over the persistent blocks; the partials are added in kg
// order by the last task of a (t, column block) (fc2_finish): deterministic.
//
// Ring of a warp: [stage][slot][lane] uint4, slots = weight row r (KW uint4: KW = 2 holds the 8
// f32 of a lane's chunk, 1 the 8 bf16), row r + 8 (KW), then NT token chunks.
template <int NT>
struct StreamTask {
  const void* wa;  // this lane's weight row r at k = q*8; row 0 when r is out of range
  const void* wb;  // row r + 8
  const bf16* x[NT];  // token j*8 + r at k = q*8
  bool va, vb, vx[NT];
  bool f32;        // weights are f32 (only with KW = 2)
  int kb0, nkw;    // this warp's k blocks [kb0, kb0 + nkw)
  int kq;          // K - q*8: this lane's chunk of block kb is in range iff kb*32 < kq
};

__device__ __forceinline__ void cp_async16(void* smem, const void* src, bool ok) {
  const uint32_t d = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(ok ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int S, int NT, int KW>
constexpr int stream_smem_bytes() {
  return kWarps * S * (2 * KW + NT) * 32 * 16;
}

// Runs this block's ntask tasks. setup(j, task, with_ptrs) describes task j for this lane
// (without pointers only kb0/nkw are read); finish(j, acc) (all threads) reduces and stores it.
template <int S, int NT, int KW, class Setup, class Finish>
__device__ __forceinline__ void stream_tasks(int ntask, uint4* ring, Setup&& setup,
                                             Finish&& finish) {
  static_assert((S & (S - 1)) == 0 && S >= 2, "S: a power of two");
  constexpr int kSlots = 2 * KW + NT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint4* my = ring + warp * S * kSlots * 32 + lane;
  StreamTask<NT> it{};
  int ij = -1, io = 0, issued = 0;
  auto issue_next = [&] {  // the next k block of this warp's stream, if any
    while (ij < ntask && (ij < 0 || io >= it.nkw))
      if (++ij < ntask) {
        setup(ij, it, true);
        io = 0;
      }
    if (ij >= ntask) return;
    const int k = (it.kb0 + io) * 32;
    const bool ok = k < it.kq;
    const int esz = (KW == 2 && it.f32) ? 4 : 2;
    const char* pa = static_cast<const char*>(it.wa) + (ok ? int64_t(k) * esz : 0);
    const char* pb = static_cast<const char*>(it.wb) + (ok ? int64_t(k) * esz : 0);
    uint4* st = my + (issued & (S - 1)) * kSlots * 32;
#pragma unroll
    for (int v = 0; v < KW; ++v) {  // the second 16 bytes only for f32 (else zero, not read)
      const bool use = v == 0 || it.f32;
      cp_async16(st + v * 32, use ? pa + v * 16 : pa, use && ok && it.va);
      cp_async16(st + (KW + v) * 32, use ? pb + v * 16 : pb, use && ok && it.vb);
    }
#pragma unroll
    for (int j = 0; j < NT; ++j)
      cp_async16(st + (2 * KW + j) * 32, ok ? it.x[j] + k : it.x[j], ok && it.vx[j]);
    ++io;
    ++issued;
  };
  // one commit group per k block (empty ones at the end), so wait_group<S - 1> in step i
  // means that k block i has landed
  for (int i = 0; i < S - 1; ++i) {
    issue_next();
    cp_async_commit();
  }
  int used = 0;
  for (int j = 0; j < ntask; ++j) {
    StreamTask<NT> ct{};
    setup(j, ct, false);
    float acc[NT][4] = {};
    for (int o = 0; o < ct.nkw; ++o) {
      issue_next();
      cp_async_commit();
      cp_async_wait<S - 1>();
      const uint4* st = my + (used & (S - 1)) * kSlots * 32;
      uint4 xv[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) xv[t] = st[(2 * KW + t) * 32];
      if (KW == 2 && ct.f32) {
        WFrag<float> fa, fb;
        fa.v0 = st[0];
        fa.v1 = st[32];
        fb.v0 = st[KW * 32];
        fb.v1 = st[KW * 32 + 32];
        mma_block<NT>(fa, fb, xv, acc);
      } else {
        WFrag<bf16> fa, fb;
        fa.v = st[0];
        fb.v = st[KW * 32];
        mma_block<NT>(fa, fb, xv, acc);
      }
      ++used;
    }
    finish(j, acc);
    __syncthreads();  // the next finish rewrites the reduction buffer
  }
  cp_async_wait<0>();
}

__device__ __forceinline__ int stream_ntask(int total, int b0, int G) {
  return b0 < total ? (total - b0 + G - 1) / G : 0;
}
// Lane (r, q) pointers of a 16-row weight tile ([rows, ld] row-major, row 0 at w, esz bytes per
// element).
template <int NT>
__device__ __forceinline__ void stream_rows(StreamTask<NT>& tk, const void* w, int64_t ld,
                                            int rows_valid, int esz) {
  const int lane = threadIdx.x & 31, r = lane >> 2, q = lane & 3;
  const char* c = static_cast<const char*>(w);
  tk.va = r < rows_valid;
  tk.vb = r + 8 < rows_valid;
  tk.wa = c + (int64_t(tk.va ? r : 0) * ld + q * 8) * esz;
  tk.wb = c + (int64_t(tk.vb ? r + 8 : 0) * ld + q * 8) * esz;
  tk.f32 = esz == 4;
  tk.kq = int(ld) - q * 8;
}
// One token per task (FC1, FC2): token row of the mma tile r == 0 only.
__device__ __forceinline__ void stream_token(StreamTask<1>& tk, const bf16* x) {
  const int lane = threadIdx.x & 31;
  tk.x[0] = x + (lane & 3) * 8;
  tk.vx[0] = (lane >> 2) == 0;
}

// Blocks per SM the registers are sized for: two for the 4-stage rings and the FC1/FC2 8-stage
// ones (96 KB); the dense 8-stage rings (160-192 KB) fit one.
constexpr int kStreamMinBlocks = 2;

// The routing of up to kStreamSlotsCached slots in shared memory: the issuing side looks up the
// next task's expert S - 1 steps ahead, and a global load there would stall the warp's stream.
constexpr int kStreamSlotsCached = 512;
struct SlotCache {
  int32_t ids[kStreamSlotsCached];
  float wts[kStreamSlotsCached];
};
// Fills the cache (all threads; ids/wts final and visible) when the slots fit.
struct Slots {
  const int32_t* ids;
  const float* wts;
  bool cached;
  __device__ __forceinline__ int id(int i) const { return cached ? ids[i] : __ldcg(ids + i); }
  __device__ __forceinline__ float wt(int i) const { return cached ? wts[i] : __ldcg(wts + i); }
};
__device__ __forceinline__ Slots cache_slots(SlotCache& c, int slots, const int32_t* ids,
                                             const float* wts) {
  if (slots > kStreamSlotsCached) return Slots{ids, wts, false};
  for (int i = threadIdx.x; i < slots; i += blockDim.x) {
    c.ids[i] = __ldcg(ids + i);
    if (wts) c.wts[i] = __ldcg(wts + i);
  }
  __syncthreads();
  return Slots{c.ids, c.wts, true};
}

template <int S>
__global__ void __launch_bounds__(kThreads, kStreamMinBlocks)
fc1_stream_kernel(const __grid_constant__ Fc1Params p, int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<1> red;
  __shared__ SlotCache cache;
  BlockTrace trace(TRACE_FC1_STREAM);
  wait_ge(p.topk_done, p.topk_blocks);
  trace.ready();
  pdl_trigger();
  const Slots sl = cache_slots(cache, p.slots, p.ids, nullptr);
  int kb0, kb1;
  warp_kblocks(p.W, kb0, kb1);
  const int b0 = blockIdx.x, G = gridDim.x;
  stream_tasks<S, 1, 1>(
      stream_ntask(total, b0, G), ring,
      [&](int j, StreamTask<1>& tk, bool ptrs) {
        tk.kb0 = kb0;
        tk.nkw = kb1 - kb0;
        if (!ptrs) return;
        const int b = b0 + j * G, slot = b % p.slots, row0 = (b / p.slots) * 16;
        const int e = clamp_expert(sl.id(slot), p.N);
        stream_rows(tk, p.up + (int64_t(e) * p.m + row0) * p.W, p.W, min(16, p.m - row0), 2);
        stream_token(tk, p.z + int64_t(slot / p.K) * p.ldz);
      },
      [&](int j, const float(&acc)[1][4]) {
        const int b = b0 + j * G, slot = b % p.slots, row0 = (b / p.slots) * 16;
        const int rows_valid = min(16, p.m - row0);
        block_reduce<1>(acc, red, [&](int row, int tok, float v) {
          if (tok == 0 && row < rows_valid)
            p.h[int64_t(slot) * p.m + row0 + row] = __float2bfloat16_rn(relu2f(v));
        });
      });
  trace.done();
  pdl_wait();
}

template <int S>
__global__ void __launch_bounds__(kThreads, kStreamMinBlocks)
fc2_stream_kernel(const __grid_constant__ Fc2Params p, int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<1> red;
  __shared__ int s_last;
  __shared__ SlotCache cache;
  BlockTrace trace(TRACE_FC2_STREAM);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  const Slots sl = cache_slots(cache, p.T * p.K, p.ids, p.wts);
  const int warp = threadIdx.x >> 5, nkb = (p.m + 31) / 32;
  const int b0 = blockIdx.x, G = gridDim.x;
  stream_tasks<S, 1, 1>(
      stream_ntask(total, b0, G), ring,
      [&](int j, StreamTask<1>& tk, bool ptrs) {
        const int b = b0 + j * G, t = b % p.T, rest = b / p.T;
        const int kg = rest % p.KG, cb = rest / p.KG, k = kg / p.MC, mc = kg % p.MC;
        const int c0 = mc * nkb / p.MC, n = (mc + 1) * nkb / p.MC - c0;
        tk.kb0 = c0 + warp * n / kWarps;
        tk.nkw = c0 + (warp + 1) * n / kWarps - tk.kb0;
        if (!ptrs) return;
        const int slot = t * p.K + k, row0 = cb * 16;
        const int e = clamp_expert(sl.id(slot), p.N);
        stream_rows(tk, p.down + (int64_t(e) * p.W + row0) * p.m, p.m, min(16, p.W - row0), 2);
        stream_token(tk, p.h + int64_t(slot) * p.m);
      },
      [&](int j, const float(&acc)[1][4]) {
        const int b = b0 + j * G, t = b % p.T, rest = b / p.T;
        const int kg = rest % p.KG, cb = rest / p.KG;
        const float wk = sl.wt(t * p.K + kg / p.MC);
        float tot[1][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) tot[0][i] = wk * acc[0][i];
        fc2_finish(p, t, kg, cb, tot, red, s_last, [] {}, [] {});
      });
}

// The first task of p's segments (total tasks in all) that starts at or after byte `off` of the
// weight stream, tasks in order, each 16 rows x K of its segment.
__device__ __forceinline__ int task_at_bytes(const DenseParams& p, int total, int64_t off) {
  int64_t start = 0;
  for (int s = 0; s < p.nseg; ++s) {
    const int n = (s + 1 < p.nseg ? p.seg[s + 1].task0 : total) - p.seg[s].task0;
    const int64_t tb = int64_t(16) * p.seg[s].K * (p.seg[s].w_f32 ? 4 : 2);
    if (off <= start) return p.seg[s].task0;
    if (off < start + n * tb) return p.seg[s].task0 + int((off - start + tb - 1) / tb);
    start += n * tb;
  }
  return total;
}

// The dense segments (kernels A, B's shared down, E) streamed; f32 (router) and bf16 segments
// in one launch (KW = 2). Blocks [0, q.topk_blocks) run the top-K as in topk_sdown_kernel (their
// ring is their score buffer); the others stream the segments' tasks. Block 0 of the streaming
// blocks zeroes p.zero first. The tasks differ in size (a router task is 256 KB, a shared-expert
// one 128 or 172 KB, a W_up one 32 KB), so each block takes a contiguous run of tasks with an
// equal share of the weight bytes, not every G-th task.
template <int S, int NT>
__global__ void __launch_bounds__(kThreads, S == 8 ? 1 : kStreamMinBlocks)
dense_stream_kernel(const __grid_constant__ DenseParams p, const __grid_constant__ TopkSdownParams q,
                    int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<NT> red;
  const int b = blockIdx.x;
  const bool topk = b < q.topk_blocks;
  BlockTrace trace(topk ? TRACE_TOPK : p.trace_tag);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  if (topk) {
    static_assert(stream_smem_bytes<4, 1, 2>() >= int(sizeof(float)) * kTopkTokPerBlock * kTopkMaxExperts,
                  "the ring holds the top-K scores");
    auto s_biased = reinterpret_cast<float(*)[kTopkMaxExperts]>(ring);
    const int warp = threadIdx.x >> 5, t = b * kTopkTokPerBlock + warp;
    if (warp < kTopkTokPerBlock && t < q.ntok)
      warp_topk(q.logits + int64_t(t) * q.N, q.bias, q.N, q.K, q.softmax, q.norm, q.scale,
                s_biased[warp], q.ids + int64_t(t) * q.K, q.wts + int64_t(t) * q.K);
    signal_done(q.done);
    return;
  }
  const int b0 = b - q.topk_blocks, G = gridDim.x - q.topk_blocks;
  if (b0 == 0)
    for (int i = threadIdx.x; i < p.nzero; i += kThreads) p.zero[i] = 0;
  int64_t bytes = 0;
  for (int s = 0; s < p.nseg; ++s)
    bytes += int64_t((s + 1 < p.nseg ? p.seg[s + 1].task0 : total) - p.seg[s].task0) * 16 *
             p.seg[s].K * (p.seg[s].w_f32 ? 4 : 2);
  const int first = task_at_bytes(p, total, bytes * b0 / G);
  const int ntask = task_at_bytes(p, total, bytes * (b0 + 1) / G) - first;
  constexpr int kChunkT = NT * 8;
  const int lane = threadIdx.x & 31, r = lane >> 2, q8 = (lane & 3) * 8;
  // the segment and its task of the block's task j
  auto locate = [&](int j, int& si, int& local) {
    const int task = first + j;
    si = 0;
    while (si + 1 < p.nseg && task >= p.seg[si + 1].task0) ++si;
    local = task - p.seg[si].task0;
  };
  stream_tasks<S, NT, 2>(
      ntask, ring,
      [&](int j, StreamTask<NT>& tk, bool ptrs) {
        int si, local;
        locate(j, si, local);
        const DenseSeg& sg = p.seg[si];
        int kb0, kb1;
        warp_kblocks(sg.K, kb0, kb1);
        tk.kb0 = kb0;
        tk.nkw = kb1 - kb0;
        tk.f32 = sg.w_f32 != 0;  // the consuming side reads it too
        if (!ptrs) return;
        const int row0 = (local % sg.nrb) * 16, tok0 = (local / sg.nrb) * kChunkT;
        const int esz = sg.w_f32 ? 4 : 2;
        stream_rows(tk, static_cast<const char*>(sg.w) + int64_t(row0) * sg.K * esz, sg.K,
                    min(16, sg.rows - row0), esz);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const int tok = tok0 + t * 8 + r;
          tk.vx[t] = tok < p.ntok;
          tk.x[t] = sg.x + int64_t(tk.vx[t] ? tok : 0) * sg.ldx + q8;
        }
      },
      [&](int j, const float(&acc)[NT][4]) {
        int si, local;
        locate(j, si, local);
        const DenseSeg& sg = p.seg[si];
        const int row0 = (local % sg.nrb) * 16, tok0 = (local / sg.nrb) * kChunkT;
        const int rows_valid = min(16, sg.rows - row0), ntok = min(kChunkT, p.ntok - tok0);
        block_reduce<NT>(acc, red, [&](int row, int tok, float v) {
          if (row < rows_valid && tok < ntok) dense_store(sg, row0 + row, tok0 + tok, v);
        });
      });
}

// ---------------------------------------------------------------- the fused decode kernel
// The whole decode forward as one grid of tasks in dependency order. A block claims the next
// task with an atomic ticket (not blockIdx), so every task it may wait for was claimed earlier by
// a block that is running or done: waits always end, and no kernel boundary drains the memory
// pipe between the stages. Order (counters in ctr):
//   router (1) | W_down -> z (2) | top-K (3: waits 1) | S_up -> hs (4) |
//   FC1 per (slot, 128 rows), slot-major (per-slot counters: waits 2, 3) | S_down -> so (5: waits 4) |
//   FC2 per (t, k, column block), slot-major (waits its slot; the last k of a column block adds
//   the K partials up, waiting for 5 first when it adds so) (6) |
//   latent: W_up + so -> out (waits 6 and 5; prefetches its rows while waiting)
// FC2 takes one expert per task (KG = K), so the result does not depend on T.
enum { C_NEXT = 0, C_ROUTER, C_WDOWN, C_TOPK, C_SUP, C_SDOWN, C_FINALS, C_SLOTS = 8 };
struct FusedParams {
  DenseSeg router, wdown, sup, sdown, wup;
  int ntok;
  // top-K
  const float* logits;
  const float* bias;
  int N, K, softmax, norm;
  float scale;
  int32_t* ids;
  float* wts;
  Fc1Params fc1;
  Fc2Params fc2;
  int32_t* ctr;  // [C_SLOTS + T*K] + FC2 tickets, zeroed before the launch
  int n_router, n_wdown, n_topk, n_sup, n_fc1, n_sdown, n_fc2, n_wup;
  int fc1_rows;  // FC1 tasks per slot
  int wup_prefetch;
};

union FusedRed {
  RedBuf<2> r2;
  RedBuf<1> r1;
};
template <int NT> __device__ __forceinline__ RedBuf<NT>& red_nt(FusedRed& r);
template <> __device__ __forceinline__ RedBuf<1>& red_nt<1>(FusedRed& r) { return r.r1; }
template <> __device__ __forceinline__ RedBuf<2>& red_nt<2>(FusedRed& r) { return r.r2; }

// NT = 1 (T <= 8): 8-token dense tasks, registers for 3 blocks per SM; NT = 2: 16-token tasks.
template <int NT>
__global__ void __launch_bounds__(kThreads, NT == 1 ? 3 : 2)
fused_decode_kernel(const __grid_constant__ FusedParams p) {
  __shared__ FusedRed red;
  __shared__ float s_biased[kTopkTokPerBlock][kTopkMaxExperts];
  __shared__ int s_task, s_last;
  if (threadIdx.x == 0) s_task = atomicAdd(&p.ctr[C_NEXT], 1);
  __syncthreads();
  int task = s_task;
  int stage = 0;  // for the trace: the stage this task belongs to
  {
    const int n[8] = {p.n_router, p.n_wdown, p.n_topk, p.n_sup, p.n_fc1, p.n_sdown, p.n_fc2, p.n_wup};
    for (int r = task; stage < 7 && r >= n[stage]; ++stage) r -= n[stage];
  }
  BlockTrace trace(TRACE_FUSED_ROUTER + stage);
  if (task < p.n_router) {
    dense_task<NT>(p.router, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_ROUTER]);
    return;
  }
  task -= p.n_router;
  if (task < p.n_wdown) {
    dense_task<NT>(p.wdown, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_WDOWN]);
    return;
  }
  task -= p.n_wdown;
  if (task < p.n_topk) {
    wait_ge(&p.ctr[C_ROUTER], p.n_router);
    const int warp = threadIdx.x >> 5, t = task * kTopkTokPerBlock + warp;
    if (warp < kTopkTokPerBlock && t < p.ntok)
      warp_topk(p.logits + int64_t(t) * p.N, p.bias, p.N, p.K, p.softmax, p.norm, p.scale,
                s_biased[warp], p.ids + int64_t(t) * p.K, p.wts + int64_t(t) * p.K);
    signal_done(&p.ctr[C_TOPK]);
    return;
  }
  task -= p.n_topk;
  if (task < p.n_sup) {
    dense_task<NT>(p.sup, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_SUP]);
    return;
  }
  task -= p.n_sup;
  if (task < p.n_fc1) {
    if (threadIdx.x == 0) {
      while (ld_acquire(&p.ctr[C_TOPK]) < p.n_topk) __nanosleep(64);
      while (ld_acquire(&p.ctr[C_WDOWN]) < p.n_wdown) __nanosleep(64);
    }
    __syncthreads();
    // slot-major here (a slot's row groups back to back), so slots complete in order and the
    // FC2 tasks, in the same order, find theirs done
    const int slot = task / p.fc1_rows, rg = task % p.fc1_rows;
    fc1_rows_body(p.fc1, slot + p.fc1.slots * rg);
    signal_done(&p.ctr[C_SLOTS + slot]);
    return;
  }
  task -= p.n_fc1;
  if (task < p.n_sdown) {
    wait_ge(&p.ctr[C_SUP], p.n_sup);
    dense_task<NT>(p.sdown, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_SDOWN]);
    return;
  }
  task -= p.n_sdown;
  if (task < p.n_fc2) {
    const Fc2Params& q = p.fc2;  // KG == K: task (t, k, cb) needs slot t*K + k
    const int cb = task % q.nrb, k = (task / q.nrb) % q.K, t = task / (q.nrb * q.K);  // slot order
    wait_ge(&p.ctr[C_SLOTS + t * q.K + k], p.fc1_rows);
    fc2_body(
        q, t + q.T * (k + q.KG * cb), red.r1, s_last,
        [&] {
          if (q.add) wait_ge(&p.ctr[C_SDOWN], p.n_sdown);
        },
        [&] { signal_done(&p.ctr[C_FINALS]); });
    return;
  }
  task -= p.n_fc2;
  if (task < p.n_wup) {
    if (p.wup_prefetch > 0) dense_prefetch(p.wup, task, p.wup_prefetch);
    if (threadIdx.x == 0) {
      while (ld_acquire(&p.ctr[C_FINALS]) < p.fc2.T * p.fc2.nrb) __nanosleep(64);
      while (ld_acquire(&p.ctr[C_SDOWN]) < p.n_sdown) __nanosleep(64);
    }
    __syncthreads();
    dense_task<NT>(p.wup, task, p.ntok, red_nt<NT>(red));
  }
}

// ---------------------------------------------------------------- host side
inline int expert_width(const lmoe_config* c) {
  return c->latent_size > 0 ? c->latent_size : c->hidden_size;
}

// Tuning knobs of the decode path (H200-tuned defaults; environment overrides for sweeps):
//   LMOE_CUDA_PDL=0            plain launches instead of programmatic dependent launch
//   LMOE_CUDA_PREFETCH_KB=n    L2 prefetch per block before the PDL wait (0: none)
//   LMOE_CUDA_FC2_BLOCKS=n     FC2 k-groups chosen for about n x SMs blocks
//   LMOE_CUDA_DEC_MINB=2|3     FC1/FC2 blocks per SM the registers are sized for
//   LMOE_CUDA_DECODE_FUSED=0|1 one fused kernel (task queue) instead of the five launches
//   LMOE_CUDA_DEC_STREAM=0|4|8 FC1/FC2 as persistent kernels streaming through a cp.async ring of
//                              4 or 8 stages per warp (0: the one-shot fc1/fc2 kernels)
//   LMOE_CUDA_DEC_STREAM_DENSE=0|4|8  the same for the dense launches A, B (shared down), E
int env_int(const char* name, int dflt) {
  const char* v = getenv(name);
  return (v && *v) ? atoi(v) : dflt;
}
struct DecTuning {
  bool pdl, fused;
  int prefetch_bytes, fc2_blocks_per_sm, minb, stream, stream_dense;
};
const DecTuning& tuning() {
  static const DecTuning t = [] {
    DecTuning d;
    d.pdl = env_int("LMOE_CUDA_PDL", 1) != 0;
    d.fused = env_int("LMOE_CUDA_DECODE_FUSED", kDefaultFused) != 0;
    d.prefetch_bytes = env_int("LMOE_CUDA_PREFETCH_KB", kDefaultPrefetchKB) * 1024;
    d.fc2_blocks_per_sm = env_int("LMOE_CUDA_FC2_BLOCKS", kDefaultFc2BlocksPerSm);
    d.minb = env_int("LMOE_CUDA_DEC_MINB", kDefaultMinBlocks) == 2 ? 2 : 3;
    const auto stages = [](int v) { return v <= 0 ? 0 : v < 8 ? 4 : 8; };
    d.stream = stages(env_int("LMOE_CUDA_DEC_STREAM", kDefaultStream));
    d.stream_dense = stages(env_int("LMOE_CUDA_DEC_STREAM_DENSE", kDefaultStream));
    if (d.prefetch_bytes < 0) d.prefetch_bytes = 0;
    if (d.fc2_blocks_per_sm < 1) d.fc2_blocks_per_sm = 1;
    return d;
  }();
  return t;
}

// FC2 k groups: enough (t, cb, kg) blocks that the last, partial wave is a small share of the
// kernel (at T = 1 with 2 waves of long blocks it was ~25%).
int fc2_groups(const lmoe_config* c, int64_t T, int sm) {
  const int64_t base = T * ((expert_width(c) + 15) / 16);
  if (base <= 0) return 1;
  int64_t kg = (int64_t(tuning().fc2_blocks_per_sm) * sm + base - 1) / base;
  if (kg < 1) kg = 1;
  if (kg > c->top_k) kg = c->top_k;
  return int(kg);
}

bool pdl_enabled() { return tuning().pdl; }

template <class... KArgs, class... Args>
lmoe_status launch_smem(void (*kernel)(KArgs...), int64_t grid, size_t smem, bool pdl,
                        cudaStream_t s, const char* name, Args&&... args) {
  if (grid <= 0) return LMOE_OK;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(grid));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = (pdl && pdl_enabled()) ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  if (e != cudaSuccess) return cuda_error(e, name);
  return LMOE_OK;
}
template <class P>
lmoe_status launch(void (*kernel)(const P), int64_t grid, bool pdl, const P& p, cudaStream_t s,
                   const char* name) {
  return launch_smem(kernel, grid, 0, pdl, s, name, p);
}

// A persistent streamed launch: the ring's shared memory opted in (once per kernel), `extra`
// blocks (top-K) plus as many streaming blocks as fit on the device at once (at most `tasks`);
// the kernel's last argument is `tasks`.
template <auto Kernel, class... Args>
lmoe_status launch_stream(size_t smem, int64_t extra, int64_t tasks, bool pdl, cudaStream_t s,
                          const char* name, const Args&... args) {
  constexpr int kMaxDev = 64;  // the attribute is per device: one cache slot each
  static std::atomic<int> per_sm[kMaxDev];
  int dev = 0;
  LMOE_CU(cudaGetDevice(&dev));
  int n = dev < kMaxDev ? per_sm[dev].load() : 0;
  if (n == 0) {
    LMOE_CU(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    LMOE_CU(cudaFuncSetAttribute(Kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 int(cudaSharedmemCarveoutMaxShared)));
    LMOE_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, kThreads, smem));
    if (n < 1)
      return set_error(LMOE_ERR_UNSUPPORTED, "%s: %zu bytes of shared memory per block do not fit",
                       name, smem);
    if (dev < kMaxDev) per_sm[dev].store(n);
  }
  const int64_t grid = extra + std::min<int64_t>(tasks, int64_t(n) * sm_count_or_default());
  return launch_smem(Kernel, grid, smem, pdl, s, name, args..., int(tasks));
}
// The dense segments of p (and q's top-K blocks) as one streamed launch (tuning().stream_dense
// stages); tok_chunk (8 or 16) is the chunk p's segments were added with.
lmoe_status launch_dense_stream(const DenseParams& p, int tasks, const TopkSdownParams& q,
                                int tok_chunk, bool pdl, cudaStream_t s, const char* name) {
  const int S = tuning().stream_dense;
  if (tok_chunk == 8) {
    if (S == 8)
      return launch_stream<dense_stream_kernel<8, 1>>(stream_smem_bytes<8, 1, 2>(), q.topk_blocks,
                                                      tasks, pdl, s, name, p, q);
    return launch_stream<dense_stream_kernel<4, 1>>(stream_smem_bytes<4, 1, 2>(), q.topk_blocks,
                                                    tasks, pdl, s, name, p, q);
  }
  if (S == 8)
    return launch_stream<dense_stream_kernel<8, 2>>(stream_smem_bytes<8, 2, 2>(), q.topk_blocks,
                                                    tasks, pdl, s, name, p, q);
  return launch_stream<dense_stream_kernel<4, 2>>(stream_smem_bytes<4, 2, 2>(), q.topk_blocks,
                                                  tasks, pdl, s, name, p, q);
}

struct DecLayout {
  int64_t logits, z, hs, h, so, part, tickets, accb, total;
  int KG;
};
DecLayout dec_layout(const lmoe_config* c, int64_t T, int sm) {
  const int64_t d = c->hidden_size, W = expert_width(c), m = c->expert_intermediate_size;
  const int64_t ms = c->shared_intermediate_size, K = c->top_k, N = c->num_experts;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  DecLayout L;
  L.KG = fc2_groups(c, T, sm);
  int64_t o = 0;
  L.logits = o; o += aup(T * N * 4);
  L.z = o; o += latent ? aup(T * W * 2) : 0;
  L.hs = o; o += shared ? aup(T * ms * 2) : 0;
  L.h = o; o += aup(T * K * m * 2);
  L.so = o; o += shared ? aup(T * d * 4) : 0;
  // FC2 partials: KG groups (five-kernel path), K (fused kernel) or K x m chunks (streamed FC2)
  const int64_t parts = tuning().stream ? K * kStreamMChunks : K;
  L.part = o; o += parts > 1 ? aup(parts * T * W * 4) : 0;
  // counters: five-kernel path [0] top-K done, then FC2 tickets [T, W/16] (zeroed by kernel A);
  // fused kernel [C_SLOTS] task counters, per-slot FC1 counters [T*K], FC2 tickets [T, W/16]
  L.tickets = o; o += aup((C_SLOTS + T * K + T * ((W + 15) / 16)) * 4);
  L.accb = o; o += latent ? aup(T * W * 2) : 0;
  L.total = o;
  return L;
}

// tok_chunk: 16 (NT = 2) or 32 (NT = 4) tokens per task
DenseSeg make_seg(int& tasks, const void* w, bool w_f32, int rows, int K, const bf16* x,
                  int64_t ldx, int epi, void* out, int64_t ldo, const float* add, int64_t ld_add,
                  int64_t T, int tok_chunk) {
  DenseSeg s{};
  s.w = w;
  s.w_f32 = w_f32 ? 1 : 0;
  s.rows = rows;
  s.K = K;
  s.x = x;
  s.ldx = ldx;
  s.epi = epi;
  s.out = out;
  s.ldo = ldo;
  s.add = add;
  s.ld_add = ld_add;
  s.nrb = (rows + 15) / 16;
  s.task0 = tasks;
  tasks += s.nrb * int((T + tok_chunk - 1) / tok_chunk);
  return s;
}
void add_seg(DenseParams& p, int& tasks, const void* w, bool w_f32, int rows, int K,
             const bf16* x, int64_t ldx, int epi, void* out, int64_t ldo, const float* add,
             int64_t ld_add, int64_t T, int tok_chunk = 16) {
  p.seg[p.nseg++] = make_seg(tasks, w, w_f32, rows, K, x, ldx, epi, out, ldo, add, ld_add, T, tok_chunk);
}

// One decode forward: its inputs, the buffers carved from the workspace, and the shapes.
struct DecCtx {
  const lmoe_config* c;
  const lmoe_cuda_weights* w;
  const bf16* x;
  int64_t T;
  int32_t* ids;
  float* wts;
  bf16* out;
  float* logits;
  bf16 *z, *hs, *h, *accb;
  float *so, *part;
  int32_t* counters;
  int d, W, m, ms, K, N, nrb_w, topk_blocks;
  bool latent, shared;
};

// The top-K fields (same names in TopkSdownParams and FusedParams).
template <class P>
void set_topk(P& p, const DecCtx& q) {
  p.ntok = int(q.T);
  p.logits = q.logits;
  p.bias = q.w->gate_bias;
  p.N = q.N;
  p.K = q.K;
  p.softmax = q.c->scoring == LMOE_SCORING_SOFTMAX;
  p.norm = q.c->norm_topk_prob;
  p.scale = q.c->routed_scaling_factor;
  p.ids = q.ids;
  p.wts = q.wts;
}
Fc1Params fc1_params(const DecCtx& q) {
  Fc1Params p{};
  p.up = static_cast<const bf16*>(q.w->expert_up);
  p.m = q.m;
  p.W = q.W;
  p.K = q.K;
  p.N = q.N;
  p.slots = int(q.T) * q.K;
  p.z = q.latent ? q.z : q.x;
  p.ldz = q.W;
  p.ids = q.ids;
  p.h = q.h;
  return p;
}
// KG k groups (m chunks MC each), tickets [T, W/16] zeroed before the launch.
Fc2Params fc2_params(const DecCtx& q, int KG, int MC, int32_t* tickets) {
  Fc2Params p{};
  p.down = static_cast<const bf16*>(q.w->expert_down);
  p.m = q.m;
  p.W = q.W;
  p.K = q.K;
  p.N = q.N;
  p.T = int(q.T);
  p.KG = KG;
  p.MC = MC;
  p.nrb = q.nrb_w;
  p.h = q.h;
  p.ids = q.ids;
  p.wts = q.wts;
  p.part = q.part;
  p.tickets = tickets;
  p.out = q.latent ? q.accb : q.out;
  p.add = q.latent ? nullptr : q.so;
  return p;
}

// ---- one fused kernel (see fused_decode_kernel)
lmoe_status decode_fused(const DecCtx& q, cudaStream_t s) {
  const lmoe_cuda_weights* w = q.w;
  const int64_t T = q.T;
  LMOE_CU(cudaMemsetAsync(q.counters, 0, size_t(C_SLOTS + T * q.K + T * q.nrb_w) * 4, s));
  FusedParams p{};
  const int nt = T <= 8 ? 1 : 2, chunk = 8 * nt;
  p.router = make_seg(p.n_router, w->gate, w->gate_dtype == LMOE_DTYPE_F32, q.N, q.d, q.x, q.d,
                      EPI_F32, q.logits, q.N, nullptr, 0, T, chunk);
  if (q.latent)
    p.wdown = make_seg(p.n_wdown, w->latent_down, false, q.W, q.d, q.x, q.d, EPI_BF16, q.z, q.W,
                       nullptr, 0, T, chunk);
  if (q.shared) {
    p.sup = make_seg(p.n_sup, w->shared_up, false, q.ms, q.d, q.x, q.d, EPI_RELU2_BF16, q.hs, q.ms,
                     nullptr, 0, T, chunk);
    p.sdown = make_seg(p.n_sdown, w->shared_down, false, q.d, q.ms, q.hs, q.ms, EPI_F32, q.so, q.d,
                       nullptr, 0, T, chunk);
  }
  if (q.latent) {
    p.wup = make_seg(p.n_wup, w->latent_up, false, q.d, q.W, q.accb, q.W, EPI_ADD_BF16, q.out, q.d,
                     q.so, q.d, T, chunk);
    p.wup_prefetch = 32 * 1024;  // HBM is idle while the last FC2 tasks finish
  }
  set_topk(p, q);
  p.n_topk = q.topk_blocks;
  p.fc1 = fc1_params(q);
  p.fc1_rows = (q.m + kFc1RowsPerTask - 1) / kFc1RowsPerTask;
  p.n_fc1 = p.fc1.slots * p.fc1_rows;
  p.fc2 = fc2_params(q, q.K, 1, q.counters + C_SLOTS + T * q.K);  // one expert per task
  p.n_fc2 = int(T) * q.K * q.nrb_w;
  p.ctr = q.counters;
  const int64_t total = int64_t(p.n_router) + p.n_wdown + p.n_topk + p.n_sup + p.n_fc1 +
                        p.n_sdown + p.n_fc2 + p.n_wup;
  return launch(nt == 1 ? fused_decode_kernel<1> : fused_decode_kernel<2>, total, false, p, s,
                "decode fused");
}

}  // namespace

// ================================================================ debug trace (debug_trace.h)
LMOE_CUDA_API lmoe_status lmoe_cuda_debug_trace(DebugTraceRecord* records, int64_t capacity) {
  if (records != nullptr && (capacity <= 0 || capacity > INT_MAX))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "debug trace: capacity %lld out of range",
                     (long long)capacity);
  const int cap = records ? int(capacity) : 0, zero = 0;
  LMOE_CU(cudaDeviceSynchronize());
  LMOE_CU(cudaMemcpyToSymbol(g_trace, &records, sizeof records));
  LMOE_CU(cudaMemcpyToSymbol(g_trace_cap, &cap, sizeof cap));
  LMOE_CU(cudaMemcpyToSymbol(g_trace_n, &zero, sizeof zero));
  // from pageable memory the copies may return before they land; the next kernels (on any
  // stream) must see them
  LMOE_CU(cudaDeviceSynchronize());
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_debug_tuning(char* buf, int64_t size) {
  if (!buf || size <= 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "debug tuning: no buffer");
  const DecTuning& t = tuning();
  const char* fc1 = getenv("LMOE_CUDA_FC1_TILE");  // read by layer.cu the same way
  snprintf(buf, size_t(size),
           "pdl=%d fused=%d prefetch_kb=%d fc2_blocks=%d minb=%d stream=%d stream_dense=%d fc1_tile=%d",
           int(t.pdl), int(t.fused), t.prefetch_bytes / 1024, t.fc2_blocks_per_sm, t.minb, t.stream,
           t.stream_dense, (fc1 && atoi(fc1) == 192) ? 192 : 256);
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_debug_trace_count(int64_t* count) {
  if (!count) return set_error(LMOE_ERR_INVALID_ARGUMENT, "debug trace: count is NULL");
  int n = 0;
  LMOE_CU(cudaDeviceSynchronize());
  LMOE_CU(cudaMemcpyFromSymbol(&n, g_trace_n, sizeof n));
  *count = n;
  return LMOE_OK;
}

// ================================================================ internal API
bool gemv_router_ok(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T) {
  const int64_t tasks = ((c->num_experts + 15) / 16) * ((T + 15) / 16);
  return T >= 1 && tasks < INT_MAX && c->hidden_size % 8 == 0 && al16(x) && w->gate &&
         al16(w->gate);
}

// Beyond 16 tokens the tasks take 32 tokens each: half the re-reads of the (L2-resident) gate.
lmoe_status gemv_router_logits(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                               int64_t T, float* logits, cudaStream_t s) {
  DenseParams p{};
  int tasks = 0;
  const int d = c->hidden_size, N = c->num_experts;
  const bool wide = T > kRouterNarrowMaxT;
  add_seg(p, tasks, w->gate, w->gate_dtype == LMOE_DTYPE_F32, N, d, x, d, EPI_F32, logits, N,
          nullptr, 0, T, wide ? 32 : 16);
  p.ntok = int(T);
  if (wide) return launch(dense_kernel<4>, tasks, false, p, s, "router logits");
  return launch(dense_kernel<2>, tasks, false, p, s, "router logits");
}

bool decode_supported(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T) {
  if (c->activation != LMOE_ACT_RELU2) return false;  // SwiGLU: grouped path
  const int64_t d = c->hidden_size, W = expert_width(c), m = c->expert_intermediate_size;
  const int64_t ms = c->shared_intermediate_size;
  if (d % 8 || W % 8 || m % 8 || ms % 8) return false;
  if (!al16(x) || !al16(w->gate) || !al16(w->expert_up) || !al16(w->expert_down)) return false;
  if (c->latent_size > 0 && (!al16(w->latent_down) || !al16(w->latent_up))) return false;
  if (ms > 0 && (!al16(w->shared_up) || !al16(w->shared_down))) return false;
  // grid sizes (int32 block indices)
  const int64_t fc1 = T * c->top_k * ((m + 15) / 16);
  const int64_t fc2 = T * c->top_k * (tuning().stream ? kStreamMChunks : 1) * ((W + 15) / 16);
  const int64_t dense = ((T + 15) / 16) * ((c->num_experts + W + ms + d + 63) / 16 + 4);
  return fc1 < INT_MAX && fc2 < INT_MAX && dense < INT_MAX;
}

int64_t decode_workspace_bytes(const lmoe_config* c, int64_t T) {
  return dec_layout(c, T, sm_count_or_default()).total;
}

// Five launches; B..E use programmatic dependent launch (see pdl_wait):
//   A  router logits, z = x W_down^T, hs = relu2(x S_up^T); zero the counters
//   B  top-K (publishes the ids)              || so = hs S_down^T
//   C  h = relu2(up_e z)  (starts on the ids, overlaps B's shared down)
//   D  acc = sum_k w down_e h (prefetches its experts' rows while C drains)
//   E  out = acc W_up^T + so (latent; prefetches W_up)
lmoe_status decode_forward(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                           int64_t T, int32_t* ids, float* wts, void* ws, int64_t ws_bytes,
                           bf16* out, cudaStream_t s, DecodeVariant variant) {
  if (T == 0) return LMOE_OK;
  const DecLayout L = dec_layout(c, T, sm_count_or_default());
  if (ws_bytes < L.total)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "decode forward: workspace_bytes %lld < %lld",
                     (long long)ws_bytes, (long long)L.total);
  DecCtx q{};
  q.c = c;
  q.w = w;
  q.x = x;
  q.T = T;
  q.ids = ids;
  q.wts = wts;
  q.out = out;
  q.d = c->hidden_size;
  q.W = expert_width(c);
  q.m = c->expert_intermediate_size;
  q.ms = c->shared_intermediate_size;
  q.K = c->top_k;
  q.N = c->num_experts;
  q.latent = c->latent_size > 0;
  q.shared = q.ms > 0;
  q.nrb_w = (q.W + 15) / 16;
  q.topk_blocks = int((T + kTopkTokPerBlock - 1) / kTopkTokPerBlock);
  char* b = static_cast<char*>(ws);
  q.logits = reinterpret_cast<float*>(b + L.logits);
  q.z = q.latent ? reinterpret_cast<bf16*>(b + L.z) : nullptr;
  q.hs = q.shared ? reinterpret_cast<bf16*>(b + L.hs) : nullptr;
  q.h = reinterpret_cast<bf16*>(b + L.h);
  q.so = q.shared ? reinterpret_cast<float*>(b + L.so) : nullptr;
  q.part = (q.K > 1 || tuning().stream) ? reinterpret_cast<float*>(b + L.part) : nullptr;
  q.counters = reinterpret_cast<int32_t*>(b + L.tickets);
  q.accb = q.latent ? reinterpret_cast<bf16*>(b + L.accb) : nullptr;

  const bool fused = variant == DECODE_FUSED || (variant == DECODE_DEFAULT && tuning().fused);
  if (fused && gemv_router_ok(c, w, x, T)) return decode_fused(q, s);

  const int d = q.d, W = q.W, m = q.m, ms = q.ms, K = q.K, N = q.N, nrb_w = q.nrb_w;
  const bool latent = q.latent, shared = q.shared;
  float* logits = q.logits;
  bf16 *z = q.z, *hs = q.hs, *accb = q.accb;
  float* so = q.so;
  int32_t* counters = q.counters;
  int32_t* topk_done = counters;
  int32_t* tickets = counters + 1;
  // A: router (when the GEMV router applies), latent down, shared up; zero the counters.
  const bool router_fused = gemv_router_ok(c, w, x, T) && T <= kRouterNarrowMaxT;
  if (!router_fused) LMOE_TRY(router_logits_stage(c, w, x, T, logits, s));
  // streamed dense launches take 8-token chunks up to T = 8 (one mma token tile), else 16
  const bool dstream = tuning().stream_dense > 0;
  const int chunk = dstream && T <= 8 ? 8 : 16;
  {
    DenseParams p{};
    int tasks = 0;
    if (router_fused)
      add_seg(p, tasks, w->gate, w->gate_dtype == LMOE_DTYPE_F32, N, d, x, d, EPI_F32, logits, N,
              nullptr, 0, T, chunk);
    if (latent)
      add_seg(p, tasks, w->latent_down, false, W, d, x, d, EPI_BF16, z, W, nullptr, 0, T, chunk);
    if (shared)
      add_seg(p, tasks, w->shared_up, false, ms, d, x, d, EPI_RELU2_BF16, hs, ms, nullptr, 0, T, chunk);
    p.ntok = int(T);
    p.zero = counters;
    p.nzero = 1 + int(T) * nrb_w;
    p.trace_tag = TRACE_DENSE_A;
    if (dstream && tasks > 0)
      LMOE_TRY(launch_dense_stream(p, tasks, TopkSdownParams{}, chunk, false, s,
                                   "decode dense A (stream)"));
    else
      LMOE_TRY(launch(dense_kernel<2>, tasks > 0 ? tasks : 1, false, p, s, "decode dense A"));
  }
  // B: top-K || shared down
  {
    TopkSdownParams p{};
    DenseParams dp{};
    int tasks = 0;
    if (shared) {
      add_seg(dp, tasks, w->shared_down, false, d, ms, hs, ms, EPI_F32, so, d, nullptr, 0, T, chunk);
      p.seg = dp.seg[0];
      p.has_seg = 1;
    }
    dp.ntok = int(T);
    dp.trace_tag = TRACE_SDOWN;
    set_topk(p, q);
    p.topk_blocks = q.topk_blocks;
    p.done = topk_done;
    p.prefetch = tuning().prefetch_bytes;
    if (dstream)
      LMOE_TRY(launch_dense_stream(dp, tasks, p, chunk, true, s, "decode topk+sdown (stream)"));
    else
      LMOE_TRY(launch(topk_sdown_kernel, int64_t(q.topk_blocks) + tasks, true, p, s, "decode topk+sdown"));
  }
  // C: expert FC1
  {
    Fc1Params p = fc1_params(q);
    p.topk_done = topk_done;
    p.topk_blocks = q.topk_blocks;
    const int64_t grid = int64_t(p.slots) * ((m + 15) / 16);
    if (tuning().stream == 8)
      LMOE_TRY(launch_stream<fc1_stream_kernel<8>>(stream_smem_bytes<8, 1, 1>(), 0, grid, true, s,
                                                   "decode fc1 (stream)", p));
    else if (tuning().stream == 4)
      LMOE_TRY(launch_stream<fc1_stream_kernel<4>>(stream_smem_bytes<4, 1, 1>(), 0, grid, true, s,
                                                   "decode fc1 (stream)", p));
    else
      LMOE_TRY(launch(tuning().minb == 2 ? fc1_kernel<2> : fc1_kernel<3>, grid, true, p, s, "decode fc1"));
  }
  // D: expert FC2 + weighted combine
  {
    // streamed: one task per (t, expert, m chunk, column block)
    Fc2Params p = tuning().stream ? fc2_params(q, K * kStreamMChunks, kStreamMChunks, tickets)
                                  : fc2_params(q, L.KG, 1, tickets);
    p.prefetch = tuning().prefetch_bytes;
    if (tuning().stream) {
      const int64_t tasks = T * int64_t(p.KG) * nrb_w;
      if (tuning().stream == 8)
        LMOE_TRY(launch_stream<fc2_stream_kernel<8>>(stream_smem_bytes<8, 1, 1>(), 0, tasks, true, s,
                                                     "decode fc2 (stream)", p));
      else
        LMOE_TRY(launch_stream<fc2_stream_kernel<4>>(stream_smem_bytes<4, 1, 1>(), 0, tasks, true, s,
                                                     "decode fc2 (stream)", p));
    } else {
      LMOE_TRY(launch(tuning().minb == 2 ? fc2_kernel<2> : fc2_kernel<3>, T * int64_t(L.KG) * nrb_w,
                      true, p, s, "decode fc2"));
    }
  }
  // E: latent up (+ shared)
  if (latent) {
    DenseParams p{};
    int tasks = 0;
    add_seg(p, tasks, w->latent_up, false, d, W, accb, W, EPI_ADD_BF16, out, d, so, d, T, chunk);
    p.ntok = int(T);
    p.prefetch = tuning().prefetch_bytes;
    p.trace_tag = TRACE_DENSE_E;
    if (dstream)
      LMOE_TRY(launch_dense_stream(p, tasks, TopkSdownParams{}, chunk, true, s, "decode dense E (stream)"));
    else
      LMOE_TRY(launch(dense_kernel<2>, tasks, true, p, s, "decode dense E"));
  }
  return LMOE_OK;
}

}  // namespace lmoe_cuda
