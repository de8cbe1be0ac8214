// The per-ISA GEMM kernels (arch/*.cpp, each compiled with its ISA's flags, see CMakeLists.txt).
// Only isa.cpp picks among them: everything else calls them through the table of isa.h.
//
// A kernel computes Y[t, r] = sum_i X[t, i] * W[r, i] for X f32 activations [ntok, n] and W
// weights [rows, n] (LMOE_WFMT_F32 or LMOE_WFMT_BF16) used in place with a row stride, in one of
// two precisions (lmoe_precision):
//   EXACT: f32 X times the stored weights, f32 accumulation;
//   BF16 : X rounded to bf16 (RNE) once, bf16 x bf16 products, f32 accumulation.
// The activations of a job are prepared once (xprep, shared by every thread that computes rows of
// the job), then gemm computes any block of rows for all the job's tokens.
//
// The invariant every kernel keeps: for a given (kernel, weight format, n), Y[t, r] is a fixed
// function of X row t and W row r alone. Each kernel performs one per-element sequence of
// operations whatever ntok is (1 token or thousands), whichever other tokens or rows share a tile
// or a call, whichever row range or thread computes it; the k tail is zero-padded the same way
// in every path. Each file's header states its sequence.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lmoe {

struct GemmKernel {
  const char* name;
  int terms;      // bf16 terms per activation (AMX exact: 3), 1 elsewhere; peak / terms = ceiling
  int xgrain;     // token ranges given to xprep start at multiples of xgrain
  int row_block;  // gemm calls should cover multiples of row_block rows (except a job's end)
  // Bytes of the prepared activations of ntok tokens of width n for weights of format wfmt.
  size_t (*xprep_bytes)(int ntok, int n, int wfmt);
  // Prepares tokens [t0, t1) of X [ntok, ldx] into dst (64-byte aligned, xprep_bytes long).
  void (*xprep)(const float* X, int64_t ldx, int ntok, int t0, int t1, int n, int wfmt,
                void* dst);
  // out[t * ldo + r] for t < ntok, r < nrows; W points at the block's first row, ldw elements
  // between rows. xp is only read (threads share it).
  void (*gemm)(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
               float* out, int64_t ldo);
  // Optional (nullptr: not offered): the expert FC1 -> FC2 fusion for BF16 weights and relu^2.
  // Rows [0, nrows) of this GEMM are the k indices [r_base, r_base + nrows) (r_base a multiple of
  // 32) of the next GEMM, of width n2; relu^2 of the results is written into the next GEMM's
  // prepared activations `panel` (xprep layout for n2, same kernel), byte-identical to xprep of
  // the f32 relu^2 values.
  void (*gemm_relu2_packed)(const void* xp, int ntok, int n, const void* W, int64_t ldw,
                            int nrows, void* panel, int r_base, int n2);
};

extern const GemmKernel kScalarExact, kScalarBf16, kAvx2Exact, kAvx2Bf16, kAvx512Exact,
    kAvx512Bf16Emu, kAvx512Bf16Dp, kAmxExact, kAmxBf16;

// CPU features beyond the baseline ISAs of isa.cpp.
bool cpu_has_avx512_bf16();
bool cpu_has_amx_bf16();  // CPUID AMX-BF16 + AMX-TILE and the OS permission (requested once)

// Read-bandwidth probe loop (per ISA, so the probe is not limited by the baseline's SSE2).
typedef double (*ReadSumFn)(const float* a, int64_t n);
double read_sum_scalar(const float* a, int64_t n);
double read_sum_avx2(const float* a, int64_t n);
double read_sum_avx512(const float* a, int64_t n);

// Register-only peak probes (arch/peak.cpp): iters of the probe's inner loop on the calling
// thread; returns the FLOPs done. Which loops exist: see lmoe_peak_probe in latentmoe.h.
double peak_loop(int probe, int64_t iters);

// bf16 helpers. RNE; a NaN stays a quiet NaN.
inline uint16_t f32_to_bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16_rne(f)); }

// Per-thread grow-only scratch of the calling thread (thread_pool.cpp); throws std::bad_alloc.
float* thread_scratch(int slot, size_t floats);

}  // namespace lmoe
