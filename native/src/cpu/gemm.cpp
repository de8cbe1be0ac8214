// The GEMM engine (gemm.h): activations prepared once per job (shared by equal inputs), then
// cost-balanced chunks of rows taken dynamically by the pool threads; which thread computes a
// chunk never changes its values.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "arch/arch.h"
#include "arch/quant_scalar.h"
#include "isa.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

// Grow-only 64-byte aligned buffers of the calling thread: the current phase's prepared
// activations, and those a fused FC1 writes for the next phase.
struct Arena {
  char* base = nullptr;
  size_t cap = 0;
  char* get(size_t bytes) {
    if (bytes > cap) {
      std::free(base);
      base = nullptr;
      cap = 0;
      const size_t want = (bytes + (1u << 20)) / 64 * 64;
      base = static_cast<char*>(std::aligned_alloc(64, want));
      if (!base) throw std::bad_alloc();
      cap = want;
    }
    return base;
  }
  ~Arena() { std::free(base); }
};
thread_local Arena t_phase, t_handoff;

inline size_t align64(size_t v) { return (v + 63) / 64 * 64; }

double job_row_cost(const GemmJob& j) {
  // bytes of weights (x 2 matrices for SwiGLU) vs. multiply-adds: one weight byte costs about 3
  // token-MACs of the FMA kernels and about 40 of AMX (bf16: 1 term, exact: 3).
  const double mats = j.Wg ? 2.0 : 1.0;
  const double mac = j.kernel->row_block == 32 ? j.kernel->terms / 40.0 : 1.0 / 3.0;
  return mats * ((double)row_bytes(j.W->format, j.n) + mac * (double)j.n * j.ntok);
}

// The per-tensor weight scale (FP8 weight_scale, NVFP4 weight_scale_2), once per output element
// before the epilogue; 1 for F32 / BF16 (skipped, so those results are unchanged).
inline void scale_block(float s, float* v, int64_t count) {
  if (s == 1.0f) return;
  for (int64_t q = 0; q < count; ++q) v[q] = v[q] * s;
}

// Rows per gemm call: the whole segment for one token (one long weight stream); else the
// weights of a call stay within ~512 KiB (reused from L2 across the token tiles) and the f32
// results within ~1 MiB of scratch; a multiple of the kernel's row block.
int rows_per_call(const GemmJob& j, int seg) {
  if (j.ntok == 1 || j.next) return seg;
  const int rb = j.kernel->row_block;
  const int64_t by_w = (512 << 10) / std::max<int64_t>(1, row_bytes(j.W->format, j.n));
  const int64_t by_out = (256 << 10) / std::max(1, j.ntok);
  int64_t rows = std::max<int64_t>(rb, std::min(by_w, by_out) / rb * rb);
  return (int)std::min<int64_t>(rows, seg);
}

// gemm on rows [r, r + rows) of W into out (ldo = rows). Quantized rows (FP8, NVFP4) are decoded
// exactly to bf16 (every e4m3 value and every e2m1 x e4m3 product is a bf16) in blocks of 32 rows
// of thread scratch `slot`, so they take the bf16-weight kernel with its per-element sequence.
void gemm_rows(const GemmKernel& k, const GemmJob& j, const lmoe_matrix& W, int r, int rows, float* out,
               int slot) {
  if (!is_quantized_format(W.format)) {
    k.gemm(j.xp, j.ntok, j.n, (const char*)W.data + (int64_t)r * row_bytes(W.format, j.n), j.n, W.format,
           rows, out, rows);
    return;
  }
  constexpr int kDecodeRows = 32;
  float* f32 = thread_scratch(slot, (size_t)kDecodeRows * j.n * 3 / 2 + 32);
  uint16_t* bf16 = reinterpret_cast<uint16_t*>(f32 + (size_t)kDecodeRows * j.n);
  for (int q = 0; q < rows; q += kDecodeRows) {
    const int nr = std::min(kDecodeRows, rows - q);
    dequantize_rows(W, r + q, nr, j.n, f32);
    for (int64_t i = 0; i < (int64_t)nr * j.n; ++i) bf16[i] = f32_to_bf16_rne(f32[i]);
    k.gemm(j.xp, j.ntok, j.n, bf16, j.n, LMOE_WFMT_BF16, nr, out + q, rows);
  }
}

void run_segment(const GemmJob& j, int r0, int r1) {
  if (r1 <= r0 || j.ntok <= 0) return;
  const GemmKernel& k = *j.kernel;
  const int64_t rb = row_bytes(j.W->format, j.n);
  if (j.next) {  // fused FC1 -> FC2: relu^2 straight into the next job's prepared activations
    k.gemm_relu2_packed(j.xp, j.ntok, j.n, (const char*)j.W->data + (int64_t)r0 * rb, j.n,
                        r1 - r0, j.next->xp, r0, j.nrows);
    return;
  }
  const int ch = rows_per_call(j, r1 - r0);
  float* tmp = thread_scratch(0, (size_t)ch * j.ntok);
  float* tmpg = j.Wg ? thread_scratch(1, (size_t)ch * j.ntok) : nullptr;
  for (int r = r0; r < r1; r += ch) {
    const int rows = std::min(ch, r1 - r);
    if (j.epi == EPI_SWIGLU) {  // abi.cpp: the gate rows have the up rows' kernel format
      gemm_rows(k, j, *j.Wg, r, rows, tmpg, 3);
      scale_block(j.Wg->scale, tmpg, (int64_t)rows * j.ntok);
    }
    gemm_rows(k, j, *j.W, r, rows, tmp, 2);
    scale_block(j.W->scale, tmp, (int64_t)rows * j.ntok);
    for (int t = 0; t < j.ntok; ++t)
      apply_epilogue(j.epi, tmp + (int64_t)t * rows, tmpg ? tmpg + (int64_t)t * rows : nullptr,
                     rows, j.Y, j.ldy, t, r, j.scatter, j.K);
  }
}

// Two jobs can share prepared activations when they read the same X with the same kernel.
bool same_input(const GemmJob& a, const GemmJob& b) {
  return a.X == b.X && a.ldx == b.ldx && a.ntok == b.ntok && a.n == b.n && a.kernel == b.kernel &&
         kernel_format(a.W->format) == kernel_format(b.W->format);
}

struct PrepItem {
  const GemmJob* job;
  int t0, t1;
};

// Prepares the activations of every job that needs it (jobs whose xp a fused FC1 writes are
// skipped), into the phase arena; jobs with equal inputs share one buffer.
lmoe_status prepare_inputs(std::vector<GemmJob>& jobs) {
  size_t total = 0;
  std::vector<size_t> off(jobs.size(), SIZE_MAX);
  std::vector<char> owner(jobs.size(), 0);
  for (size_t q = 0; q < jobs.size(); ++q) {
    GemmJob& j = jobs[q];
    if (j.ntok <= 0 || j.xp) continue;  // nothing to do, or prepared by a fused FC1
    for (size_t p = 0; p < q; ++p)
      if (owner[p] && same_input(jobs[p], j)) {
        off[q] = off[p];
        break;
      }
    if (off[q] != SIZE_MAX) continue;
    owner[q] = 1;
    off[q] = total;
    total += align64(j.kernel->xprep_bytes(j.ntok, j.n, kernel_format(j.W->format)));
  }
  // The fused FC1 jobs' outputs, the next phase's prepared activations, unless placed already.
  size_t handoff = 0;
  for (GemmJob& j : jobs)
    if (j.next && !j.next->xp) handoff += align64(j.kernel->xprep_bytes(j.ntok, j.nrows, LMOE_WFMT_BF16));
  char* hb = handoff ? t_handoff.get(handoff) : nullptr;
  for (GemmJob& j : jobs)
    if (j.next && !j.next->xp) {
      j.next->xp = hb;
      hb += align64(j.kernel->xprep_bytes(j.ntok, j.nrows, LMOE_WFMT_BF16));
    }
  if (total == 0) return LMOE_OK;
  char* base = t_phase.get(total);
  std::vector<PrepItem> items;
  const int nt = pool_num_threads();
  for (size_t q = 0; q < jobs.size(); ++q) {
    GemmJob& j = jobs[q];
    if (off[q] == SIZE_MAX) continue;
    j.xp = base + off[q];
    if (!owner[q]) continue;
    // token ranges in multiples of the kernel's grain, ~4 per thread for the big inputs
    const int g = j.kernel->xgrain;
    const int ngr = (j.ntok + g - 1) / g;
    const int parts = std::max(1, std::min(ngr, 4 * nt * j.ntok * j.n / (1 << 18) + 1));
    for (int p = 0; p < parts; ++p) {
      const int a = (int)((int64_t)ngr * p / parts) * g;
      const int b = std::min(j.ntok, (int)((int64_t)ngr * (p + 1) / parts) * g);
      if (b > a) items.push_back({&j, a, b});
    }
  }
  auto run = [&](size_t i) {
    const GemmJob& j = *items[i].job;
    j.kernel->xprep(j.X, j.ldx, j.ntok, items[i].t0, items[i].t1, j.n, kernel_format(j.W->format), j.xp);
  };
  if (items.size() == 1 || total < (256u << 10)) {
    for (size_t i = 0; i < items.size(); ++i) run(i);
    return LMOE_OK;
  }
  std::atomic<size_t> next{0};
  return parallel([&](int, int) {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < items.size();) run(i);
  });
}

// The rows of all jobs are cut into chunks (~kChunksPerThread per thread by estimated cost, in
// multiples of the kernel's row block) that the threads take dynamically.
constexpr int kChunksPerThread = 24;

struct Chunk {
  int job, r0, r1;
};

}  // namespace

const GemmKernel& gemm_kernel(int precision) {
  const IsaKernels& k = isa_kernels();
  return precision == LMOE_PRECISION_BF16 ? *k.bf16 : *k.exact;
}

void fuse_relu2(std::vector<GemmJob>& fc1, std::vector<GemmJob>& fc2, void* space,
                size_t space_bytes) {
  size_t used = 0;
  std::vector<GemmJob*> linked;
  for (size_t e = 0; e < fc1.size() && e < fc2.size(); ++e) {
    GemmJob &a = fc1[e], &b = fc2[e];
    const GemmKernel& k = gemm_kernel(a.precision);
    if (!k.gemm_relu2_packed || a.epi != EPI_RELU2 || a.Wg || a.W->format != LMOE_WFMT_BF16 ||
        b.W->format != LMOE_WFMT_BF16 || a.W->scale != 1.0f || b.precision != a.precision ||
        b.n != a.nrows || b.ntok != a.ntok)
      continue;
    a.next = &b;
    a.kernel = b.kernel = &k;  // both phases run this kernel (the panel is in its layout)
    used += align64(k.xprep_bytes(b.ntok, b.n, LMOE_WFMT_BF16));
    linked.push_back(&b);
  }
  // The panels go into `space` (the f32 hidden buffer they replace) when they all fit, else into
  // the calling thread's hand-off scratch (run_gemm_phase).
  // (aligned to 64 bytes: the kernels store whole cache lines)
  const size_t skip = space ? (64 - (uintptr_t)space % 64) % 64 : 0;
  if (space && used + skip <= space_bytes) {
    char* p = static_cast<char*>(space) + skip;
    for (GemmJob* b : linked) {
      b->xp = p;
      p += align64(b->kernel->xprep_bytes(b->ntok, b->n, LMOE_WFMT_BF16));
    }
  }
}

lmoe_status run_gemm_phase(std::vector<GemmJob>& jobs) {
  for (GemmJob& j : jobs) {
    // A job whose activations a fused FC1 prepared keeps that FC1's kernel (the layout is its),
    // even if lmoe_cpu_set_isa ran in between.
    if (!j.kernel) j.kernel = &gemm_kernel(j.precision);
    if (j.ntok > 0 && j.next) j.next->kernel = j.kernel;
  }
  lmoe_status st = prepare_inputs(jobs);
  if (st != LMOE_OK) return st;
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
    const int rb = std::max(8, j.kernel->row_block);
    int rows = (int)(target / j.row_cost);
    rows = std::max(rb, rows / rb * rb);
    if (nt == 1) rows = j.nrows;
    for (int r = 0; r < j.nrows; r += rows) chunks.push_back({(int)q, r, std::min(j.nrows, r + rows)});
  }
  std::atomic<int> next{0};
  const int nchunks = (int)chunks.size();
  return parallel([&](int, int) {
    for (;;) {
      const int c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      const Chunk& ch = chunks[c];
      run_segment(jobs[ch.job], ch.r0, ch.r1);
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
