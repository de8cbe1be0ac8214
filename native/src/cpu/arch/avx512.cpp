// AVX-512F kernels: the exact kernel (f32 activations, f32 FMA) and the bf16-mode emulation for
// CPUs without AVX512-BF16 / AMX and for f32 weights (the same code on activations rounded to bf16).
//
// Per-element sequence (the same for 1 token and for thousands, for any row block):
//   F32 W : one 16-lane accumulator; block b (16 elements): lane j += W[16b+j] * x[16b+j] (FMA),
//           b = 0, 1, ...; the tail block zero-padded (W masked load, x padded with zeros);
//   BF16 W: one 16-lane accumulator; block b (32 elements): lane j += W[32b+2j] * x[32b+2j],
//           then lane j += W[32b+2j+1] * x[32b+2j+1]; the tail block zero-padded;
//   then the tree of avx512_common.h ([j] + [j+8], + [j+4], + [j+2], + [j+1]).
// One token (decode) runs the same tile code with 8 rows x 1 token: the 8 independent FMA chains
// come from 8 rows, never from splitting one element's sum.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "arch/arch.h"
#include "arch/avx512_common.h"

namespace lmoe {
namespace {

// Prepared activations: tokens in tiles of kTokTile; within a tile, block b of token t (bw
// floats: bf16 W -> 16 even then 16 odd elements of the 32-block, f32 W -> the 16 elements) at
// (b * cnt + t) * bw, cnt = the tile's token count; tile g starts at g * kTokTile * nb * bw.
// A tile's blocks are contiguous, so a K slice of a token tile is one contiguous L1 range.
constexpr int kTokTile = 6;

inline int blockw(int wfmt) { return wfmt == 1 ? 32 : 16; }

size_t xprep_bytes(int ntok, int n, int wfmt) {
  const int bw = blockw(wfmt), nb = (n + bw - 1) / bw;
  return (size_t)ntok * nb * bw * sizeof(float) + 64;
}

template <bool ROUND>
inline __m512 act16(__m512 v) {
  return ROUND ? avx512::round_bf16_ps(v) : v;
}

template <bool ROUND>
void xprep_t(const float* X, int64_t ldx, int ntok, int t0, int t1, int n, int wfmt, void* dst) {
  const int bw = blockw(wfmt), nb = (n + bw - 1) / bw;
  float* Xp = (float*)dst;
  const __m512i idx_even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i idx_odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int t = t0; t < t1; ++t) {
    const float* x = X + (int64_t)t * ldx;
    const int g = t / kTokTile, tt = t % kTokTile;
    const int cnt = ntok - g * kTokTile < kTokTile ? ntok - g * kTokTile : kTokTile;
    float* base = Xp + (int64_t)g * kTokTile * nb * bw;
    for (int b = 0; b < nb; ++b) {
      float* o = base + ((int64_t)b * cnt + tt) * bw;
      const int rem = n - bw * b;  // elements left (>= 1)
      if (wfmt == 1) {
        const __mmask16 m0 = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        const __mmask16 m1 = rem >= 32 ? (__mmask16)0xffff : rem <= 16 ? (__mmask16)0 : (__mmask16)((1u << (rem - 16)) - 1u);
        const __m512 a = _mm512_maskz_loadu_ps(m0, x + 32 * b);
        const __m512 c = _mm512_maskz_loadu_ps(m1, x + 32 * b + 16);
        _mm512_storeu_ps(o, act16<ROUND>(_mm512_permutex2var_ps(a, idx_even, c)));
        _mm512_storeu_ps(o + 16, act16<ROUND>(_mm512_permutex2var_ps(a, idx_odd, c)));
      } else {
        const __mmask16 m0 = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        _mm512_storeu_ps(o, act16<ROUND>(_mm512_maskz_loadu_ps(m0, x + 16 * b)));
      }
    }
  }
}

// R rows x TB tokens of accumulators, one chain each, over blocks [b0, b1) of the K dimension
// (block = 32 elements for bf16 W, 16 for f32 W; block nfull is the zero-padded tail, if any).
// first: start from zero, else from part (R*TB 16-lane partial sums); last: reduce into out,
// else store the partial sums to part. Splitting K this way stores and reloads exact f32 lanes,
// so the per-element sequence does not depend on the split.
template <int R, int TB, bool BF16>
inline void tile(const float* Xp, const char* W, int64_t ldwb, int n, int b0, int b1,
                 float* part, bool first, bool last, float* out, int64_t ldo) {
  __m512 acc[TB * R];
  if (first) {
#pragma GCC unroll 64
    for (int q = 0; q < TB * R; ++q) acc[q] = _mm512_setzero_ps();
  } else {
#pragma GCC unroll 64
    for (int q = 0; q < TB * R; ++q) acc[q] = _mm512_load_ps(part + 16 * q);
  }
  if (BF16) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    const int nfull = n / 32;
    for (int b = b0; b < b1; ++b) {
      __m512i raw[R];
      if (b < nfull) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) raw[r] = _mm512_loadu_si512(W + r * ldwb + (int64_t)b * 64);
      } else {
        const __mmask32 m = (__mmask32)((1ull << (n - 32 * nfull)) - 1ull);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
          raw[r] = _mm512_maskz_loadu_epi16(m, W + r * ldwb + (int64_t)b * 64);
      }
      // even elements of the block for every (t, r), then the odd ones: per element the order
      // is still even-then-odd, and only R weight registers are live (R*TB + R + 2 <= 32).
      {
        __m512 w[R];
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) w[r] = _mm512_castsi512_ps(_mm512_slli_epi32(raw[r], 16));
#pragma GCC unroll 16
        for (int t = 0; t < TB; ++t) {
          __m512 xe = _mm512_load_ps(Xp + ((int64_t)b * TB + t) * 32);
          __asm__("" : "+v"(xe));  // one load, reused by the R rows
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) acc[t * R + r] = _mm512_fmadd_ps(w[r], xe, acc[t * R + r]);
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) w[r] = _mm512_castsi512_ps(_mm512_and_si512(raw[r], hi_mask));
#pragma GCC unroll 16
        for (int t = 0; t < TB; ++t) {
          __m512 xo = _mm512_load_ps(Xp + ((int64_t)b * TB + t) * 32 + 16);
          __asm__("" : "+v"(xo));
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) acc[t * R + r] = _mm512_fmadd_ps(w[r], xo, acc[t * R + r]);
        }
      }
    }
  } else {
    const int nfull = n / 16;
    for (int b = b0; b < b1; ++b) {
      __m512 w[R];
      if (b < nfull) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) w[r] = _mm512_loadu_ps(W + r * ldwb + (int64_t)b * 64);
      } else {
        const __mmask16 m = (__mmask16)((1u << (n - 16 * nfull)) - 1u);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) w[r] = _mm512_maskz_loadu_ps(m, W + r * ldwb + (int64_t)b * 64);
      }
#pragma GCC unroll 16
      for (int t = 0; t < TB; ++t) {
        __m512 x = _mm512_load_ps(Xp + ((int64_t)b * TB + t) * 16);
        __asm__("" : "+v"(x));
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[t * R + r] = _mm512_fmadd_ps(w[r], x, acc[t * R + r]);
      }
    }
  }
  if (!last) {
#pragma GCC unroll 64
    for (int q = 0; q < TB * R; ++q) _mm512_store_ps(part + 16 * q, acc[q]);
    return;
  }
  // Reduce in groups of 16 (zero-padded group at the end; the padding lanes are discarded).
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

typedef void (*TileFn)(const float*, const char*, int64_t, int, int, int, float*, bool,
                       bool, float*, int64_t);

// The main tile (4 rows x 6 tokens = 24 accumulators) and the K slice a token tile keeps in L1.
constexpr int TILE_R = 4, TILE_TB = 6;
constexpr int KC_ELEMS = 512;

template <int R, int TB, bool BF16>
struct Tab {
  TileFn f[R + 1][TB + 1];
  template <int r, int t>
  void fill() {
    if constexpr (t > TB) {
      if constexpr (r < R) fill<r + 1, 1>();
    } else {
      f[r][t] = tile<r, t, BF16>;
      fill<r, t + 1>();
    }
  }
  Tab() { fill<1, 1>(); }
};

// Register tile R rows x TB tokens for a token count (R*TB <= 24 accumulators); every shape
// performs the same per-element sequence, so the choice only affects speed.
template <int R, int TB, bool BF16>
void run_tiles(const float* Xp, int ntok, const char* Wc, int64_t ldwb, int n, int nb,
               int nrows, float* out, int64_t ldo) {
  static const Tab<R, TB, BF16> tab;
  const int bw = BF16 ? 32 : 16;
  // Token tiles outer (their X slice of KC elements stays in L1 across the row tiles), K blocks
  // of KC elements, row tiles inner (the block's weights stay in L2 across token tiles).
  const int kcb = KC_ELEMS / bw;
  const bool split = ntok > TB && nb > kcb + kcb / 2;
  float* part = split ? thread_scratch(4, (size_t)TB * (nrows + R) * 16 + 16) : nullptr;
  if (part) part = (float*)(((uintptr_t)part + 63) & ~(uintptr_t)63);
  for (int t = 0; t < ntok; t += TB) {
    const int tt = ntok - t < TB ? ntok - t : TB;
    for (int b0 = 0; b0 < nb; b0 = split ? b0 + kcb : nb) {
      const int b1 = split ? (b0 + kcb < nb ? b0 + kcb : nb) : nb;
      const bool first = b0 == 0, last = b1 == nb;
      for (int r = 0; r < nrows; r += R) {
        const int rr = nrows - r < R ? nrows - r : R;
        float* pp = part ? part + (int64_t)r * TB * 16 : nullptr;
        const float* Xt = Xp + (int64_t)t * nb * bw;
        if (rr == R && tt == TB)
          tile<R, TB, BF16>(Xt, Wc + r * ldwb, ldwb, n, b0, b1, pp, first, last,
                            out + t * ldo + r, ldo);
        else
          tab.f[rr][tt](Xt, Wc + r * ldwb, ldwb, n, b0, b1, pp, first, last, out + t * ldo + r,
                        ldo);
      }
    }
  }
}

template <bool BF16>
void gemm_t(const void* xp, int ntok, int n, const void* W, int64_t ldw, int nrows, float* out,
            int64_t ldo) {
  const float* Xp = (const float*)xp;
  const int64_t ldwb = ldw * (BF16 ? 2 : 4);
  const char* Wc = (const char*)W;
  const int bw = BF16 ? 32 : 16;
  const int nb = (n + bw - 1) / bw;
  switch (ntok) {
    case 1: run_tiles<8, 1, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo); break;
    case 2: run_tiles<8, 2, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo); break;
    case 3: run_tiles<6, 3, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo); break;
    case 4: run_tiles<4, 4, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo); break;
    case 5: run_tiles<4, 5, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo); break;
    default: run_tiles<TILE_R, TILE_TB, BF16>(Xp, ntok, Wc, ldwb, n, nb, nrows, out, ldo);
  }
}

void gemm(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
          float* out, int64_t ldo) {
  if (wfmt == 1) gemm_t<true>(xp, ntok, n, W, ldw, nrows, out, ldo);
  else gemm_t<false>(xp, ntok, n, W, ldw, nrows, out, ldo);
}

}  // namespace

const GemmKernel kAvx512Exact = {"avx512-exact", 1, 1, 8, xprep_bytes, xprep_t<false>, gemm, nullptr};
const GemmKernel kAvx512Bf16Emu = {"avx512-bf16emu", 1, 1, 8, xprep_bytes, xprep_t<true>, gemm,
                                   nullptr};

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
