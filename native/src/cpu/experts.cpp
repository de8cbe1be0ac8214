// Grouped expert GEMMs: per expert with rows, FC1 with the activation in its epilogue
// (relu^2, SiLU, or SwiGLU with the gate rows), then FC2. All experts' FC1 jobs form one phase, the
// FC2 jobs the next. With the AMX kernels (relu^2, BF16 weights) FC1 writes FC2's prepared
// activations directly (gemm.h: fuse_relu2) and the f32 hidden buffer stays unused.
#include <vector>

#include "errors.h"
#include "layer.h"

namespace lmoe {

void expert_jobs(const lmoe_config* c, const lmoe_weights* w, const int32_t* offsets,
                 const float* latent_sorted, float* hidden, float* out, std::vector<GemmJob>& fc1,
                 std::vector<GemmJob>& fc2) {
  const int N = c->num_experts, wd = width(c), m = c->expert_intermediate_size;
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  const int act = activation_epi(c->activation);
  for (int e = 0; e < N; ++e) {
    const int ne = offsets[e + 1] - offsets[e];
    if (ne == 0) continue;
    GemmJob a = dense_job(latent_sorted + (int64_t)offsets[e] * wd, wd, ne, &w->expert_up[e],
                          wd, m, act,
                          hidden + (int64_t)offsets[e] * m, m, c->precision);
    a.Wg = swiglu ? &w->expert_gate[e] : nullptr;
    fc1.push_back(a);
    fc2.push_back(dense_job(hidden + (int64_t)offsets[e] * m, m, ne, &w->expert_down[e],
                            m, wd, EPI_STORE, out + (int64_t)offsets[e] * wd, wd,
                            c->precision));
  }
}

lmoe_status experts_step(const lmoe_config* c, const lmoe_weights* w, int64_t T,
                         const int32_t* offsets, const float* latent_sorted, float* hidden,
                         float* out) {
  const int N = c->num_experts, K = c->top_k;
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
  // where offered, FC1 writes FC2's prepared activations, in the hidden scratch when they fit
  fuse_relu2(fc1, fc2, hidden, (size_t)S * c->expert_intermediate_size * sizeof(float));
  TRY(run_gemm_phase(fc1));
  return run_gemm_phase(fc2);
}

}  // namespace lmoe
