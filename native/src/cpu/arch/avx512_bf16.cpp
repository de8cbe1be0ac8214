// AVX512-BF16 kernel (bf16 mode on CPUs with avx512_bf16 but no AMX): vdpbf16ps.
//
// Per-element sequence (the same for every token count and row block): one 16-lane accumulator;
// block b (32 elements): lane j = vdpbf16ps(lane j; W[32b+2j], W[32b+2j+1]; x[32b+2j], x[32b+2j+1])
// (the raw weight dwords are exactly the bf16 pairs the instruction takes); the tail block
// zero-padded; then the tree of avx512_common.h. F32 weights: the AVX-512F emulation.
// Prepared activations: x rounded to bf16 (RNE) as dwords of k-pairs, tokens in tiles of
// kTokTile; block b of token t of a tile at (b * cnt + t) * 16 dwords (cnt = the tile's tokens).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "arch/arch.h"
#include "arch/avx512_common.h"

namespace lmoe {
namespace {

constexpr int kTokTile = 12;

size_t xprep_bytes(int ntok, int n, int wfmt) {
  if (wfmt != 1) return kAvx512Bf16Emu.xprep_bytes(ntok, n, wfmt);
  return (size_t)ntok * ((n + 31) / 32) * 64 + 64;
}

void xprep(const float* X, int64_t ldx, int ntok, int t0, int t1, int n, int wfmt, void* dst) {
  if (wfmt != 1) return kAvx512Bf16Emu.xprep(X, ldx, ntok, t0, t1, n, wfmt, dst);
  const int nb = (n + 31) / 32;
  uint16_t* Xp = (uint16_t*)dst;
  for (int t = t0; t < t1; ++t) {
    const float* x = X + (int64_t)t * ldx;
    const int g = t / kTokTile, tt = t % kTokTile;
    const int cnt = ntok - g * kTokTile < kTokTile ? ntok - g * kTokTile : kTokTile;
    uint16_t* base = Xp + (int64_t)g * kTokTile * nb * 32;
    for (int b = 0; b < nb; ++b) {
      uint16_t* o = base + ((int64_t)b * cnt + tt) * 32;
      const int rem = n - 32 * b;
      const __mmask16 m0 = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
      const __mmask16 m1 = rem >= 32   ? (__mmask16)0xffff
                           : rem <= 16 ? (__mmask16)0
                                       : (__mmask16)((1u << (rem - 16)) - 1u);
      const __m512i a = avx512::round_bf16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m0, x + 32 * b)));
      const __m512i c =
          avx512::round_bf16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m1, x + 32 * b + 16)));
      _mm256_storeu_si256((__m256i*)o, _mm512_cvtepi32_epi16(_mm512_srli_epi32(a, 16)));
      _mm256_storeu_si256((__m256i*)(o + 16), _mm512_cvtepi32_epi16(_mm512_srli_epi32(c, 16)));
    }
  }
}

template <int R, int TB>
void tile(const uint16_t* Xp,
                                                                 const char* W, int64_t ldwb,
                                                                 int n, float* out, int64_t ldo) {
  __m512 acc[TB * R];
#pragma GCC unroll 64
  for (int q = 0; q < TB * R; ++q) acc[q] = _mm512_setzero_ps();
  const int nfull = n / 32, nb = (n + 31) / 32;
  for (int b = 0; b < nb; ++b) {
    __m512i w[R];
    if (b < nfull) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) w[r] = _mm512_loadu_si512(W + r * ldwb + (int64_t)b * 64);
    } else {
      const __mmask32 m = (__mmask32)((1ull << (n - 32 * nfull)) - 1ull);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) w[r] = _mm512_maskz_loadu_epi16(m, W + r * ldwb + (int64_t)b * 64);
    }
#pragma GCC unroll 16
    for (int t = 0; t < TB; ++t) {
      __m512i x = _mm512_load_si512(Xp + ((int64_t)b * TB + t) * 32);
      __asm__("" : "+v"(x));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
        acc[t * R + r] = _mm512_dpbf16_ps(acc[t * R + r], (__m512bh)w[r], (__m512bh)x);
    }
  }
  constexpr int NG = (TB * R + 15) / 16;
#pragma GCC unroll 4
  for (int g = 0; g < NG; ++g) {
    __m512 a[16];
    float res[16];
#pragma GCC unroll 16
    for (int e = 0; e < 16; ++e) a[e] = 16 * g + e < TB * R ? acc[16 * g + e] : _mm512_setzero_ps();
    avx512::reduce16(a, res);
    for (int e = 0; e < 16 && 16 * g + e < TB * R; ++e) {
      const int q = 16 * g + e;
      out[(int64_t)(q / R) * ldo + q % R] = res[e];
    }
  }
}

typedef void (*TileFn)(const uint16_t*, const char*, int64_t, int, float*, int64_t);

template <int R, int TB>
struct Tab {
  TileFn f[R + 1][TB + 1];
  template <int r, int t>
  void fill() {
    if constexpr (t > TB) {
      if constexpr (r < R) fill<r + 1, 1>();
    } else {
      f[r][t] = tile<r, t>;
      fill<r, t + 1>();
    }
  }
  Tab() { fill<1, 1>(); }
};

template <int R, int TB>
void run_tiles(const uint16_t* Xp, int ntok, const char* W, int64_t ldwb, int n, int nrows,
               float* out, int64_t ldo) {
  static const Tab<R, TB> tab;
  const int nb = (n + 31) / 32;
  for (int t = 0; t < ntok; t += TB) {
    const int tt = ntok - t < TB ? ntok - t : TB;
    const uint16_t* Xt = Xp + (int64_t)t * nb * 32;
    for (int r = 0; r < nrows; r += R) {
      const int rr = nrows - r < R ? nrows - r : R;
      tab.f[rr][tt](Xt, W + r * ldwb, ldwb, n, out + t * ldo + r, ldo);
    }
  }
}

void gemm(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
          float* out, int64_t ldo) {
  if (wfmt != 1) return kAvx512Bf16Emu.gemm(xp, ntok, n, W, ldw, wfmt, nrows, out, ldo);
  const uint16_t* Xp = (const uint16_t*)xp;
  const char* Wc = (const char*)W;
  const int64_t ldwb = ldw * 2;
  switch (ntok) {
    case 1: run_tiles<8, 1>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo); break;
    case 2: run_tiles<8, 2>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo); break;
    case 3: run_tiles<6, 3>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo); break;
    case 4: run_tiles<4, 4>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo); break;
    case 5: case 6: case 7: case 8: run_tiles<3, 8>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo); break;
    default: run_tiles<2, 12>(Xp, ntok, Wc, ldwb, n, nrows, out, ldo);
  }
}

}  // namespace

const GemmKernel kAvx512Bf16Dp = {"avx512bf16-dp", 1, 1, 8, xprep_bytes, xprep, gemm, nullptr};

}  // namespace lmoe
