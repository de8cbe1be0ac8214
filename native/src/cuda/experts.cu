// experts.cu - the grouped expert GEMMs: CUTLASS sm90 (grouped_gemm_api.cuh; relu2 fused into
// FC1's epilogue, tile per token bucket) where shapes, pointers and the device allow it, else the
// SIMT fallback; SwiGLU as two identity GEMMs and an elementwise kernel. FP8 / NVFP4 experts and
// SiLU: experts_general (mat_gemm for quantized matrices, qgemm.cu).
#include <algorithm>

#include "layer.cuh"
#include "simt.cuh"

namespace lmoe_cuda {

// SIMT fallback: row tiles of kBM rows never straddle experts. tile_off[e] = sum over e' < e of
// ceil(rows(e') / kBM); block y = global tile index.
__global__ void __launch_bounds__(kScanThreads)
tile_offsets_kernel(const int32_t* __restrict__ offsets, int N, int32_t* __restrict__ tile_off) {
  __shared__ int warp_sums[kScanThreads / 32];
  const int tid = threadIdx.x;
  int t[2] = {0, 0};
  for (int q = 0; q < 2; ++q) {
    int e = 2 * tid + q;
    if (e < N) t[q] = (offsets[e + 1] - offsets[e] + kBM - 1) / kBM;
  }
  int excl = block_exclusive_scan(t[0] + t[1], warp_sums);
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

// The last part of the experts' workspace: the CUTLASS workspace (bf16 kernels), or the mat_gemm
// scratch (FP8 / NVFP4 experts; it includes the FP8 CUTLASS workspace). Both flows carve h (and
// u) and the SIMT tile offsets first.
static int64_t experts_tail_ws(const lmoe_config* c, int64_t T) {
  const int sm = sm_count_or_default();
  size_t g1 = grouped_gemm_relu2_workspace_bytes(c->num_experts, sm);
  size_t g2 = grouped_gemm_identity_workspace_bytes(c->num_experts, sm);
  const int64_t kmax = std::max<int64_t>(expert_width(c), c->expert_intermediate_size);
  return std::max(aup(int64_t(g1 > g2 ? g1 : g2)), mat_gemm_ws(c->num_experts, T * c->top_k, kmax));
}

int64_t experts_ws(const lmoe_config* c, int64_t T) {
  const int64_t rows = T * c->top_k;
  const int64_t m = c->expert_intermediate_size;
  const bool swiglu = c->activation == LMOE_ACT_SWIGLU;
  int64_t b = aup(rows * m * 2) * (swiglu ? 2 : 1);
  b += aup(int64_t(c->num_experts + 1) * 4);  // SIMT tile offsets
  b += experts_tail_ws(c, T);
  return b;
}

// Can the CUTLASS sm90 kernels run here with these shapes/pointers? (BF16 expert matrices; a
// quantized one is not read by them.)
static bool use_cutlass(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                        const void* a, const void* o, const void* h) {
  if (tn.experts == LMOE_CUDA_EXPERTS_SIMT) return false;
  const int W = expert_width(c), m = c->expert_intermediate_size;
  if (W % 8 || m % 8) return false;
  if (!aligned16(a) || !aligned16(o) || !aligned16(h) || !aligned16(w->expert_up.data) ||
      !aligned16(w->expert_down.data) || (w->expert_gate.data && !aligned16(w->expert_gate.data)))
    return false;
  return device_is_sm90();
}

// Experts with FP8 / NVFP4 matrices or SiLU: each GEMM on its own kernel (mat_gemm for a quantized
// matrix; CUTLASS or SIMT for a BF16 one, SiLU as an identity GEMM and an elementwise pass on the
// CUTLASS path). Workspace as experts_ws: h [rows, m], u (SwiGLU), tile offsets, the tail.
static lmoe_status experts_general(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                                   int64_t T, const int32_t* offsets, const bf16* latent_sorted,
                                   bf16* out, void* ws, int64_t ws_bytes, cudaStream_t s) {
  const int64_t rows = T * c->top_k;
  const int N = c->num_experts, W = expert_width(c), m = c->expert_intermediate_size;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  const int act = c->activation == LMOE_ACT_SILU ? ACT_SILU : swiglu_act ? ACT_NONE : ACT_RELU2;
  Carver cv{static_cast<char*>(ws), ws_bytes};
  bf16* h = cv.take<bf16>(rows * m);
  bf16* u = swiglu_act ? cv.take<bf16>(rows * m) : nullptr;
  int32_t* tile_off = cv.take<int32_t>(N + 1);
  void* tail = cv.base + cv.used;
  const int64_t tail_bytes = ws_bytes - cv.used;
  const bool cut = use_cutlass(tn, c, w, latent_sorted, out, h);
  const bool wide = wide_tiles(tn, rows / N, kWideMinRowsPerExpert);
  bool tiles_done = false;
  // D [rows, n] = act(A [rows, k] . B_e^T) per expert
  auto gemm = [&](const lmoe_cuda_matrix& B, const bf16* A, int n, int k, bf16* D, int a) -> lmoe_status {
    if (is_quantized(B)) {
      MatGemm g{};
      g.B = &B;
      g.G = N;
      g.offsets = offsets;
      g.rows = rows;
      g.A = A;
      g.k = k;
      g.D = D;
      g.n = n;
      g.act = a;
      return mat_gemm(tn, g, tail, tail_bytes, s);
    }
    if (cut) {
      int sm = 0, dev = 0;
      LMOE_TRY(current_sm_count(&sm, &dev));
      GroupedGemmArgs ga{};
      ga.num_groups = N;
      ga.offsets = offsets;
      ga.A = A;
      ga.B = B.data;
      ga.D = D;
      ga.n = n;
      ga.k = k;
      ga.sm_count = sm;
      ga.device = dev;
      ga.workspace = tail;
      ga.workspace_bytes = size_t(tail_bytes);
      ga.stream = s;
      if (a == ACT_RELU2) {
        ga.tile = wide ? fc1_wide_tile(tn) : GG_TILE_128x128;
        return grouped_gemm_relu2(ga);
      }
      ga.tile = wide ? GG_TILE_128x256 : GG_TILE_128x128;
      LMOE_TRY(grouped_gemm_identity(ga));
      return a == ACT_SILU ? silu_inplace(D, rows * n, s) : LMOE_OK;
    }
    if (!tiles_done) {
      tile_offsets_kernel<<<1, kScanThreads, 0, s>>>(offsets, N, tile_off);
      LMOE_CU_LAUNCH("tile_offsets");
      tiles_done = true;
    }
    const bf16* b = bf16_data(B);
    switch (a) {
      case ACT_RELU2: return grouped_simt(offsets, tile_off, N, rows, A, b, n, k, EpiStore<bf16, ACT_RELU2>{D, n}, s);
      case ACT_SILU: return grouped_simt(offsets, tile_off, N, rows, A, b, n, k, EpiStore<bf16, ACT_SILU>{D, n}, s);
      default: return grouped_simt(offsets, tile_off, N, rows, A, b, n, k, EpiStore<bf16, ACT_NONE>{D, n}, s);
    }
  };
  if (swiglu_act) {
    LMOE_TRY(gemm(w->expert_gate, latent_sorted, m, W, h, ACT_NONE));
    LMOE_TRY(gemm(w->expert_up, latent_sorted, m, W, u, ACT_NONE));
    LMOE_TRY(swiglu(h, u, rows * m, s));
  } else {
    LMOE_TRY(gemm(w->expert_up, latent_sorted, m, W, h, act));
  }
  return gemm(w->expert_down, h, W, m, out, ACT_NONE);
}

lmoe_status experts_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         int64_t T, const int32_t* offsets, const bf16* latent_sorted, bf16* out,
                         void* ws, int64_t ws_bytes, cudaStream_t s) {
  const int64_t rows = T * c->top_k;
  if (rows == 0) return LMOE_OK;
  if (!all_bf16(w) || c->activation == LMOE_ACT_SILU)
    return experts_general(tn, c, w, T, offsets, latent_sorted, out, ws, ws_bytes, s);
  const int N = c->num_experts, W = expert_width(c), m = c->expert_intermediate_size;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  Carver cv{static_cast<char*>(ws), ws_bytes};
  bf16* h = cv.take<bf16>(rows * m);
  bf16* u = swiglu_act ? cv.take<bf16>(rows * m) : nullptr;
  int32_t* tile_off = cv.take<int32_t>(N + 1);
  void* gws = cv.base + cv.used;
  const int64_t gws_bytes = ws_bytes - cv.used;
  const bf16* up = bf16_data(w->expert_up);
  const bf16* gate = bf16_data(w->expert_gate);
  const bf16* down = bf16_data(w->expert_down);

  if (use_cutlass(tn, c, w, latent_sorted, out, h)) {
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
    const bool wide = wide_tiles(tn, rows / N, kWideMinRowsPerExpert);
    a.tile = wide ? GG_TILE_128x256 : GG_TILE_128x128;
    // FC1
    a.A = latent_sorted;
    a.n = m;
    a.k = W;
    if (!swiglu_act) {
      a.B = up;
      a.D = h;
      a.tile = wide ? fc1_wide_tile(tn) : GG_TILE_128x128;
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

}  // namespace lmoe_cuda
