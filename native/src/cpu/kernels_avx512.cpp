// AVX-512 dot-product kernels (compiled with -mavx512f/bw/vl -mfma). Lane layout: one 16-lane
// accumulator per output element; lane j accumulates elements i == j (mod 16) in increasing i
// with FMA; the tail is a zero-masked load; then _mm512_reduce_add_ps. Every micro-kernel shape
// performs exactly this sequence per element, so the partition never changes the bits.
// gcc 12 false positives inside avx512fintrin.h (_mm512_reduce_add_ps / undefined vectors).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "internal.h"
#include <immintrin.h>

namespace lmoe {
namespace {

template <bool BF16>
inline __m512 loadw(const void* base, int64_t off) {
  if (BF16) {
    __m256i h = _mm256_loadu_si256((const __m256i*)((const uint16_t*)base + off));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_loadu_ps((const float*)base + off);
  }
}

template <bool BF16>
inline __m512 loadw_mask(const void* base, int64_t off, __mmask16 m) {
  if (BF16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t*)base + off);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_maskz_loadu_ps(m, (const float*)base + off);
  }
}

constexpr int kPrefetchBytes = 1024;

template <int R, int TB, bool BF16, bool PF>
void micro(const float* X, int64_t ldx, const void* W, int64_t ldw, int n, float* out,
           int64_t ldo) {
  __m512 acc[TB][R];
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  const int esz = BF16 ? 2 : 4;
  const char* wbase = (const char*)W;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 w[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      w[r] = loadw<BF16>(W, r * ldw + i);
      if (PF) _mm_prefetch(wbase + (r * ldw + i) * esz + kPrefetchBytes, _MM_HINT_T0);
    }
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
    for (int r = 0; r < R; ++r) w[r] = loadw_mask<BF16>(W, r * ldw + i, m);
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

typedef void (*MicroFn)(const float*, int64_t, const void*, int64_t, int, float*, int64_t);

template <bool BF16>
void dot_block_t(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw, int n,
                 int nrows, float* out, int64_t ldo) {
  const int esz = BF16 ? 2 : 4;
  const char* Wc = (const char*)W;
  if (ntok == 1) {
    static const MicroFn rem1[8] = {nullptr,
                                    micro<1, 1, BF16, false>, micro<2, 1, BF16, false>,
                                    micro<3, 1, BF16, false>, micro<4, 1, BF16, false>,
                                    micro<5, 1, BF16, false>, micro<6, 1, BF16, false>,
                                    micro<7, 1, BF16, false>};
    int r = 0;
    for (; r + 8 <= nrows; r += 8)
      micro<8, 1, BF16, true>(X, ldx, Wc + (int64_t)r * ldw * esz, ldw, n, out + r, ldo);
    if (r < nrows) rem1[nrows - r](X, ldx, Wc + (int64_t)r * ldw * esz, ldw, n, out + r, ldo);
    return;
  }
  static const MicroFn tab[5][5] = {
      {nullptr, nullptr, nullptr, nullptr, nullptr},
      {nullptr, micro<1, 1, BF16, false>, micro<1, 2, BF16, false>, micro<1, 3, BF16, false>,
       micro<1, 4, BF16, false>},
      {nullptr, micro<2, 1, BF16, false>, micro<2, 2, BF16, false>, micro<2, 3, BF16, false>,
       micro<2, 4, BF16, false>},
      {nullptr, micro<3, 1, BF16, false>, micro<3, 2, BF16, false>, micro<3, 3, BF16, false>,
       micro<3, 4, BF16, false>},
      {nullptr, micro<4, 1, BF16, false>, micro<4, 2, BF16, false>, micro<4, 3, BF16, false>,
       micro<4, 4, BF16, false>}};
  for (int r = 0; r < nrows; r += 4) {
    const int rr = nrows - r < 4 ? nrows - r : 4;
    const char* Wr = Wc + (int64_t)r * ldw * esz;
    for (int t = 0; t < ntok; t += 4) {
      const int tt = ntok - t < 4 ? ntok - t : 4;
      if (rr == 4 && tt == 4)
        micro<4, 4, BF16, false>(X + t * ldx, ldx, Wr, ldw, n, out + t * ldo + r, ldo);
      else
        tab[rr][tt](X + t * ldx, ldx, Wr, ldw, n, out + t * ldo + r, ldo);
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
