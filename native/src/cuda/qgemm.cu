// qgemm.cu - the sorted path's products with FP8 / NVFP4 weights (layer.cuh: mat_gemm).
//   weight-only: qgemm_kernel, a tensor-core grouped GEMM whose weights are dequantized in
//                registers (decode/quant.cuh), 16 weight rows x 32 rows of A per block
//   W8A8:        A quantized to e4m3 with the group's input scale (kW8A8ChunkRows rows at a time),
//                then CUTLASS's FP8 grouped GEMM (grouped_gemm_fp8_*.cu, alpha = input scale x
//                weight scale), or qgemm_kernel on the e4m3 rows where CUTLASS does not apply
// Deterministic: every output element is one block's sum in a fixed order.
#include <algorithm>

#include "decode/quant.cuh"
#include "layer.cuh"

namespace lmoe_cuda {
namespace {

constexpr int kQTok = 32;  // rows of A per block: four 8-token mma tiles (NT = 4)

// chunk_off[g] = sum over g' < g of ceil(rows(g') / kQTok); chunk_off[G] = the total (one block).
__global__ void __launch_bounds__(kScanThreads)
q_chunk_offsets_kernel(const int32_t* __restrict__ offsets, int G, int32_t* __restrict__ chunk_off) {
  __shared__ int warp_sums[kScanThreads / 32];
  const int tid = threadIdx.x;
  int t[2] = {0, 0};
  for (int q = 0; q < 2; ++q) {
    const int g = 2 * tid + q;
    if (g < G) t[q] = (offsets[g + 1] - offsets[g] + kQTok - 1) / kQTok;
  }
  int excl = block_exclusive_scan(t[0] + t[1], warp_sums);
  for (int q = 0; q < 2; ++q) {
    const int g = 2 * tid + q;
    if (g < G) {
      chunk_off[g] = excl;
      excl += t[q];
      if (g == G - 1) chunk_off[G] = excl;
    }
  }
}

struct QGemmParams {
  QMat B;       // scale: the weight scale, or (W8A8 fallback) input x weight scale
  int n, k, G, act;
  const void* A;  // [rows, k] bf16, or e4m3 (qgemm_kernel<.., true>)
  const int32_t* offsets;
  const int32_t* chunk_off;
  bf16* D;  // [rows, n]
};

__device__ __forceinline__ float q_act(int act, float v) {
  return act == ACT_RELU2 ? relu2f(v) : act == ACT_SILU ? siluf(v) : v;
}

// Block (chunk of 32 rows of one group, 16 weight rows): blockIdx.x the chunk (grid: an upper
// bound, the extra blocks leave), blockIdx.y the weight row block.
template <int FMT, bool AFP8>
__global__ void __launch_bounds__(kThreads, 2)
qgemm_kernel(const __grid_constant__ QGemmParams p) {
  __shared__ RedBuf<4> red;
  const int ci = blockIdx.x;
  if (ci >= p.chunk_off[p.G]) return;  // the whole block
  int lo = 0, hi = p.G - 1;            // largest g with chunk_off[g] <= ci (a non-empty group)
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.chunk_off[mid] <= ci) lo = mid; else hi = mid - 1;
  }
  const int g = lo;
  const int r0 = p.offsets[g] + (ci - p.chunk_off[g]) * kQTok;
  const int ntok = min(kQTok, p.offsets[g + 1] - r0);
  const int row0 = blockIdx.y * 16, rows_valid = min(16, p.n - row0);
  int kb0, kb1;
  warp_kblocks(p.k, kb0, kb1);
  float acc[4][4] = {};
  const int64_t ldw = q_row_bytes(FMT, p.k);
  const char* a = static_cast<const char*>(p.A) + int64_t(r0) * p.k * (AFP8 ? 1 : 2);
  warp_rows16_q<4, FMT, 2, AFP8>(p.B.data + g * p.B.stride + row0 * ldw, ldw,
                                 p.B.bscale + g * p.B.bs_stride + row0 * q_bs_row_bytes(FMT, p.k),
                                 rows_valid, a, p.k, ntok, p.k, kb0, kb1, acc);
  const float sc = __ldg(p.B.scale + g);
  block_reduce<4>(acc, red, [&](int row, int tok, float v) {
    if (row < rows_valid && tok < ntok)
      p.D[int64_t(r0 + tok) * p.n + row0 + row] = __float2bfloat16_rn(q_act(p.act, v * sc));
  });
}

// e4m3(sat(a / s)) for two bf16 (RNE, saturated to +-448, NaN kept): the checkpoint's static
// activation quantization.
__device__ __forceinline__ uint32_t quant2(uint32_t bf2, float s) {
  const float2 f = make_float2(__fdiv_rn(__uint_as_float(bf2 << 16), s),
                               __fdiv_rn(__uint_as_float(bf2 & 0xffff0000u), s));
  return uint32_t(__nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3));
}
// A8[r - r0, :] = e4m3(sat(A[r, :] / input_scales[g(r)])) for r in [r0, r1), g(r) the group of
// row r; k % 8 == 0, rows 16-byte aligned.
__global__ void __launch_bounds__(128)
quantize_rows_kernel(const bf16* __restrict__ A, int k, int64_t r0, int64_t r1,
                     const int32_t* __restrict__ offsets, int G, const float* __restrict__ in_scales,
                     uint8_t* __restrict__ A8) {
  for (int64_t r = r0 + blockIdx.x; r < r1; r += gridDim.x) {
    int lo = 0, hi = G - 1;  // largest g with offsets[g] <= r
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (offsets[mid] <= r) lo = mid; else hi = mid - 1;
    }
    const float s = __ldg(in_scales + lo);
    const uint4* src = reinterpret_cast<const uint4*>(A + r * k);
    uint2* dst = reinterpret_cast<uint2*>(A8 + (r - r0) * k);
    for (int c = threadIdx.x; c < k / 8; c += blockDim.x) {
      const uint4 v = src[c];
      dst[c] = make_uint2(quant2(v.x, s) | (quant2(v.y, s) << 16), quant2(v.z, s) | (quant2(v.w, s) << 16));
    }
  }
}
__global__ void alpha_kernel(const float* __restrict__ in_scales, const float* __restrict__ scales,
                             int G, float* __restrict__ alpha) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g < G) alpha[g] = in_scales[g] * scales[g];
}
// out[g] = offsets[g] clipped to [r0, r1), minus r0: the groups of one W8A8 row chunk.
__global__ void clip_offsets_kernel(const int32_t* __restrict__ offsets, int G, int64_t r0,
                                    int64_t r1, int32_t* __restrict__ out) {
  for (int g = blockIdx.x * blockDim.x + threadIdx.x; g <= G; g += gridDim.x * blockDim.x) {
    const int64_t o = offsets[g];
    out[g] = int32_t((o < r0 ? r0 : o > r1 ? r1 : o) - r0);
  }
}
__global__ void silu_rows_kernel(bf16* __restrict__ h, int64_t count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    h[i] = __float2bfloat16_rn(siluf(__bfloat162float(h[i])));
}

QMat qmat_of(const lmoe_cuda_matrix& m, int64_t n, int64_t k) {
  QMat q{};
  q.data = static_cast<const uint8_t*>(m.data);
  q.bscale = m.block_scales;
  q.scale = m.scales;
  q.fmt = m.format;
  q.stride = n * q_row_bytes(m.format, k);
  q.bs_stride = n * q_bs_row_bytes(m.format, k);
  return q;
}

// qgemm_kernel over `rows` rows (host bound) of A with group offsets `offsets`.
lmoe_status launch_qgemm(const QMat& B, int G, int n, int k, int act, const void* A, bool a_fp8,
                         const int32_t* offsets, int32_t* chunk_off, int64_t rows, bf16* D,
                         cudaStream_t s) {
  q_chunk_offsets_kernel<<<1, kScanThreads, 0, s>>>(offsets, G, chunk_off);
  LMOE_CU_LAUNCH("qgemm chunk offsets");
  QGemmParams p{};
  p.B = B;
  p.n = n;
  p.k = k;
  p.G = G;
  p.act = act;
  p.A = A;
  p.offsets = offsets;
  p.chunk_off = chunk_off;
  p.D = D;
  const dim3 grid(unsigned((rows + kQTok - 1) / kQTok + G), unsigned((n + 15) / 16));
  if (a_fp8) {
    qgemm_kernel<WF_FP8, true><<<grid, kThreads, 0, s>>>(p);
  } else if (B.fmt == WF_FP8) {
    qgemm_kernel<WF_FP8, false><<<grid, kThreads, 0, s>>>(p);
  } else {
    qgemm_kernel<WF_NVFP4, false><<<grid, kThreads, 0, s>>>(p);
  }
  LMOE_CU_LAUNCH("qgemm");
  return LMOE_OK;
}

}  // namespace

int64_t mat_gemm_ws(int G, int64_t rows, int64_t k_max) {
  const int64_t chunk = std::min(rows, kW8A8ChunkRows);
  const size_t fp8 = grouped_gemm_fp8_workspace_bytes(G, sm_count_or_default());
  return 2 * aup(int64_t(G + 1) * 4) + aup(int64_t(G) * 4) + aup(chunk * k_max) + aup(int64_t(fp8));
}

lmoe_status mat_gemm(const Tuning& tn, const MatGemm& g, void* ws, int64_t ws_bytes, cudaStream_t s) {
  if (g.rows == 0) return LMOE_OK;
  if (!is_quantized(*g.B)) return set_error(LMOE_ERR_INTERNAL, "mat_gemm: format %d", g.B->format);
  Carver cv{static_cast<char*>(ws), ws_bytes};
  int32_t* chunk_off = cv.take<int32_t>(g.G + 1);
  int32_t* clip = cv.take<int32_t>(g.G + 1);
  float* alpha = cv.take<float>(g.G);
  const int64_t chunk = std::min(g.rows, kW8A8ChunkRows);
  uint8_t* a8 = cv.take<uint8_t>(chunk * g.k);
  if (!cv.ok()) return set_error(LMOE_ERR_INTERNAL, "mat_gemm: workspace %lld < %lld", (long long)ws_bytes,
                                 (long long)cv.used);
  void* gws = cv.base + cv.used;
  const int64_t gws_bytes = ws_bytes - cv.used;
  QMat B = qmat_of(*g.B, g.n, g.k);
  if (!is_w8a8(*g.B))
    return launch_qgemm(B, g.G, g.n, g.k, g.act, g.A, false, g.offsets, chunk_off, g.rows, g.D, s);

  // W8A8
  alpha_kernel<<<(g.G + 255) / 256, 256, 0, s>>>(g.B->input_scales, g.B->scales, g.G, alpha);
  LMOE_CU_LAUNCH("w8a8 alpha");
  B.scale = alpha;
  int sm = 0, dev = 0;
  LMOE_TRY(current_sm_count(&sm, &dev));
  const bool cut = tn.experts != LMOE_CUDA_EXPERTS_SIMT && aligned16(g.D) && device_is_sm90() &&
                   gws_bytes >= int64_t(grouped_gemm_fp8_workspace_bytes(g.G, sm));
  for (int64_t r0 = 0; r0 < g.rows; r0 += chunk) {
    const int64_t r1 = std::min(g.rows, r0 + chunk);
    clip_offsets_kernel<<<(g.G + 256) / 256, 256, 0, s>>>(g.offsets, g.G, r0, r1, clip);
    LMOE_CU_LAUNCH("w8a8 clip offsets");
    const int64_t qb = std::min<int64_t>(r1 - r0, 8192);
    quantize_rows_kernel<<<unsigned(qb), 128, 0, s>>>(g.A, g.k, r0, r1, g.offsets, g.G,
                                                      g.B->input_scales, a8);
    LMOE_CU_LAUNCH("w8a8 quantize");
    bf16* d = g.D + r0 * g.n;
    if (cut) {
      GroupedGemmArgs a{};
      a.num_groups = g.G;
      a.offsets = clip;
      a.A = a8;
      a.B = g.B->data;
      a.D = d;
      a.n = g.n;
      a.k = g.k;
      a.sm_count = sm;
      a.device = dev;
      a.workspace = gws;
      a.workspace_bytes = size_t(gws_bytes);
      a.stream = s;
      a.alpha = alpha;
      LMOE_TRY(g.act == ACT_RELU2 ? gg_fp8_relu2(a) : gg_fp8_identity(a));
      if (g.act == ACT_SILU) {  // identity GEMM, then SiLU (no fused FP8 SiLU kernel)
        const int64_t cnt = (r1 - r0) * g.n, b = std::min<int64_t>((cnt + 255) / 256, 65536);
        silu_rows_kernel<<<unsigned(b), 256, 0, s>>>(d, cnt);
        LMOE_CU_LAUNCH("w8a8 silu");
      }
    } else {
      LMOE_TRY(launch_qgemm(B, g.G, g.n, g.k, g.act, a8, true, clip, chunk_off, r1 - r0, d, s));
    }
  }
  return LMOE_OK;
}

}  // namespace lmoe_cuda
