// AVX-512 dot-product kernels (compiled with -mavx512f/bw/vl -mfma). Lane layout: one 16-lane
// accumulator per output element (see micro_f32 / micro_bf16 for which element goes to which
// lane, in increasing order, with FMA); tails are zero-masked loads; then _mm512_reduce_add_ps.
// Every micro-kernel shape performs exactly this sequence per element, so the partition of rows
// and tokens never changes the bits.
// gcc 12 false positives inside avx512fintrin.h (_mm512_reduce_add_ps / undefined vectors).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "internal.h"
#include <immintrin.h>
#include <cstdlib>

namespace lmoe {
namespace {

constexpr int kPrefetchBytes = 1024;

// Linear prefetch of the next row group (contiguous rows): R lines per step, so the next group
// is fully requested while the current one is consumed.
template <int R, int PF>
inline void prefetch_next(const char* pf, int64_t pfb, int64_t off) {
  if (PF == 2) {
    // head prefetch: pfb = (rows of next group) | (head lines << 8) | (row bytes << 20)
    const int64_t it = off / (R * 64);
    const int rows = (int)(pfb & 255), lines = (int)((pfb >> 8) & 4095);
    const int64_t rb = pfb >> 20;
    if (it < lines) {
#pragma GCC unroll 32
      for (int k = 0; k < R; ++k)
        if (k < rows) _mm_prefetch(pf + k * rb + it * 64, _MM_HINT_T1);
    }
    return;
  }
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
      if (PF == 1) _mm_prefetch((const char*)(Wf + r * ldw + i) + kPrefetchBytes, _MM_HINT_T0);
    }
    if (PF >= 2) prefetch_next<R, PF>(pf, pfb, (int64_t)(i / 16) * R * 64);
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
      if (PF == 1) _mm_prefetch((const char*)(Wb + r * ldw + i) + kPrefetchBytes, _MM_HINT_T0);
    }
    if (PF >= 2) prefetch_next<R, PF>(pf, pfb, (int64_t)(i / 32) * R * 64);
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

// Software prefetch policy (tuned on Zen 4 with 4 KiB pages): rows of up to kShortRowBytes are
// too short for the hardware stream prefetchers to ramp up, so the next row group is requested
// linearly into L2 while the current one is consumed; longer rows use kLongRowMode.
constexpr int64_t kShortRowBytes = 4096;
struct PfConfig {
  int long_mode = 0, short_mode = 3, head_lines = 32;
  PfConfig() {
    if (const char* e = std::getenv("LMOE_PF_LONG")) long_mode = std::atoi(e) & 3;
    if (const char* e = std::getenv("LMOE_PF_SHORT")) short_mode = std::atoi(e) & 3;
    if (const char* e = std::getenv("LMOE_PFH")) head_lines = std::atoi(e);
  }
};
const PfConfig& pf_config() {
  static const PfConfig c;
  return c;
}

template <bool BF16>
void dot_block_t(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw, int n,
                 int nrows, float* out, int64_t ldo) {
  const int esz = BF16 ? 2 : 4;
  const char* Wc = (const char*)W;
  const int64_t rb = (int64_t)ldw * esz;
  const PfConfig& pc = pf_config();
  int mode = rb <= kShortRowBytes ? pc.short_mode : pc.long_mode;
  if (mode == 1 || ldw != n) mode = 0;
  if (ntok == 1) {
    static const MicroFn rem1[8] = {nullptr,
                                    micro<1, 1, BF16, 0>, micro<2, 1, BF16, 0>,
                                    micro<3, 1, BF16, 0>, micro<4, 1, BF16, 0>,
                                    micro<5, 1, BF16, 0>, micro<6, 1, BF16, 0>,
                                    micro<7, 1, BF16, 0>};
    static const MicroFn full[4] = {micro<8, 1, BF16, 0>, micro<8, 1, BF16, 1>,
                                    micro<8, 1, BF16, 2>, micro<8, 1, BF16, 3>};
    const MicroFn f8 = full[mode];
    const int64_t gbytes = 8 * rb;
    const int64_t rowlines = (rb + 63) / 64;
    const int64_t lines = rowlines < pc.head_lines ? rowlines : pc.head_lines;
    int r = 0;
    for (; r + 8 <= nrows; r += 8) {
      const char* g = Wc + (int64_t)r * rb;
      const int nr = nrows - r - 8 < 8 ? (nrows - r - 8 > 0 ? nrows - r - 8 : 0) : 8;
      const int64_t arg = mode == 2 ? ((int64_t)nr | (lines << 8) | (rb << 20)) : nr * rb;
      f8(X, ldx, g, ldw, n, out + r, ldo, g + gbytes, arg);
    }
    if (r < nrows) rem1[nrows - r](X, ldx, Wc + (int64_t)r * rb, ldw, n, out + r, ldo, nullptr, 0);
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
  static const MicroFn pf4[5] = {nullptr, micro<4, 1, BF16, 3>, micro<4, 2, BF16, 3>,
                                 micro<4, 3, BF16, 3>, micro<4, 4, BF16, 3>};
  for (int r = 0; r < nrows; r += 4) {
    const int rr = nrows - r < 4 ? nrows - r : 4;
    const char* Wr = Wc + (int64_t)r * rb;
    for (int t = 0; t < ntok; t += 4) {
      const int tt = ntok - t < 4 ? ntok - t : 4;
      if (t == 0 && rr == 4 && mode == 3) {
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
