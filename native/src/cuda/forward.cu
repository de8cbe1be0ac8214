// forward.cu - the whole layer: the decode path (decode/) for few tokens where it applies, else
// the four sorted-path steps over one workspace.
#include "decode/decode.cuh"
#include "layer.cuh"

namespace lmoe_cuda {
namespace {

struct FwdLayout {
  int64_t offsets, sorted_row, latent_sorted, expert_out, stage, total;
};
FwdLayout fwd_layout(const lmoe_config* c, int64_t T) {
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

}  // namespace

// The forward workspace covers both paths (the decode policy may change between query and call).
int64_t forward_ws(const Tuning& tn, const lmoe_config* c, int64_t T) {
  const int64_t a = fwd_layout(c, T).total, b = decode_workspace_bytes(tn, c, T);
  return a > b ? a : b;
}

// Decode (GEMV weight-stream) path or the sorted grouped-GEMM path for this forward?
bool use_decode(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w, const void* x,
                int64_t T) {
  const int mode = tn.decode;
  if (mode == LMOE_CUDA_DECODE_OFF || T <= 0) return false;
  if (!decode_supported(tn, c, w, x, T)) return false;
  if (mode != LMOE_CUDA_DECODE_AUTO) return true;  // ON
  return T <= tn.decode_max_tokens;
}

lmoe_status forward_step(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                         const bf16* x, int64_t T, int32_t* ids, float* wts, void* ws,
                         int64_t ws_bytes, bf16* out, cudaStream_t s) {
  if (use_decode(tn, c, w, x, T))
    return decode_forward(tn, c, w, x, T, ids, wts, ws, ws_bytes, out, s);
  const FwdLayout L = fwd_layout(c, T);
  char* b = static_cast<char*>(ws);
  int32_t* offsets = reinterpret_cast<int32_t*>(b + L.offsets);
  int32_t* sorted_row = reinterpret_cast<int32_t*>(b + L.sorted_row);
  bf16* latent_sorted = reinterpret_cast<bf16*>(b + L.latent_sorted);
  bf16* expert_out = reinterpret_cast<bf16*>(b + L.expert_out);
  void* stage = b + L.stage;
  const int64_t stage_bytes = ws_bytes - L.stage;
  LMOE_TRY(router_step(c, w, x, T, ids, wts, stage, s));
  LMOE_TRY(dispatch_step(tn, c, w, x, T, ids, offsets, sorted_row, latent_sorted, stage, s));
  LMOE_TRY(experts_step(tn, c, w, T, offsets, latent_sorted, expert_out, stage, stage_bytes, s));
  LMOE_TRY(combine_step(tn, c, w, x, T, wts, sorted_row, expert_out, stage, out, s));
  return LMOE_OK;
}

}  // namespace lmoe_cuda
