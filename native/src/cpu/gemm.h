// The CPU GEMM engine that every matrix product of the layer goes through. A phase is a list of
// jobs, Y[t, r] = epilogue(X[t] . W[r]) for the tokens of the job. run_gemm_phase first prepares
// each job's activations once for the kernel of (ISA in use, job precision, weight format)
// (arch.h: xprep; jobs reading the same X share it), then splits the rows of all jobs into
// chunks by an estimated cost that the pool threads take dynamically (one barrier per step).
// Each output element is a fixed function of its X row and W row (arch.h), so results are
// bit-identical for any thread count, any partition and any token chunking.
#pragma once
#include <cstdint>
#include <vector>

#include "epilogue.h"
#include "latentmoe.h"

namespace lmoe {

struct GemmKernel;

// Bytes of one row of n input features in a weight format (NVFP4: n even, two codes per byte).
inline int64_t row_bytes(int format, int64_t n) {
  switch (format) {
    case LMOE_WFMT_BF16: return 2 * n;
    case LMOE_WFMT_FP8_E4M3: return n;
    case LMOE_WFMT_NVFP4: return n / 2;
    default: return 4 * n;
  }
}

// The weight format the kernels see: quantized rows (FP8, NVFP4) are decoded exactly to bf16
// first (gemm.cpp), so they share the bf16 weights' prepared activations and per-element order.
inline int kernel_format(int format) { return format == LMOE_WFMT_F32 ? LMOE_WFMT_F32 : LMOE_WFMT_BF16; }

struct GemmJob {
  const float* X = nullptr;  // [ntok, ldx] f32
  int64_t ldx = 0;
  int ntok = 0;
  const lmoe_matrix* W = nullptr;   // [nrows, n]
  const lmoe_matrix* Wg = nullptr;  // SwiGLU gate rows [nrows, n]
  int n = 0;
  int nrows = 0;
  int epi = EPI_STORE;
  int precision = LMOE_PRECISION_EXACT;  // lmoe_precision
  float* Y = nullptr;  // [ntok, ldy] (EPI_SCATTER: rows scatter[t*K + k])
  int64_t ldy = 0;
  const int32_t* scatter = nullptr;  // EPI_SCATTER: row of token t, slot k = scatter[t*K + k]
  int K = 0;
  // Expert FC1 -> FC2 fusion (see fuse_relu2): this job (FC1, EPI_RELU2) writes relu^2 of its
  // results as the prepared activations of job `next` of the next phase, which then skips its
  // xprep (Y unused). Set only by fuse_relu2.
  GemmJob* next = nullptr;
  // Set by run_gemm_phase.
  const GemmKernel* kernel = nullptr;
  void* xp = nullptr;  // prepared activations
  double row_cost = 0;
};

// A job of one weight matrix over T tokens (no gate rows, no scatter).
inline GemmJob dense_job(const float* X, int64_t ldx, int64_t T, const lmoe_matrix* W, int n,
                         int nrows, int epi, float* Y, int64_t ldy, int precision) {
  GemmJob j;
  j.X = X; j.ldx = ldx; j.ntok = (int)T;
  j.W = W; j.n = n; j.nrows = nrows;
  j.epi = epi; j.Y = Y; j.ldy = ldy;
  j.precision = precision;
  return j;
}

// The kernel the engine uses for a precision on the ISA in use (it handles F32 and BF16 weights).
const GemmKernel& gemm_kernel(int precision);

// Links fc1[i] -> fc2[i] for every expert whose kernel offers the relu^2 fusion (BF16 up and down
// weights, relu^2, same kernel for both): FC1 then writes FC2's prepared activations directly
// (no f32 hidden, no FC2 xprep), into `space` (space_bytes; the f32 hidden buffer) when they all
// fit there, else into the calling thread's scratch. Both vectors must outlive the two phases.
void fuse_relu2(std::vector<GemmJob>& fc1, std::vector<GemmJob>& fc2, void* space,
                size_t space_bytes);

// Runs all jobs of one phase on the pool and returns when all are done. The prepared
// activations live in the calling thread's grow-only scratch until the next phase of the same
// thread, except those written for a `next` job, which stay until that job's phase has run.
lmoe_status run_gemm_phase(std::vector<GemmJob>& jobs);

// Weight bytes the jobs stream (diagnostics).
double jobs_weight_bytes(const std::vector<GemmJob>& jobs);

}  // namespace lmoe
