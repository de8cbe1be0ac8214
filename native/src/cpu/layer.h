// The steps of the layer on validated inputs (router.cpp, dispatch.cpp, experts.cpp,
// combine.cpp, forward.cpp) and what they share. The entry points of latentmoe.h (abi.cpp) check
// the arguments, then call these; the steps check only what depends on the data (ids, offsets).
#pragma once
#include <cstdint>
#include <vector>

#include "gemm.h"
#include "latentmoe.h"
#include "thread_pool.h"

namespace lmoe {

constexpr int kMaxExperts = 2048;
constexpr int kMaxTopK = 32;
constexpr int64_t kMaxDim = (int64_t)1 << 24;
// Up to this many tokens, the small steps (top-K, scatter, weighted sum) run on the caller.
constexpr int64_t kSerialTokens = 4;

// Runs body(thread, num_threads) for a step over T tokens: on the caller alone up to
// kSerialTokens, else on every pool thread. Each body partitions its work by (thread,
// num_threads) so that the values never depend on it.
template <class F>
lmoe_status run_small_step(int64_t T, F&& body) {
  if (T <= kSerialTokens) {
    body(0, 1);
    return LMOE_OK;
  }
  return parallel(body);
}

// The expert width w: latent_size for a LatentMoE, hidden_size for a standard MoE.
inline int width(const lmoe_config* c) { return c->latent_size > 0 ? c->latent_size : c->hidden_size; }

// ---- router.cpp
// Top-K of T tokens' logits [T, N] -> ids, wts [T, K].
lmoe_status topk_all(const lmoe_config* c, const lmoe_weights* w, const float* logits, int64_t T,
                     int32_t* ids, float* wts);
// The router logits as a job: logits [T, N] = x W_gate^T.
GemmJob gate_job(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                 float* logits);
lmoe_status router_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                        int32_t* ids, float* wts);

// ---- dispatch.cpp
// Counting sort of the S slots by expert id, stable in slot order: offsets [N+1], row_of_slot [S].
void build_perm(int N, int64_t S, const int32_t* ids, int32_t* offsets, int32_t* row_of_slot);
// latent_sorted[row_of_slot[t*K + k]] = z[t] for z [T, ldz] with rows of w floats.
lmoe_status scatter_rows(const float* z, int64_t ldz, int64_t T, int K, int wd,
                         const int32_t* row_of_slot, float* latent_sorted);
lmoe_status dispatch_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                          const int32_t* ids, int32_t* offsets, int32_t* row_of_slot,
                          float* latent_sorted);

// ---- experts.cpp
// The FC1 (activation fused) and FC2 jobs of every expert with rows.
void expert_jobs(const lmoe_config* c, const lmoe_weights* w, const int32_t* offsets,
                 const float* latent_sorted, float* hidden, float* out, std::vector<GemmJob>& fc1,
                 std::vector<GemmJob>& fc2);
lmoe_status experts_step(const lmoe_config* c, const lmoe_weights* w, int64_t T,
                         const int32_t* offsets, const float* latent_sorted, float* hidden,
                         float* out);

// ---- combine.cpp
// acc[t, :] = sum_k wts[t, k] * y[row_of_slot[t*K+k], :], k in order, for all T tokens.
lmoe_status weighted_sum(int64_t T, int K, int wd, const float* wts, const int32_t* row_of_slot,
                         const float* y, float* acc);
// The shared expert's first layer as a job: sh [T, ms] = act(x S_up^T [, S_gate]).
GemmJob shared_up_job(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                      float* sh);
// Combine scratch: acc [T, l] (latent only), then the shared expert's hidden [T, ms].
int64_t combine_scratch_floats(const lmoe_config* c, int64_t T);
int64_t combine_shared_offset(const lmoe_config* c, int64_t T);
lmoe_status combine_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                         const float* wts, const int32_t* row_of_slot, const float* y,
                         float* scratch, float* out);

// ---- forward.cpp
// Tokens per chunk of forward_step (lmoe_cpu_set_chunk_tokens): the workspace covers one chunk.
// Every chunk streams the routed experts' weights again (5.6 GB for Super: ~0.23 s at 25 GB/s),
// so larger chunks prefill faster (bf16, T = 4096 on 2 SPR cores: 2.0 s with 1024, 1.38 s with
// 4096) but need more memory (Super: ~0.9 GB of workspace at 2048 tokens, ~1.8 GB at 4096, plus
// the kernels' prepared activations). 2048 balances the two.
constexpr int64_t kDefaultChunkTokens = 2048;
int64_t chunk_tokens();
void set_chunk_tokens(int64_t tokens);
int64_t forward_workspace_bytes(const lmoe_config* c, int64_t T, int64_t chunk);
// workspace: forward_workspace_bytes(c, T, chunk) bytes, 64-byte aligned.
// Runs T tokens in chunks of `chunk` (read once by the caller: the workspace was sized with it).
lmoe_status forward_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                         int32_t* ids, float* wts, void* workspace, float* out, int64_t chunk);

}  // namespace lmoe
