// The whole layer in four parallel phases over one caller workspace:
//   A: router logits, latent down-projection and shared up-projection (all read x);
//   routing, permutation, scatter of z (or x) into expert order;
//   B: expert FC1 and the shared down-projection; C: expert FC2;
//   D: weighted sum + latent up-projection (+ the shared expert's output).
// T is processed in chunks of chunk_tokens() tokens, one after another over the same workspace
// (sized for one chunk), so prefill of any length needs a bounded workspace. Every value is a
// function of its own token's data (arch.h's invariant, routing and combine per token), so the
// results do not depend on the chunk size, and they are bit-identical to running the four step
// entry points one after another (the same dot products and epilogues; fl(a+b) == fl(b+a)).
#include <algorithm>
#include <atomic>
#include <vector>

#include "errors.h"
#include "layer.h"
#include "phase_timer.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

// Byte offsets of the workspace's buffers, each 64-byte aligned.
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
  L.off_comb = p;    p = align64(p + combine_scratch_floats(c, T) * 4);
  L.off_logits = p;  p = align64(p + T * c->num_experts * 4);
  L.off_z = p;       p = align64(p + T * wd * 4);
  L.total = p;
  return L;
}

std::atomic<int64_t> g_chunk_tokens{kDefaultChunkTokens};

// One chunk of T tokens (T <= the chunk size the workspace was laid out for).
lmoe_status forward_chunk(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                          int32_t* ids, float* wts, void* workspace, const WsLayout& L,
                          float* out) {
  const int N = c->num_experts, K = c->top_k, d = c->hidden_size, wd = width(c);
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0;
  const int64_t S = T * K;
  char* ws = static_cast<char*>(workspace);
  int32_t* offsets = (int32_t*)(ws + L.off_offsets);
  int32_t* perm = (int32_t*)(ws + L.off_perm);
  float* lat = (float*)(ws + L.off_latent);
  float* hidden = (float*)(ws + L.off_hidden);
  float* eout = (float*)(ws + L.off_eout);
  float* comb = (float*)(ws + L.off_comb);
  float* logits = (float*)(ws + L.off_logits);
  float* z = (float*)(ws + L.off_z);
  float* acc = latent ? comb : z;
  float* sh = comb + combine_shared_offset(c, T);

  PhaseTimer pt;
  // Phase A
  std::vector<GemmJob> jobs{gate_job(c, w, x, T, logits)};
  if (latent)
    jobs.push_back(dense_job(x, d, T, &w->latent_down, d, c->latent_size,
                             EPI_STORE, z, wd, c->precision));
  if (ms > 0) jobs.push_back(shared_up_job(c, w, x, T, sh));
  TRY(run_gemm_phase(jobs));
  pt.mark("A", jobs_weight_bytes(jobs));

  // Routing, permutation, scatter of z (or x) into expert order.
  TRY(topk_all(c, w, logits, T, ids, wts));
  build_perm(N, S, ids, offsets, perm);
  TRY(scatter_rows(latent ? z : x, latent ? wd : d, T, K, wd, perm, lat));

  // Phase B, C
  std::vector<GemmJob> fc1, fc2;
  expert_jobs(c, w, offsets, lat, hidden, eout, fc1, fc2);
  // FC1 writes FC2's prepared activations where the kernel offers it (in the hidden buffer)
  fuse_relu2(fc1, fc2, hidden, (size_t)(L.off_eout - L.off_hidden));
  if (ms > 0)
    fc1.push_back(dense_job(sh, ms, T, &w->shared_down, ms, d, EPI_STORE, out, d, c->precision));
  pt.mark("route", 0);
  TRY(run_gemm_phase(fc1));
  pt.mark("B", jobs_weight_bytes(fc1));
  TRY(run_gemm_phase(fc2));
  pt.mark("C", jobs_weight_bytes(fc2));

  // Phase D
  TRY(weighted_sum(T, K, wd, wts, perm, eout, latent || ms > 0 ? acc : out));
  if (latent) {
    std::vector<GemmJob> up{dense_job(acc, wd, T, &w->latent_up, wd, d,
                                      ms > 0 ? EPI_ADD : EPI_STORE, out, d, c->precision)};
    lmoe_status st = run_gemm_phase(up);
    pt.mark("D", jobs_weight_bytes(up));
    return st;
  }
  if (ms > 0) {  // standard MoE: out holds the shared expert's output, acc the routed sum
    auto add = [&](int i, int nt) {
      int64_t b, e;
      split_range(T * d, i, nt, &b, &e);
      for (int64_t q = b; q < e; ++q) out[q] = out[q] + acc[q];
    };
    TRY(run_small_step(T, add));
  }
  return LMOE_OK;
}

}  // namespace

int64_t chunk_tokens() { return g_chunk_tokens.load(std::memory_order_relaxed); }

void set_chunk_tokens(int64_t t) { g_chunk_tokens.store(t, std::memory_order_relaxed); }

int64_t forward_workspace_bytes(const lmoe_config* c, int64_t T, int64_t chunk) {
  return ws_layout(c, std::min(T, chunk)).total;
}

lmoe_status forward_step(const lmoe_config* c, const lmoe_weights* w, const float* x, int64_t T,
                         int32_t* ids, float* wts, void* workspace, float* out, int64_t chunk) {
  const WsLayout L = ws_layout(c, std::min(T, chunk));
  const int K = c->top_k, d = c->hidden_size;
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t n = std::min(chunk, T - t0);
    TRY(forward_chunk(c, w, x + t0 * d, n, ids + t0 * K, wts + t0 * K, workspace, L,
                      out + t0 * d));
  }
  return LMOE_OK;
}

}  // namespace lmoe
