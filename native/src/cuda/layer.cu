// layer.cu - the LatentMoE layer on the GPU: router + top-K, dispatch (stable counting sort on
// the device + fused down-projection), experts (CUTLASS grouped GEMM or SIMT fallback), combine
// (+ up-projection + shared expert), and the forward pass. No host synchronisation anywhere.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <initializer_list>
#include <climits>
#include <mutex>

#include "decode.cuh"
#include "internal.cuh"
#include "simt.cuh"
#include "topk.cuh"

namespace lmoe_cuda {

constexpr int64_t kMaxSlots = int64_t(1) << 22;  // T*K limit (int32 rows, grid limits)
constexpr int kChunk = 2048;                     // dispatch: slots per block
constexpr int kMaxExperts = 2048;
constexpr int kDecodeDefaultMaxTokens = 16;  // auto_max_tokens default; H200 crossover between 16 and 32

static std::atomic<int> g_experts_backend{LMOE_CUDA_EXPERTS_AUTO};
static std::atomic<int> g_decode_mode{LMOE_CUDA_DECODE_AUTO};
// Default auto threshold of the decode path. Measured on an H200 at the Super shape (decode vs
// sorted, ms, once the sorted path's dense projections ran on CUTLASS): T=16 0.93 vs 0.99,
// T=32 2.34 vs 2.11, T=64 4.01 vs 2.38 -> decode up to T = 16.
static std::atomic<int> g_decode_max_tokens{kDecodeDefaultMaxTokens};

static inline int64_t aup(int64_t v) { return (v + 255) / 256 * 256; }
static inline int expert_width(const lmoe_config* c) {
  return c->latent_size > 0 ? c->latent_size : c->hidden_size;
}
static inline int64_t nchunks(int64_t slots) { return (slots + kChunk - 1) / kChunk; }

// Bump allocator over a caller workspace.
struct Carver {
  char* base;
  int64_t size;
  int64_t used = 0;
  template <class T>
  T* take(int64_t count) {
    T* p = reinterpret_cast<T*>(base + used);
    used += aup(count * int64_t(sizeof(T)));
    return p;
  }
  bool ok() const { return used <= size; }
};

// ---------------------------------------------------------------- validation
static lmoe_status validate_cfg(const lmoe_config* c) {
  if (!c) return set_error(LMOE_ERR_INVALID_ARGUMENT, "cfg is NULL");
  if (c->hidden_size <= 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "hidden_size %d <= 0", c->hidden_size);
  if (c->latent_size < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_size %d < 0", c->latent_size);
  if (c->num_experts < 1 || c->num_experts > kMaxExperts)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "num_experts %d not in 1..%d", c->num_experts, kMaxExperts);
  int kmax = c->num_experts < 32 ? c->num_experts : 32;
  if (c->top_k < 1 || c->top_k > kmax)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "top_k %d not in 1..%d", c->top_k, kmax);
  if (c->expert_intermediate_size <= 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_intermediate_size %d <= 0", c->expert_intermediate_size);
  if (c->shared_intermediate_size < 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_intermediate_size %d < 0", c->shared_intermediate_size);
  if (c->activation != LMOE_ACT_RELU2 && c->activation != LMOE_ACT_SWIGLU)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "activation %d unknown", c->activation);
  if (c->scoring != LMOE_SCORING_SIGMOID && c->scoring != LMOE_SCORING_SOFTMAX)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "scoring %d unknown", c->scoring);
  if (c->norm_topk_prob != 0 && c->norm_topk_prob != 1)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "norm_topk_prob %d not 0/1", c->norm_topk_prob);
  if (!isfinite(c->routed_scaling_factor))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "routed_scaling_factor not finite");
  return LMOE_OK;
}

enum Need { NEED_ROUTER = 1, NEED_DISPATCH = 2, NEED_EXPERTS = 4, NEED_COMBINE = 8, NEED_ALL = 15 };

static lmoe_status validate(const lmoe_config* c, const lmoe_cuda_weights* w, int need) {
  LMOE_TRY(validate_cfg(c));
  if (!w) return set_error(LMOE_ERR_INVALID_ARGUMENT, "weights is NULL");
  if (w->weight_dtype != LMOE_DTYPE_BF16)
    return set_error(w->weight_dtype == LMOE_DTYPE_F32 ? LMOE_ERR_UNSUPPORTED : LMOE_ERR_INVALID_ARGUMENT,
                     "weight_dtype %d: the CUDA backend takes bf16 weights only", w->weight_dtype);
  const bool latent = c->latent_size > 0, swiglu = c->activation == LMOE_ACT_SWIGLU;
  const bool shared = c->shared_intermediate_size > 0;
  if (need & NEED_ROUTER) {
    if (w->gate_dtype != LMOE_DTYPE_BF16 && w->gate_dtype != LMOE_DTYPE_F32)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "gate_dtype %d not BF16/F32", w->gate_dtype);
    if (!w->gate) return set_error(LMOE_ERR_INVALID_ARGUMENT, "gate is NULL");
  }
  if ((need & NEED_DISPATCH) && latent && !w->latent_down)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_down is NULL with latent_size > 0");
  if (need & NEED_EXPERTS) {
    if (!w->expert_up || !w->expert_down)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_up/expert_down is NULL");
    if (swiglu && !w->expert_gate)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "expert_gate is NULL with SwiGLU");
  }
  if (need & NEED_COMBINE) {
    if (latent && !w->latent_up)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "latent_up is NULL with latent_size > 0");
    if (shared && (!w->shared_up || !w->shared_down))
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_up/shared_down is NULL with a shared expert");
    if (shared && swiglu && !w->shared_gate)
      return set_error(LMOE_ERR_INVALID_ARGUMENT, "shared_gate is NULL with SwiGLU");
  }
  return LMOE_OK;
}

static lmoe_status validate_tokens(const lmoe_config* c, int64_t T) {
  if (T < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "num_tokens %lld < 0", (long long)T);
  if (T * c->top_k > kMaxSlots)
    return set_error(LMOE_ERR_UNSUPPORTED, "num_tokens*top_k = %lld > %lld",
                     (long long)(T * c->top_k), (long long)kMaxSlots);
  return LMOE_OK;
}

static lmoe_status need_ptr(const void* p, const char* name) {
  return p ? LMOE_OK : set_error(LMOE_ERR_INVALID_ARGUMENT, "%s is NULL", name);
}

static lmoe_status check_ws(const void* ws, int64_t have, int64_t need, const char* what) {
  if (need < 0) return LMOE_ERR_INTERNAL;
  if (have < need)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace_bytes %lld < %lld", what,
                     (long long)have, (long long)need);
  if (need > 0 && !ws) return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace is NULL", what);
  if (reinterpret_cast<uintptr_t>(ws) % LMOE_CUDA_WORKSPACE_ALIGN)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: workspace not %d-byte aligned", what,
                     LMOE_CUDA_WORKSPACE_ALIGN);
  return LMOE_OK;
}

// ================================================================ dense GEMMs on the tensor cores
// For T >= kDenseTcMinT the dense projections (latent down/up, shared expert) are real GEMMs:
// they run on the CUTLASS sm90 kernels of the experts with a single group (rows [0, T)), i.e. no
// extra CUTLASS instantiation. bf16 in/out, f32 accumulation. Below that size, and whenever the
// experts backend is SIMT or shapes/pointers do not fit TMA, the SIMT/GEMV kernels run.
constexpr int64_t kDenseTcMinT = 16;

static bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

static bool device_is_sm90() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) { (void)cudaGetLastError(); return false; }
  static std::mutex mu;
  static int8_t ok_cache[64];  // 0 unknown, 1 yes, -1 no
  if (dev < 0 || dev >= 64) return false;
  std::lock_guard<std::mutex> lock(mu);
  if (ok_cache[dev] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    (void)cudaGetLastError();
    ok_cache[dev] = (major == 9 && minor == 0) ? 1 : -1;
  }
  return ok_cache[dev] == 1;
}

// offsets {0, T} + one-group CUTLASS workspace
static int64_t dense_tc_ws() {
  const int sm = sm_count_or_default();
  const size_t a = grouped_gemm_relu2_workspace_bytes(1, sm), b = grouped_gemm_identity_workspace_bytes(1, sm);
  return aup(2 * 4) + aup(int64_t(a > b ? a : b));
}
static bool dense_tc_ok(int64_t T, std::initializer_list<const void*> ptrs,
                        std::initializer_list<int64_t> dims) {
  if (T < kDenseTcMinT || T > INT_MAX || g_experts_backend.load() == LMOE_CUDA_EXPERTS_SIMT) return false;
  for (const void* p : ptrs)
    if (!p || !aligned16(p)) return false;
  for (int64_t d : dims)
    if (d % 8) return false;
  return device_is_sm90();
}

// CUTLASS tile per token bucket: 128x256 tiles (1x2 cluster) once a GEMM has many rows per
// group, 128x128 below (more CTAs for few rows). Thresholds from H200 runs at the Super shape.
constexpr int64_t kWideMinRowsPerExpert = 128;  // experts: T*K/N
constexpr int64_t kWideMinTokensDense = 2048;   // dense projections: T
// Opt-in sweep knob (bench/bundle/tune.sh): LMOE_CUDA_FC1_TILE=192 runs the relu2 FC1 with 128x192
// tiles where 128x256 ones would run (not yet measured on a GPU).
static GgTile fc1_wide_tile() {
  static const GgTile t = [] {
    const char* v = getenv("LMOE_CUDA_FC1_TILE");
    return (v && atoi(v) == 192) ? GG_TILE_128x192 : GG_TILE_128x256;
  }();
  return t;
}
static bool wide_tiles(int64_t rows_per_group, int64_t min_rows) {
  const int b = g_experts_backend.load();
  if (b == LMOE_CUDA_EXPERTS_CUTLASS_WIDE) return true;
  if (b == LMOE_CUDA_EXPERTS_CUTLASS_NARROW) return false;
  return rows_per_group >= min_rows;
}

__global__ void set_offsets2_kernel(int32_t* o, int rows) {
  o[0] = 0;
  o[1] = rows;
}

struct DenseTc {
  int32_t* offs;
  void* gws;
  size_t gws_bytes;
  int sm, dev;
  int tile;  // GgTile
};
// region: dense_tc_ws() bytes, 256-aligned
static lmoe_status dense_tc_setup(DenseTc& d, void* region, int64_t T, cudaStream_t s) {
  LMOE_TRY(current_sm_count(&d.sm, &d.dev));
  d.offs = static_cast<int32_t*>(region);
  d.gws = static_cast<char*>(region) + aup(2 * 4);
  d.gws_bytes = size_t(dense_tc_ws() - aup(2 * 4));
  d.tile = wide_tiles(T, kWideMinTokensDense) ? GG_TILE_128x256 : GG_TILE_128x128;
  set_offsets2_kernel<<<1, 1, 0, s>>>(d.offs, int(T));
  LMOE_CU_LAUNCH("set_offsets2");
  return LMOE_OK;
}
// D[T, n] = act(A[T, k] . B[n, k]^T)
static lmoe_status dense_tc_gemm(const DenseTc& d, bool relu2_act, const bf16* A, const bf16* B,
                                 bf16* D, int n, int k, cudaStream_t s) {
  GroupedGemmArgs a{};
  a.num_groups = 1;
  a.offsets = d.offs;
  a.A = A;
  a.B = B;
  a.D = D;
  a.n = n;
  a.k = k;
  a.sm_count = d.sm;
  a.device = d.dev;
  a.workspace = d.gws;
  a.workspace_bytes = d.gws_bytes;
  a.stream = s;
  a.tile = d.tile;
  return relu2_act ? grouped_gemm_relu2(a) : grouped_gemm_identity(a);
}

// out[t*K + k -> row] = z[t], 16-byte vectors (W % 8 == 0, 16-byte aligned rows).
__global__ void scatter_rows_kernel(const bf16* __restrict__ z, int64_t slots, int K, int W,
                                    const int32_t* __restrict__ sorted_row_of_slot, bf16* __restrict__ out) {
  const int64_t slot = blockIdx.x;
  if (slot >= slots) return;
  const uint4* src = reinterpret_cast<const uint4*>(z + (slot / K) * int64_t(W));
  uint4* dst = reinterpret_cast<uint4*>(out + int64_t(sorted_row_of_slot[slot]) * W);
  for (int c = threadIdx.x; c < W / 8; c += blockDim.x) dst[c] = src[c];
}

// out = bf16(routed + so)
template <class RT>
__global__ void add_out_kernel(const RT* __restrict__ routed, const bf16* __restrict__ so, int64_t count,
                               bf16* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    out[i] = __float2bfloat16_rn(to_f(routed[i]) + __bfloat162float(so[i]));
}

// ================================================================ router + top-K
// Top-K: one warp per token (topk.cuh), kTopkWarps tokens per block.
constexpr int kTopkWarps = 4;
__global__ void __launch_bounds__(kTopkWarps * 32)
topk_warp_kernel(const float* __restrict__ logits, const float* __restrict__ bias, int64_t T, int N,
                 int K, int softmax, int norm, float scale, int32_t* __restrict__ ids,
                 float* __restrict__ wts) {
  __shared__ float s_biased[kTopkWarps][kTopkMaxExperts];
  const int warp = threadIdx.x >> 5;
  const int64_t t = int64_t(blockIdx.x) * kTopkWarps + warp;
  if (t >= T) return;  // whole warp leaves together
  warp_topk(logits + t * N, bias, N, K, softmax, norm, scale, s_biased[warp], ids + t * K, wts + t * K);
}

static int64_t router_ws(const lmoe_config* c, int64_t T) { return aup(T * c->num_experts * 4); }

lmoe_status router_logits_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                int64_t T, float* logits, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int N = c->num_experts, d = c->hidden_size;
  if (gemv_router_ok(c, w, x, T)) return gemv_router_logits(c, w, x, T, logits, s);
  EpiStore<float, ACT_NONE> epi{logits, N};
  if (w->gate_dtype == LMOE_DTYPE_F32)
    return gemm_nt(x, d, static_cast<const float*>(w->gate), d, int(T), N, d, epi, s);
  return gemm_nt(x, d, static_cast<const bf16*>(w->gate), d, int(T), N, d, epi, s);
}

lmoe_status router_topk_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                              int64_t T, bool logits_ready, float* logits, int32_t* ids,
                              float* wts, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int N = c->num_experts;
  if (!logits_ready) LMOE_TRY(router_logits_stage(c, w, x, T, logits, s));
  topk_warp_kernel<<<unsigned((T + kTopkWarps - 1) / kTopkWarps), kTopkWarps * 32, 0, s>>>(
      logits, w->gate_bias, T, N, c->top_k, c->scoring == LMOE_SCORING_SOFTMAX, c->norm_topk_prob,
      c->routed_scaling_factor, ids, wts);
  LMOE_CU_LAUNCH("topk");
  return LMOE_OK;
}

static lmoe_status router_impl(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                               int64_t T, int32_t* ids, float* wts, void* ws, cudaStream_t s) {
  return router_topk_stage(c, w, x, T, false, static_cast<float*>(ws), ids, wts, s);
}

// ================================================================ dispatch
// Stable counting sort of the T*K slots by expert id, deterministic (no order-dependent
// atomics: only shared-memory histogram increments, whose totals do not depend on order).
//   count:  per chunk of kChunk slots, counts[chunk][e]
//   scan:   offsets[e] (exclusive scan over e of the totals), base[chunk][e] = offsets[e] +
//           sum of counts[c'][e] over earlier chunks c'
//   place:  within a chunk, slots in order; rank among equal ids by warp match + serial warps.
__device__ __forceinline__ int clamp_id(int e, int N) { return (e >= 0 && e < N) ? e : 0; }

__global__ void __launch_bounds__(256)
dispatch_count_kernel(const int32_t* __restrict__ ids, int64_t slots, int N, int32_t* counts) {
  __shared__ int hist[kMaxExperts];
  for (int e = threadIdx.x; e < N; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  int64_t s0 = int64_t(blockIdx.x) * kChunk;
  int64_t s1 = s0 + kChunk < slots ? s0 + kChunk : slots;
  for (int64_t i = s0 + threadIdx.x; i < s1; i += blockDim.x) atomicAdd(&hist[clamp_id(ids[i], N)], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < N; e += blockDim.x) counts[int64_t(blockIdx.x) * N + e] = hist[e];
}

constexpr int kScanThreads = 1024;
// One block. Each thread owns experts [2*tid, 2*tid+2).
__global__ void __launch_bounds__(kScanThreads)
dispatch_scan_kernel(const int32_t* __restrict__ counts, int nch, int N, int32_t* __restrict__ offsets,
                     int32_t* __restrict__ base) {
  __shared__ int warp_sums[kScanThreads / 32];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int tot[2] = {0, 0};
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N)
      for (int b = 0; b < nch; ++b) tot[q] += counts[int64_t(b) * N + e];
  }
  int mine = tot[0] + tot[1];
  int incl = mine;
  for (int off = 1; off < 32; off <<= 1) {
    int v = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += v;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int v = warp_sums[lane];
    int iv = v;
    for (int off = 1; off < 32; off <<= 1) {
      int u = __shfl_up_sync(0xffffffffu, iv, off);
      if (lane >= off) iv += u;
    }
    warp_sums[lane] = iv - v;  // exclusive
  }
  __syncthreads();
  int excl = warp_sums[warp] + incl - mine;
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N) {
      offsets[e] = excl;
      int run = excl;
      for (int b = 0; b < nch; ++b) {
        base[int64_t(b) * N + e] = run;
        run += counts[int64_t(b) * N + e];
      }
      excl += tot[q];
      if (e == N - 1) offsets[N] = excl;
    }
  }
}

__global__ void __launch_bounds__(256)
dispatch_place_kernel(const int32_t* __restrict__ ids, int64_t slots, int N,
                      const int32_t* __restrict__ base, int32_t* __restrict__ sorted_row_of_slot) {
  __shared__ int cursor[kMaxExperts];
  for (int e = threadIdx.x; e < N; e += blockDim.x) cursor[e] = base[int64_t(blockIdx.x) * N + e];
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const unsigned lt_mask = (1u << lane) - 1u;
  int64_t c0 = int64_t(blockIdx.x) * kChunk;
  int64_t c1 = c0 + kChunk < slots ? c0 + kChunk : slots;
  for (int64_t s0 = c0; s0 < c1; s0 += blockDim.x) {
    int64_t slot = s0 + threadIdx.x;
    bool valid = slot < c1;
    int e = valid ? clamp_id(ids[slot], N) : -1;
    unsigned peers = __match_any_sync(0xffffffffu, e);
    int rank = __popc(peers & lt_mask);
    bool leader = (peers & lt_mask) == 0;
    for (int w = 0; w < nwarps; ++w) {
      if (warp == w && valid) {
        int row = cursor[e] + rank;
        sorted_row_of_slot[slot] = row;
      }
      __syncwarp();
      if (warp == w && valid && leader) cursor[e] += __popc(peers);
      __syncthreads();
    }
  }
}

// Standard MoE: latent_sorted[row(slot)] = x[slot / K].
__global__ void gather_rows_kernel(const bf16* __restrict__ x, int64_t slots, int K, int d,
                                   const int32_t* __restrict__ sorted_row_of_slot, bf16* __restrict__ out) {
  int64_t slot = blockIdx.x;
  if (slot >= slots) return;
  const bf16* src = x + (slot / K) * int64_t(d);
  bf16* dst = out + int64_t(sorted_row_of_slot[slot]) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
}

static int64_t dispatch_ws(const lmoe_config* c, int64_t T) {
  int64_t nch = nchunks(T * c->top_k);
  int64_t b = 2 * aup(nch * c->num_experts * 4);
  if (c->latent_size > 0 && T >= kDenseTcMinT)  // z [T, w] + tensor-core GEMM
    b += aup(T * expert_width(c) * 2) + dense_tc_ws();
  return b;
}

static lmoe_status dispatch_impl(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                 int64_t T, const int32_t* ids, int32_t* offsets,
                                 int32_t* sorted_row_of_slot, bf16* latent_sorted, void* ws,
                                 cudaStream_t s) {
  const int N = c->num_experts, K = c->top_k, d = c->hidden_size, W = expert_width(c);
  const int64_t slots = T * K;
  if (slots == 0) {
    LMOE_CU(cudaMemsetAsync(offsets, 0, sizeof(int32_t) * (N + 1), s));
    return LMOE_OK;
  }
  const int64_t nch = nchunks(slots);
  Carver cv{static_cast<char*>(ws), dispatch_ws(c, T)};
  int32_t* counts = cv.take<int32_t>(nch * N);
  int32_t* base = cv.take<int32_t>(nch * N);
  dispatch_count_kernel<<<unsigned(nch), 256, 0, s>>>(ids, slots, N, counts);
  LMOE_CU_LAUNCH("dispatch_count");
  dispatch_scan_kernel<<<1, kScanThreads, 0, s>>>(counts, int(nch), N, offsets, base);
  LMOE_CU_LAUNCH("dispatch_scan");
  dispatch_place_kernel<<<unsigned(nch), 256, 0, s>>>(ids, slots, N, base, sorted_row_of_slot);
  LMOE_CU_LAUNCH("dispatch_place");
  if (c->latent_size > 0 &&
      dense_tc_ok(T, {x, w->latent_down, latent_sorted}, {int64_t(d), int64_t(W)})) {
    // z = x W_down^T on the tensor cores, then each row copied to its K sorted rows.
    bf16* z = cv.take<bf16>(T * W);
    DenseTc tc;
    LMOE_TRY(dense_tc_setup(tc, cv.take<char>(dense_tc_ws()), T, s));
    LMOE_TRY(dense_tc_gemm(tc, false, x, static_cast<const bf16*>(w->latent_down), z, W, d, s));
    scatter_rows_kernel<<<unsigned(slots), 128, 0, s>>>(z, slots, K, W, sorted_row_of_slot, latent_sorted);
    LMOE_CU_LAUNCH("scatter_rows");
  } else if (c->latent_size > 0) {
    // z = x W_down^T once per token, each row written to its K sorted rows.
    EpiScatter epi{latent_sorted, W, sorted_row_of_slot, K};
    LMOE_TRY(gemm_nt(x, d, static_cast<const bf16*>(w->latent_down), d, int(T), W, d, epi, s));
  } else {
    gather_rows_kernel<<<unsigned(slots), 256, 0, s>>>(x, slots, K, d, sorted_row_of_slot, latent_sorted);
    LMOE_CU_LAUNCH("gather_rows");
  }
  return LMOE_OK;
}

// ================================================================ experts
// SIMT fallback: row tiles of kBM rows never straddle experts. tile_off[e] = sum over e' < e of
// ceil(rows(e') / kBM); block y = global tile index.
__global__ void __launch_bounds__(kScanThreads)
tile_offsets_kernel(const int32_t* __restrict__ offsets, int N, int32_t* __restrict__ tile_off) {
  __shared__ int warp_sums[kScanThreads / 32];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int t[2] = {0, 0};
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N) t[q] = (offsets[e + 1] - offsets[e] + kBM - 1) / kBM;
  }
  int mine = t[0] + t[1], incl = mine;
  for (int off = 1; off < 32; off <<= 1) {
    int v = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += v;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int v = warp_sums[lane], iv = v;
    for (int off = 1; off < 32; off <<= 1) {
      int u = __shfl_up_sync(0xffffffffu, iv, off);
      if (lane >= off) iv += u;
    }
    warp_sums[lane] = iv - v;
  }
  __syncthreads();
  int excl = warp_sums[warp] + incl - mine;
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N) {
      tile_off[e] = excl;
      excl += t[q];
      if (e == N - 1) tile_off[N] = excl;
    }
  }
}

template <class Epi>
__global__ void __launch_bounds__(kThreads)
grouped_simt_kernel(const int32_t* __restrict__ offsets, const int32_t* __restrict__ tile_off, int N,
                    const bf16* __restrict__ A, const bf16* __restrict__ B, int n, int k, Epi epi) {
  const int ti = blockIdx.x;
  if (ti >= tile_off[N]) return;
  int lo = 0, hi = N - 1;  // largest e with tile_off[e] <= ti
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (tile_off[mid] <= ti) lo = mid; else hi = mid - 1;
  }
  const int e = lo;
  const int m0 = offsets[e] + (ti - tile_off[e]) * kBM;
  gemm_tile(A, k, B + int64_t(e) * n * k, k, m0, offsets[e + 1], int(blockIdx.y) * kBN, n, k, epi);
}

template <class Epi>
static lmoe_status grouped_simt(const int32_t* offsets, const int32_t* tile_off, int N, int64_t rows,
                                const bf16* A, const bf16* B, int n, int k, const Epi& epi,
                                cudaStream_t s) {
  dim3 grid(unsigned((rows + kBM - 1) / kBM + N), unsigned((n + kBN - 1) / kBN));
  grouped_simt_kernel<Epi><<<grid, kThreads, 0, s>>>(offsets, tile_off, N, A, B, n, k, epi);
  LMOE_CU_LAUNCH("grouped_simt");
  return LMOE_OK;
}

// h = silu(g) * u, in place into g. count elements.
template <class T>
__global__ void swiglu_kernel(T* __restrict__ g, const T* __restrict__ u, int64_t count) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    g[i] = from_f<T>(silu(to_f(g[i])) * to_f(u[i]));
}
template <class T>
static lmoe_status swiglu(T* g, const T* u, int64_t count, cudaStream_t s) {
  if (count == 0) return LMOE_OK;
  int64_t b = (count + 255) / 256;
  swiglu_kernel<T><<<unsigned(b < 65536 ? b : 65536), 256, 0, s>>>(g, u, count);
  LMOE_CU_LAUNCH("swiglu");
  return LMOE_OK;
}

static int64_t experts_ws(const lmoe_config* c, int64_t T) {
  const int64_t rows = T * c->top_k;
  const int64_t m = c->expert_intermediate_size;
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  int64_t b = aup(rows * m * 2) * (swiglu ? 2 : 1);
  b += aup(int64_t(c->num_experts + 1) * 4);  // SIMT tile offsets
  const int sm = sm_count_or_default();
  size_t g1 = grouped_gemm_relu2_workspace_bytes(c->num_experts, sm);
  size_t g2 = grouped_gemm_identity_workspace_bytes(c->num_experts, sm);
  b += aup(int64_t(g1 > g2 ? g1 : g2));
  return b;
}

// Can the CUTLASS sm90 kernels run here with these shapes/pointers?
static bool use_cutlass(const lmoe_config* c, const lmoe_cuda_weights* w, const void* a,
                        const void* o, const void* h) {
  if (g_experts_backend.load() == LMOE_CUDA_EXPERTS_SIMT) return false;
  const int W = expert_width(c), m = c->expert_intermediate_size;
  if (W % 8 || m % 8) return false;
  if (!aligned16(a) || !aligned16(o) || !aligned16(h) || !aligned16(w->expert_up) ||
      !aligned16(w->expert_down) || (w->expert_gate && !aligned16(w->expert_gate)))
    return false;
  return device_is_sm90();
}

static lmoe_status experts_impl(const lmoe_config* c, const lmoe_cuda_weights* w, int64_t T,
                                const int32_t* offsets, const bf16* latent_sorted, bf16* out,
                                void* ws, int64_t ws_bytes, cudaStream_t s) {
  const int64_t rows = T * c->top_k;
  if (rows == 0) return LMOE_OK;
  const int N = c->num_experts, W = expert_width(c), m = c->expert_intermediate_size;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  Carver cv{static_cast<char*>(ws), ws_bytes};
  bf16* h = cv.take<bf16>(rows * m);
  bf16* u = swiglu_act ? cv.take<bf16>(rows * m) : nullptr;
  int32_t* tile_off = cv.take<int32_t>(N + 1);
  void* gws = cv.base + cv.used;
  const int64_t gws_bytes = ws_bytes - cv.used;
  const bf16* up = static_cast<const bf16*>(w->expert_up);
  const bf16* gate = static_cast<const bf16*>(w->expert_gate);
  const bf16* down = static_cast<const bf16*>(w->expert_down);

  if (use_cutlass(c, w, latent_sorted, out, h)) {
    int sm = 0, dev = 0;
    LMOE_TRY(current_sm_count(&sm, &dev));
    GroupedGemmArgs a{};
    a.num_groups = N;
    a.offsets = offsets;
    a.sm_count = sm;
    a.device = dev;
    a.workspace = gws;
    a.workspace_bytes = size_t(gws_bytes);
    a.stream = s;
    const bool wide = wide_tiles(rows / N, kWideMinRowsPerExpert);
    a.tile = wide ? GG_TILE_128x256 : GG_TILE_128x128;
    // FC1
    a.A = latent_sorted;
    a.n = m;
    a.k = W;
    if (!swiglu_act) {
      a.B = up;
      a.D = h;
      a.tile = wide ? fc1_wide_tile() : GG_TILE_128x128;
      LMOE_TRY(grouped_gemm_relu2(a));
      a.tile = wide ? GG_TILE_128x256 : GG_TILE_128x128;
    } else {
      a.B = gate;
      a.D = h;
      LMOE_TRY(grouped_gemm_identity(a));
      a.B = up;
      a.D = u;
      LMOE_TRY(grouped_gemm_identity(a));
      LMOE_TRY(swiglu(h, u, rows * m, s));
    }
    // FC2
    a.A = h;
    a.B = down;
    a.D = out;
    a.n = W;
    a.k = m;
    LMOE_TRY(grouped_gemm_identity(a));
    return LMOE_OK;
  }

  tile_offsets_kernel<<<1, kScanThreads, 0, s>>>(offsets, N, tile_off);
  LMOE_CU_LAUNCH("tile_offsets");
  if (!swiglu_act) {
    LMOE_TRY(grouped_simt(offsets, tile_off, N, rows, latent_sorted, up, m, W,
                          EpiStore<bf16, ACT_RELU2>{h, m}, s));
  } else {
    LMOE_TRY(grouped_simt(offsets, tile_off, N, rows, latent_sorted, gate, m, W,
                          EpiStore<bf16, ACT_NONE>{h, m}, s));
    LMOE_TRY(grouped_simt(offsets, tile_off, N, rows, latent_sorted, up, m, W,
                          EpiStore<bf16, ACT_NONE>{u, m}, s));
    LMOE_TRY(swiglu(h, u, rows * m, s));
  }
  LMOE_TRY(grouped_simt(offsets, tile_off, N, rows, h, down, W, m, EpiStore<bf16, ACT_NONE>{out, W}, s));
  return LMOE_OK;
}

// ================================================================ combine
// acc[t, c] = sum_k wts[t,k] * y[row(t,k), c], k in order 0..K-1, f32.
template <class OutT>
__global__ void weighted_sum_kernel(const bf16* __restrict__ y, const float* __restrict__ wts,
                                    const int32_t* __restrict__ sorted_row_of_slot, int K, int W,
                                    OutT* __restrict__ acc) {
  const int64_t t = blockIdx.x;
  for (int c = blockIdx.y * blockDim.x + threadIdx.x; c < W; c += gridDim.y * blockDim.x) {
    float a = 0.f;
    for (int k = 0; k < K; ++k) {
      int64_t r = sorted_row_of_slot[t * K + k];
      a = fmaf(wts[t * K + k], __bfloat162float(y[r * W + c]), a);
    }
    acc[t * W + c] = from_f<OutT>(a);
  }
}

static int64_t combine_ws(const lmoe_config* c, int64_t T) {
  const int64_t W = expert_width(c), d = c->hidden_size, ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  int64_t b = aup(T * W * 4);                    // acc
  if (latent && shared) b += aup(T * d * 4);     // routed
  if (shared) b += aup(T * ms * 4) * (swiglu_act ? 2 : 1);
  if (T >= kDenseTcMinT && (latent || shared)) {  // tensor-core layout (combine_tc)
    int64_t t = aup(T * W * 4) + aup(T * d * 2) + dense_tc_ws();
    if (shared) t += aup(T * ms * 2) * (swiglu_act ? 2 : 1) + aup(T * d * 2);
    if (t > b) b = t;
  }
  return b;
}

// Combine for T >= kDenseTcMinT with the projections on the tensor cores. acc (f32 for the
// standard MoE, bf16 as the latent GEMM input), routed / shared out bf16, out = bf16(sum).
static lmoe_status combine_tc(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                              int64_t T, const float* wts, const int32_t* sorted_row_of_slot,
                              const bf16* y, void* ws, bf16* out, cudaStream_t s) {
  const int K = c->top_k, W = expert_width(c), d = c->hidden_size;
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  Carver cv{static_cast<char*>(ws), combine_ws(c, T)};
  void* accp = cv.take<float>(T * W);
  bf16* routed = cv.take<bf16>(T * d);
  DenseTc tc;
  LMOE_TRY(dense_tc_setup(tc, cv.take<char>(dense_tc_ws()), T, s));
  const int threads = 256;
  const int ytiles = (W + threads - 1) / threads;
  dim3 grid(unsigned(T), unsigned(ytiles < 16 ? ytiles : 16));
  if (latent) {
    bf16* accb = static_cast<bf16*>(accp);
    weighted_sum_kernel<bf16><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, accb);
    LMOE_CU_LAUNCH("weighted_sum");
    LMOE_TRY(dense_tc_gemm(tc, false, accb, static_cast<const bf16*>(w->latent_up),
                           shared ? routed : out, d, W, s));
    if (!shared) return LMOE_OK;
  } else {
    weighted_sum_kernel<float><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W,
                                                         static_cast<float*>(accp));
    LMOE_CU_LAUNCH("weighted_sum");
  }
  bf16* sh = cv.take<bf16>(T * ms);
  bf16* shu = swiglu_act ? cv.take<bf16>(T * ms) : nullptr;
  bf16* so = cv.take<bf16>(T * d);
  if (!swiglu_act) {
    LMOE_TRY(dense_tc_gemm(tc, true, x, static_cast<const bf16*>(w->shared_up), sh, ms, d, s));
  } else {
    LMOE_TRY(dense_tc_gemm(tc, false, x, static_cast<const bf16*>(w->shared_gate), sh, ms, d, s));
    LMOE_TRY(dense_tc_gemm(tc, false, x, static_cast<const bf16*>(w->shared_up), shu, ms, d, s));
    LMOE_TRY(swiglu(sh, shu, T * ms, s));
  }
  LMOE_TRY(dense_tc_gemm(tc, false, sh, static_cast<const bf16*>(w->shared_down), so, d, ms, s));
  const int64_t count = T * d;
  const int64_t blocks = (count + 255) / 256;
  const unsigned nb = unsigned(blocks < 65536 ? blocks : 65536);
  if (latent)
    add_out_kernel<bf16><<<nb, 256, 0, s>>>(routed, so, count, out);
  else
    add_out_kernel<float><<<nb, 256, 0, s>>>(static_cast<const float*>(accp), so, count, out);
  LMOE_CU_LAUNCH("add_out");
  return LMOE_OK;
}

static lmoe_status combine_impl(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                int64_t T, const float* wts, const int32_t* sorted_row_of_slot,
                                const bf16* y, void* ws, bf16* out, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int K = c->top_k, W = expert_width(c), d = c->hidden_size;
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  if ((latent || shared) &&
      dense_tc_ok(T, {x, out, latent ? w->latent_up : x, shared ? w->shared_up : x,
                      shared ? w->shared_down : x, (shared && swiglu_act) ? w->shared_gate : x},
                  {int64_t(d), int64_t(W), int64_t(ms)}))
    return combine_tc(c, w, x, T, wts, sorted_row_of_slot, y, ws, out, s);
  Carver cv{static_cast<char*>(ws), combine_ws(c, T)};
  float* acc = cv.take<float>(T * W);
  float* routed = (latent && shared) ? cv.take<float>(T * d) : nullptr;
  float* sh = shared ? cv.take<float>(T * ms) : nullptr;
  float* shu = (shared && swiglu_act) ? cv.take<float>(T * ms) : nullptr;

  const int threads = 256;
  const int ytiles = (W + threads - 1) / threads;
  dim3 grid(unsigned(T), unsigned(ytiles < 16 ? ytiles : 16));
  if (!latent && !shared) {
    weighted_sum_kernel<bf16><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, out);
    LMOE_CU_LAUNCH("weighted_sum");
    return LMOE_OK;
  }
  weighted_sum_kernel<float><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, acc);
  LMOE_CU_LAUNCH("weighted_sum");
  const bf16* Wup = static_cast<const bf16*>(w->latent_up);
  if (!shared) {  // latent, no shared: out = acc W_up^T
    return gemm_nt(acc, W, Wup, W, int(T), d, W, EpiStore<bf16, ACT_NONE>{out, d}, s);
  }
  if (latent) {
    LMOE_TRY(gemm_nt(acc, W, Wup, W, int(T), d, W, EpiStore<float, ACT_NONE>{routed, d}, s));
  } else {
    routed = acc;  // [T, d]
  }
  // shared expert
  const bf16* su = static_cast<const bf16*>(w->shared_up);
  if (!swiglu_act) {
    LMOE_TRY(gemm_nt(x, d, su, d, int(T), ms, d, EpiStore<float, ACT_RELU2>{sh, ms}, s));
  } else {
    LMOE_TRY(gemm_nt(x, d, static_cast<const bf16*>(w->shared_gate), d, int(T), ms, d,
                     EpiStore<float, ACT_NONE>{sh, ms}, s));
    LMOE_TRY(gemm_nt(x, d, su, d, int(T), ms, d, EpiStore<float, ACT_NONE>{shu, ms}, s));
    LMOE_TRY(swiglu(sh, shu, T * ms, s));
  }
  return gemm_nt(sh, ms, static_cast<const bf16*>(w->shared_down), ms, int(T), d, ms,
                 EpiAdd<bf16>{out, d, routed, d}, s);
}

// ================================================================ forward
struct FwdLayout {
  int64_t offsets, sorted_row, latent_sorted, expert_out, stage, total;
};
static FwdLayout fwd_layout(const lmoe_config* c, int64_t T) {
  const int64_t rows = T * c->top_k, W = expert_width(c);
  FwdLayout L;
  int64_t o = 0;
  L.offsets = o; o += aup(int64_t(c->num_experts + 1) * 4);
  L.sorted_row = o; o += aup(rows * 4);
  L.latent_sorted = o; o += aup(rows * W * 2);
  L.expert_out = o; o += aup(rows * W * 2);
  L.stage = o;
  int64_t st = router_ws(c, T);
  int64_t v = dispatch_ws(c, T); if (v > st) st = v;
  v = experts_ws(c, T); if (v > st) st = v;
  v = combine_ws(c, T); if (v > st) st = v;
  o += aup(st);
  L.total = o;
  return L;
}

// Decode (GEMV weight-stream) path or the sorted grouped-GEMM path for this forward?
static bool use_decode(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T) {
  const int mode = g_decode_mode.load();
  if (mode == LMOE_CUDA_DECODE_OFF || T <= 0) return false;
  if (!decode_supported(c, w, x, T)) return false;
  if (mode != LMOE_CUDA_DECODE_AUTO) return true;  // ON, ON_FUSED, ON_STAGED
  return T <= g_decode_max_tokens.load();
}

}  // namespace lmoe_cuda

// ================================================================ C ABI
using namespace lmoe_cuda;

#define API_BEGIN clear_error()
#define STREAM(s) static_cast<cudaStream_t>(s)

LMOE_CUDA_API lmoe_status lmoe_cuda_validate(const lmoe_config* cfg, const lmoe_cuda_weights* w) {
  API_BEGIN;
  return validate(cfg, w, NEED_ALL);
}

LMOE_CUDA_API lmoe_status lmoe_cuda_set_experts_backend(int32_t backend) {
  API_BEGIN;
  if (backend < LMOE_CUDA_EXPERTS_AUTO || backend > LMOE_CUDA_EXPERTS_CUTLASS_WIDE)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "experts backend %d unknown", backend);
  g_experts_backend.store(backend);
  return LMOE_OK;
}
LMOE_CUDA_API int32_t lmoe_cuda_experts_backend(void) { return g_experts_backend.load(); }

LMOE_CUDA_API lmoe_status lmoe_cuda_set_decode_policy(int32_t mode, int32_t auto_max_tokens) {
  API_BEGIN;
  if (mode < LMOE_CUDA_DECODE_AUTO || mode > LMOE_CUDA_DECODE_ON_STAGED)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "decode mode %d unknown", mode);
  if (auto_max_tokens < 0)
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "auto_max_tokens %d < 0", auto_max_tokens);
  g_decode_mode.store(mode);
  g_decode_max_tokens.store(auto_max_tokens);
  return LMOE_OK;
}
LMOE_CUDA_API int32_t lmoe_cuda_decode_mode(void) { return g_decode_mode.load(); }
LMOE_CUDA_API int32_t lmoe_cuda_decode_max_tokens(void) { return g_decode_max_tokens.load(); }

LMOE_CUDA_API int32_t lmoe_cuda_forward_path(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                             const void* x, int64_t num_tokens) {
  API_BEGIN;
  if (validate(cfg, w, NEED_ALL) != LMOE_OK) return -1;
  if (validate_tokens(cfg, num_tokens) != LMOE_OK) return -1;
  return use_decode(cfg, w, x, num_tokens) ? LMOE_CUDA_PATH_DECODE : LMOE_CUDA_PATH_SORTED;
}

#define WS_QUERY(fn)                                             \
  API_BEGIN;                                                     \
  if (validate_cfg(cfg) != LMOE_OK || num_tokens < 0) return -1; \
  if (validate_tokens(cfg, num_tokens) != LMOE_OK) return -1;    \
  return fn(cfg, num_tokens)

LMOE_CUDA_API int64_t lmoe_cuda_router_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(router_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_dispatch_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(dispatch_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_experts_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(experts_ws);
}
LMOE_CUDA_API int64_t lmoe_cuda_combine_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(combine_ws);
}
// The forward workspace covers both paths (the decode mode may change between query and call).
static int64_t fwd_total(const lmoe_config* c, int64_t T) {
  const int64_t a = fwd_layout(c, T).total, b = decode_workspace_bytes(c, T);
  return a > b ? a : b;
}
LMOE_CUDA_API int64_t lmoe_cuda_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens) {
  WS_QUERY(fwd_total);
}

LMOE_CUDA_API lmoe_status lmoe_cuda_router_topk(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                                const void* x, int64_t T, int32_t* topk_ids,
                                                float* topk_weights, void* ws, int64_t ws_bytes,
                                                void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_ROUTER));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(check_ws(ws, ws_bytes, router_ws(cfg, T), "router_topk"));
  return router_impl(cfg, w, static_cast<const bf16*>(x), T, topk_ids, topk_weights, ws, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_dispatch(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                             const void* x, int64_t T, const int32_t* topk_ids,
                                             int32_t* expert_offsets, int32_t* sorted_row_of_slot,
                                             void* latent_sorted, void* ws, int64_t ws_bytes,
                                             void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_DISPATCH));
  LMOE_TRY(validate_tokens(cfg, T));
  LMOE_TRY(need_ptr(expert_offsets, "expert_offsets"));
  if (T > 0) {
    LMOE_TRY(need_ptr(x, "x"));
    LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
    LMOE_TRY(need_ptr(sorted_row_of_slot, "sorted_row_of_slot"));
    LMOE_TRY(need_ptr(latent_sorted, "latent_sorted"));
  }
  LMOE_TRY(check_ws(ws, ws_bytes, dispatch_ws(cfg, T), "dispatch"));
  return dispatch_impl(cfg, w, static_cast<const bf16*>(x), T, topk_ids, expert_offsets,
                       sorted_row_of_slot, static_cast<bf16*>(latent_sorted), ws, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_experts(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            int64_t T, const int32_t* expert_offsets,
                                            const void* latent_sorted, void* expert_out_sorted,
                                            void* ws, int64_t ws_bytes, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_EXPERTS));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(expert_offsets, "expert_offsets"));
  LMOE_TRY(need_ptr(latent_sorted, "latent_sorted"));
  LMOE_TRY(need_ptr(expert_out_sorted, "expert_out_sorted"));
  LMOE_TRY(check_ws(ws, ws_bytes, experts_ws(cfg, T), "experts"));
  return experts_impl(cfg, w, T, expert_offsets, static_cast<const bf16*>(latent_sorted),
                      static_cast<bf16*>(expert_out_sorted), ws, ws_bytes, STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_combine(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            const void* x, int64_t T, const float* topk_weights,
                                            const int32_t* sorted_row_of_slot,
                                            const void* expert_out_sorted, void* ws,
                                            int64_t ws_bytes, void* out, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_COMBINE));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(need_ptr(sorted_row_of_slot, "sorted_row_of_slot"));
  LMOE_TRY(need_ptr(expert_out_sorted, "expert_out_sorted"));
  LMOE_TRY(need_ptr(out, "out"));
  LMOE_TRY(check_ws(ws, ws_bytes, combine_ws(cfg, T), "combine"));
  return combine_impl(cfg, w, static_cast<const bf16*>(x), T, topk_weights, sorted_row_of_slot,
                      static_cast<const bf16*>(expert_out_sorted), ws, static_cast<bf16*>(out),
                      STREAM(stream));
}

LMOE_CUDA_API lmoe_status lmoe_cuda_forward(const lmoe_config* cfg, const lmoe_cuda_weights* w,
                                            const void* x, int64_t T, int32_t* topk_ids,
                                            float* topk_weights, void* ws, int64_t ws_bytes,
                                            void* out, void* stream) {
  API_BEGIN;
  LMOE_TRY(validate(cfg, w, NEED_ALL));
  LMOE_TRY(validate_tokens(cfg, T));
  if (T == 0) return LMOE_OK;
  LMOE_TRY(need_ptr(x, "x"));
  LMOE_TRY(need_ptr(topk_ids, "topk_ids"));
  LMOE_TRY(need_ptr(topk_weights, "topk_weights"));
  LMOE_TRY(need_ptr(out, "out"));
  const FwdLayout L = fwd_layout(cfg, T);
  LMOE_TRY(check_ws(ws, ws_bytes, fwd_total(cfg, T), "forward"));
  cudaStream_t s = STREAM(stream);
  if (use_decode(cfg, w, x, T))
    return decode_forward(cfg, w, static_cast<const bf16*>(x), T, topk_ids, topk_weights, ws,
                          ws_bytes, static_cast<bf16*>(out), s,
                          g_decode_mode.load() == LMOE_CUDA_DECODE_ON_FUSED    ? DECODE_FUSED
                          : g_decode_mode.load() == LMOE_CUDA_DECODE_ON_STAGED ? DECODE_STAGED
                                                                               : DECODE_DEFAULT);
  char* b = static_cast<char*>(ws);
  int32_t* offsets = reinterpret_cast<int32_t*>(b + L.offsets);
  int32_t* sorted_row = reinterpret_cast<int32_t*>(b + L.sorted_row);
  bf16* latent_sorted = reinterpret_cast<bf16*>(b + L.latent_sorted);
  bf16* expert_out = reinterpret_cast<bf16*>(b + L.expert_out);
  void* stage = b + L.stage;
  const int64_t stage_bytes = ws_bytes - L.stage;
  const bf16* xb = static_cast<const bf16*>(x);
  LMOE_TRY(router_impl(cfg, w, xb, T, topk_ids, topk_weights, stage, s));
  LMOE_TRY(dispatch_impl(cfg, w, xb, T, topk_ids, offsets, sorted_row, latent_sorted, stage, s));
  LMOE_TRY(experts_impl(cfg, w, T, offsets, latent_sorted, expert_out, stage, stage_bytes, s));
  LMOE_TRY(combine_impl(cfg, w, xb, T, topk_weights, sorted_row, expert_out, stage,
                        static_cast<bf16*>(out), s));
  return LMOE_OK;
}
