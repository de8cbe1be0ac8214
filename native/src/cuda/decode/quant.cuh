// decode/quant.cuh - FP8 (e4m3) and NVFP4 (e2m1 codes with e4m3 block scales of 16) weights as
// the tensor-core GEMV reads them: each lane loads its 8 consecutive weights of a row in their
// stored form (8 bytes of e4m3, or 4 bytes of e2m1 codes and one block-scale byte) and turns them
// into the 8 bf16 values of the bf16 path's fragment, exactly: every e4m3 value and every
// e2m1 x e4m3 product is a bf16 number. The per-tensor scale is applied to the f32 dot product
// afterwards, by the caller's epilogue. The mma, its k order and the block reduction are those of
// decode/primitives.cuh, so a quantized matrix rounds like its bf16-dequantized copy would.
// Activations are bf16, or e4m3 for the W8A8 fallback (warp_rows16_q<.., AFP8 = true>).
// Included by the decode translation unit and by qgemm.cu (the sorted path's dequantizing GEMM).
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "decode/primitives.cuh"

namespace lmoe_cuda {
namespace {

// Weight formats of the quantized kernels (the ABI's lmoe_weight_format values).
constexpr int WF_BF16 = LMOE_WFMT_BF16;
constexpr int WF_FP8 = LMOE_WFMT_FP8_E4M3;
constexpr int WF_NVFP4 = LMOE_WFMT_NVFP4;

__host__ __device__ __forceinline__ bool is_qfmt(int fmt) { return fmt == WF_FP8 || fmt == WF_NVFP4; }

__device__ __forceinline__ uint32_t bf2_bits(__nv_bfloat162 v) { return bits(v); }
__device__ __forceinline__ __nv_bfloat162 bits_bf2(uint32_t u) {
  __nv_bfloat162 v;
  v.x = __ushort_as_bfloat16(static_cast<unsigned short>(u & 0xffffu));
  v.y = __ushort_as_bfloat16(static_cast<unsigned short>(u >> 16));
  return v;
}

// Two e4m3 codes in bytes 1 and 3 of x (bytes 0 and 2 ignored) -> their values as bf16x2 (low
// half from byte 1). Sign to bit 15, the 7 exponent+mantissa bits shifted into bf16's fields: that
// bf16 is the value times 2^-120 (e4m3 subnormals land on bf16 subnormals, exactly); one bf16
// multiply by 2^120 restores it (exact: a power of two, no overflow). e4m3 NaN codes (0x7f, 0xff)
// read as +-480: checkpoint weights hold none.
__device__ __forceinline__ uint32_t e4m3_pair_bf16(uint32_t x) {
  const uint32_t b = ((x & 0x7F007F00u) >> 4) | (x & 0x80008000u);
  return bf2_bits(__hmul2(bits_bf2(b), __floats2bfloat162_rn(0x1p120f, 0x1p120f)));
}
// 8 e4m3 weights (k order in the bytes of v) -> the bf16 fragment (k order in the halves).
__device__ __forceinline__ uint4 dq_fp8x8(uint2 v) {
  uint4 o;
  o.x = e4m3_pair_bf16(__byte_perm(v.x, 0u, 0x1404));  // [0, b0, 0, b1]
  o.y = e4m3_pair_bf16(__byte_perm(v.x, 0u, 0x3424));  // [0, b2, 0, b3]
  o.z = e4m3_pair_bf16(__byte_perm(v.y, 0u, 0x1404));
  o.w = e4m3_pair_bf16(__byte_perm(v.y, 0u, 0x3424));
  return o;
}

// 8 e4m3 activations -> bf16 fragment through the hardware conversion (e4m3 -> f16 -> f32 ->
// bf16, exact), which keeps NaN: the W8A8 fallback's activations may carry one, weights do not.
__device__ __forceinline__ uint32_t e4m3x2_bf16_cvt(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xffffu), __NV_E4M3);
  const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
  return bf2_bits(__floats2bfloat162_rn(f.x, f.y));
}
__device__ __forceinline__ uint4 dq_fp8x8_act(uint2 v) {
  return make_uint4(e4m3x2_bf16_cvt(v.x), e4m3x2_bf16_cvt(v.x >> 16), e4m3x2_bf16_cvt(v.y),
                    e4m3x2_bf16_cvt(v.y >> 16));
}

// e2m1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 (code bits 0..2) as bf16: their low and high bytes,
// eight each, as prmt tables (0x0000 0x3F00 0x3F80 0x3FC0 0x4000 0x4040 0x4080 0x40C0).
constexpr uint32_t kE2m1Lo0 = 0xC0800000u, kE2m1Lo1 = 0xC0804000u;
constexpr uint32_t kE2m1Hi0 = 0x3F3F3F00u, kE2m1Hi1 = 0x40404040u;
// Four e2m1 codes in the low 16 bits of c (code i in nibble i) -> two bf16x2 (codes 0,1 and 2,3).
// Two table lookups (one prmt each for four codes), two interleaves, the signs (nibble bit 3) moved
// to bits 15 / 31 with one prmt each. All values normal or zero.
__device__ __forceinline__ void e2m1x4_bf16(uint32_t c, uint32_t& o0, uint32_t& o1) {
  const uint32_t sel = c & 0x7777u;  // prmt selectors: 3 index bits, bit 3 (sign mode) clear
  const uint32_t lo = __byte_perm(kE2m1Lo0, kE2m1Lo1, sel);
  const uint32_t hi = __byte_perm(kE2m1Hi0, kE2m1Hi1, sel);
  const uint32_t c4 = c << 4;  // code i's sign (bit 4i+3) at bit 4i+7: the msb of a byte for even i
  o0 = __byte_perm(lo, hi, 0x5140) | (__byte_perm(c4, c, 0x4000) & 0x80008000u);
  o1 = __byte_perm(lo, hi, 0x7362) | (__byte_perm(c4, c, 0x5111) & 0x80008000u);
}
// 8 NVFP4 weights (v: 8 codes, k order from the low nibble; bs: their e4m3 block scale) -> the
// bf16 fragment: code value times block scale, exact (at most 6 significant bits, normal range).
__device__ __forceinline__ uint4 dq_nvfp4x8(uint32_t v, uint32_t bs) {
  const __nv_bfloat162 s = bits_bf2(e4m3_pair_bf16((bs << 8) | (bs << 24)));
  uint4 o;
  e2m1x4_bf16(v, o.x, o.y);
  e2m1x4_bf16(v >> 16, o.z, o.w);
  o.x = bf2_bits(__hmul2(bits_bf2(o.x), s));
  o.y = bf2_bits(__hmul2(bits_bf2(o.y), s));
  o.z = bf2_bits(__hmul2(bits_bf2(o.z), s));
  o.w = bf2_bits(__hmul2(bits_bf2(o.w), s));
  return o;
}

// Streaming loads of fewer than 16 bytes (like ld_weights), zero when !ok.
__device__ __forceinline__ uint2 ld_weights8(const void* p, bool ok) {
  uint2 v = make_uint2(0u, 0u);
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %3, 0;\n"
      " @p ld.global.nc.L1::no_allocate.L2::256B.v2.u32 {%0,%1}, [%2];\n}\n"
      : "+r"(v.x), "+r"(v.y)
      : "l"(p), "r"(int(ok)));
  return v;
}
__device__ __forceinline__ uint32_t ld_weights4(const void* p, bool ok) {
  uint32_t v = 0u;
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n"
      " @p ld.global.nc.L1::no_allocate.L2::256B.u32 %0, [%1];\n}\n"
      : "+r"(v)
      : "l"(p), "r"(int(ok)));
  return v;
}
__device__ __forceinline__ uint32_t ld_weights1(const void* p, bool ok) {
  uint32_t v = 0u;
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n"
      " @p ld.global.nc.u8 %0, [%1];\n}\n"
      : "+r"(v)
      : "l"(p), "r"(int(ok)));
  return v;
}
// 8 e4m3 activations (L2-cached, coherent like ld_act), zero when !ok.
__device__ __forceinline__ uint2 ld_act8(const void* p, bool ok) {
  uint2 v = make_uint2(0u, 0u);
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %3, 0;\n"
      " @p ld.global.cg.v2.u32 {%0,%1}, [%2];\n}\n"
      : "+r"(v.x), "+r"(v.y)
      : "l"(p), "r"(int(ok)));
  return v;
}

// One quantized matrix of a kernel's parameters: group g (an expert; 0 for a dense matrix) has
// its data at data + g * stride, its block scales at bscale + g * bs_stride and its per-tensor
// scale (W8A8: input scale x weight scale) at scale[g].
struct QMat {
  const uint8_t* data;
  const uint8_t* bscale;
  const float* scale;
  int64_t stride, bs_stride;
  int fmt;
};
// Bytes of one row of `cols` weights in format fmt, and of its block scales.
__host__ __device__ __forceinline__ int64_t q_row_bytes(int fmt, int64_t cols) {
  return fmt == WF_NVFP4 ? cols / 2 : fmt == WF_FP8 ? cols : cols * 2;
}
__host__ __device__ __forceinline__ int64_t q_bs_row_bytes(int fmt, int64_t cols) {
  return fmt == WF_NVFP4 ? cols / 16 : 0;
}

// warp_rows16 for a quantized tile: this warp's share (k blocks [kb0, kb1) of 32) of a 16-row x
// (8*NT)-token tile.
//   w: row 0 of the tile, rows ldw bytes apart; bs: its NVFP4 block scales (rows K/16 bytes apart)
//   x: token 0, bf16 or (AFP8) e4m3 [ntok, K], leading dimension ldx elements
// K % 32 == 0 for NVFP4 (16 for FP8), w 16-byte aligned rows. Same fragments and mma as the bf16
// path: the k order inside a fragment is the same for weights and tokens.
template <int NT, int FMT, int U, bool AFP8 = false>
__device__ __forceinline__ void warp_rows16_q(const uint8_t* __restrict__ w, int64_t ldw,
                                              const uint8_t* __restrict__ bs, int rows_valid,
                                              const void* __restrict__ x, int64_t ldx, int ntok,
                                              int K, int kb0, int kb1, float (&acc)[NT][4]) {
  static_assert(FMT == WF_FP8 || FMT == WF_NVFP4, "quantized formats only");
  constexpr int kAsz = AFP8 ? 1 : 2;  // activation bytes
  const int lane = threadIdx.x & 31, r = lane >> 2, q = lane & 3;
  const bool va = r < rows_valid, vb = r + 8 < rows_valid;
  // this lane's 8 weights of rows r and r+8 at k = q*8 (+ 32 per k block)
  const int64_t ra = va ? r : 0, rb = vb ? r + 8 : 0;
  const uint8_t* pa = w + ra * ldw + (FMT == WF_NVFP4 ? q * 4 : q * 8);
  const uint8_t* pb = w + rb * ldw + (FMT == WF_NVFP4 ? q * 4 : q * 8);
  const int64_t ldb = K / 16;
  const uint8_t* sa = FMT == WF_NVFP4 ? bs + ra * ldb + (q >> 1) : nullptr;
  const uint8_t* sb = FMT == WF_NVFP4 ? bs + rb * ldb + (q >> 1) : nullptr;
  const char* px[NT];
  bool vx[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int tk = j * 8 + r;
    vx[j] = tk < ntok;
    px[j] = static_cast<const char*>(x) + (int64_t(vx[j] ? tk : 0) * ldx + q * 8) * kAsz;
  }
  const int kq = K - q * 8;  // this lane's chunk of block kb is in range iff kb*32 < kq
  for (int kb = kb0; kb < kb1; kb += U) {
    uint2 wa8[U], wb8[U];
    uint32_t wa4[U], wb4[U], ba[U], bb[U];
    uint4 xv[U][NT];
    uint2 xq[U][NT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int k = (kb + u) * 32;
      const bool ok = (kb + u < kb1) && (k < kq);
      if (FMT == WF_FP8) {
        wa8[u] = ld_weights8(pa + k, ok && va);
        wb8[u] = ld_weights8(pb + k, ok && vb);
      } else {
        wa4[u] = ld_weights4(pa + k / 2, ok && va);
        wb4[u] = ld_weights4(pb + k / 2, ok && vb);
        ba[u] = ld_weights1(sa + k / 16, ok && va);
        bb[u] = ld_weights1(sb + k / 16, ok && vb);
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        if (AFP8) xq[u][j] = ld_act8(px[j] + k, ok && vx[j]);
        else xv[u][j] = ld_act(px[j] + int64_t(k) * 2, ok && vx[j]);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      WFrag<bf16> fa, fb;
      if (FMT == WF_FP8) {
        fa.v = dq_fp8x8(wa8[u]);
        fb.v = dq_fp8x8(wb8[u]);
      } else {
        fa.v = dq_nvfp4x8(wa4[u], ba[u]);
        fb.v = dq_nvfp4x8(wb4[u], bb[u]);
      }
      if (AFP8) {
#pragma unroll
        for (int j = 0; j < NT; ++j) xv[u][j] = dq_fp8x8_act(xq[u][j]);
      }
      mma_block<NT>(fa, fb, xv[u], acc);
    }
  }
}

// A whole 16-row tile for one format known at run time (a dense segment): FP8 / NVFP4 here,
// BF16 / F32 stay with warp_rows16.
template <int NT, int U>
__device__ __forceinline__ void warp_rows16_qany(int fmt, const uint8_t* w, int64_t ldw,
                                                 const uint8_t* bs, int rows_valid, const bf16* x,
                                                 int64_t ldx, int ntok, int K, int kb0, int kb1,
                                                 float (&acc)[NT][4]) {
  if (fmt == WF_FP8)
    warp_rows16_q<NT, WF_FP8, U>(w, ldw, bs, rows_valid, x, ldx, ntok, K, kb0, kb1, acc);
  else
    warp_rows16_q<NT, WF_NVFP4, U>(w, ldw, bs, rows_valid, x, ldx, ntok, K, kb0, kb1, acc);
}

}  // namespace
}  // namespace lmoe_cuda
