// AMX-BF16 kernels (compiled with -mamx-tile -mamx-bf16 -mavx512f -mavx512bw), C^T = W X^T: the A tiles are 16 weight rows x 32 k taken straight from the
// row-major weights (row stride ldw), the B tiles are the activations packed once per job into
// the VNNI layout (16 k-pairs x 16 tokens x 2 bf16), the C tiles are 16 rows x 16 tokens in f32.
//
// Precision: NT terms per activation. bf16 mode: NT = 1, x rounded to bf16 (RNE). Exact mode:
// NT = 3, x = x1 + x2 + x3 with x1 = bf16(x), x2 = bf16(x - x1), x3 = bf16(x - x1 - x2), which is
// exact for every normal f32 (3 x 8 mantissa bits), so every product w * x_j is exact and only
// the f32 accumulation rounds, as in an f32 FMA dot product. (AMX flushes denormal inputs and
// results: an x3 below 2^-126 is dropped, a relative change of at most 2^-16 of an x < 2^-110.)
//
// Per-element sequence: C = 0; for k-block kb = 0, 1, ... (32 k each, the tail zero-padded):
// for j = 0..NT-1: C += tdpbf16ps(W[r, kb], x_j[t, kb]). The same for every token count (tokens
// are padded to whole 16-token tiles with zeros, which only fill other C columns) and row block.
// gcc 12 false positives inside avx512fintrin.h (undefined vectors of the intrinsics).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "arch/arch.h"
#include "arch/avx512_common.h"

namespace lmoe {
namespace {

struct alignas(64) TileCfg {
  uint8_t palette, start_row, rsv[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles: 0-3 C (16 x 16 f32), 4-5 A (16 rows x 32 bf16), 6-7 B (16 k-pairs x 16 tokens x 2).
// Loaded at the start of every gemm call and released at its end (tilerelease), so a thread
// holds no tile state between calls (smaller context switches, and the peak probe's own
// configuration cannot leak in).
void config_tiles() {
  static thread_local TileCfg cfg;  // not on the stack: a leaf's red zone broke ldtilecfg
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

constexpr int kTileBytes = 1024;

inline int nkb(int n) { return (n + 31) / 32; }
inline int ngroups(int ntok) { return (ntok + 15) / 16; }

template <int NT>
size_t xprep_bytes(int ntok, int n, int) {
  return (size_t)ngroups(ntok) * nkb(n) * NT * kTileBytes + 64;
}

// C tile (row = weight row, column = token) -> out[t][r] for t < nt, r < nr.
inline void store_transposed(const float* c, int nr, int nt,
                                                                float* out, int64_t ldo) {
  __m512 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(c + 16 * i);
  avx512::transpose16(r);
  const __mmask16 m = (__mmask16)((1u << nr) - 1u);
  for (int t = 0; t < nt; ++t) _mm512_mask_storeu_ps(out + (int64_t)t * ldo, m, r[t]);
}

// B tile (g, kb, j) at ((g * nkb + kb) * NT + j) * 1 KiB; element (k-pair kk, token tt, p) at
// kk * 64 + tt * 4 + p * 2, holding x_j[16 g + tt][32 kb + 2 kk + p]. Token ranges are whole
// groups of 16 (t0 a multiple of 16, t1 one too or ntok); tokens past ntok are zeros.
template <int NT>
void xprep(const float* X, int64_t ldx, int ntok,
                                                       int t0, int t1, int n, int, void* dst) {
  const int nk = nkb(n);
  char* B = (char*)dst;
  for (int g = t0 / 16; g * 16 < t1; ++g) {
    const int cnt = ntok - 16 * g < 16 ? ntok - 16 * g : 16;
    for (int kb = 0; kb < nk; ++kb) {
      const int rem = n - 32 * kb;
      const __mmask16 m0 = rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1u);
      const __mmask16 m1 = rem >= 32 ? 0xffff : rem <= 16 ? 0 : (__mmask16)((1u << (rem - 16)) - 1u);
      __m512 lo[16], hi[16];
#pragma GCC unroll 16
      for (int tt = 0; tt < 16; ++tt) {
        if (tt < cnt) {
          const float* x = X + (int64_t)(16 * g + tt) * ldx + 32 * kb;
          lo[tt] = _mm512_maskz_loadu_ps(m0, x);
          hi[tt] = _mm512_maskz_loadu_ps(m1, x + 16);
        } else {
          lo[tt] = hi[tt] = _mm512_setzero_ps();
        }
      }
      for (int j = 0; j < NT; ++j) {
        __m512 r[16];
#pragma GCC unroll 16
        for (int tt = 0; tt < 16; ++tt) {
          const __m512i a = avx512::round_bf16(_mm512_castps_si512(lo[tt]));
          const __m512i b = avx512::round_bf16(_mm512_castps_si512(hi[tt]));
          // 32 bf16 in k order = 16 dwords (k-pairs)
          const __m256i pa = _mm512_cvtepi32_epi16(_mm512_srli_epi32(a, 16));
          const __m256i pb = _mm512_cvtepi32_epi16(_mm512_srli_epi32(b, 16));
          r[tt] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(pa), pb, 1));
          if (j + 1 < NT) {
            lo[tt] = _mm512_sub_ps(lo[tt], _mm512_castsi512_ps(a));
            hi[tt] = _mm512_sub_ps(hi[tt], _mm512_castsi512_ps(b));
          }
        }
        avx512::transpose16(r);  // r[kk] = the 16 tokens' dwords of k-pair kk
        float* tile = (float*)(B + (((int64_t)g * nk + kb) * NT + j) * kTileBytes);
#pragma GCC unroll 16
        for (int kk = 0; kk < 16; ++kk) _mm512_store_ps(tile + 16 * kk, r[kk]);
      }
    }
  }
}

// A zero-padded copy of a partial row block (nr < 32 rows) or of a row block's tail k-block
// (n % 32 != 0), so that every tile load reads whole, initialised tiles: rows i < 32 at i * 64
// bytes of k-block kb at kb * 2048 (tile 0 = rows 0-15, tile 1 = rows 16-31 at + 1024).
void stage_block(const char* W, int64_t ldwb, int n,
                                                             int nr, int kb0, int kb1, char* dst) {
  const int nfull = n / 32, rem = n - 32 * nfull;
  for (int kb = kb0; kb < kb1; ++kb)
    for (int i = 0; i < 32; ++i) {
      __m512i v = _mm512_setzero_si512();
      if (i < nr) {
        const char* src = W + i * ldwb + (int64_t)kb * 64;
        v = kb < nfull ? _mm512_loadu_si512(src)
                       : _mm512_maskz_loadu_epi16((__mmask32)((1ull << rem) - 1ull), src);
      }
      _mm512_store_si512(dst + (int64_t)(kb - kb0) * 2048 + i * 64, v);
    }
}

// Bytes of B per token super-block (its B panel stays in L2 while the row blocks pass).
// Bytes of B per token super-block (its B panel stays in L2 while the row blocks pass).
constexpr int64_t kSuperBlockBytes = 1 << 20;


// Optional fused output: relu^2 of the result, rounded and split into NT2 bf16 terms, written as
// the packed activations (xprep layout) of a following GEMM whose k index is this GEMM's row.
struct PackOut {
  char* panel;  // the following GEMM's B panel
  int r_base;   // row of this call's row 0 in the following GEMM's k (multiple of 32)
  int nk2;      // the following GEMM's k-blocks
  int nt2;      // its terms per activation (1 bf16, 3 exact)
};

struct Pending {
  const float* c;  // 4 C tiles, (a, b) at (2a + b) * 256
  int nr, nb, toks0, toks1, g0, r0;
  float* out;      // out + 16 g0 ldo + r0
};

// C tile (a, b) -> relu^2 -> NT2 terms -> rows 8a..8a+7 of the B tiles (g0 + b, kb2, j).
inline void pack_relu2(const Pending& p, const PackOut& po) {
  const int kb2 = (po.r_base + p.r0) / 32;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < p.nb; ++b) {
      const float* c = p.c + (2 * a + b) * 256;
      for (int q = 0; q < 8; ++q) {
        const int i0 = 16 * a + 2 * q;  // C rows i0, i0 + 1 -> k-pair kk = 8a + q
        __m512 v0 = i0 < p.nr ? _mm512_load_ps(c + 16 * (2 * q)) : _mm512_setzero_ps();
        __m512 v1 = i0 + 1 < p.nr ? _mm512_load_ps(c + 16 * (2 * q + 1)) : _mm512_setzero_ps();
        v0 = _mm512_max_ps(v0, _mm512_setzero_ps());
        v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
        v0 = _mm512_mul_ps(v0, v0);
        v1 = _mm512_mul_ps(v1, v1);
        for (int j = 0; j < po.nt2; ++j) {
          const __m512i r0 = avx512::round_bf16(_mm512_castps_si512(v0));
          const __m512i r1 = avx512::round_bf16(_mm512_castps_si512(v1));
          const __m512i d = _mm512_or_si512(_mm512_srli_epi32(r0, 16), r1);  // (k even, k odd)
          char* tile = po.panel + (((int64_t)(p.g0 + b) * po.nk2 + kb2) * po.nt2 + j) * kTileBytes;
          _mm512_store_si512(tile + (8 * a + q) * 64, d);
          if (j + 1 < po.nt2) {
            v0 = _mm512_sub_ps(v0, _mm512_castsi512_ps(r0));
            v1 = _mm512_sub_ps(v1, _mm512_castsi512_ps(r1));
          }
        }
      }
    }
}

inline void run_epilogue(const Pending& p, int64_t ldo,
                                                            const PackOut* po) {
  if (po) return pack_relu2(p, *po);
  for (int a = 0; a < 2 && 16 * a < p.nr; ++a)
    for (int b = 0; b < p.nb; ++b) {
      const int rows = p.nr - 16 * a < 16 ? p.nr - 16 * a : 16;
      store_transposed(p.c + (2 * a + b) * 256, rows, b ? p.toks1 : p.toks0,
                       p.out + (int64_t)16 * b * ldo + 16 * a, ldo);
    }
}

// Rows [0, nrows) x all tokens. Token super-blocks outer, 32-row blocks (2 A tiles, in place
// from W with its row stride; staged only for a partial row block or the tail k-block), token
// group pairs (2 B tiles) inner, the whole K per C tile. The transposing epilogue of a pair is
// issued after the next pair's first k-steps, so the vector unit works while the tiles do.
template <int NT>
void gemm_core(
    const void* xp, int ntok, int n, const void* W, int64_t ldw, int nrows, float* out,
    int64_t ldo, const PackOut* po) {
  config_tiles();
  const int nk = nkb(n), ng = ngroups(ntok), nfull = n / 32;
  const char* Bp = (const char*)xp;
  const int64_t ldwb = ldw * 2;
  const int64_t gbytes = (int64_t)nk * NT * kTileBytes;  // B bytes per token group
  int sbg = (int)(kSuperBlockBytes / gbytes) & ~1;
  if (sbg < 2) sbg = 2;
  char* stage = (char*)thread_scratch(5, (size_t)nk * 512 + 16);  // nk * 2 KiB
  stage = (char*)(((uintptr_t)stage + 63) & ~(uintptr_t)63);
  alignas(64) float cbuf[2][1024];
  int cb = 0;
  Pending pend{};
  bool has_pend = false;
  for (int s0 = 0; s0 < ng; s0 += sbg) {
    const int s1 = ng - s0 < sbg ? ng : s0 + sbg;
    for (int r0 = 0; r0 < nrows; r0 += 32) {
      const int nr = nrows - r0 < 32 ? nrows - r0 : 32;
      const char* Wr = (const char*)W + r0 * ldwb;
      // k-blocks [0, kin) in place, [kin, nk) from the staged copy
      const int kin = nr == 32 ? nfull : 0;
      if (kin < nk) stage_block(Wr, ldwb, n, nr, kin, nk, stage);
      for (int g0 = s0; g0 < s1; g0 += 2) {
        const int nb = s1 - g0 > 1 ? 2 : 1;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const char* B0 = Bp + (int64_t)g0 * gbytes;
        const char* B1 = nb > 1 ? B0 + gbytes : B0;  // nb == 1: tiles 1 and 3 are discarded
        for (int kb = 0; kb < nk; ++kb) {
          if (kb < kin) {
            _tile_loadd(4, Wr + (int64_t)kb * 64, ldwb);
            _tile_loadd(5, Wr + 16 * ldwb + (int64_t)kb * 64, ldwb);
          } else {
            _tile_loadd(4, stage + (int64_t)(kb - kin) * 2048, 64);
            _tile_loadd(5, stage + (int64_t)(kb - kin) * 2048 + 1024, 64);
          }
          for (int j = 0; j < NT; ++j) {
            _tile_loadd(6, B0 + ((int64_t)kb * NT + j) * kTileBytes, 64);
            _tile_loadd(7, B1 + ((int64_t)kb * NT + j) * kTileBytes, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          if (kb == 1 && has_pend) {
            run_epilogue(pend, ldo, po);
            has_pend = false;
          }
        }
        if (has_pend) {
          run_epilogue(pend, ldo, po);
          has_pend = false;
        }
        float* c = cbuf[cb];
        cb ^= 1;
        _tile_stored(0, c, 64);
        _tile_stored(1, c + 256, 64);
        _tile_stored(2, c + 512, 64);
        _tile_stored(3, c + 768, 64);
        pend.c = c;
        pend.nr = nr;
        pend.nb = nb;
        pend.toks0 = ntok - 16 * g0 < 16 ? ntok - 16 * g0 : 16;
        pend.toks1 = ntok - 16 * (g0 + 1) < 16 ? ntok - 16 * (g0 + 1) : 16;
        pend.out = out ? out + (int64_t)16 * g0 * ldo + r0 : nullptr;
        pend.g0 = g0;
        pend.r0 = r0;
        has_pend = true;
      }
    }
  }
  if (has_pend) run_epilogue(pend, ldo, po);
  _tile_release();
}

// F32 weights: the AVX-512F kernels (AMX multiplies bf16 only).
template <int NT>
const GemmKernel& f32_kernel() { return NT == 1 ? kAvx512Bf16Emu : kAvx512Exact; }

template <int NT>
size_t xprep_bytes_any(int ntok, int n, int wfmt) {
  return wfmt == 1 ? xprep_bytes<NT>(ntok, n, wfmt) : f32_kernel<NT>().xprep_bytes(ntok, n, wfmt);
}
template <int NT>
void xprep_any(const float* X, int64_t ldx, int ntok, int t0, int t1, int n, int wfmt, void* dst) {
  if (wfmt == 1) xprep<NT>(X, ldx, ntok, t0, t1, n, wfmt, dst);
  else f32_kernel<NT>().xprep(X, ldx, ntok, t0, t1, n, wfmt, dst);
}
template <int NT>
void gemm_any(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
              float* out, int64_t ldo) {
  if (wfmt == 1) gemm_core<NT>(xp, ntok, n, W, ldw, nrows, out, ldo, nullptr);
  else f32_kernel<NT>().gemm(xp, ntok, n, W, ldw, wfmt, nrows, out, ldo);
}
template <int NT>
void relu2_packed(const void* xp, int ntok, int n, const void* W, int64_t ldw, int nrows,
                  void* panel, int r_base, int n2) {
  PackOut po{(char*)panel, r_base, (n2 + 31) / 32, NT};
  gemm_core<NT>(xp, ntok, n, W, ldw, nrows, nullptr, 0, &po);
}

}  // namespace

bool cpu_has_amx_bf16() {
  static const bool ok = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return false;
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return false;  // AMX-BF16, AMX-TILE
    // The tile data state is off until the process asks for it (Linux >= 5.16); per process.
    constexpr long kGetPerm = 0x1022, kReqPerm = 0x1023;
    constexpr int kXtileData = 18;
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, kReqPerm, kXtileData) != 0) return false;
    if (syscall(SYS_arch_prctl, kGetPerm, &mask) != 0) return false;
    return ((mask >> kXtileData) & 1) != 0;
  }();
  return ok;
}

bool cpu_has_avx512_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
}

const GemmKernel kAmxBf16 = {"amx-bf16", 1, 16, 32, xprep_bytes_any<1>, xprep_any<1>, gemm_any<1>,
                             relu2_packed<1>};
const GemmKernel kAmxExact = {"amx-exact3", 3, 16, 32, xprep_bytes_any<3>, xprep_any<3>,
                              gemm_any<3>, relu2_packed<3>};

}  // namespace lmoe
