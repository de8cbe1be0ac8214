// AVX-512 helpers shared by avx512.cpp, avx512_bf16.cpp and amx.cpp (include only from files
// compiled with -mavx512f -mavx512bw): the fixed 16-lane reduction tree, bf16 rounding on 16
// lanes, a 16x16 transpose of 32-bit elements.
#pragma once
#include <immintrin.h>

namespace lmoe {
namespace avx512 {

// The reduction every AVX-512 dot-style kernel ends with, per element (16 lanes s):
//   a[j] = s[j] + s[j+8] (j < 8); b[j] = a[j] + a[j+4] (j < 4); c[j] = b[j] + b[j+2]; c[0] + c[1].
// reduce16 applies it to 16 accumulators at once (res[e] = tree(a[e])) with shuffles across
// accumulators: the same additions, 46 instructions for 16 elements.
inline void reduce16(const __m512* a, float* res) {
  __m512 p[8];
  for (int q = 0; q < 8; ++q) {  // p[q] = [a(2q) 8 lanes | a(2q+1) 8 lanes]
    const __m512 lo = _mm512_shuffle_f32x4(a[2 * q], a[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi = _mm512_shuffle_f32x4(a[2 * q], a[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2));
    p[q] = _mm512_add_ps(lo, hi);
  }
  __m512 q4[4];  // q4[q], 128-bit chunk c: element 4q + c, 4 lanes
  for (int q = 0; q < 4; ++q) {
    const __m512 lo = _mm512_shuffle_f32x4(p[2 * q], p[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 hi = _mm512_shuffle_f32x4(p[2 * q], p[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1));
    q4[q] = _mm512_add_ps(lo, hi);
  }
  __m512 r2[2];  // chunk c: [e(8q + c) x 2, e(8q + 4 + c) x 2]
  for (int q = 0; q < 2; ++q) {
    const __m512 lo = _mm512_shuffle_ps(q4[2 * q], q4[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi = _mm512_shuffle_ps(q4[2 * q], q4[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2));
    r2[q] = _mm512_add_ps(lo, hi);
  }
  // chunk c: [e(c), e(4 + c), e(8 + c), e(12 + c)]; lane 4c + k holds element 4k + c
  const __m512 lo = _mm512_shuffle_ps(r2[0], r2[1], _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 hi = _mm512_shuffle_ps(r2[0], r2[1], _MM_SHUFFLE(3, 1, 3, 1));
  const __m512 s = _mm512_add_ps(lo, hi);
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  _mm512_storeu_ps(res, _mm512_permutexvar_ps(idx, s));
}

// f32 -> bf16 RNE on 16 lanes (the bits of f32_to_bf16_rne, NaN included), returned as f32 bit
// patterns with the low 16 bits zero (i.e. the rounded value as f32).
inline __m512i round_bf16(__m512i u) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
  return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

inline __m512 round_bf16_ps(__m512 v) {
  return _mm512_castsi512_ps(round_bf16(_mm512_castps_si512(v)));
}

// In-register 16x16 transpose of 32-bit elements: on return r[c] holds column c.
inline void transpose16(__m512* r) {
  __m512 s[16];
  for (int i = 0; i < 8; ++i) {
    s[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    s[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(s[4 * i]), b = _mm512_castps_pd(s[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(s[4 * i + 2]), d = _mm512_castps_pd(s[4 * i + 3]);
    r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // r[4i + q], 128-bit chunk c: rows 4i..4i+3 of column 4c + q
  for (int q = 0; q < 4; ++q) {
    s[4 * q + 0] = _mm512_shuffle_f32x4(r[q], r[4 + q], _MM_SHUFFLE(2, 0, 2, 0));
    s[4 * q + 1] = _mm512_shuffle_f32x4(r[q], r[4 + q], _MM_SHUFFLE(3, 1, 3, 1));
    s[4 * q + 2] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], _MM_SHUFFLE(2, 0, 2, 0));
    s[4 * q + 3] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], _MM_SHUFFLE(3, 1, 3, 1));
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_shuffle_f32x4(s[4 * q + 0], s[4 * q + 2], _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + q] = _mm512_shuffle_f32x4(s[4 * q + 1], s[4 * q + 3], _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + q] = _mm512_shuffle_f32x4(s[4 * q + 0], s[4 * q + 2], _MM_SHUFFLE(3, 1, 3, 1));
    r[12 + q] = _mm512_shuffle_f32x4(s[4 * q + 1], s[4 * q + 3], _MM_SHUFFLE(3, 1, 3, 1));
  }
}

}  // namespace avx512
}  // namespace lmoe
