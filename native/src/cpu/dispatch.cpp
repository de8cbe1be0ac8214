// Down-projection + dispatch: the slots sorted by expert (stable counting sort), z = x W_down^T
// (latent) or x itself (standard MoE) written to the sorted rows of every slot of its token.
#include <cstring>
#include <vector>

#include "errors.h"
#include "layer.h"
#include "thread_pool.h"

namespace lmoe {

void build_perm(int N, int64_t S, const int32_t* ids, int32_t* offsets, int32_t* row_of_slot) {
  std::vector<int32_t> pos(N + 1, 0);
  for (int64_t s = 0; s < S; ++s) ++pos[ids[s] + 1];
  for (int e = 0; e < N; ++e) pos[e + 1] += pos[e];
  std::memcpy(offsets, pos.data(), (N + 1) * sizeof(int32_t));
  for (int64_t s = 0; s < S; ++s) row_of_slot[s] = pos[ids[s]]++;
}

lmoe_status scatter_rows(const float* z, int64_t ldz, int64_t T, int K, int wd,
                         const int32_t* row_of_slot, float* latent_sorted) {
  auto body = [&](int i, int nt) {
    int64_t b, e;
    split_range(T, i, nt, &b, &e);
    for (int64_t t = b; t < e; ++t)
      for (int k = 0; k < K; ++k)
        std::memcpy(latent_sorted + (int64_t)row_of_slot[t * K + k] * wd, z + t * ldz,
                    wd * sizeof(float));
  };
  return run_small_step(T, body);
}

lmoe_status dispatch_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
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
    // z = x W_down^T once per token, each row written to its K sorted rows by the epilogue.
    std::vector<GemmJob> jobs{dense_job(x, d, T, &w->latent_down, d,
                                        c->latent_size, EPI_SCATTER, latent_sorted, wd,
                                        c->precision)};
    jobs[0].scatter = row_of_slot;
    jobs[0].K = K;
    return run_gemm_phase(jobs);
  }
  return scatter_rows(x, d, T, K, wd, row_of_slot, latent_sorted);
}

}  // namespace lmoe
