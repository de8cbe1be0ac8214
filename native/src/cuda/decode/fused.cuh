// decode/fused.cuh - the whole decode forward as one kernel whose blocks take the stages from a
// task queue in dependency order (tuning.decode_fused).
// Part of the decode translation unit: included by decode/decode.cu only (its kernels share the
// trace symbols of decode/trace.cuh, which need one translation unit without relocatable code).
#pragma once

#include "decode/dense.cuh"
#include "decode/experts.cuh"

namespace lmoe_cuda {
namespace {

// The whole decode forward as one grid of tasks in dependency order. A block claims the next
// task with an atomic ticket (not blockIdx), so every task it may wait for was claimed earlier by
// a block that is running or done: waits always end, and no kernel boundary drains the memory
// pipe between the stages. Order (counters in ctr):
//   router (1) | W_down -> z (2) | top-K (3: waits 1) | S_up -> hs (4) |
//   FC1 per (slot, 128 rows), slot-major (per-slot counters: waits 2, 3) | S_down -> so (5: waits 4) |
//   FC2 per (t, k, column block), slot-major (waits its slot; the last k of a column block adds
//   the K partials up, waiting for 5 first when it adds so) (6) |
//   latent: W_up + so -> out (waits 6 and 5; prefetches its rows while waiting)
// FC2 takes one expert per task (KG = K), so the result does not depend on T.
enum { C_NEXT = 0, C_ROUTER, C_WDOWN, C_TOPK, C_SUP, C_SDOWN, C_FINALS, C_SLOTS = 8 };
struct FusedParams {
  DenseSeg router, wdown, sup, sdown, wup;
  int ntok;
  // top-K
  const float* logits;
  const float* bias;
  int N, K, softmax, norm;
  float scale;
  int32_t* ids;
  float* wts;
  Fc1Params fc1;
  Fc2Params fc2;
  int32_t* ctr;  // [C_SLOTS + T*K] + FC2 tickets, zeroed before the launch
  int n_router, n_wdown, n_topk, n_sup, n_fc1, n_sdown, n_fc2, n_wup;
  int fc1_rows;  // FC1 tasks per slot
  int wup_prefetch;
};

union FusedRed {
  RedBuf<2> r2;
  RedBuf<1> r1;
};
template <int NT> __device__ __forceinline__ RedBuf<NT>& red_nt(FusedRed& r);
template <> __device__ __forceinline__ RedBuf<1>& red_nt<1>(FusedRed& r) { return r.r1; }
template <> __device__ __forceinline__ RedBuf<2>& red_nt<2>(FusedRed& r) { return r.r2; }

// NT = 1 (T <= 8): 8-token dense tasks, registers for 3 blocks per SM; NT = 2: 16-token tasks.
template <int NT>
__global__ void __launch_bounds__(kThreads, NT == 1 ? 3 : 2)
fused_decode_kernel(const __grid_constant__ FusedParams p) {
  __shared__ FusedRed red;
  __shared__ float s_biased[kTopkTokPerBlock][kTopkMaxExperts];
  __shared__ int s_task, s_last;
  if (threadIdx.x == 0) s_task = atomicAdd(&p.ctr[C_NEXT], 1);
  __syncthreads();
  int task = s_task;
  int stage = 0;  // for the trace: the stage this task belongs to
  {
    const int n[8] = {p.n_router, p.n_wdown, p.n_topk, p.n_sup, p.n_fc1, p.n_sdown, p.n_fc2, p.n_wup};
    for (int r = task; stage < 7 && r >= n[stage]; ++stage) r -= n[stage];
  }
  BlockTrace trace(TRACE_FUSED_ROUTER + stage);
  if (task < p.n_router) {
    dense_task<NT>(p.router, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_ROUTER]);
    return;
  }
  task -= p.n_router;
  if (task < p.n_wdown) {
    dense_task<NT>(p.wdown, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_WDOWN]);
    return;
  }
  task -= p.n_wdown;
  if (task < p.n_topk) {
    wait_ge(&p.ctr[C_ROUTER], p.n_router);
    const int warp = threadIdx.x >> 5, t = task * kTopkTokPerBlock + warp;
    if (warp < kTopkTokPerBlock && t < p.ntok)
      warp_topk(p.logits + int64_t(t) * p.N, p.bias, p.N, p.K, p.softmax, p.norm, p.scale,
                s_biased[warp], p.ids + int64_t(t) * p.K, p.wts + int64_t(t) * p.K);
    signal_done(&p.ctr[C_TOPK]);
    return;
  }
  task -= p.n_topk;
  if (task < p.n_sup) {
    dense_task<NT>(p.sup, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_SUP]);
    return;
  }
  task -= p.n_sup;
  if (task < p.n_fc1) {
    if (threadIdx.x == 0) {
      while (ld_acquire(&p.ctr[C_TOPK]) < p.n_topk) __nanosleep(64);
      while (ld_acquire(&p.ctr[C_WDOWN]) < p.n_wdown) __nanosleep(64);
    }
    __syncthreads();
    // slot-major here (a slot's row groups back to back), so slots complete in order and the
    // FC2 tasks, in the same order, find theirs done
    const int slot = task / p.fc1_rows, rg = task % p.fc1_rows;
    fc1_rows_body(p.fc1, slot + p.fc1.slots * rg);
    signal_done(&p.ctr[C_SLOTS + slot]);
    return;
  }
  task -= p.n_fc1;
  if (task < p.n_sdown) {
    wait_ge(&p.ctr[C_SUP], p.n_sup);
    dense_task<NT>(p.sdown, task, p.ntok, red_nt<NT>(red));
    signal_done(&p.ctr[C_SDOWN]);
    return;
  }
  task -= p.n_sdown;
  if (task < p.n_fc2) {
    const Fc2Params& q = p.fc2;  // KG == K: task (t, k, cb) needs slot t*K + k
    const int cb = task % q.nrb, k = (task / q.nrb) % q.K, t = task / (q.nrb * q.K);  // slot order
    wait_ge(&p.ctr[C_SLOTS + t * q.K + k], p.fc1_rows);
    fc2_body(
        q, t + q.T * (k + q.KG * cb), red.r1, s_last,
        [&] {
          if (q.add) wait_ge(&p.ctr[C_SDOWN], p.n_sdown);
        },
        [&] { signal_done(&p.ctr[C_FINALS]); });
    return;
  }
  task -= p.n_fc2;
  if (task < p.n_wup) {
    if (p.wup_prefetch > 0) dense_prefetch(p.wup, task, p.wup_prefetch);
    if (threadIdx.x == 0) {
      while (ld_acquire(&p.ctr[C_FINALS]) < p.fc2.T * p.fc2.nrb) __nanosleep(64);
      while (ld_acquire(&p.ctr[C_SDOWN]) < p.n_sdown) __nanosleep(64);
    }
    __syncthreads();
    dense_task<NT>(p.wup, task, p.ntok, red_nt<NT>(red));
  }
}

}  // namespace
}  // namespace lmoe_cuda
