// combine.cu - combine + up-projection + shared expert: the weighted sum over k of each token's
// expert rows (f32, k in order), the latent up-projection and the shared expert, on the tensor
// cores from T >= kDenseTcMinT (combine_tc), else on the SIMT kernels; FP8 / NVFP4 projections
// and SiLU on combine_general.
#include "layer.cuh"
#include "simt.cuh"

namespace lmoe_cuda {

// out = bf16(routed + so)
template <class RT>
__global__ void add_out_kernel(const RT* __restrict__ routed, const bf16* __restrict__ so, int64_t count,
                               bf16* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    out[i] = __float2bfloat16_rn(to_f(routed[i]) + __bfloat162float(so[i]));
}

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

int64_t combine_ws(const lmoe_config* c, int64_t T) {
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
  if (latent || shared) {  // combine_general: the same buffers, dense_proj's region, any T
    int64_t g = aup(T * W * 4) + aup(T * d * 2) + dense_proj_ws(c, T);
    if (shared) g += aup(T * ms * 2) * (swiglu_act ? 2 : 1) + aup(T * d * 2);
    if (g > b) b = g;
  }
  return b;
}

// Combine where a projection is FP8 / NVFP4 or the activation is SiLU: combine_tc's flow (bf16
// intermediates) with each projection on dense_proj (the dequantizing kernels, CUTLASS or SIMT).
static lmoe_status combine_general(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                                   const bf16* x, int64_t T, const float* wts,
                                   const int32_t* sorted_row_of_slot, const bf16* y, void* ws,
                                   bf16* out, cudaStream_t s) {
  const int K = c->top_k, W = expert_width(c), d = c->hidden_size;
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  const int threads = 256;
  const int ytiles = (W + threads - 1) / threads;
  dim3 grid(unsigned(T), unsigned(ytiles < 16 ? ytiles : 16));
  if (!latent && !shared) {
    weighted_sum_kernel<bf16><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, out);
    LMOE_CU_LAUNCH("weighted_sum");
    return LMOE_OK;
  }
  Carver cv{static_cast<char*>(ws), combine_ws(c, T)};
  void* accp = cv.take<float>(T * W);
  bf16* routed = cv.take<bf16>(T * d);
  const bool tc_ok =
      dense_tc_ok(tn, T, {x, out, latent ? w->latent_up.data : x, shared ? w->shared_up.data : x,
                          shared ? w->shared_down.data : x, (shared && swiglu_act) ? w->shared_gate.data : x},
                  {int64_t(d), int64_t(W), int64_t(ms)});
  DenseProj dp;
  LMOE_TRY(dense_proj_setup(tn, dp, cv.take<char>(dense_proj_ws(c, T)), c, T, tc_ok, s));
  if (latent) {
    bf16* accb = static_cast<bf16*>(accp);
    weighted_sum_kernel<bf16><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, accb);
    LMOE_CU_LAUNCH("weighted_sum");
    LMOE_TRY(dense_proj(tn, dp, w->latent_up, accb, W, shared ? routed : out, d, ACT_NONE, s));
    if (!shared) return LMOE_OK;
  } else {
    weighted_sum_kernel<float><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W,
                                                         static_cast<float*>(accp));
    LMOE_CU_LAUNCH("weighted_sum");
  }
  bf16* sh = cv.take<bf16>(T * ms);
  bf16* shu = swiglu_act ? cv.take<bf16>(T * ms) : nullptr;
  bf16* so = cv.take<bf16>(T * d);
  if (swiglu_act) {
    LMOE_TRY(dense_proj(tn, dp, w->shared_gate, x, d, sh, ms, ACT_NONE, s));
    LMOE_TRY(dense_proj(tn, dp, w->shared_up, x, d, shu, ms, ACT_NONE, s));
    LMOE_TRY(swiglu(sh, shu, T * ms, s));
  } else {
    const int act = c->activation == LMOE_ACT_SILU ? ACT_SILU : ACT_RELU2;
    LMOE_TRY(dense_proj(tn, dp, w->shared_up, x, d, sh, ms, act, s));
  }
  LMOE_TRY(dense_proj(tn, dp, w->shared_down, sh, ms, so, d, ACT_NONE, s));
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

// Combine for T >= kDenseTcMinT with the projections on the tensor cores. acc (f32 for the
// standard MoE, bf16 as the latent GEMM input), routed / shared out bf16, out = bf16(sum).
static lmoe_status combine_tc(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                              const bf16* x, int64_t T, const float* wts,
                              const int32_t* sorted_row_of_slot, const bf16* y, void* ws, bf16* out,
                              cudaStream_t s) {
  const int K = c->top_k, W = expert_width(c), d = c->hidden_size;
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  Carver cv{static_cast<char*>(ws), combine_ws(c, T)};
  void* accp = cv.take<float>(T * W);
  bf16* routed = cv.take<bf16>(T * d);
  DenseTc tc;
  LMOE_TRY(dense_tc_setup(tn, tc, cv.take<char>(dense_tc_ws()), T, s));
  const int threads = 256;
  const int ytiles = (W + threads - 1) / threads;
  dim3 grid(unsigned(T), unsigned(ytiles < 16 ? ytiles : 16));
  if (latent) {
    bf16* accb = static_cast<bf16*>(accp);
    weighted_sum_kernel<bf16><<<grid, threads, 0, s>>>(y, wts, sorted_row_of_slot, K, W, accb);
    LMOE_CU_LAUNCH("weighted_sum");
    LMOE_TRY(dense_tc_gemm(tc, false, accb, bf16_data(w->latent_up), shared ? routed : out, d, W, s));
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
    LMOE_TRY(dense_tc_gemm(tc, true, x, bf16_data(w->shared_up), sh, ms, d, s));
  } else {
    LMOE_TRY(dense_tc_gemm(tc, false, x, bf16_data(w->shared_gate), sh, ms, d, s));
    LMOE_TRY(dense_tc_gemm(tc, false, x, bf16_data(w->shared_up), shu, ms, d, s));
    LMOE_TRY(swiglu(sh, shu, T * ms, s));
  }
  LMOE_TRY(dense_tc_gemm(tc, false, sh, bf16_data(w->shared_down), so, d, ms, s));
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

lmoe_status combine_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         const bf16* x, int64_t T, const float* wts,
                         const int32_t* sorted_row_of_slot, const bf16* y, void* ws, bf16* out,
                         cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int K = c->top_k, W = expert_width(c), d = c->hidden_size;
  const int ms = c->shared_intermediate_size;
  const bool latent = c->latent_size > 0, shared = ms > 0;
  const bool swiglu_act = c->activation == LMOE_ACT_SWIGLU;
  bool quant = false;
  for (const lmoe_cuda_matrix* m : {&w->latent_up, &w->shared_up, &w->shared_gate, &w->shared_down})
    quant = quant || (present(*m) && is_quantized(*m));
  if (quant || c->activation == LMOE_ACT_SILU)
    return combine_general(tn, c, w, x, T, wts, sorted_row_of_slot, y, ws, out, s);
  if ((latent || shared) &&
      dense_tc_ok(tn, T, {x, out, latent ? w->latent_up.data : x, shared ? w->shared_up.data : x,
                      shared ? w->shared_down.data : x, (shared && swiglu_act) ? w->shared_gate.data : x},
                  {int64_t(d), int64_t(W), int64_t(ms)}))
    return combine_tc(tn, c, w, x, T, wts, sorted_row_of_slot, y, ws, out, s);
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
  const bf16* Wup = bf16_data(w->latent_up);
  if (!shared) {  // latent, no shared: out = acc W_up^T
    return gemm_nt(acc, W, Wup, W, int(T), d, W, EpiStore<bf16, ACT_NONE>{out, d}, s);
  }
  if (latent) {
    LMOE_TRY(gemm_nt(acc, W, Wup, W, int(T), d, W, EpiStore<float, ACT_NONE>{routed, d}, s));
  } else {
    routed = acc;  // [T, d]
  }
  // shared expert
  const bf16* su = bf16_data(w->shared_up);
  if (!swiglu_act) {
    LMOE_TRY(gemm_nt(x, d, su, d, int(T), ms, d, EpiStore<float, ACT_RELU2>{sh, ms}, s));
  } else {
    LMOE_TRY(gemm_nt(x, d, bf16_data(w->shared_gate), d, int(T), ms, d,
                     EpiStore<float, ACT_NONE>{sh, ms}, s));
    LMOE_TRY(gemm_nt(x, d, su, d, int(T), ms, d, EpiStore<float, ACT_NONE>{shu, ms}, s));
    LMOE_TRY(swiglu(sh, shu, T * ms, s));
  }
  return gemm_nt(sh, ms, bf16_data(w->shared_down), ms, int(T), d, ms,
                 EpiAdd<bf16>{out, d, routed, d}, s);
}

}  // namespace lmoe_cuda
