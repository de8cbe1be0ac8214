// decode.cuh - the few-tokens forward path (decode.cu) and the router hook it shares with
// layer.cu. Not part of the ABI.
#pragma once

#include "internal.cuh"

namespace lmoe_cuda {

// ---------------------------------------------------------------- decode path (decode.cu)
// Tensor-core router logits (f32 gate split into three bf16 terms), any T; the same arithmetic
// in router_topk, the sorted forward and the decode forward.
bool gemv_router_ok(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T);
lmoe_status gemv_router_logits(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                               int64_t T, float* logits, cudaStream_t s);
// Can the decode (GEMV weight-stream) forward run these shapes/pointers?
bool decode_supported(const lmoe_config* c, const lmoe_cuda_weights* w, const void* x, int64_t T);
int64_t decode_workspace_bytes(const lmoe_config* c, int64_t T);
// variant: the fused task-queue kernel, the five staged kernels, or the tuned default.
enum DecodeVariant { DECODE_DEFAULT = 0, DECODE_FUSED = 1, DECODE_STAGED = 2 };
lmoe_status decode_forward(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                           int64_t T, int32_t* ids, float* wts, void* ws, int64_t ws_bytes,
                           bf16* out, cudaStream_t s, DecodeVariant variant);
// layer.cu: router logits [T, N] f32 (tensor-core GEMV when gemv_router_ok, else SIMT).
lmoe_status router_logits_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                                int64_t T, float* logits, cudaStream_t s);
// layer.cu: router logits (unless logits_ready) into `logits` [T, N] f32, then top-K.
lmoe_status router_topk_stage(const lmoe_config* c, const lmoe_cuda_weights* w, const bf16* x,
                              int64_t T, bool logits_ready, float* logits, int32_t* ids,
                              float* wts, cudaStream_t s);

}  // namespace lmoe_cuda
