// decode/decode.cuh - the few-tokens forward path (decode/decode.cu) and the router stage it
// shares with the sorted path (router.cu). Not part of the ABI.
#pragma once

#include "common.cuh"
#include "tuning.cuh"

namespace lmoe_cuda {

// ---------------------------------------------------------------- decode path (decode/decode.cu)
// Tensor-core router logits (f32 gate split into three bf16 terms), any T; the same arithmetic
// in router_topk, the sorted forward and the decode forward.
bool gemv_router_ok(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T);
lmoe_status gemv_router_logits(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                               int64_t T, float* logits, cudaStream_t s);
// Can the decode (GEMV weight-stream) forward run these shapes/pointers?
bool decode_supported(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                      const void* x, int64_t T);
int64_t decode_workspace_bytes(const Tuning& tn, const lmoe_config* c, int64_t T);
// The fused task-queue kernel (tn.decode_fused, where the GEMV router applies) or the five
// staged kernels.
lmoe_status decode_forward(const Tuning& tn, const lmoe_config* c, const lmoe_cuda_weights* w,
                           const bf16* x, int64_t T, int32_t* ids, float* wts, void* ws,
                           int64_t ws_bytes, bf16* out, cudaStream_t s);

// ---------------------------------------------------------------- router.cu
// Router logits [T, N] f32 (tensor-core GEMV when gemv_router_ok, else SIMT): the staged
// decode path above 16 tokens.
lmoe_status router_logits_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                int64_t T, float* logits, cudaStream_t s);

}  // namespace lmoe_cuda
