// The GEMM engine (gemm.h): cost-balanced chunks of rows taken dynamically by the pool threads;
// which thread computes a chunk never changes its values.
#include "gemm.h"

#include <algorithm>
#include <atomic>

#include "arch/quant_scalar.h"
#include "isa.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

double job_row_cost(const GemmJob& j) {
  // bytes of weights (x 2 matrices for SwiGLU) vs. FMAs; ~3 token-FMAs cost one weight byte.
  double mats = j.Wg ? 2.0 : 1.0;
  return mats * (3.0 * (double)row_bytes(j.W->format, j.n) + (double)j.n * j.ntok);
}

// The per-tensor weight scale (FP8 weight_scale, NVFP4 weight_scale_2), once per output element
// before the epilogue; 1 for F32 / BF16 (skipped, so those results are unchanged).
inline void scale_block(float s, float* v, int64_t count) {
  if (s == 1.0f) return;
  for (int64_t q = 0; q < count; ++q) v[q] = v[q] * s;
}

// Quantized weights (FP8, NVFP4): the rows are decoded to f32 in scratch (slot) in small blocks,
// then go through the same f32 dot_block; out[t * ldo + q] for rows [r, r + rows).
void quant_dot(const float* X, int64_t ldx, int ntok, const lmoe_matrix& W, int r, int n, int rows, float* out,
               int64_t ldo, int slot, DotBlockFn dot) {
  constexpr int kRowsPerDecode = 16;
  float* w = thread_scratch(slot, (size_t)kRowsPerDecode * n);
  for (int q = 0; q < rows; q += kRowsPerDecode) {
    const int nr = std::min(kRowsPerDecode, rows - q);
    dequantize_rows(W, r + q, nr, n, w);
    dot(X, ldx, ntok, w, n, LMOE_WFMT_F32, n, nr, out + q, ldo);
  }
}

void run_segment(const GemmJob& j, int r0, int r1, DotBlockFn dot) {
  if (r1 <= r0 || j.ntok <= 0) return;
  // Rows per dot_block call: the whole segment for one token (long uninterrupted weight streams,
  // so the kernel's prefetch runs ahead across row groups), else bounded scratch.
  int ch = j.ntok == 1 ? r1 - r0 : std::max(8, std::min(512, 16384 / j.ntok / 8 * 8));
  float* tmp = thread_scratch(0, (size_t)ch * j.ntok);
  float* tmpg = j.Wg ? thread_scratch(1, (size_t)ch * j.ntok) : nullptr;
  const int64_t rb = row_bytes(j.W->format, j.n);
  const int64_t rbg = j.Wg ? row_bytes(j.Wg->format, j.n) : 0;
  for (int r = r0; r < r1; r += ch) {
    const int rows = std::min(ch, r1 - r);
    if (j.epi == EPI_SWIGLU) {
      if (is_quantized_format(j.Wg->format)) {
        quant_dot(j.X, j.ldx, j.ntok, *j.Wg, r, j.n, rows, tmpg, rows, 3, dot);
      } else {
        const char* Wgr = (const char*)j.Wg->data + (int64_t)r * rbg;
        dot(j.X, j.ldx, j.ntok, Wgr, j.n, j.Wg->format, j.n, rows, tmpg, rows);
      }
      scale_block(j.Wg->scale, tmpg, (int64_t)rows * j.ntok);
    }
    if (is_quantized_format(j.W->format)) {
      quant_dot(j.X, j.ldx, j.ntok, *j.W, r, j.n, rows, tmp, rows, 2, dot);
    } else {
      const char* Wr = (const char*)j.W->data + (int64_t)r * rb;
      dot(j.X, j.ldx, j.ntok, Wr, j.n, j.W->format, j.n, rows, tmp, rows);
    }
    scale_block(j.W->scale, tmp, (int64_t)rows * j.ntok);
    for (int t = 0; t < j.ntok; ++t)
      apply_epilogue(j.epi, tmp + (int64_t)t * rows, tmpg ? tmpg + (int64_t)t * rows : nullptr,
                     rows, j.Y, j.ldy, t, r, j.scatter, j.K);
  }
}

// The rows of all jobs are cut into chunks (multiples of 8 rows, ~kChunksPerThread per thread by
// estimated cost) that the threads take dynamically.
constexpr int kChunksPerThread = 24;

struct Chunk {
  int job, r0, r1;
};

}  // namespace

lmoe_status run_gemm_phase(std::vector<GemmJob>& jobs) {
  double total = 0;
  for (auto& j : jobs) {
    j.row_cost = job_row_cost(j);
    if (j.ntok > 0) total += j.row_cost * j.nrows;
  }
  if (total <= 0) return LMOE_OK;
  const int nt = pool_num_threads();
  const double target = total / ((double)nt * kChunksPerThread);
  std::vector<Chunk> chunks;
  for (size_t q = 0; q < jobs.size(); ++q) {
    const GemmJob& j = jobs[q];
    if (j.ntok <= 0 || j.nrows <= 0) continue;
    int rows = (int)(target / j.row_cost);
    rows = std::max(8, rows / 8 * 8);
    if (nt == 1) rows = j.nrows;
    for (int r = 0; r < j.nrows; r += rows) chunks.push_back({(int)q, r, std::min(j.nrows, r + rows)});
  }
  DotBlockFn dot = isa_kernels().dot_block;
  std::atomic<int> next{0};
  const int nchunks = (int)chunks.size();
  return parallel([&](int, int) {
    for (;;) {
      const int c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      const Chunk& ch = chunks[c];
      run_segment(jobs[ch.job], ch.r0, ch.r1, dot);
    }
  });
}

double jobs_weight_bytes(const std::vector<GemmJob>& jobs) {
  double b = 0;
  for (const GemmJob& j : jobs)
    if (j.ntok > 0) b += (j.Wg ? 2.0 : 1.0) * (double)j.nrows * row_bytes(j.W->format, j.n);
  return b;
}

}  // namespace lmoe
