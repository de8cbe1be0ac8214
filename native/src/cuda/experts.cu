// experts.cu - the grouped expert GEMMs: CUTLASS sm90 (grouped_gemm_api.cuh; relu2 fused into
// FC1's epilogue, tile per token bucket) where shapes, pointers and the device allow it, else the
// SIMT fallback; SwiGLU as two identity GEMMs and an elementwise kernel.
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

int64_t experts_ws(const lmoe_config* c, int64_t T) {
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
static bool use_cutlass(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                        const void* a, const void* o, const void* h) {
  if (tn.experts == LMOE_CUDA_EXPERTS_SIMT) return false;
  const int W = expert_width(c), m = c->expert_intermediate_size;
  if (W % 8 || m % 8) return false;
  if (!aligned16(a) || !aligned16(o) || !aligned16(h) || !aligned16(w->expert_up) ||
      !aligned16(w->expert_down) || (w->expert_gate && !aligned16(w->expert_gate)))
    return false;
  return device_is_sm90();
}

lmoe_status experts_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         int64_t T, const int32_t* offsets, const bf16* latent_sorted, bf16* out,
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
