// decode/decode.cu - the few-tokens ("decode") forward path and the bandwidth-bound dense GEMVs:
// the host side (layout, launches) of the decode translation unit.
//
// For small T the layer is a weight stream: every byte of the router, the latent projections,
// the shared expert and the K chosen experts of each token is read once and used for at most a
// handful of tokens. This path skips the sort/permute of the grouped-GEMM path and runs five
// launches, each a GEMV-style stream over many CTAs, chained by programmatic dependent launch
// so that each kernel's prologue (L2 prefetch of its weights) overlaps the previous one's tail:
//   A  dense:  router logits (f32), z = x W_down^T (bf16), hs = relu2(x S_up^T) (bf16);
//              also zeroes the top-K counter and the FC2 tickets
//   B  top-K (one warp per token, publishes the ids)  || shared down so = hs S_down^T (f32)
//   C  expert FC1: h[t,k] = relu2(up_e z_t) (bf16); starts once the ids are out, while B's
//      shared down still streams
//   D  expert FC2 + combine: acc[t] = sum_k w[t,k] down_e h[t,k], k in order (f32), then
//      latent: accb = bf16(acc); standard: out = bf16(acc + so)
//   E  latent only: out = bf16(accb W_up^T + so)
//
// The kernels and their building blocks are in the headers of this folder (primitives, trace,
// dense, experts, stream, fused), all part of this one translation unit.
// Opt-in (tuning.stream / stream_dense, not yet measured on a GPU): the same GEMVs as persistent
// kernels that stream through a per-warp cp.async ring (decode/stream.cuh).
#include <limits.h>
#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "decode/decode.cuh"
#include "decode/dense.cuh"
#include "decode/experts.cuh"
#include "decode/fused.cuh"
#include "decode/primitives.cuh"
#include "decode/stream.cuh"
#include "decode/trace.cuh"

namespace lmoe_cuda {
namespace {

constexpr int64_t kRouterNarrowMaxT = 16;  // up to here: 16-token router tasks, fused into A
constexpr int kStreamMChunks = 4;          // streamed FC2: m chunks per expert

// ---------------------------------------------------------------- host side
// FC2 k groups: enough (t, cb, kg) blocks that the last, partial wave is a small share of the
// kernel (at T = 1 with 2 waves of long blocks it was ~25%).
int fc2_groups(const Tuning& tn, const lmoe_config* c, int64_t T, int sm) {
  const int64_t base = T * ((expert_width(c) + 15) / 16);
  if (base <= 0) return 1;
  int64_t kg = (int64_t(tn.fc2_blocks_per_sm) * sm + base - 1) / base;
  if (kg < 1) kg = 1;
  if (kg > c->top_k) kg = c->top_k;
  return int(kg);
}

template <class... KArgs, class... Args>
lmoe_status launch_smem(void (*kernel)(KArgs...), int64_t grid, size_t smem, bool pdl,
                        cudaStream_t s, const char* name, Args&&... args) {
  if (grid <= 0) return LMOE_OK;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(grid));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  if (e != cudaSuccess) return cuda_error(e, name);
  return LMOE_OK;
}
template <class P>
lmoe_status launch(void (*kernel)(const P), int64_t grid, bool pdl, const P& p, cudaStream_t s,
                   const char* name) {
  return launch_smem(kernel, grid, 0, pdl, s, name, p);
}

// A persistent streamed launch: the ring's shared memory opted in (once per kernel), `extra`
// blocks (top-K) plus as many streaming blocks as fit on the device at once (at most `tasks`);
// the kernel's last argument is `tasks`.
template <auto Kernel, class... Args>
lmoe_status launch_stream(size_t smem, int64_t extra, int64_t tasks, bool pdl, cudaStream_t s,
                          const char* name, const Args&... args) {
  constexpr int kMaxDev = 64;  // the attribute is per device: one cache slot each
  static std::atomic<int> per_sm[kMaxDev];
  int dev = 0;
  LMOE_CU(cudaGetDevice(&dev));
  int n = dev < kMaxDev ? per_sm[dev].load() : 0;
  if (n == 0) {
    LMOE_CU(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    LMOE_CU(cudaFuncSetAttribute(Kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 int(cudaSharedmemCarveoutMaxShared)));
    LMOE_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, kThreads, smem));
    if (n < 1)
      return set_error(LMOE_ERR_UNSUPPORTED, "%s: %zu bytes of shared memory per block do not fit",
                       name, smem);
    if (dev < kMaxDev) per_sm[dev].store(n);
  }
  const int64_t grid = extra + std::min<int64_t>(tasks, int64_t(n) * sm_count_or_default());
  return launch_smem(Kernel, grid, smem, pdl, s, name, args..., int(tasks));
}
// The dense segments of p (and q's top-K blocks) as one streamed launch (S: 4 or 8 stages,
// tuning.stream_dense); tok_chunk (8 or 16) is the chunk p's segments were added with.
lmoe_status launch_dense_stream(int S, const DenseParams& p, int tasks, const TopkSdownParams& q,
                                int tok_chunk, bool pdl, cudaStream_t s, const char* name) {
  if (tok_chunk == 8) {
    if (S == 8)
      return launch_stream<dense_stream_kernel<8, 1>>(stream_smem_bytes<8, 1, 2>(), q.topk_blocks,
                                                      tasks, pdl, s, name, p, q);
    return launch_stream<dense_stream_kernel<4, 1>>(stream_smem_bytes<4, 1, 2>(), q.topk_blocks,
                                                    tasks, pdl, s, name, p, q);
  }
  if (S == 8)
    return launch_stream<dense_stream_kernel<8, 2>>(stream_smem_bytes<8, 2, 2>(), q.topk_blocks,
                                                    tasks, pdl, s, name, p, q);
  return launch_stream<dense_stream_kernel<4, 2>>(stream_smem_bytes<4, 2, 2>(), q.topk_blocks,
                                                  tasks, pdl, s, name, p, q);
}

struct DecLayout {
  int64_t logits, z, hs, h, so, part, tickets, accb, total;
  int KG;
};
DecLayout dec_layout(const Tuning& tn, const lmoe_config* c, int64_t T, int sm) {
  const int64_t d = c->hidden_size, W = expert_width(c), m = c->expert_intermediate_size;
  const int64_t ms = c->shared_intermediate_size, K = c->top_k, N = c->num_experts;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  DecLayout L;
  L.KG = fc2_groups(tn, c, T, sm);
  int64_t o = 0;
  L.logits = o; o += aup(T * N * 4);
  L.z = o; o += latent ? aup(T * W * 2) : 0;
  L.hs = o; o += shared ? aup(T * ms * 2) : 0;
  L.h = o; o += aup(T * K * m * 2);
  L.so = o; o += shared ? aup(T * d * 4) : 0;
  // FC2 partials: KG groups (five-kernel path), K (fused kernel) or K x m chunks (streamed FC2)
  const int64_t parts = tn.stream ? K * kStreamMChunks : K;
  L.part = o; o += parts > 1 ? aup(parts * T * W * 4) : 0;
  // counters: five-kernel path [0] top-K done, then FC2 tickets [T, W/16] (zeroed by kernel A);
  // fused kernel [C_SLOTS] task counters, per-slot FC1 counters [T*K], FC2 tickets [T, W/16]
  L.tickets = o; o += aup((C_SLOTS + T * K + T * ((W + 15) / 16)) * 4);
  L.accb = o; o += latent ? aup(T * W * 2) : 0;
  L.total = o;
  return L;
}

// tok_chunk: 16 (NT = 2) or 32 (NT = 4) tokens per task
DenseSeg make_seg(int& tasks, const lmoe_cuda_matrix& w, int rows, int K, const bf16* x,
                  int64_t ldx, int epi, void* out, int64_t ldo, const float* add, int64_t ld_add,
                  int64_t T, int tok_chunk) {
  DenseSeg s{};
  s.w = w.data;
  s.w_f32 = w.format == LMOE_WFMT_F32 ? 1 : 0;
  s.fmt = w.format;
  s.bscale = w.block_scales;
  s.scale = w.scales;
  s.rows = rows;
  s.K = K;
  s.x = x;
  s.ldx = ldx;
  s.epi = epi;
  s.out = out;
  s.ldo = ldo;
  s.add = add;
  s.ld_add = ld_add;
  s.nrb = (rows + 15) / 16;
  s.task0 = tasks;
  tasks += s.nrb * int((T + tok_chunk - 1) / tok_chunk);
  return s;
}
void add_seg(DenseParams& p, int& tasks, const lmoe_cuda_matrix& w, int rows, int K,
             const bf16* x, int64_t ldx, int epi, void* out, int64_t ldo, const float* add,
             int64_t ld_add, int64_t T, int tok_chunk = 16) {
  p.seg[p.nseg++] = make_seg(tasks, w, rows, K, x, ldx, epi, out, ldo, add, ld_add, T, tok_chunk);
}
// Does a launch of these segments need the quantized dense kernel (dense_task_q)?
bool any_quantized(const DenseParams& p) {
  for (int i = 0; i < p.nseg; ++i)
    if (is_qfmt(p.seg[i].fmt)) return true;
  return false;
}
// A quantized matrix as the kernels' QMat: group stride for `rows` x `cols` per expert.
QMat qmat(const lmoe_cuda_matrix& m, int64_t rows, int64_t cols) {
  QMat q{};
  q.data = static_cast<const uint8_t*>(m.data);
  q.bscale = m.block_scales;
  q.scale = m.scales;
  q.fmt = m.format;
  q.stride = rows * q_row_bytes(m.format, cols);
  q.bs_stride = rows * q_bs_row_bytes(m.format, cols);
  return q;
}

// One decode forward: its inputs, the buffers carved from the workspace, and the shapes.
struct DecCtx {
  const lmoe_config* c;
  const lmoe_cuda_weights* w;
  const bf16* x;
  int64_t T;
  int32_t* ids;
  float* wts;
  bf16* out;
  float* logits;
  bf16 *z, *hs, *h, *accb;
  float *so, *part;
  int32_t* counters;
  int d, W, m, ms, K, N, nrb_w, topk_blocks;
  bool latent, shared;
  bool silu;   // the experts' and shared expert's activation: SiLU, else relu2
};

// The top-K fields (same names in TopkSdownParams and FusedParams).
template <class P>
void set_topk(P& p, const DecCtx& q) {
  p.ntok = int(q.T);
  p.logits = q.logits;
  p.bias = q.w->gate_bias;
  p.N = q.N;
  p.K = q.K;
  p.softmax = q.c->scoring == LMOE_SCORING_SOFTMAX;
  p.norm = q.c->norm_topk_prob;
  p.scale = q.c->routed_scaling_factor;
  p.ids = q.ids;
  p.wts = q.wts;
}
Fc1Params fc1_params(const DecCtx& q) {
  Fc1Params p{};
  p.up = bf16_data(q.w->expert_up);
  if (is_quantized(q.w->expert_up)) p.upq = qmat(q.w->expert_up, q.m, q.W);
  p.m = q.m;
  p.W = q.W;
  p.K = q.K;
  p.N = q.N;
  p.slots = int(q.T) * q.K;
  p.z = q.latent ? q.z : q.x;
  p.ldz = q.W;
  p.ids = q.ids;
  p.h = q.h;
  return p;
}
// KG k groups (m chunks MC each), tickets [T, W/16] zeroed before the launch.
Fc2Params fc2_params(const DecCtx& q, int KG, int MC, int32_t* tickets) {
  Fc2Params p{};
  p.down = bf16_data(q.w->expert_down);
  if (is_quantized(q.w->expert_down)) p.downq = qmat(q.w->expert_down, q.W, q.m);
  p.m = q.m;
  p.W = q.W;
  p.K = q.K;
  p.N = q.N;
  p.T = int(q.T);
  p.KG = KG;
  p.MC = MC;
  p.nrb = q.nrb_w;
  p.h = q.h;
  p.ids = q.ids;
  p.wts = q.wts;
  p.part = q.part;
  p.tickets = tickets;
  p.out = q.latent ? q.accb : q.out;
  p.add = q.latent ? nullptr : q.so;
  return p;
}

// The FC1 / FC2 kernel for the tuning's registers (min_blocks), the weights' format and (FC1)
// the activation.
using Fc1Fn = void (*)(const Fc1Params);
using Fc2Fn = void (*)(const Fc2Params);
template <int MINB, int ACT>
Fc1Fn fc1_for(int fmt) {
  return fmt == WF_FP8     ? fc1_kernel<MINB, WF_FP8, ACT>
         : fmt == WF_NVFP4 ? fc1_kernel<MINB, WF_NVFP4, ACT>
                           : fc1_kernel<MINB, WF_BF16, ACT>;
}
Fc1Fn fc1_pick(int min_blocks, int fmt, bool silu) {
  if (min_blocks == 2) return silu ? fc1_for<2, LMOE_ACT_SILU>(fmt) : fc1_for<2, LMOE_ACT_RELU2>(fmt);
  return silu ? fc1_for<3, LMOE_ACT_SILU>(fmt) : fc1_for<3, LMOE_ACT_RELU2>(fmt);
}
template <int MINB>
Fc2Fn fc2_for(int fmt) {
  return fmt == WF_FP8 ? fc2_kernel<MINB, WF_FP8> : fmt == WF_NVFP4 ? fc2_kernel<MINB, WF_NVFP4> : fc2_kernel<MINB>;
}
Fc2Fn fc2_pick(int min_blocks, int fmt) { return min_blocks == 2 ? fc2_for<2>(fmt) : fc2_for<3>(fmt); }

// ---- one fused kernel (see fused_decode_kernel)
lmoe_status decode_fused(const DecCtx& q, cudaStream_t s) {
  const lmoe_cuda_weights* w = q.w;
  const int64_t T = q.T;
  LMOE_CU(cudaMemsetAsync(q.counters, 0, size_t(C_SLOTS + T * q.K + T * q.nrb_w) * 4, s));
  FusedParams p{};
  const int nt = T <= 8 ? 1 : 2, chunk = 8 * nt;
  p.router = make_seg(p.n_router, w->gate, q.N, q.d, q.x, q.d, EPI_F32, q.logits, q.N, nullptr, 0,
                      T, chunk);
  if (q.latent)
    p.wdown = make_seg(p.n_wdown, w->latent_down, q.W, q.d, q.x, q.d, EPI_BF16, q.z, q.W,
                       nullptr, 0, T, chunk);
  if (q.shared) {
    p.sup = make_seg(p.n_sup, w->shared_up, q.ms, q.d, q.x, q.d, EPI_RELU2_BF16, q.hs, q.ms,
                     nullptr, 0, T, chunk);
    p.sdown = make_seg(p.n_sdown, w->shared_down, q.d, q.ms, q.hs, q.ms, EPI_F32, q.so, q.d,
                       nullptr, 0, T, chunk);
  }
  if (q.latent) {
    p.wup = make_seg(p.n_wup, w->latent_up, q.d, q.W, q.accb, q.W, EPI_ADD_BF16, q.out, q.d,
                     q.so, q.d, T, chunk);
    p.wup_prefetch = 32 * 1024;  // HBM is idle while the last FC2 tasks finish
  }
  set_topk(p, q);
  p.n_topk = q.topk_blocks;
  p.fc1 = fc1_params(q);
  p.fc1_rows = (q.m + kFc1RowsPerTask - 1) / kFc1RowsPerTask;
  p.n_fc1 = p.fc1.slots * p.fc1_rows;
  p.fc2 = fc2_params(q, q.K, 1, q.counters + C_SLOTS + T * q.K);  // one expert per task
  p.n_fc2 = int(T) * q.K * q.nrb_w;
  p.ctr = q.counters;
  const int64_t total = int64_t(p.n_router) + p.n_wdown + p.n_topk + p.n_sup + p.n_fc1 +
                        p.n_sdown + p.n_fc2 + p.n_wup;
  return launch(nt == 1 ? fused_decode_kernel<1> : fused_decode_kernel<2>, total, false, p, s,
                "decode fused");
}

}  // namespace

// ================================================================ debug trace (debug_trace.h)
LMOE_CUDA_API lmoe_status lmoe_cuda_debug_trace(DebugTraceRecord* records, int64_t capacity) {
  if (records != nullptr && (capacity <= 0 || capacity > INT_MAX))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "debug trace: capacity %lld out of range",
                     (long long)capacity);
  const int cap = records ? int(capacity) : 0, zero = 0;
  LMOE_CU(cudaDeviceSynchronize());
  LMOE_CU(cudaMemcpyToSymbol(g_trace, &records, sizeof records));
  LMOE_CU(cudaMemcpyToSymbol(g_trace_cap, &cap, sizeof cap));
  LMOE_CU(cudaMemcpyToSymbol(g_trace_n, &zero, sizeof zero));
  // from pageable memory the copies may return before they land; the next kernels (on any
  // stream) must see them
  LMOE_CU(cudaDeviceSynchronize());
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_debug_trace_count(int64_t* count) {
  if (!count) return set_error(LMOE_ERR_INVALID_ARGUMENT, "debug trace: count is NULL");
  int n = 0;
  LMOE_CU(cudaDeviceSynchronize());
  LMOE_CU(cudaMemcpyFromSymbol(&n, g_trace_n, sizeof n));
  *count = n;
  return LMOE_OK;
}

// ================================================================ internal API
bool gemv_router_ok(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T) {
  const int64_t tasks = ((c->num_experts + 15) / 16) * ((T + 15) / 16);
  return T >= 1 && tasks < INT_MAX && c->hidden_size % 8 == 0 && aligned16(x) && w->gate.data &&
         aligned16(w->gate.data);
}

// Beyond 16 tokens the tasks take 32 tokens each: half the re-reads of the (L2-resident) gate.
lmoe_status gemv_router_logits(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                               int64_t T, float* logits, cudaStream_t s) {
  DenseParams p{};
  int tasks = 0;
  const int d = c->hidden_size, N = c->num_experts;
  const bool wide = T > kRouterNarrowMaxT;
  add_seg(p, tasks, w->gate, N, d, x, d, EPI_F32, logits, N, nullptr, 0, T, wide ? 32 : 16);
  p.ntok = int(T);
  if (wide) return launch(dense_kernel<4>, tasks, false, p, s, "router logits");
  return launch(dense_kernel<2>, tasks, false, p, s, "router logits");
}

bool decode_supported(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                      const void* x, int64_t T) {
  // relu2 and SiLU; SwiGLU and W8A8 matrices: the sorted path
  if (c->activation != LMOE_ACT_RELU2 && c->activation != LMOE_ACT_SILU) return false;
  if (any_w8a8(w)) return false;
  const int64_t d = c->hidden_size, W = expert_width(c), m = c->expert_intermediate_size;
  const int64_t ms = c->shared_intermediate_size;
  if (d % 8 || W % 8 || m % 8 || ms % 8) return false;
  if (!aligned16(x) || !aligned16(w->gate.data) || !aligned16(w->expert_up.data) ||
      !aligned16(w->expert_down.data))
    return false;
  if (c->latent_size > 0 && (!aligned16(w->latent_down.data) || !aligned16(w->latent_up.data))) return false;
  if (ms > 0 && (!aligned16(w->shared_up.data) || !aligned16(w->shared_down.data))) return false;
  // grid sizes (int32 block indices)
  const int64_t fc1 = T * c->top_k * ((m + 15) / 16);
  const int64_t fc2 = T * c->top_k * (tn.stream ? kStreamMChunks : 1) * ((W + 15) / 16);
  const int64_t dense = ((T + 15) / 16) * ((c->num_experts + W + ms + d + 63) / 16 + 4);
  return fc1 < INT_MAX && fc2 < INT_MAX && dense < INT_MAX;
}

int64_t decode_workspace_bytes(const Tuning& tn, const lmoe_config* c, int64_t T) {
  return dec_layout(tn, c, T, sm_count_or_default()).total;
}

// Five launches; B..E use programmatic dependent launch (see pdl_wait):
//   A  router logits, z = x W_down^T, hs = relu2(x S_up^T); zero the counters
//   B  top-K (publishes the ids)              || so = hs S_down^T
//   C  h = relu2(up_e z)  (starts on the ids, overlaps B's shared down)
//   D  acc = sum_k w down_e h (prefetches its experts' rows while C drains)
//   E  out = acc W_up^T + so (latent; prefetches W_up)
lmoe_status decode_forward(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                           const bf16* x, int64_t T, int32_t* ids, float* wts, void* ws,
                           int64_t ws_bytes, bf16* out, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  // BF16 relu2 layers may take the fused kernel and the streamed GEMVs (opt-in knobs); FP8 /
  // NVFP4 weights and SiLU run on the five one-shot kernels (tn_run), which have their variants.
  const bool plain = all_bf16(w) && c->activation == LMOE_ACT_RELU2;
  Tuning tn_run = tn;
  if (!plain) tn_run.stream = tn_run.stream_dense = tn_run.decode_fused = 0;
  const DecLayout L = dec_layout(tn, c, T, sm_count_or_default());
  if (ws_bytes < L.total)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "decode forward: workspace_bytes %lld < %lld",
                     (long long)ws_bytes, (long long)L.total);
  DecCtx q{};
  q.c = c;
  q.w = w;
  q.x = x;
  q.T = T;
  q.ids = ids;
  q.wts = wts;
  q.out = out;
  q.d = c->hidden_size;
  q.W = expert_width(c);
  q.m = c->expert_intermediate_size;
  q.ms = c->shared_intermediate_size;
  q.K = c->top_k;
  q.N = c->num_experts;
  q.latent = c->latent_size > 0;
  q.shared = q.ms > 0;
  q.nrb_w = (q.W + 15) / 16;
  q.topk_blocks = int((T + kTopkTokPerBlock - 1) / kTopkTokPerBlock);
  char* b = static_cast<char*>(ws);
  q.logits = reinterpret_cast<float*>(b + L.logits);
  q.z = q.latent ? reinterpret_cast<bf16*>(b + L.z) : nullptr;
  q.hs = q.shared ? reinterpret_cast<bf16*>(b + L.hs) : nullptr;
  q.h = reinterpret_cast<bf16*>(b + L.h);
  q.so = q.shared ? reinterpret_cast<float*>(b + L.so) : nullptr;
  q.part = (q.K > 1 || tn.stream) ? reinterpret_cast<float*>(b + L.part) : nullptr;
  q.counters = reinterpret_cast<int32_t*>(b + L.tickets);
  q.accb = q.latent ? reinterpret_cast<bf16*>(b + L.accb) : nullptr;
  q.silu = c->activation == LMOE_ACT_SILU;

  if (tn_run.decode_fused && gemv_router_ok(c, w, x, T)) return decode_fused(q, s);

  const int d = q.d, W = q.W, m = q.m, ms = q.ms, K = q.K, N = q.N, nrb_w = q.nrb_w;
  const bool latent = q.latent, shared = q.shared;
  float* logits = q.logits;
  bf16 *z = q.z, *hs = q.hs, *accb = q.accb;
  float* so = q.so;
  int32_t* counters = q.counters;
  int32_t* topk_done = counters;
  int32_t* tickets = counters + 1;
  // A: router (when the GEMV router applies), latent down, shared up; zero the counters.
  const bool router_fused = gemv_router_ok(c, w, x, T) && T <= kRouterNarrowMaxT;
  if (!router_fused) LMOE_TRY(router_logits_stage(c, w, x, T, logits, s));
  // streamed dense launches take 8-token chunks up to T = 8 (one mma token tile), else 16
  const bool dstream = tn_run.stream_dense > 0;
  const bool pdl = tn.pdl != 0;  // B..E wait for their predecessor with griddepcontrol
  const int prefetch = tn.prefetch_kb * 1024;
  const int chunk = dstream && T <= 8 ? 8 : 16;
  {
    DenseParams p{};
    int tasks = 0;
    if (router_fused)
      add_seg(p, tasks, w->gate, N, d, x, d, EPI_F32, logits, N, nullptr, 0, T, chunk);
    if (latent)
      add_seg(p, tasks, w->latent_down, W, d, x, d, EPI_BF16, z, W, nullptr, 0, T, chunk);
    if (shared)
      add_seg(p, tasks, w->shared_up, ms, d, x, d, q.silu ? EPI_SILU_BF16 : EPI_RELU2_BF16, hs, ms,
              nullptr, 0, T, chunk);
    p.ntok = int(T);
    p.zero = counters;
    p.nzero = 1 + int(T) * nrb_w;
    p.trace_tag = TRACE_DENSE_A;
    if (dstream && tasks > 0)
      LMOE_TRY(launch_dense_stream(tn_run.stream_dense, p, tasks, TopkSdownParams{}, chunk, false, s,
                                   "decode dense A (stream)"));
    else
      LMOE_TRY(launch(any_quantized(p) ? dense_kernel<2, true> : dense_kernel<2>, tasks > 0 ? tasks : 1,
                      false, p, s, "decode dense A"));
  }
  // B: top-K || shared down
  {
    TopkSdownParams p{};
    DenseParams dp{};
    int tasks = 0;
    if (shared) {
      add_seg(dp, tasks, w->shared_down, d, ms, hs, ms, EPI_F32, so, d, nullptr, 0, T, chunk);
      p.seg = dp.seg[0];
      p.has_seg = 1;
    }
    dp.ntok = int(T);
    dp.trace_tag = TRACE_SDOWN;
    set_topk(p, q);
    p.topk_blocks = q.topk_blocks;
    p.done = topk_done;
    p.prefetch = prefetch;
    if (dstream)
      LMOE_TRY(launch_dense_stream(tn_run.stream_dense, dp, tasks, p, chunk, pdl, s, "decode topk+sdown (stream)"));
    else
      LMOE_TRY(launch(any_quantized(dp) ? topk_sdown_kernel<true> : topk_sdown_kernel<false>,
                      int64_t(q.topk_blocks) + tasks, pdl, p, s, "decode topk+sdown"));
  }
  // C: expert FC1
  {
    Fc1Params p = fc1_params(q);
    p.topk_done = topk_done;
    p.topk_blocks = q.topk_blocks;
    const int64_t grid = int64_t(p.slots) * ((m + 15) / 16);
    if (tn_run.stream == 8)
      LMOE_TRY(launch_stream<fc1_stream_kernel<8>>(stream_smem_bytes<8, 1, 1>(), 0, grid, pdl, s,
                                                   "decode fc1 (stream)", p));
    else if (tn_run.stream == 4)
      LMOE_TRY(launch_stream<fc1_stream_kernel<4>>(stream_smem_bytes<4, 1, 1>(), 0, grid, pdl, s,
                                                   "decode fc1 (stream)", p));
    else
      LMOE_TRY(launch(fc1_pick(tn.min_blocks, w->expert_up.format, q.silu), grid, pdl, p, s, "decode fc1"));
  }
  // D: expert FC2 + weighted combine
  {
    // streamed: one task per (t, expert, m chunk, column block)
    Fc2Params p = tn_run.stream ? fc2_params(q, K * kStreamMChunks, kStreamMChunks, tickets)
                                : fc2_params(q, L.KG, 1, tickets);
    p.prefetch = prefetch;
    if (tn_run.stream) {
      const int64_t tasks = T * int64_t(p.KG) * nrb_w;
      if (tn_run.stream == 8)
        LMOE_TRY(launch_stream<fc2_stream_kernel<8>>(stream_smem_bytes<8, 1, 1>(), 0, tasks, pdl, s,
                                                     "decode fc2 (stream)", p));
      else
        LMOE_TRY(launch_stream<fc2_stream_kernel<4>>(stream_smem_bytes<4, 1, 1>(), 0, tasks, pdl, s,
                                                     "decode fc2 (stream)", p));
    } else {
      LMOE_TRY(launch(fc2_pick(tn.min_blocks, w->expert_down.format), T * int64_t(L.KG) * nrb_w,
                      pdl, p, s, "decode fc2"));
    }
  }
  // E: latent up (+ shared)
  if (latent) {
    DenseParams p{};
    int tasks = 0;
    add_seg(p, tasks, w->latent_up, d, W, accb, W, EPI_ADD_BF16, out, d, so, d, T, chunk);
    p.ntok = int(T);
    p.prefetch = prefetch;
    p.trace_tag = TRACE_DENSE_E;
    if (dstream)
      LMOE_TRY(launch_dense_stream(tn_run.stream_dense, p, tasks, TopkSdownParams{}, chunk, pdl, s, "decode dense E (stream)"));
    else
      LMOE_TRY(launch(any_quantized(p) ? dense_kernel<2, true> : dense_kernel<2>, tasks, pdl, p, s,
                      "decode dense E"));
  }
  return LMOE_OK;
}

}  // namespace lmoe_cuda
