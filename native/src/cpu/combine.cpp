// Combine + up-projection + shared expert: the weighted sum over k of each token's expert rows
// (f32, k in order), the latent up-projection, plus the shared expert.
#include <algorithm>
#include <vector>

#include "errors.h"
#include "layer.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

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

}  // namespace

lmoe_status weighted_sum(int64_t T, int K, int wd, const float* wts, const int32_t* row_of_slot,
                         const float* y, float* acc) {
  // split over the flattened T*w elements
  const int64_t total = T * wd;
  auto body = [&](int i, int nt) {
    int64_t b = total * i / nt / 16 * 16, e = i + 1 == nt ? total : total * (i + 1) / nt / 16 * 16;
    acc_range(K, wd, wts, row_of_slot, y, acc, b, e);
  };
  return run_small_step(T, body);
}

GemmJob shared_up_job(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                      float* sh) {
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  const int d = c->hidden_size, ms = c->shared_intermediate_size;
  GemmJob j = dense_job(x, d, T, &w->shared_up, d, ms, activation_epi(c->activation), sh, ms,
                        c->precision);
  j.Wg = swiglu ? &w->shared_gate : nullptr;
  return j;
}

int64_t combine_shared_offset(const lmoe_config* c, int64_t T) {
  return c->latent_size > 0 ? ((T * c->latent_size + 15) / 16 * 16) : 0;
}

int64_t combine_scratch_floats(const lmoe_config* c, int64_t T) {
  const int64_t h = (T * c->shared_intermediate_size + 15) / 16 * 16;
  return combine_shared_offset(c, T) + h;
}

lmoe_status combine_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
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
  float* acc = latent ? scratch : out;  // standard MoE: w == d, the sum lands in out
  float* sh = scratch + combine_shared_offset(c, T);
  TRY(weighted_sum(T, K, wd, wts, row_of_slot, y, acc));
  // latent up-projection and the shared expert's first layer, then its second added to out
  std::vector<GemmJob> jobs;
  if (latent)
    jobs.push_back(dense_job(acc, wd, T, &w->latent_up, wd, d, EPI_STORE, out, d, c->precision));
  if (ms > 0) jobs.push_back(shared_up_job(c, w, x, T, sh));
  if (!jobs.empty()) TRY(run_gemm_phase(jobs));
  if (ms > 0) {
    std::vector<GemmJob> down{
        dense_job(sh, ms, T, &w->shared_down, ms, d, EPI_ADD, out, d, c->precision)};
    TRY(run_gemm_phase(down));
  }
  return LMOE_OK;
}

}  // namespace lmoe
