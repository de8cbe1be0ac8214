// AVX-512 dot-product kernels (compiled with -mavx512f/bw/vl -mfma). ntok >= 2: one 16-lane
// accumulator per output element (see micro_f32 / micro_bf16 for which element goes to which
// lane, in increasing order, with FMA); tails are zero-masked loads; then _mm512_reduce_add_ps.
// ntok == 1: the GEMV path (gemv_rows), with its own fixed per-element sequence. Every shape
// performs exactly its sequence per element, so the partition of rows never changes the bits.
// gcc 12 false positives inside avx512fintrin.h (_mm512_reduce_add_ps / undefined vectors).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "arch/arch.h"
#include "thread_pool.h"
#include <immintrin.h>
#include <cstdint>

namespace lmoe {
namespace {

// Linear prefetch of the next row group (contiguous rows, pfb bytes from pf): R lines per step,
// so the next group is fully requested while the current one is consumed.
template <int R>
inline void prefetch_next(const char* pf, int64_t pfb, int64_t off) {
#pragma GCC unroll 32
  for (int k = 0; k < R; ++k) {
    if (off + k * 64 < pfb) _mm_prefetch(pf + off + k * 64, _MM_HINT_T1);
  }
}

// f32 weights: 16 elements per step, lane j <- element 16b + j.
template <int R, int TB, int PF>
void micro_f32(const float* X, int64_t ldx, const void* W, int64_t ldw, int n, float* out,
               int64_t ldo, const char* pf, int64_t pfb) {
  __m512 acc[TB][R];
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  const float* Wf = (const float*)W;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 w[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      w[r] = _mm512_loadu_ps(Wf + r * ldw + i);
    }
    if (PF) prefetch_next<R>(pf, pfb, (int64_t)(i / 16) * R * 64);
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      __m512 x = _mm512_loadu_ps(X + t * ldx + i);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[t][r] = _mm512_fmadd_ps(w[r], x, acc[t][r]);
    }
  }
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
    __m512 w[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) w[r] = _mm512_maskz_loadu_ps(m, Wf + r * ldw + i);
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      __m512 x = _mm512_maskz_loadu_ps(m, X + t * ldx + i);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[t][r] = _mm512_fmadd_ps(w[r], x, acc[t][r]);
    }
  }
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) out[t * ldo + r] = _mm512_reduce_add_ps(acc[t][r]);
}

// bf16 weights: 32 elements per step loaded as 16 dwords; the even elements are dword << 16,
// the odd ones dword & 0xffff0000 (no widening shuffles). x is split into even/odd lanes with
// two permutes shared by all rows. Lane j <- element 32b + 2j, then 32b + 2j + 1 (two FMAs).
template <int R, int TB, int PF>
void micro_bf16(const float* X, int64_t ldx, const void* W, int64_t ldw, int n, float* out,
                int64_t ldo, const char* pf, int64_t pfb) {
  __m512 acc[TB][R];
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  const uint16_t* Wb = (const uint16_t*)W;
  const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
  const __m512i idx_even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i idx_odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512i raw[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      raw[r] = _mm512_loadu_si512((const void*)(Wb + r * ldw + i));
    }
    if (PF) prefetch_next<R>(pf, pfb, (int64_t)(i / 32) * R * 64);
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      const __m512 x0 = _mm512_loadu_ps(X + t * ldx + i);
      const __m512 x1 = _mm512_loadu_ps(X + t * ldx + i + 16);
      const __m512 xe = _mm512_permutex2var_ps(x0, idx_even, x1);
      const __m512 xo = _mm512_permutex2var_ps(x0, idx_odd, x1);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(raw[r], 16));
        const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(raw[r], hi_mask));
        acc[t][r] = _mm512_fmadd_ps(we, xe, acc[t][r]);
        acc[t][r] = _mm512_fmadd_ps(wo, xo, acc[t][r]);
      }
    }
  }
  if (i < n) {
    const int rem = n - i;  // 1..31
    const __mmask32 mw = (__mmask32)((1ull << rem) - 1ull);
    const __mmask16 m0 = (__mmask16)(rem >= 16 ? 0xffffu : (1u << rem) - 1u);
    const __mmask16 m1 = (__mmask16)(rem > 16 ? (1u << (rem - 16)) - 1u : 0u);
    __m512i raw[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) raw[r] = _mm512_maskz_loadu_epi16(mw, Wb + r * ldw + i);
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      const __m512 x0 = _mm512_maskz_loadu_ps(m0, X + t * ldx + i);
      const __m512 x1 = _mm512_maskz_loadu_ps(m1, X + t * ldx + i + 16);
      const __m512 xe = _mm512_permutex2var_ps(x0, idx_even, x1);
      const __m512 xo = _mm512_permutex2var_ps(x0, idx_odd, x1);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(raw[r], 16));
        const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(raw[r], hi_mask));
        acc[t][r] = _mm512_fmadd_ps(we, xe, acc[t][r]);
        acc[t][r] = _mm512_fmadd_ps(wo, xo, acc[t][r]);
      }
    }
  }
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) out[t * ldo + r] = _mm512_reduce_add_ps(acc[t][r]);
}

template <int R, int TB, bool BF16, int PF>
void micro(const float* X, int64_t ldx, const void* W, int64_t ldw, int n, float* out,
           int64_t ldo, const char* pf, int64_t pfb) {
  if (BF16) micro_bf16<R, TB, PF>(X, ldx, W, ldw, n, out, ldo, pf, pfb);
  else micro_f32<R, TB, PF>(X, ldx, W, ldw, n, out, ldo, pf, pfb);
}

typedef void (*MicroFn)(const float*, int64_t, const void*, int64_t, int, float*, int64_t,
                        const char*, int64_t);

// Software prefetch for T > 1 (tuned on Zen 4 with 4 KiB pages): rows of up to kShortRowBytes are
// too short for the hardware stream prefetchers to ramp up, so while the first token block of a
// 4-row group is computed, the next group is requested linearly into L2; longer rows rely on
// the hardware prefetchers.
constexpr int64_t kShortRowBytes = 4096;

// ---------------------------------------------------------------- T = 1 (GEMV) path
// One token: the rows are walked in memory order (row after row, each row's dot product in one
// pass), so a contiguous weight matrix is read as one sequential stream, which the hardware
// prefetchers follow best (8 rows at a time, i.e. 8 short strided streams, streamed ~15-20%
// slower on Zen 4; a software prefetch 1-8 KiB ahead on the linear address, into L1 or L2, measured
// no better than none, so there is none). Eight independent accumulators hide the FMA latency.
// Lane layout per element: block b = elements [B*b, B*b + B) (B = 32 for
// bf16, 16 for f32) goes to accumulator set b % 4 (bf16: lane j of the even set <- element
// 32b + 2j, of the odd set <- 32b + 2j + 1; f32: lane j <- 16b + j), FMA in increasing b; the
// tail block is zero-masked; then ((s0 + s1) + (s2 + s3)) (bf16: s_c = even_c + odd_c) and
// _mm512_reduce_add_ps. The sequence depends only on n, never on the row range of a call.

// bf16 row: xp is x with every 32-element block split into its 16 even then 16 odd elements
// (zero-padded to a whole block), so the two halves pair with dword << 16 and dword & hi_mask.
inline float gemv_row_bf16(const float* xp, const uint16_t* w, int n) {
  const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
  __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
  const int nb = n / 32;
  int b = 0;
#define LMOE_BF16_BLOCK(E, O, bb)                                                      \
  do {                                                                                 \
    const __m512i raw = _mm512_loadu_si512((const void*)(w + (int64_t)(bb) * 32));     \
    E = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)),               \
                        _mm512_load_ps(xp + (int64_t)(bb) * 32), E);                   \
    O = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(raw, hi)),                \
                        _mm512_load_ps(xp + (int64_t)(bb) * 32 + 16), O);              \
  } while (0)
  for (; b + 4 <= nb; b += 4) {
    LMOE_BF16_BLOCK(e0, o0, b);
    LMOE_BF16_BLOCK(e1, o1, b + 1);
    LMOE_BF16_BLOCK(e2, o2, b + 2);
    LMOE_BF16_BLOCK(e3, o3, b + 3);
  }
  if (b < nb) LMOE_BF16_BLOCK(e0, o0, b);
  if (b + 1 < nb) LMOE_BF16_BLOCK(e1, o1, b + 1);
  if (b + 2 < nb) LMOE_BF16_BLOCK(e2, o2, b + 2);
#undef LMOE_BF16_BLOCK
  const int rem = n - nb * 32;
  if (rem > 0) {
    const __m512i raw = _mm512_maskz_loadu_epi16((__mmask32)((1ull << rem) - 1ull), w + (int64_t)nb * 32);
    const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
    const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(raw, hi));
    const __m512 xe = _mm512_load_ps(xp + (int64_t)nb * 32);
    const __m512 xo = _mm512_load_ps(xp + (int64_t)nb * 32 + 16);
    switch (nb & 3) {
      case 0: e0 = _mm512_fmadd_ps(we, xe, e0); o0 = _mm512_fmadd_ps(wo, xo, o0); break;
      case 1: e1 = _mm512_fmadd_ps(we, xe, e1); o1 = _mm512_fmadd_ps(wo, xo, o1); break;
      case 2: e2 = _mm512_fmadd_ps(we, xe, e2); o2 = _mm512_fmadd_ps(wo, xo, o2); break;
      default: e3 = _mm512_fmadd_ps(we, xe, e3); o3 = _mm512_fmadd_ps(wo, xo, o3); break;
    }
  }
  const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(e0, o0), _mm512_add_ps(e1, o1)),
                                 _mm512_add_ps(_mm512_add_ps(e2, o2), _mm512_add_ps(e3, o3)));
  return _mm512_reduce_add_ps(s);
}

inline float gemv_row_f32(const float* x, const float* w, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  const int nb = n / 16;
  int b = 0;
  for (; b + 4 <= nb; b += 4) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)b * 16), _mm512_loadu_ps(x + (int64_t)b * 16), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)b * 16 + 16), _mm512_loadu_ps(x + (int64_t)b * 16 + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)b * 16 + 32), _mm512_loadu_ps(x + (int64_t)b * 16 + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)b * 16 + 48), _mm512_loadu_ps(x + (int64_t)b * 16 + 48), s3);
  }
  if (b < nb) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)b * 16), _mm512_loadu_ps(x + (int64_t)b * 16), s0);
  if (b + 1 < nb) s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)(b + 1) * 16), _mm512_loadu_ps(x + (int64_t)(b + 1) * 16), s1);
  if (b + 2 < nb) s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (int64_t)(b + 2) * 16), _mm512_loadu_ps(x + (int64_t)(b + 2) * 16), s2);
  const int rem = n - nb * 16;
  if (rem > 0) {
    const __mmask16 m = (__mmask16)((1u << rem) - 1u);
    const __m512 wv = _mm512_maskz_loadu_ps(m, w + (int64_t)nb * 16);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + (int64_t)nb * 16);
    switch (nb & 3) {
      case 0: s0 = _mm512_fmadd_ps(wv, xv, s0); break;
      case 1: s1 = _mm512_fmadd_ps(wv, xv, s1); break;
      case 2: s2 = _mm512_fmadd_ps(wv, xv, s2); break;
      default: s3 = _mm512_fmadd_ps(wv, xv, s3); break;
    }
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

template <bool BF16>
void gemv_rows(const float* x, const void* W, int64_t ldw, int n, int nrows, float* out) {
  if (BF16) {
    const int nb = (n + 31) / 32;
    float* xp = thread_scratch(3, (size_t)nb * 32 + 16);
    xp = (float*)(((uintptr_t)xp + 63) & ~(uintptr_t)63);
    for (int b = 0; b < nb; ++b) {
      for (int j = 0; j < 16; ++j) {
        const int i0 = 32 * b + 2 * j, i1 = i0 + 1;
        xp[32 * b + j] = i0 < n ? x[i0] : 0.0f;
        xp[32 * b + 16 + j] = i1 < n ? x[i1] : 0.0f;
      }
    }
    const uint16_t* Wb = (const uint16_t*)W;
    for (int r = 0; r < nrows; ++r) out[r] = gemv_row_bf16(xp, Wb + (int64_t)r * ldw, n);
  } else {
    const float* Wf = (const float*)W;
    for (int r = 0; r < nrows; ++r) out[r] = gemv_row_f32(x, Wf + (int64_t)r * ldw, n);
  }
}

template <bool BF16>
void dot_block_t(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw, int n,
                 int nrows, float* out, int64_t ldo) {
  const int esz = BF16 ? 2 : 4;
  const char* Wc = (const char*)W;
  const int64_t rb = (int64_t)ldw * esz;
  const bool pf_next = rb <= kShortRowBytes && ldw == n;
  if (ntok == 1) {
    gemv_rows<BF16>(X, W, ldw, n, nrows, out);
    return;
  }
  static const MicroFn tab[5][5] = {
      {nullptr, nullptr, nullptr, nullptr, nullptr},
      {nullptr, micro<1, 1, BF16, 0>, micro<1, 2, BF16, 0>, micro<1, 3, BF16, 0>,
       micro<1, 4, BF16, 0>},
      {nullptr, micro<2, 1, BF16, 0>, micro<2, 2, BF16, 0>, micro<2, 3, BF16, 0>,
       micro<2, 4, BF16, 0>},
      {nullptr, micro<3, 1, BF16, 0>, micro<3, 2, BF16, 0>, micro<3, 3, BF16, 0>,
       micro<3, 4, BF16, 0>},
      {nullptr, micro<4, 1, BF16, 0>, micro<4, 2, BF16, 0>, micro<4, 3, BF16, 0>,
       micro<4, 4, BF16, 0>}};
  // Prefetching variants for the first token block of a full 4-row group (linear, next group).
  static const MicroFn pf4[5] = {nullptr, micro<4, 1, BF16, 1>, micro<4, 2, BF16, 1>,
                                 micro<4, 3, BF16, 1>, micro<4, 4, BF16, 1>};
  for (int r = 0; r < nrows; r += 4) {
    const int rr = nrows - r < 4 ? nrows - r : 4;
    const char* Wr = Wc + (int64_t)r * rb;
    for (int t = 0; t < ntok; t += 4) {
      const int tt = ntok - t < 4 ? ntok - t : 4;
      if (t == 0 && rr == 4 && pf_next) {
        const int nr = nrows - r - 4 < 4 ? (nrows - r - 4 > 0 ? nrows - r - 4 : 0) : 4;
        pf4[tt](X, ldx, Wr, ldw, n, out + r, ldo, Wr + 4 * rb, nr * rb);
      } else if (rr == 4 && tt == 4) {
        micro<4, 4, BF16, 0>(X + t * ldx, ldx, Wr, ldw, n, out + t * ldo + r, ldo, nullptr, 0);
      } else {
        tab[rr][tt](X + t * ldx, ldx, Wr, ldw, n, out + t * ldo + r, ldo, nullptr, 0);
      }
    }
  }
}

}  // namespace

void dot_block_avx512(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw,
                      int wdtype, int n, int nrows, float* out, int64_t ldo) {
  if (wdtype == 1) dot_block_t<true>(X, ldx, ntok, W, ldw, n, nrows, out, ldo);
  else dot_block_t<false>(X, ldx, ntok, W, ldw, n, nrows, out, ldo);
}

double read_sum_avx512(const float* a, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(a + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(a + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(a + i + 48));
  }
  double s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i];
  return s;
}

}  // namespace lmoe
