// decode/stream.cuh - the streamed GEMVs (opt-in, tuning.stream / stream_dense; not yet measured on
// a GPU): the tasks of the FC1/FC2 and dense kernels run by persistent grids whose warps stream
// through a cp.async ring.
// Part of the decode translation unit: included by decode/decode.cu only (its kernels share the
// trace symbols of decode/trace.cuh, which need one translation unit without relocatable code).
#pragma once

#include "decode/dense.cuh"
#include "decode/experts.cuh"

namespace lmoe_cuda {
namespace {

// The tasks of fc1_kernel / fc2_kernel / dense_kernel, run by a persistent grid (blocks per SM
// from the occupancy of the ring below) whose blocks take tasks blockIdx.x, + gridDim.x, ...
// Each warp streams its weight and activation chunks through a private ring of S shared-memory
// stages with cp.async, S - 1 k blocks ahead of the mma, and the stream runs on across task
// boundaries: the next tasks' loads are in flight while the block reduces the current one.
// (The one-shot kernels issue a block's loads, wait for all of them, reduce and exit, so the SM's
// memory pipe empties at every task; a 16-row dense task of the shared expert is 172 KB streamed
// in six such rounds.) A lane reads back only what it copied: the ring needs no barrier.
// FC2 tasks take one expert and one of MC chunks of m (k group kg = k * MC + chunk), so there are
// enough of them for an even spread over the persistent blocks; the partials are added in kg
// order by the last task of a (t, column block) (fc2_finish): deterministic.
//
// Ring of a warp: [stage][slot][lane] uint4, slots = weight row r (KW uint4: KW = 2 holds the 8
// f32 of a lane's chunk, 1 the 8 bf16), row r + 8 (KW), then NT token chunks.
template <int NT>
struct StreamTask {
  const void* wa;  // this lane's weight row r at k = q*8; row 0 when r is out of range
  const void* wb;  // row r + 8
  const bf16* x[NT];  // token j*8 + r at k = q*8
  bool va, vb, vx[NT];
  bool f32;        // weights are f32 (only with KW = 2)
  int kb0, nkw;    // this warp's k blocks [kb0, kb0 + nkw)
  int kq;          // K - q*8: this lane's chunk of block kb is in range iff kb*32 < kq
};

__device__ __forceinline__ void cp_async16(void* smem, const void* src, bool ok) {
  const uint32_t d = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(ok ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int S, int NT, int KW>
constexpr int stream_smem_bytes() {
  return kWarps * S * (2 * KW + NT) * 32 * 16;
}

// Runs this block's ntask tasks. setup(j, task, with_ptrs) describes task j for this lane
// (without pointers only kb0/nkw are read); finish(j, acc) (all threads) reduces and stores it.
template <int S, int NT, int KW, class Setup, class Finish>
__device__ __forceinline__ void stream_tasks(int ntask, uint4* ring, Setup&& setup,
                                             Finish&& finish) {
  static_assert((S & (S - 1)) == 0 && S >= 2, "S: a power of two");
  constexpr int kSlots = 2 * KW + NT;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint4* my = ring + warp * S * kSlots * 32 + lane;
  StreamTask<NT> it{};
  int ij = -1, io = 0, issued = 0;
  auto issue_next = [&] {  // the next k block of this warp's stream, if any
    while (ij < ntask && (ij < 0 || io >= it.nkw))
      if (++ij < ntask) {
        setup(ij, it, true);
        io = 0;
      }
    if (ij >= ntask) return;
    const int k = (it.kb0 + io) * 32;
    const bool ok = k < it.kq;
    const int esz = (KW == 2 && it.f32) ? 4 : 2;
    const char* pa = static_cast<const char*>(it.wa) + (ok ? int64_t(k) * esz : 0);
    const char* pb = static_cast<const char*>(it.wb) + (ok ? int64_t(k) * esz : 0);
    uint4* st = my + (issued & (S - 1)) * kSlots * 32;
#pragma unroll
    for (int v = 0; v < KW; ++v) {  // the second 16 bytes only for f32 (else zero, not read)
      const bool use = v == 0 || it.f32;
      cp_async16(st + v * 32, use ? pa + v * 16 : pa, use && ok && it.va);
      cp_async16(st + (KW + v) * 32, use ? pb + v * 16 : pb, use && ok && it.vb);
    }
#pragma unroll
    for (int j = 0; j < NT; ++j)
      cp_async16(st + (2 * KW + j) * 32, ok ? it.x[j] + k : it.x[j], ok && it.vx[j]);
    ++io;
    ++issued;
  };
  // one commit group per k block (empty ones at the end), so wait_group<S - 1> in step i
  // means that k block i has landed
  for (int i = 0; i < S - 1; ++i) {
    issue_next();
    cp_async_commit();
  }
  int used = 0;
  for (int j = 0; j < ntask; ++j) {
    StreamTask<NT> ct{};
    setup(j, ct, false);
    float acc[NT][4] = {};
    for (int o = 0; o < ct.nkw; ++o) {
      issue_next();
      cp_async_commit();
      cp_async_wait<S - 1>();
      const uint4* st = my + (used & (S - 1)) * kSlots * 32;
      uint4 xv[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) xv[t] = st[(2 * KW + t) * 32];
      if (KW == 2 && ct.f32) {
        WFrag<float> fa, fb;
        fa.v0 = st[0];
        fa.v1 = st[32];
        fb.v0 = st[KW * 32];
        fb.v1 = st[KW * 32 + 32];
        mma_block<NT>(fa, fb, xv, acc);
      } else {
        WFrag<bf16> fa, fb;
        fa.v = st[0];
        fb.v = st[KW * 32];
        mma_block<NT>(fa, fb, xv, acc);
      }
      ++used;
    }
    finish(j, acc);
    __syncthreads();  // the next finish rewrites the reduction buffer
  }
  cp_async_wait<0>();
}

__device__ __forceinline__ int stream_ntask(int total, int b0, int G) {
  return b0 < total ? (total - b0 + G - 1) / G : 0;
}
// Lane (r, q) pointers of a 16-row weight tile ([rows, ld] row-major, row 0 at w, esz bytes per
// element).
template <int NT>
__device__ __forceinline__ void stream_rows(StreamTask<NT>& tk, const void* w, int64_t ld,
                                            int rows_valid, int esz) {
  const int lane = threadIdx.x & 31, r = lane >> 2, q = lane & 3;
  const char* c = static_cast<const char*>(w);
  tk.va = r < rows_valid;
  tk.vb = r + 8 < rows_valid;
  tk.wa = c + (int64_t(tk.va ? r : 0) * ld + q * 8) * esz;
  tk.wb = c + (int64_t(tk.vb ? r + 8 : 0) * ld + q * 8) * esz;
  tk.f32 = esz == 4;
  tk.kq = int(ld) - q * 8;
}
// One token per task (FC1, FC2): token row of the mma tile r == 0 only.
__device__ __forceinline__ void stream_token(StreamTask<1>& tk, const bf16* x) {
  const int lane = threadIdx.x & 31;
  tk.x[0] = x + (lane & 3) * 8;
  tk.vx[0] = (lane >> 2) == 0;
}

// Blocks per SM the registers are sized for: two for the 4-stage rings and the FC1/FC2 8-stage
// ones (96 KB); the dense 8-stage rings (160-192 KB) fit one.
constexpr int kStreamMinBlocks = 2;

// The routing of up to kStreamSlotsCached slots in shared memory: the issuing side looks up the
// next task's expert S - 1 steps ahead, and a global load there would stall the warp's stream.
constexpr int kStreamSlotsCached = 512;
struct SlotCache {
  int32_t ids[kStreamSlotsCached];
  float wts[kStreamSlotsCached];
};
// Fills the cache (all threads; ids/wts final and visible) when the slots fit.
struct Slots {
  const int32_t* ids;
  const float* wts;
  bool cached;
  __device__ __forceinline__ int id(int i) const { return cached ? ids[i] : __ldcg(ids + i); }
  __device__ __forceinline__ float wt(int i) const { return cached ? wts[i] : __ldcg(wts + i); }
};
__device__ __forceinline__ Slots cache_slots(SlotCache& c, int slots, const int32_t* ids,
                                             const float* wts) {
  if (slots > kStreamSlotsCached) return Slots{ids, wts, false};
  for (int i = threadIdx.x; i < slots; i += blockDim.x) {
    c.ids[i] = __ldcg(ids + i);
    if (wts) c.wts[i] = __ldcg(wts + i);
  }
  __syncthreads();
  return Slots{c.ids, c.wts, true};
}

template <int S>
__global__ void __launch_bounds__(kThreads, kStreamMinBlocks)
fc1_stream_kernel(const __grid_constant__ Fc1Params p, int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<1> red;
  __shared__ SlotCache cache;
  BlockTrace trace(TRACE_FC1_STREAM);
  wait_ge(p.topk_done, p.topk_blocks);
  trace.ready();
  pdl_trigger();
  const Slots sl = cache_slots(cache, p.slots, p.ids, nullptr);
  int kb0, kb1;
  warp_kblocks(p.W, kb0, kb1);
  const int b0 = blockIdx.x, G = gridDim.x;
  stream_tasks<S, 1, 1>(
      stream_ntask(total, b0, G), ring,
      [&](int j, StreamTask<1>& tk, bool ptrs) {
        tk.kb0 = kb0;
        tk.nkw = kb1 - kb0;
        if (!ptrs) return;
        const int b = b0 + j * G, slot = b % p.slots, row0 = (b / p.slots) * 16;
        const int e = clamp_expert(sl.id(slot), p.N);
        stream_rows(tk, p.up + (int64_t(e) * p.m + row0) * p.W, p.W, min(16, p.m - row0), 2);
        stream_token(tk, p.z + int64_t(slot / p.K) * p.ldz);
      },
      [&](int j, const float(&acc)[1][4]) {
        const int b = b0 + j * G, slot = b % p.slots, row0 = (b / p.slots) * 16;
        const int rows_valid = min(16, p.m - row0);
        block_reduce<1>(acc, red, [&](int row, int tok, float v) {
          if (tok == 0 && row < rows_valid)
            p.h[int64_t(slot) * p.m + row0 + row] = __float2bfloat16_rn(relu2f(v));
        });
      });
  trace.done();
  pdl_wait();
}

template <int S>
__global__ void __launch_bounds__(kThreads, kStreamMinBlocks)
fc2_stream_kernel(const __grid_constant__ Fc2Params p, int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<1> red;
  __shared__ int s_last;
  __shared__ SlotCache cache;
  BlockTrace trace(TRACE_FC2_STREAM);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  const Slots sl = cache_slots(cache, p.T * p.K, p.ids, p.wts);
  const int warp = threadIdx.x >> 5, nkb = (p.m + 31) / 32;
  const int b0 = blockIdx.x, G = gridDim.x;
  stream_tasks<S, 1, 1>(
      stream_ntask(total, b0, G), ring,
      [&](int j, StreamTask<1>& tk, bool ptrs) {
        const int b = b0 + j * G, t = b % p.T, rest = b / p.T;
        const int kg = rest % p.KG, cb = rest / p.KG, k = kg / p.MC, mc = kg % p.MC;
        const int c0 = mc * nkb / p.MC, n = (mc + 1) * nkb / p.MC - c0;
        tk.kb0 = c0 + warp * n / kWarps;
        tk.nkw = c0 + (warp + 1) * n / kWarps - tk.kb0;
        if (!ptrs) return;
        const int slot = t * p.K + k, row0 = cb * 16;
        const int e = clamp_expert(sl.id(slot), p.N);
        stream_rows(tk, p.down + (int64_t(e) * p.W + row0) * p.m, p.m, min(16, p.W - row0), 2);
        stream_token(tk, p.h + int64_t(slot) * p.m);
      },
      [&](int j, const float(&acc)[1][4]) {
        const int b = b0 + j * G, t = b % p.T, rest = b / p.T;
        const int kg = rest % p.KG, cb = rest / p.KG;
        const float wk = sl.wt(t * p.K + kg / p.MC);
        float tot[1][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) tot[0][i] = wk * acc[0][i];
        fc2_finish(p, t, kg, cb, tot, red, s_last, [] {}, [] {});
      });
}

// The first task of p's segments (total tasks in all) that starts at or after byte `off` of the
// weight stream, tasks in order, each 16 rows x K of its segment.
__device__ __forceinline__ int task_at_bytes(const DenseParams& p, int total, int64_t off) {
  int64_t start = 0;
  for (int s = 0; s < p.nseg; ++s) {
    const int n = (s + 1 < p.nseg ? p.seg[s + 1].task0 : total) - p.seg[s].task0;
    const int64_t tb = int64_t(16) * p.seg[s].K * (p.seg[s].w_f32 ? 4 : 2);
    if (off <= start) return p.seg[s].task0;
    if (off < start + n * tb) return p.seg[s].task0 + int((off - start + tb - 1) / tb);
    start += n * tb;
  }
  return total;
}

// The dense segments (kernels A, B's shared down, E) streamed; f32 (router) and bf16 segments
// in one launch (KW = 2). Blocks [0, q.topk_blocks) run the top-K as in topk_sdown_kernel (their
// ring is their score buffer); the others stream the segments' tasks. Block 0 of the streaming
// blocks zeroes p.zero first. The tasks differ in size (a router task is 256 KB, a shared-expert
// one 128 or 172 KB, a W_up one 32 KB), so each block takes a contiguous run of tasks with an
// equal share of the weight bytes, not every G-th task.
template <int S, int NT>
__global__ void __launch_bounds__(kThreads, S == 8 ? 1 : kStreamMinBlocks)
dense_stream_kernel(const __grid_constant__ DenseParams p, const __grid_constant__ TopkSdownParams q,
                    int total) {
  extern __shared__ uint4 ring[];
  __shared__ RedBuf<NT> red;
  const int b = blockIdx.x;
  const bool topk = b < q.topk_blocks;
  BlockTrace trace(topk ? TRACE_TOPK : p.trace_tag);
  pdl_wait();
  trace.ready();
  pdl_trigger();
  if (topk) {
    static_assert(stream_smem_bytes<4, 1, 2>() >= int(sizeof(float)) * kTopkTokPerBlock * kTopkMaxExperts,
                  "the ring holds the top-K scores");
    auto s_biased = reinterpret_cast<float(*)[kTopkMaxExperts]>(ring);
    const int warp = threadIdx.x >> 5, t = b * kTopkTokPerBlock + warp;
    if (warp < kTopkTokPerBlock && t < q.ntok)
      warp_topk(q.logits + int64_t(t) * q.N, q.bias, q.N, q.K, q.softmax, q.norm, q.scale,
                s_biased[warp], q.ids + int64_t(t) * q.K, q.wts + int64_t(t) * q.K);
    signal_done(q.done);
    return;
  }
  const int b0 = b - q.topk_blocks, G = gridDim.x - q.topk_blocks;
  if (b0 == 0)
    for (int i = threadIdx.x; i < p.nzero; i += kThreads) p.zero[i] = 0;
  int64_t bytes = 0;
  for (int s = 0; s < p.nseg; ++s)
    bytes += int64_t((s + 1 < p.nseg ? p.seg[s + 1].task0 : total) - p.seg[s].task0) * 16 *
             p.seg[s].K * (p.seg[s].w_f32 ? 4 : 2);
  const int first = task_at_bytes(p, total, bytes * b0 / G);
  const int ntask = task_at_bytes(p, total, bytes * (b0 + 1) / G) - first;
  constexpr int kChunkT = NT * 8;
  const int lane = threadIdx.x & 31, r = lane >> 2, q8 = (lane & 3) * 8;
  // the segment and its task of the block's task j
  auto locate = [&](int j, int& si, int& local) {
    const int task = first + j;
    si = 0;
    while (si + 1 < p.nseg && task >= p.seg[si + 1].task0) ++si;
    local = task - p.seg[si].task0;
  };
  stream_tasks<S, NT, 2>(
      ntask, ring,
      [&](int j, StreamTask<NT>& tk, bool ptrs) {
        int si, local;
        locate(j, si, local);
        const DenseSeg& sg = p.seg[si];
        int kb0, kb1;
        warp_kblocks(sg.K, kb0, kb1);
        tk.kb0 = kb0;
        tk.nkw = kb1 - kb0;
        tk.f32 = sg.w_f32 != 0;  // the consuming side reads it too
        if (!ptrs) return;
        const int row0 = (local % sg.nrb) * 16, tok0 = (local / sg.nrb) * kChunkT;
        const int esz = sg.w_f32 ? 4 : 2;
        stream_rows(tk, static_cast<const char*>(sg.w) + int64_t(row0) * sg.K * esz, sg.K,
                    min(16, sg.rows - row0), esz);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const int tok = tok0 + t * 8 + r;
          tk.vx[t] = tok < p.ntok;
          tk.x[t] = sg.x + int64_t(tk.vx[t] ? tok : 0) * sg.ldx + q8;
        }
      },
      [&](int j, const float(&acc)[NT][4]) {
        int si, local;
        locate(j, si, local);
        const DenseSeg& sg = p.seg[si];
        const int row0 = (local % sg.nrb) * 16, tok0 = (local / sg.nrb) * kChunkT;
        const int rows_valid = min(16, sg.rows - row0), ntok = min(kChunkT, p.ntok - tok0);
        block_reduce<NT>(acc, red, [&](int row, int tok, float v) {
          if (row < rows_valid && tok < ntok) dense_store(sg, row0 + row, tok0 + tok, v);
        });
      });
}

}  // namespace
}  // namespace lmoe_cuda
