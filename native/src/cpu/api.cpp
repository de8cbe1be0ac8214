// The CPU kernels of the C ABI: router + top-K, dispatch, grouped experts, combine, forward.
//
// Every matrix product goes through one engine (run_gemm_phase): a phase is a list of GEMM jobs
// (Y[t, r] = epilogue(X[t] . W[r]) for the tokens of the job), whose rows are split across the
// pool threads by an estimated cost, in blocks of 8 rows. Each output element is produced by one
// dot_block call with a fixed per-ISA lane layout, so results are bit-identical for any thread
// count and any partition.
#include "common.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#define LMOE_API extern "C" __attribute__((visibility("default")))

namespace lmoe {
namespace {

constexpr int kMaxExperts = 2048;
constexpr int kMaxTopK = 32;
constexpr int64_t kMaxDim = (int64_t)1 << 24;

enum Epi { EPI_STORE, EPI_RELU2, EPI_SWIGLU, EPI_ADD, EPI_SCATTER };

struct GemmJob {
  const float* X = nullptr;
  int64_t ldx = 0;
  int ntok = 0;
  const void* W = nullptr;   // [nrows, n]
  const void* Wg = nullptr;  // SwiGLU gate rows [nrows, n]
  int wdtype = 0;
  int n = 0;
  int nrows = 0;
  int epi = EPI_STORE;
  float* Y = nullptr;
  int64_t ldy = 0;
  const int32_t* scatter = nullptr;  // EPI_SCATTER: row of token t, slot k = scatter[t*K + k]
  int K = 0;
  double row_cost = 0;
};

inline int esize(int dtype) { return dtype == LMOE_DTYPE_BF16 ? 2 : 4; }

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

double job_row_cost(const GemmJob& j) {
  // bytes of weights (x 2 matrices for SwiGLU) vs. FMAs; ~3 token-FMAs cost one weight byte.
  double mats = j.Wg ? 2.0 : 1.0;
  return mats * (double)j.n * (3.0 * esize(j.wdtype) + (double)j.ntok);
}

void run_segment(const GemmJob& j, int r0, int r1, DotBlockFn dot) {
  if (r1 <= r0 || j.ntok <= 0) return;
  // Rows per dot_block call: the whole segment for one token (long uninterrupted weight streams,
  // so the kernel's prefetch runs ahead across row groups), else bounded scratch.
  int ch = j.ntok == 1 ? r1 - r0 : std::max(8, std::min(512, 16384 / j.ntok / 8 * 8));
  float* tmp = thread_scratch(0, (size_t)ch * j.ntok);
  float* tmpg = j.Wg ? thread_scratch(1, (size_t)ch * j.ntok) : nullptr;
  const int es = esize(j.wdtype);
  for (int r = r0; r < r1; r += ch) {
    const int rows = std::min(ch, r1 - r);
    const char* Wr = (const char*)j.W + (int64_t)r * j.n * es;
    if (j.epi == EPI_SWIGLU) {
      const char* Wgr = (const char*)j.Wg + (int64_t)r * j.n * es;
      dot(j.X, j.ldx, j.ntok, Wgr, j.n, j.wdtype, j.n, rows, tmpg, rows);
    }
    dot(j.X, j.ldx, j.ntok, Wr, j.n, j.wdtype, j.n, rows, tmp, rows);
    for (int t = 0; t < j.ntok; ++t) {
      const float* v = tmp + (int64_t)t * rows;
      switch (j.epi) {
        case EPI_STORE: {
          float* y = j.Y + t * j.ldy + r;
          std::memcpy(y, v, rows * sizeof(float));
          break;
        }
        case EPI_RELU2: {
          float* y = j.Y + t * j.ldy + r;
          for (int q = 0; q < rows; ++q) {
            float a = v[q] > 0.0f ? v[q] : 0.0f;
            y[q] = a * a;
          }
          break;
        }
        case EPI_SWIGLU: {
          float* y = j.Y + t * j.ldy + r;
          const float* g = tmpg + (int64_t)t * rows;
          for (int q = 0; q < rows; ++q) y[q] = silu(g[q]) * v[q];
          break;
        }
        case EPI_ADD: {
          float* y = j.Y + t * j.ldy + r;
          for (int q = 0; q < rows; ++q) y[q] = y[q] + v[q];
          break;
        }
        case EPI_SCATTER: {
          for (int k = 0; k < j.K; ++k) {
            float* y = j.Y + (int64_t)j.scatter[(int64_t)t * j.K + k] * j.ldy + r;
            std::memcpy(y, v, rows * sizeof(float));
          }
          break;
        }
      }
    }
  }
}

// Runs all jobs of one phase on the pool (one barrier at the end). The rows of all jobs are cut
// into chunks (multiples of 8 rows, ~kChunksPerThread per thread by estimated cost) that the
// threads take dynamically; which thread computes a chunk never changes its values.
constexpr int kChunksPerThread = 24;

struct Chunk {
  int job, r0, r1;
};

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
  DotBlockFn dot = current_dot();
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

// ------------------------------------------------------------------ validation

#define CHECK_ARG(cond, ...)         \
  do {                               \
    if (!(cond)) {                   \
      set_error(__VA_ARGS__);        \
      return LMOE_ERR_INVALID_ARGUMENT; \
    }                                \
  } while (0)

lmoe_status check_cfg(const char* fn, const lmoe_config* c) {
  CHECK_ARG(c != nullptr, "%s: cfg is NULL", fn);
  CHECK_ARG(c->hidden_size >= 1 && c->hidden_size <= kMaxDim,
            "%s: hidden_size must be in 1..%lld, got %d", fn, (long long)kMaxDim, c->hidden_size);
  CHECK_ARG(c->latent_size >= 0 && c->latent_size <= kMaxDim,
            "%s: latent_size must be in 0..%lld, got %d", fn, (long long)kMaxDim, c->latent_size);
  CHECK_ARG(c->num_experts >= 1 && c->num_experts <= kMaxExperts,
            "%s: num_experts must be in 1..%d, got %d", fn, kMaxExperts, c->num_experts);
  CHECK_ARG(c->top_k >= 1 && c->top_k <= std::min(kMaxTopK, (int)c->num_experts),
            "%s: top_k must be in 1..min(32, num_experts=%d), got %d", fn, c->num_experts,
            c->top_k);
  CHECK_ARG(c->expert_intermediate_size >= 1 && c->expert_intermediate_size <= kMaxDim,
            "%s: expert_intermediate_size must be in 1..%lld, got %d", fn, (long long)kMaxDim,
            c->expert_intermediate_size);
  CHECK_ARG(c->shared_intermediate_size >= 0 && c->shared_intermediate_size <= kMaxDim,
            "%s: shared_intermediate_size must be in 0..%lld, got %d", fn, (long long)kMaxDim,
            c->shared_intermediate_size);
  CHECK_ARG(c->activation == LMOE_ACT_RELU2 || c->activation == LMOE_ACT_SWIGLU,
            "%s: unknown activation %d", fn, c->activation);
  CHECK_ARG(c->scoring == LMOE_SCORING_SIGMOID || c->scoring == LMOE_SCORING_SOFTMAX,
            "%s: unknown scoring %d", fn, c->scoring);
  CHECK_ARG(c->norm_topk_prob == 0 || c->norm_topk_prob == 1,
            "%s: norm_topk_prob must be 0 or 1, got %d", fn, c->norm_topk_prob);
  CHECK_ARG(std::isfinite(c->routed_scaling_factor), "%s: routed_scaling_factor is not finite",
            fn);
  return LMOE_OK;
}

lmoe_status check_tokens(const char* fn, const lmoe_config* c, int64_t T) {
  CHECK_ARG(T >= 0, "%s: num_tokens must be >= 0, got %lld", fn, (long long)T);
  CHECK_ARG(T <= std::numeric_limits<int32_t>::max() / c->top_k,
            "%s: num_tokens * top_k must fit in int32 (num_tokens=%lld)", fn, (long long)T);
  return LMOE_OK;
}

inline int width(const lmoe_config* c) { return c->latent_size > 0 ? c->latent_size : c->hidden_size; }

lmoe_status check_w_common(const char* fn, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  CHECK_ARG(w->weight_dtype == LMOE_DTYPE_BF16 || w->weight_dtype == LMOE_DTYPE_F32,
            "%s: weight_dtype must be BF16 or F32, got %d", fn, w->weight_dtype);
  return LMOE_OK;
}

lmoe_status check_w_router(const char* fn, const lmoe_weights* w) {
  CHECK_ARG(w != nullptr, "%s: weights is NULL", fn);
  CHECK_ARG(w->gate_dtype == LMOE_DTYPE_BF16 || w->gate_dtype == LMOE_DTYPE_F32,
            "%s: gate_dtype must be BF16 or F32, got %d", fn, w->gate_dtype);
  CHECK_ARG(w->gate != nullptr, "%s: weights->gate is NULL", fn);
  return LMOE_OK;
}

lmoe_status check_w_dispatch(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  lmoe_status s = check_w_common(fn, w);
  if (s) return s;
  if (c->latent_size > 0)
    CHECK_ARG(w->latent_down != nullptr, "%s: weights->latent_down is NULL (latent_size=%d)", fn,
              c->latent_size);
  return LMOE_OK;
}

lmoe_status check_w_experts(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  lmoe_status s = check_w_common(fn, w);
  if (s) return s;
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  CHECK_ARG(w->expert_up != nullptr, "%s: weights->expert_up is NULL", fn);
  CHECK_ARG(w->expert_down != nullptr, "%s: weights->expert_down is NULL", fn);
  CHECK_ARG(!swiglu || w->expert_gate != nullptr,
            "%s: weights->expert_gate is NULL (activation is SWIGLU)", fn);
  for (int e = 0; e < c->num_experts; ++e) {
    CHECK_ARG(w->expert_up[e] != nullptr, "%s: weights->expert_up[%d] is NULL", fn, e);
    CHECK_ARG(w->expert_down[e] != nullptr, "%s: weights->expert_down[%d] is NULL", fn, e);
    CHECK_ARG(!swiglu || w->expert_gate[e] != nullptr, "%s: weights->expert_gate[%d] is NULL",
              fn, e);
  }
  return LMOE_OK;
}

lmoe_status check_w_combine(const char* fn, const lmoe_config* c, const lmoe_weights* w) {
  lmoe_status s = check_w_common(fn, w);
  if (s) return s;
  if (c->latent_size > 0)
    CHECK_ARG(w->latent_up != nullptr, "%s: weights->latent_up is NULL (latent_size=%d)", fn,
              c->latent_size);
  if (c->shared_intermediate_size > 0) {
    CHECK_ARG(w->shared_up != nullptr, "%s: weights->shared_up is NULL (shared size %d)", fn,
              c->shared_intermediate_size);
    CHECK_ARG(w->shared_down != nullptr, "%s: weights->shared_down is NULL (shared size %d)",
              fn, c->shared_intermediate_size);
    if (c->activation == LMOE_ACT_SWIGLU)
      CHECK_ARG(w->shared_gate != nullptr,
                "%s: weights->shared_gate is NULL (activation is SWIGLU)", fn);
  }
  return LMOE_OK;
}

#define TRY(expr)                 \
  do {                            \
    lmoe_status s_ = (expr);      \
    if (s_ != LMOE_OK) return s_; \
  } while (0)

// ------------------------------------------------------------------ kernels (validated inputs)

void topk_token(const lmoe_config* c, const float* bias, const float* logits, float* s,
                int32_t* ids, float* wts) {
  const int N = c->num_experts, K = c->top_k;
  if (c->scoring == LMOE_SCORING_SOFTMAX) {
    float mx = logits[0];
    for (int e = 1; e < N; ++e) mx = logits[e] > mx ? logits[e] : mx;
    float sum = 0;
    for (int e = 0; e < N; ++e) {
      s[e] = std::exp(logits[e] - mx);
      sum = sum + s[e];
    }
    for (int e = 0; e < N; ++e) s[e] = s[e] / sum;
  } else {
    for (int e = 0; e < N; ++e) s[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  }
  // Insertion into a descending list; equal keys keep the lower id first (ids arrive in order).
  float key[kMaxTopK];
  int cnt = 0;
  for (int e = 0; e < N; ++e) {
    float b = bias ? s[e] + bias[e] : s[e];
    if (cnt == K && !(b > key[K - 1])) continue;
    int p = cnt < K ? cnt : K - 1;
    while (p > 0 && b > key[p - 1]) {
      key[p] = key[p - 1];
      ids[p] = ids[p - 1];
      --p;
    }
    key[p] = b;
    ids[p] = e;
    if (cnt < K) ++cnt;
  }
  float sum = 0;
  for (int k = 0; k < K; ++k) {
    wts[k] = s[ids[k]];
    sum = sum + wts[k];
  }
  const float denom = sum + 1e-20f;
  for (int k = 0; k < K; ++k) {
    float v = c->norm_topk_prob ? wts[k] / denom : wts[k];
    wts[k] = v * c->routed_scaling_factor;
  }
}

constexpr int64_t kSerialTokens = 4;  // up to this many tokens, small steps run on the caller

lmoe_status topk_all(const lmoe_config* c, const lmoe_weights* w, const float* logits, int64_t T,
                     int32_t* ids, float* wts) {
  const int N = c->num_experts, K = c->top_k;
  auto body = [&](int i, int nt) {
    int64_t b, e;
    split_range(T, i, nt, &b, &e);
    float* s = thread_scratch(2, N);
    for (int64_t t = b; t < e; ++t)
      topk_token(c, w->gate_bias, logits + t * N, s, ids + t * K, wts + t * K);
  };
  if (T <= kSerialTokens) {
    body(0, 1);
    return LMOE_OK;
  }
  return parallel(body);
}

// Counting sort of the slots by expert id, stable in slot order.
void build_perm(int N, int64_t S, const int32_t* ids, int32_t* offsets, int32_t* row_of_slot) {
  std::vector<int32_t> pos(N + 1, 0);
  for (int64_t s = 0; s < S; ++s) ++pos[ids[s] + 1];
  for (int e = 0; e < N; ++e) pos[e + 1] += pos[e];
  std::memcpy(offsets, pos.data(), (N + 1) * sizeof(int32_t));
  for (int64_t s = 0; s < S; ++s) row_of_slot[s] = pos[ids[s]]++;
}

lmoe_status router_impl(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                        int32_t* ids, float* wts) {
  const int N = c->num_experts, d = c->hidden_size;
  std::vector<float> logits((size_t)T * N);
  std::vector<GemmJob> jobs(1);
  GemmJob& j = jobs[0];
  j.X = x; j.ldx = d; j.ntok = (int)T;
  j.W = w->gate; j.wdtype = w->gate_dtype; j.n = d; j.nrows = N;
  j.epi = EPI_STORE; j.Y = logits.data(); j.ldy = N;
  TRY(run_gemm_phase(jobs));
  return topk_all(c, w, logits.data(), T, ids, wts);
}

lmoe_status dispatch_impl(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                          const int32_t* ids, int32_t* offsets, int32_t* row_of_slot,
                          float* latent_sorted) {
  const int N = c->num_experts, K = c->top_k, d = c->hidden_size, wd = width(c);
  const int64_t S = T * K;
  for (int64_t s = 0; s < S; ++s)
    CHECK_ARG(ids[s] >= 0 && ids[s] < N,
              "lmoe_cpu_dispatch: topk_ids[%lld] = %d is out of range [0, %d)", (long long)s,
              ids[s], N);
  build_perm(N, S, ids, offsets, row_of_slot);
  if (T == 0) return LMOE_OK;
  if (c->latent_size > 0) {
    std::vector<GemmJob> jobs(1);
    GemmJob& j = jobs[0];
    j.X = x; j.ldx = d; j.ntok = (int)T;
    j.W = w->latent_down; j.wdtype = w->weight_dtype; j.n = d; j.nrows = c->latent_size;
    j.epi = EPI_SCATTER; j.Y = latent_sorted; j.ldy = wd; j.scatter = row_of_slot; j.K = K;
    return run_gemm_phase(jobs);
  }
  return parallel([&](int i, int nt) {
    int64_t b, e;
    split_range(T, i, nt, &b, &e);
    for (int64_t t = b; t < e; ++t)
      for (int k = 0; k < K; ++k)
        std::memcpy(latent_sorted + (int64_t)row_of_slot[t * K + k] * wd, x + t * d,
                    d * sizeof(float));
  });
}

void expert_jobs(const lmoe_config* c, const lmoe_weights* w, const int32_t* offsets,
                 const float* latent_sorted, float* hidden, float* out, std::vector<GemmJob>& fc1,
                 std::vector<GemmJob>& fc2) {
  const int N = c->num_experts, wd = width(c), m = c->expert_intermediate_size;
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  for (int e = 0; e < N; ++e) {
    const int ne = offsets[e + 1] - offsets[e];
    if (ne == 0) continue;
    GemmJob a;
    a.X = latent_sorted + (int64_t)offsets[e] * wd; a.ldx = wd; a.ntok = ne;
    a.W = w->expert_up[e]; a.Wg = swiglu ? w->expert_gate[e] : nullptr;
    a.wdtype = w->weight_dtype; a.n = wd; a.nrows = m;
    a.epi = swiglu ? EPI_SWIGLU : EPI_RELU2; a.Y = hidden + (int64_t)offsets[e] * m; a.ldy = m;
    fc1.push_back(a);
    GemmJob b;
    b.X = hidden + (int64_t)offsets[e] * m; b.ldx = m; b.ntok = ne;
    b.W = w->expert_down[e]; b.wdtype = w->weight_dtype; b.n = m; b.nrows = wd;
    b.epi = EPI_STORE; b.Y = out + (int64_t)offsets[e] * wd; b.ldy = wd;
    fc2.push_back(b);
  }
}

lmoe_status experts_impl(const lmoe_config* c, const lmoe_weights* w, int64_t T,
                         const int32_t* offsets, const float* latent_sorted, float* hidden,
                         float* out) {
  const int N = c->num_experts, K = c->top_k, wd = width(c), m = c->expert_intermediate_size;
  const int64_t S = T * K;
  CHECK_ARG(offsets[0] == 0, "lmoe_cpu_experts: expert_offsets[0] must be 0, got %d", offsets[0]);
  for (int e = 0; e < N; ++e)
    CHECK_ARG(offsets[e + 1] >= offsets[e],
              "lmoe_cpu_experts: expert_offsets must be non-decreasing (at expert %d)", e);
  CHECK_ARG(offsets[N] == S, "lmoe_cpu_experts: expert_offsets[%d] = %d, expected T*K = %lld", N,
            offsets[N], (long long)S);
  if (T == 0) return LMOE_OK;
  std::vector<GemmJob> fc1, fc2;
  expert_jobs(c, w, offsets, latent_sorted, hidden, out, fc1, fc2);
  TRY(run_gemm_phase(fc1));
  return run_gemm_phase(fc2);
}

// acc[t, :] = sum_k wts[t, k] * y[row_of_slot[t*K+k], :] for the flattened elements [b, e) of
// acc [T, wd]; k in order 0..K-1, f32, no contraction.
void acc_range(int K, int wd, const float* wts, const int32_t* row_of_slot, const float* y,
               float* acc, int64_t b, int64_t e) {
  int64_t p = b;
  while (p < e) {
    const int64_t t = p / wd, c0 = p % wd;
    const int64_t c1 = std::min<int64_t>(wd, c0 + (e - p));
    float* a = acc + t * wd;
    for (int64_t q = c0; q < c1; ++q) a[q] = 0.0f;
    for (int k = 0; k < K; ++k) {
      const float wk = wts[t * K + k];
      const float* yr = y + (int64_t)row_of_slot[t * K + k] * wd;
      for (int64_t q = c0; q < c1; ++q) a[q] = a[q] + wk * yr[q];
    }
    p += c1 - c0;
  }
}

int64_t combine_scratch_floats_impl(const lmoe_config* c, int64_t T) {
  const int64_t a = c->latent_size > 0 ? ((T * c->latent_size + 15) / 16 * 16) : 0;
  const int64_t h = (T * c->shared_intermediate_size + 15) / 16 * 16;
  return a + h;
}

lmoe_status combine_impl(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                         const float* wts, const int32_t* row_of_slot, const float* y,
                         float* scratch, float* out) {
  const int K = c->top_k, d = c->hidden_size, wd = width(c), ms = c->shared_intermediate_size;
  const int64_t S = T * K;
  for (int64_t s = 0; s < S; ++s)
    CHECK_ARG(row_of_slot[s] >= 0 && row_of_slot[s] < S,
              "lmoe_cpu_combine: sorted_row_of_slot[%lld] = %d is out of range [0, %lld)",
              (long long)s, row_of_slot[s], (long long)S);
  if (T == 0) return LMOE_OK;
  const bool latent = c->latent_size > 0;
  float* acc = latent ? scratch : out;
  float* sh = latent ? scratch + (T * c->latent_size + 15) / 16 * 16 : scratch;
  // Phase 1: weighted sum over k (fixed order), split over the flattened T*w elements.
  TRY(parallel([&](int i, int nt) {
    const int64_t total = T * wd;
    int64_t b = total * i / nt / 16 * 16, e = i + 1 == nt ? total : total * (i + 1) / nt / 16 * 16;
    acc_range(K, wd, wts, row_of_slot, y, acc, b, e);
  }));
  // Phase 2: latent up-projection and the shared expert's first layer.
  std::vector<GemmJob> jobs;
  if (latent) {
    GemmJob j;
    j.X = acc; j.ldx = wd; j.ntok = (int)T;
    j.W = w->latent_up; j.wdtype = w->weight_dtype; j.n = wd; j.nrows = d;
    j.epi = EPI_STORE; j.Y = out; j.ldy = d;
    jobs.push_back(j);
  }
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  if (ms > 0) {
    GemmJob j;
    j.X = x; j.ldx = d; j.ntok = (int)T;
    j.W = w->shared_up; j.Wg = swiglu ? w->shared_gate : nullptr;
    j.wdtype = w->weight_dtype; j.n = d; j.nrows = ms;
    j.epi = swiglu ? EPI_SWIGLU : EPI_RELU2; j.Y = sh; j.ldy = ms;
    jobs.push_back(j);
  }
  if (!jobs.empty()) TRY(run_gemm_phase(jobs));
  if (ms > 0) {
    std::vector<GemmJob> j2(1);
    GemmJob& j = j2[0];
    j.X = sh; j.ldx = ms; j.ntok = (int)T;
    j.W = w->shared_down; j.wdtype = w->weight_dtype; j.n = ms; j.nrows = d;
    j.epi = EPI_ADD; j.Y = out; j.ldy = d;
    TRY(run_gemm_phase(j2));
  }
  return LMOE_OK;
}

struct WsLayout {
  int64_t off_offsets, off_perm, off_latent, off_hidden, off_eout, off_comb, off_logits, off_z,
      total;
};

inline int64_t align64(int64_t v) { return (v + 63) / 64 * 64; }

WsLayout ws_layout(const lmoe_config* c, int64_t T) {
  WsLayout L;
  const int64_t S = T * c->top_k, wd = width(c);
  int64_t p = 0;
  L.off_offsets = p; p = align64(p + (int64_t)(c->num_experts + 1) * 4);
  L.off_perm = p;    p = align64(p + S * 4);
  L.off_latent = p;  p = align64(p + S * wd * 4);
  L.off_hidden = p;  p = align64(p + S * c->expert_intermediate_size * 4);
  L.off_eout = p;    p = align64(p + S * wd * 4);
  L.off_comb = p;    p = align64(p + combine_scratch_floats_impl(c, T) * 4);
  L.off_logits = p;  p = align64(p + T * c->num_experts * 4);
  L.off_z = p;       p = align64(p + T * wd * 4);
  L.total = p;
  return L;
}

// LMOE_PHASE_TIMES=1 (diagnostics, off by default): lmoe_cpu_forward prints one line per call to
// stderr with each phase's wall time and weight-streaming rate.
struct PhaseTimer {
  bool on;
  std::chrono::steady_clock::time_point t;
  char buf[512];
  int len = 0;
  PhaseTimer() : on(enabled()) {
    if (on) t = std::chrono::steady_clock::now();
  }
  static bool enabled() {
    static const bool v = [] {
      const char* e = std::getenv("LMOE_PHASE_TIMES");
      return e && e[0] && e[0] != '0';
    }();
    return v;
  }
  void mark(const char* name, double bytes) {
    if (!on) return;
    auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    t = now;
    if (len < (int)sizeof buf - 64)
      len += std::snprintf(buf + len, sizeof buf - len, " %s %.3f ms %.1f GB/s;", name, s * 1e3,
                           bytes > 0 ? bytes / s / 1e9 : 0.0);
  }
  ~PhaseTimer() {
    if (on && len > 0) std::fprintf(stderr, "lmoe phases:%s\n", buf);
  }
};

double jobs_weight_bytes(const std::vector<GemmJob>& jobs) {
  double b = 0;
  for (const GemmJob& j : jobs)
    if (j.ntok > 0) b += (j.Wg ? 2.0 : 1.0) * (double)j.nrows * j.n * esize(j.wdtype);
  return b;
}

// The whole layer in four parallel phases (A: router, latent down-projection and shared
// up-projection, all reading x; B: expert FC1 and shared down-projection; C: expert FC2; D:
// combine + latent up-projection). Bit-identical to running the four kernels one after another:
// every value is produced by the same dot products and epilogues (fl(a+b) == fl(b+a)).
lmoe_status forward_impl(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                         int32_t* ids, float* wts, char* ws, const WsLayout& L, float* out) {
  const int N = c->num_experts, K = c->top_k, d = c->hidden_size, wd = width(c);
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, swiglu = c->activation == LMOE_ACT_SWIGLU;
  const int64_t S = T * K;
  int32_t* offsets = (int32_t*)(ws + L.off_offsets);
  int32_t* perm = (int32_t*)(ws + L.off_perm);
  float* lat = (float*)(ws + L.off_latent);
  float* hidden = (float*)(ws + L.off_hidden);
  float* eout = (float*)(ws + L.off_eout);
  float* comb = (float*)(ws + L.off_comb);
  float* logits = (float*)(ws + L.off_logits);
  float* z = (float*)(ws + L.off_z);
  float* acc = latent ? comb : z;
  float* sh = latent ? comb + (T * c->latent_size + 15) / 16 * 16 : comb;

  PhaseTimer pt;
  // Phase A
  std::vector<GemmJob> jobs;
  {
    GemmJob j;
    j.X = x; j.ldx = d; j.ntok = (int)T;
    j.W = w->gate; j.wdtype = w->gate_dtype; j.n = d; j.nrows = N;
    j.epi = EPI_STORE; j.Y = logits; j.ldy = N;
    jobs.push_back(j);
  }
  if (latent) {
    GemmJob j;
    j.X = x; j.ldx = d; j.ntok = (int)T;
    j.W = w->latent_down; j.wdtype = w->weight_dtype; j.n = d; j.nrows = c->latent_size;
    j.epi = EPI_STORE; j.Y = z; j.ldy = wd;
    jobs.push_back(j);
  }
  if (ms > 0) {
    GemmJob j;
    j.X = x; j.ldx = d; j.ntok = (int)T;
    j.W = w->shared_up; j.Wg = swiglu ? w->shared_gate : nullptr;
    j.wdtype = w->weight_dtype; j.n = d; j.nrows = ms;
    j.epi = swiglu ? EPI_SWIGLU : EPI_RELU2; j.Y = sh; j.ldy = ms;
    jobs.push_back(j);
  }
  TRY(run_gemm_phase(jobs));
  pt.mark("A", jobs_weight_bytes(jobs));

  // Routing, permutation, scatter of z (or x) into expert order.
  TRY(topk_all(c, w, logits, T, ids, wts));
  build_perm(N, S, ids, offsets, perm);
  const float* zsrc = latent ? z : x;
  const int64_t ldz = latent ? wd : d;
  auto scatter = [&](int i, int nt) {
    int64_t b, e;
    split_range(T, i, nt, &b, &e);
    for (int64_t t = b; t < e; ++t)
      for (int k = 0; k < K; ++k)
        std::memcpy(lat + (int64_t)perm[t * K + k] * wd, zsrc + t * ldz, wd * sizeof(float));
  };
  if (T <= kSerialTokens) scatter(0, 1);
  else TRY(parallel(scatter));

  // Phase B, C
  std::vector<GemmJob> fc1, fc2;
  expert_jobs(c, w, offsets, lat, hidden, eout, fc1, fc2);
  if (ms > 0) {
    GemmJob j;
    j.X = sh; j.ldx = ms; j.ntok = (int)T;
    j.W = w->shared_down; j.wdtype = w->weight_dtype; j.n = ms; j.nrows = d;
    j.epi = EPI_STORE; j.Y = out; j.ldy = d;
    fc1.push_back(j);
  }
  pt.mark("route", 0);
  TRY(run_gemm_phase(fc1));
  pt.mark("B", jobs_weight_bytes(fc1));
  TRY(run_gemm_phase(fc2));
  pt.mark("C", jobs_weight_bytes(fc2));

  // Phase D
  const int64_t total = T * wd;
  auto accum = [&](int i, int nt) {
    int64_t b = total * i / nt / 16 * 16, e = i + 1 == nt ? total : total * (i + 1) / nt / 16 * 16;
    acc_range(K, wd, wts, perm, eout, latent || ms > 0 ? acc : out, b, e);
  };
  if (T <= kSerialTokens) accum(0, 1);
  else TRY(parallel(accum));
  if (latent) {
    std::vector<GemmJob> up(1);
    GemmJob& j = up[0];
    j.X = acc; j.ldx = wd; j.ntok = (int)T;
    j.W = w->latent_up; j.wdtype = w->weight_dtype; j.n = wd; j.nrows = d;
    j.epi = ms > 0 ? EPI_ADD : EPI_STORE; j.Y = out; j.ldy = d;
    lmoe_status st = run_gemm_phase(up);
    pt.mark("D", jobs_weight_bytes(up));
    return st;
  }
  if (ms > 0) {
    auto add = [&](int i, int nt) {
      int64_t b, e;
      split_range(T * d, i, nt, &b, &e);
      for (int64_t q = b; q < e; ++q) out[q] = out[q] + acc[q];
    };
    if (T <= kSerialTokens) add(0, 1);
    else TRY(parallel(add));
  }
  return LMOE_OK;
}

}  // namespace
}  // namespace lmoe

using namespace lmoe;

LMOE_API lmoe_status lmoe_validate(const lmoe_config* cfg, const lmoe_weights* w) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_validate";
    TRY(check_cfg(fn, cfg));
    TRY(check_w_router(fn, w));
    TRY(check_w_dispatch(fn, cfg, w));
    TRY(check_w_experts(fn, cfg, w));
    TRY(check_w_combine(fn, cfg, w));
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_cpu_router_topk(const lmoe_config* cfg, const lmoe_weights* w,
                                          const float* x, int64_t T, int32_t* ids, float* wts) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_router_topk";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_router(fn, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    return router_impl(cfg, w, x, T, ids, wts);
  });
}

LMOE_API lmoe_status lmoe_cpu_dispatch(const lmoe_config* cfg, const lmoe_weights* w,
                                       const float* x, int64_t T, const int32_t* ids,
                                       int32_t* offsets, int32_t* row_of_slot,
                                       float* latent_sorted) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_dispatch";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_dispatch(fn, cfg, w));
    CHECK_ARG(offsets != nullptr, "%s: expert_offsets is NULL", fn);
    if (T > 0) {
      CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
      CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
      CHECK_ARG(row_of_slot != nullptr, "%s: sorted_row_of_slot is NULL", fn);
      CHECK_ARG(latent_sorted != nullptr, "%s: latent_sorted is NULL", fn);
    }
    return dispatch_impl(cfg, w, x, T, ids, offsets, row_of_slot, latent_sorted);
  });
}

LMOE_API lmoe_status lmoe_cpu_experts(const lmoe_config* cfg, const lmoe_weights* w, int64_t T,
                                      const int32_t* offsets, const float* latent_sorted,
                                      float* hidden, float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_experts";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_experts(fn, cfg, w));
    CHECK_ARG(offsets != nullptr, "%s: expert_offsets is NULL", fn);
    if (T > 0) {
      CHECK_ARG(latent_sorted != nullptr, "%s: latent_sorted is NULL", fn);
      CHECK_ARG(hidden != nullptr, "%s: hidden_scratch is NULL", fn);
      CHECK_ARG(out != nullptr, "%s: expert_out_sorted is NULL", fn);
    }
    return experts_impl(cfg, w, T, offsets, latent_sorted, hidden, out);
  });
}

LMOE_API int64_t lmoe_cpu_combine_scratch_floats(const lmoe_config* cfg, int64_t T) {
  clear_error();
  if (check_cfg("lmoe_cpu_combine_scratch_floats", cfg) != LMOE_OK) return -1;
  if (check_tokens("lmoe_cpu_combine_scratch_floats", cfg, T) != LMOE_OK) return -1;
  return combine_scratch_floats_impl(cfg, T);
}

LMOE_API lmoe_status lmoe_cpu_combine(const lmoe_config* cfg, const lmoe_weights* w,
                                      const float* x, int64_t T, const float* wts,
                                      const int32_t* row_of_slot, const float* y, float* scratch,
                                      float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_combine";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_combine(fn, cfg, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    CHECK_ARG(row_of_slot != nullptr, "%s: sorted_row_of_slot is NULL", fn);
    CHECK_ARG(y != nullptr, "%s: expert_out_sorted is NULL", fn);
    CHECK_ARG(out != nullptr, "%s: out is NULL", fn);
    CHECK_ARG(scratch != nullptr || combine_scratch_floats_impl(cfg, T) == 0,
              "%s: scratch is NULL", fn);
    return combine_impl(cfg, w, x, T, wts, row_of_slot, y, scratch, out);
  });
}

LMOE_API int64_t lmoe_cpu_forward_workspace_bytes(const lmoe_config* cfg, int64_t T) {
  clear_error();
  if (check_cfg("lmoe_cpu_forward_workspace_bytes", cfg) != LMOE_OK) return -1;
  if (check_tokens("lmoe_cpu_forward_workspace_bytes", cfg, T) != LMOE_OK) return -1;
  return ws_layout(cfg, T).total;
}

LMOE_API lmoe_status lmoe_cpu_forward(const lmoe_config* cfg, const lmoe_weights* w,
                                      const float* x, int64_t T, int32_t* ids, float* wts,
                                      void* workspace, int64_t ws_bytes, float* out) {
  return guarded([&]() -> lmoe_status {
    const char* fn = "lmoe_cpu_forward";
    TRY(check_cfg(fn, cfg));
    TRY(check_tokens(fn, cfg, T));
    TRY(check_w_router(fn, w));
    TRY(check_w_dispatch(fn, cfg, w));
    TRY(check_w_experts(fn, cfg, w));
    TRY(check_w_combine(fn, cfg, w));
    if (T == 0) return LMOE_OK;
    CHECK_ARG(x != nullptr, "%s: x is NULL", fn);
    CHECK_ARG(ids != nullptr, "%s: topk_ids is NULL", fn);
    CHECK_ARG(wts != nullptr, "%s: topk_weights is NULL", fn);
    CHECK_ARG(out != nullptr, "%s: out is NULL", fn);
    CHECK_ARG(workspace != nullptr, "%s: workspace is NULL", fn);
    CHECK_ARG(((uintptr_t)workspace & 63) == 0, "%s: workspace must be 64-byte aligned", fn);
    const WsLayout L = ws_layout(cfg, T);
    CHECK_ARG(ws_bytes >= L.total, "%s: workspace_bytes = %lld, need %lld", fn,
              (long long)ws_bytes, (long long)L.total);
    return forward_impl(cfg, w, x, T, ids, wts, (char*)workspace, L, out);
  });
}
