// router.cu - router logits (tensor-core GEMV, decode/, when the shapes allow it; else the SIMT
// GEMM) and top-K, one warp per token (topk.cuh). The decode path shares both stages.
#include "decode/decode.cuh"
#include "layer.cuh"
#include "simt.cuh"
#include "topk.cuh"

namespace lmoe_cuda {

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

int64_t router_ws(const lmoe_config* c, int64_t T) { return aup(T * c->num_experts * 4); }

lmoe_status router_logits_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                int64_t T, float* logits, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int N = c->num_experts, d = c->hidden_size;
  if (gemv_router_ok(c, w, x, T)) return gemv_router_logits(c, w, x, T, logits, s);
  EpiStore<float, ACT_NONE> epi{logits, N};
  if (w->gate.format == LMOE_WFMT_F32)
    return gemm_nt(x, d, static_cast<const float*>(w->gate.data), d, int(T), N, d, epi, s);
  return gemm_nt(x, d, bf16_data(w->gate), d, int(T), N, d, epi, s);
}

// Router logits into the workspace [T, N] f32, then top-K.
lmoe_status router_step(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                        int64_t T, int32_t* ids, float* wts, void* ws, cudaStream_t s) {
  if (T == 0) return LMOE_OK;
  const int N = c->num_experts;
  float* logits = static_cast<float*>(ws);
  LMOE_TRY(router_logits_stage(c, w, x, T, logits, s));
  topk_warp_kernel<<<unsigned((T + kTopkWarps - 1) / kTopkWarps), kTopkWarps * 32, 0, s>>>(
      logits, w->gate_bias, T, N, c->top_k, c->scoring == LMOE_SCORING_SOFTMAX, c->norm_topk_prob,
      c->routed_scaling_factor, ids, wts);
  LMOE_CU_LAUNCH("topk");
  return LMOE_OK;
}

}  // namespace lmoe_cuda
