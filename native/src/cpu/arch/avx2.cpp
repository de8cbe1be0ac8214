// AVX2+FMA kernels: exact, and the bf16 mode as the same arithmetic on activations rounded to
// bf16 (bf16 x bf16 products are exact in f32, so this is the f32-FMA emulation of the bf16
// products). Lane layout: one 8-lane accumulator per output element; lane j accumulates elements
// i == j (mod 8) in increasing i with FMA; the tail (< 8 elements) is zero-padded; then a fixed
// horizontal reduction. Identical sequence for every micro-kernel shape (1 token included).
#include "arch/arch.h"
#include <immintrin.h>
#include <cstring>

namespace lmoe {
namespace {

template <bool BF16>
inline __m256 loadw(const void* base, int64_t off) {
  if (BF16) {
    __m128i h = _mm_loadu_si128((const __m128i*)((const uint16_t*)base + off));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_loadu_ps((const float*)base + off);
  }
}

template <bool BF16>
inline __m256 loadw_tail(const void* base, int64_t off, int rem) {
  float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (BF16) {
    const uint16_t* p = (const uint16_t*)base + off;
    for (int j = 0; j < rem; ++j) {
      uint32_t u = (uint32_t)p[j] << 16;
      std::memcpy(&tmp[j], &u, 4);
    }
  } else {
    std::memcpy(tmp, (const float*)base + off, rem * sizeof(float));
  }
  return _mm256_loadu_ps(tmp);
}

inline __m256 loadx_tail(const float* p, int rem) {
  float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, rem * sizeof(float));
  return _mm256_loadu_ps(tmp);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

constexpr int kPrefetchBytes = 1024;

template <int R, int TB, bool BF16, bool PF>
void micro(const float* X, int64_t ldx, const void* W, int64_t ldw, int n, float* out,
           int64_t ldo) {
  __m256 acc[TB][R];
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) acc[t][r] = _mm256_setzero_ps();
  const int esz = BF16 ? 2 : 4;
  const char* wbase = (const char*)W;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 w[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      w[r] = loadw<BF16>(W, r * ldw + i);
      if (PF && (i & 15) == 0)
        _mm_prefetch(wbase + (r * ldw + i) * esz + kPrefetchBytes, _MM_HINT_T0);
    }
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      __m256 x = _mm256_loadu_ps(X + t * ldx + i);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[t][r] = _mm256_fmadd_ps(w[r], x, acc[t][r]);
    }
  }
  if (i < n) {
    const int rem = n - i;
    __m256 w[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) w[r] = loadw_tail<BF16>(W, r * ldw + i, rem);
#pragma GCC unroll 32
    for (int t = 0; t < TB; ++t) {
      __m256 x = loadx_tail(X + t * ldx + i, rem);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[t][r] = _mm256_fmadd_ps(w[r], x, acc[t][r]);
    }
  }
#pragma GCC unroll 32
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) out[t * ldo + r] = hsum(acc[t][r]);
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
      micro<8, 1, BF16, false>(X, ldx, Wc + (int64_t)r * ldw * esz, ldw, n, out + r, ldo);
    if (r < nrows) rem1[nrows - r](X, ldx, Wc + (int64_t)r * ldw * esz, ldw, n, out + r, ldo);
    return;
  }
  // 4 rows x 2 tokens = 8 accumulators (16 ymm registers in total).
  static const MicroFn tab[5][3] = {
      {nullptr, nullptr, nullptr},
      {nullptr, micro<1, 1, BF16, false>, micro<1, 2, BF16, false>},
      {nullptr, micro<2, 1, BF16, false>, micro<2, 2, BF16, false>},
      {nullptr, micro<3, 1, BF16, false>, micro<3, 2, BF16, false>},
      {nullptr, micro<4, 1, BF16, false>, micro<4, 2, BF16, false>}};
  for (int r = 0; r < nrows; r += 4) {
    const int rr = nrows - r < 4 ? nrows - r : 4;
    const char* Wr = Wc + (int64_t)r * ldw * esz;
    for (int t = 0; t < ntok; t += 2) {
      const int tt = ntok - t < 2 ? ntok - t : 2;
      tab[rr][tt](X + t * ldx, ldx, Wr, ldw, n, out + t * ldo + r, ldo);
    }
  }
}

// Prepared activations: X copied (exact) or rounded to bf16 (bf16 mode) into [ntok, n].
size_t xprep_bytes(int ntok, int n, int) { return (size_t)ntok * n * sizeof(float) + 64; }

template <bool ROUND>
void xprep(const float* X, int64_t ldx, int, int t0, int t1, int n, int, void* dst) {
  float* Xp = (float*)dst;
  for (int t = t0; t < t1; ++t)
    for (int i = 0; i < n; ++i) {
      const float v = X[(int64_t)t * ldx + i];
      Xp[(int64_t)t * n + i] = ROUND ? round_bf16(v) : v;
    }
}

void gemm(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
          float* out, int64_t ldo) {
  const float* X = (const float*)xp;
  if (wfmt == 1) dot_block_t<true>(X, n, ntok, W, ldw, n, nrows, out, ldo);
  else dot_block_t<false>(X, n, ntok, W, ldw, n, nrows, out, ldo);
}

}  // namespace

const GemmKernel kAvx2Exact = {"avx2-exact", 1, 1, 8, xprep_bytes, xprep<false>, gemm, nullptr};
const GemmKernel kAvx2Bf16 = {"avx2-bf16emu", 1, 1, 8, xprep_bytes, xprep<true>, gemm, nullptr};

double read_sum_avx2(const float* a, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
  }
  double s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i];
  return s;
}

}  // namespace lmoe
