// decode/primitives.cuh - the building blocks of the decode kernels: weight and activation loads, the
// tensor-core GEMV inner loop (warp_rows16), the in-order block reduction, programmatic dependent
// launch and the cross-block waits.
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
// Part of the decode translation unit (decode/decode.cu); qgemm.cu includes it too for the
// sorted path's dequantizing GEMM (everything here is in an anonymous namespace: no shared symbols).
#pragma once

#include <stdint.h>

#include "common.cuh"

namespace lmoe_cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// relu(v)^2 with NaN propagated like torch (v < 0 ? 0 : v keeps a NaN; v > 0 ? v : 0 would not).
__device__ __forceinline__ float relu2f(float v) {
  float r = v < 0.f ? 0.f : v;
  return r * r;
}
// silu(v) = v * sigmoid(v), as simt.cuh's silu (NaN stays NaN).
__device__ __forceinline__ float siluf(float v) { return v / (1.0f + expf(-v)); }
// The experts' activation of the decode path (lmoe_activation: relu2 or non-gated SiLU).
template <int ACT>
__device__ __forceinline__ float act_f(float v) {
  static_assert(ACT == LMOE_ACT_RELU2 || ACT == LMOE_ACT_SILU, "relu2 or silu");
  return ACT == LMOE_ACT_RELU2 ? relu2f(v) : siluf(v);
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

}  // namespace
}  // namespace lmoe_cuda
