// The CPU GEMM engine that every matrix product of the layer goes through. A phase is a list of
// jobs, Y[t, r] = epilogue(X[t] . W[r]) for the tokens of the job; run_gemm_phase splits the rows
// of all jobs across the pool threads by an estimated cost, in blocks of 8 rows (one barrier per
// phase). Each output element is produced by one dot_block call (isa.h) with a fixed per-ISA lane
// layout, so results are bit-identical for any thread count and any partition.
#pragma once
#include <cstdint>
#include <vector>

#include "epilogue.h"
#include "latentmoe.h"

namespace lmoe {

// Bytes of one row of n input features in a weight format (NVFP4: n even, two codes per byte).
inline int64_t row_bytes(int format, int64_t n) {
  switch (format) {
    case LMOE_WFMT_BF16: return 2 * n;
    case LMOE_WFMT_FP8_E4M3: return n;
    case LMOE_WFMT_NVFP4: return n / 2;
    default: return 4 * n;
  }
}

struct GemmJob {
  const float* X = nullptr;  // [ntok, ldx] f32
  int64_t ldx = 0;
  int ntok = 0;
  const lmoe_matrix* W = nullptr;   // [nrows, n]
  const lmoe_matrix* Wg = nullptr;  // SwiGLU gate rows [nrows, n]
  int n = 0;
  int nrows = 0;
  int epi = EPI_STORE;
  float* Y = nullptr;  // [ntok, ldy] (EPI_SCATTER: rows scatter[t*K + k])
  int64_t ldy = 0;
  const int32_t* scatter = nullptr;  // EPI_SCATTER: row of token t, slot k = scatter[t*K + k]
  int K = 0;
  double row_cost = 0;  // set by run_gemm_phase
};

// A job of one weight matrix over T tokens (no gate rows, no scatter).
inline GemmJob dense_job(const float* X, int64_t ldx, int64_t T, const lmoe_matrix* W, int n,
                         int nrows, int epi, float* Y, int64_t ldy) {
  GemmJob j;
  j.X = X; j.ldx = ldx; j.ntok = (int)T;
  j.W = W; j.n = n; j.nrows = nrows;
  j.epi = epi; j.Y = Y; j.ldy = ldy;
  return j;
}

// Runs all jobs of one phase on the pool and returns when all are done.
lmoe_status run_gemm_phase(std::vector<GemmJob>& jobs);

// Weight bytes the jobs stream (diagnostics).
double jobs_weight_bytes(const std::vector<GemmJob>& jobs);

}  // namespace lmoe
