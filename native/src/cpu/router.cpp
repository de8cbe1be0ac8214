// Router + top-K: f32 logits x W_gate^T (GEMM engine), then per token the scores (sigmoid or
// softmax), the top-K of the biased scores (ties to the lower id) and the routing weights.
#include <cmath>
#include <vector>

#include "errors.h"
#include "layer.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

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

}  // namespace

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
  return run_small_step(T, body);
}

GemmJob gate_job(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                 float* logits) {
  return dense_job(x, c->hidden_size, T, &w->gate, c->hidden_size, c->num_experts,
                   EPI_STORE, logits, c->num_experts,
                   LMOE_PRECISION_EXACT);  // routing is f32 in both precisions, as in HF
}

lmoe_status router_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                        int32_t* ids, float* wts) {
  std::vector<float> logits((size_t)T * c->num_experts);
  std::vector<GemmJob> jobs{gate_job(c, w, x, T, logits.data())};
  TRY(run_gemm_phase(jobs));
  return topk_all(c, w, logits.data(), T, ids, wts);
}

}  // namespace lmoe
