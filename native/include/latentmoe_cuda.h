/*
 * latentmoe_cuda.h - the C ABI of the LatentMoE kernel library, CUDA backend
 * (liblatentmoe_cuda.so, built for sm_90a: H100/H200 only).
 *
 * Plain C. Same status codes, config and enums as latentmoe.h. Every entry point returns an
 * lmoe_status; on failure a message for the calling thread is available from
 * lmoe_cuda_last_error() until that thread's next call into this library.
 *
 * Streams, events and graphs are opaque pointers (cudaStream_t, cudaEvent_t, cudaGraphExec_t).
 * A NULL stream means the legacy default stream (do not use it while capturing a graph).
 * Every pointer named "device" must be device memory (cudaMalloc / lmoe_cuda_malloc_async).
 * All kernel entry points only enqueue work on the stream: no host synchronisation, no
 * allocation, so a forward pass can be captured into a CUDA graph. Results are deterministic
 * (same inputs, same device, same T -> bitwise same outputs).
 *
 * Data types on the GPU: x, out bf16 [T, d]; every weight matrix is a lmoe_cuda_matrix of its
 * own format: BF16, FP8_E4M3 or NVFP4 (the router gate BF16 or F32); gate_bias f32; topk_ids
 * i32, topk_weights f32; latent_sorted / expert_out_sorted bf16. Arithmetic accumulates in f32.
 * Quantized weights are read as they are stored and dequantized in registers inside the kernels
 * (never expanded in memory); activations stay bf16 (weight-only), unless a FP8 matrix carries
 * input scales (W8A8, see lmoe_cuda_matrix). "w" is the expert width: latent_size when > 0,
 * hidden_size otherwise. Activations: relu2, SwiGLU and non-gated SiLU (lmoe_activation).
 *
 * One forward pass (T tokens):
 *   x [T,d] bf16
 *   -> lmoe_cuda_router_topk -> topk_ids [T,K] i32, topk_weights [T,K] f32
 *   -> lmoe_cuda_dispatch    -> expert_offsets [N+1] i32, sorted_row_of_slot [T*K] i32,
 *                               latent_sorted [T*K, w] bf16 (z = x W_down^T, expert order, stable)
 *   -> lmoe_cuda_experts     -> expert_out_sorted [T*K, w] bf16
 *   -> lmoe_cuda_combine     -> out [T,d] bf16
 * Each stage takes a device workspace of at least lmoe_cuda_<stage>_workspace_bytes(cfg, T)
 * bytes, 256-byte aligned; its contents need not be preserved between calls.
 */
#ifndef LATENTMOE_CUDA_H
#define LATENTMOE_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "latentmoe.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMOE_CUDA_ABI_VERSION 3  /* 3: per-matrix descriptors (lmoe_cuda_matrix: BF16, FP8, NVFP4),
                                     LMOE_ACT_SILU; 2: lmoe_cuda_tuning */
#define LMOE_CUDA_WORKSPACE_ALIGN 256

/* Library information and errors. */
int32_t lmoe_cuda_abi_version(void);
const char* lmoe_cuda_last_error(void);

/* ---------------------------------------------------------------- devices */
/* Number of CUDA devices. When there is no usable driver or GPU it writes 0, returns
 * LMOE_ERR_CUDA and lmoe_cuda_last_error() says why (e.g. "no CUDA driver: ..."). */
lmoe_status lmoe_cuda_device_count(int32_t* count);
/* LMOE_OK when `device` can run this library's kernels (compute capability 9.0, sm_90a);
 * LMOE_ERR_UNSUPPORTED (other GPU) or LMOE_ERR_CUDA (no driver / device) with the reason. */
lmoe_status lmoe_cuda_device_check(int32_t device);
/* name: at least name_len bytes, NUL-terminated on return (may be NULL). Any out pointer may be NULL. */
lmoe_status lmoe_cuda_device_info(int32_t device, int32_t* cc_major, int32_t* cc_minor,
                                  int32_t* sm_count, int64_t* total_mem_bytes,
                                  char* name, int32_t name_len);
lmoe_status lmoe_cuda_set_device(int32_t device);  /* for the calling thread */
lmoe_status lmoe_cuda_get_device(int32_t* device);
lmoe_status lmoe_cuda_device_synchronize(void);

/* ---------------------------------------------------------------- streams and memory */
lmoe_status lmoe_cuda_stream_create(void** stream);  /* non-blocking w.r.t. the legacy stream */
lmoe_status lmoe_cuda_stream_destroy(void* stream);
lmoe_status lmoe_cuda_stream_synchronize(void* stream);

/* Stream-ordered allocation from the device's default memory pool (cudaMallocAsync). */
lmoe_status lmoe_cuda_malloc_async(void** device_ptr, int64_t bytes, void* stream);
lmoe_status lmoe_cuda_free_async(void* device_ptr, void* stream);
/* Bytes the default pool of the current device keeps instead of returning them to the OS. */
lmoe_status lmoe_cuda_mempool_set_release_threshold(int64_t bytes);
/* Page-locked host memory (for truly asynchronous copies). */
lmoe_status lmoe_cuda_host_alloc(void** host_ptr, int64_t bytes);
lmoe_status lmoe_cuda_host_free(void* host_ptr);

lmoe_status lmoe_cuda_memcpy_h2d_async(void* device_dst, const void* host_src, int64_t bytes,
                                       void* stream);
lmoe_status lmoe_cuda_memcpy_d2h_async(void* host_dst, const void* device_src, int64_t bytes,
                                       void* stream);
lmoe_status lmoe_cuda_memcpy_d2d_async(void* device_dst, const void* device_src, int64_t bytes,
                                       void* stream);
lmoe_status lmoe_cuda_memset_async(void* device_dst, int32_t byte_value, int64_t bytes,
                                   void* stream);

/* Fills device memory with values uniform in [lo, hi) from a counter-based hash of
 * (seed, index). dtype F32, BF16, F16, F8_E4M3 (rounded to nearest, saturated to +-448) or U8
 * (the value's floor, clamped to 0..255: lo = 0, hi = 256 gives uniform bytes, e.g. NVFP4 codes).
 * (Not bit-identical to lmoe_fill_uniform.) */
lmoe_status lmoe_cuda_fill_uniform(void* device_dst, int32_t dtype, int64_t count, uint64_t seed,
                                   float lo, float hi, void* stream);

/* ---------------------------------------------------------------- events */
lmoe_status lmoe_cuda_event_create(void** event);  /* with timing */
lmoe_status lmoe_cuda_event_destroy(void* event);
lmoe_status lmoe_cuda_event_record(void* event, void* stream);
lmoe_status lmoe_cuda_event_synchronize(void* event);
lmoe_status lmoe_cuda_event_elapsed_ms(void* start, void* end, float* ms);

/* ---------------------------------------------------------------- CUDA graphs */
/* Starts capturing `stream` (thread-local capture mode); the calls that follow only record. */
lmoe_status lmoe_cuda_graph_begin_capture(void* stream);
/* Ends the capture and instantiates it: *graph_exec is replayable with lmoe_cuda_graph_launch. */
lmoe_status lmoe_cuda_graph_end_capture(void* stream, void** graph_exec);
lmoe_status lmoe_cuda_graph_launch(void* graph_exec, void* stream);
lmoe_status lmoe_cuda_graph_destroy(void* graph_exec);

/* ---------------------------------------------------------------- the layer */
/* One weight matrix [rows, cols] (rows = output features, cols = input features), all pointers
 * DEVICE memory, row-major; absent when data == NULL. The expert matrices of one kind (up, gate,
 * down) are one descriptor for all N experts: expert e's matrix starts at e * (its bytes) in data
 * (and in block_scales), its per-tensor scale is scales[e].
 *   BF16      data bf16 [rows, cols]; scales and block_scales NULL
 *   F32       the router gate only: data f32 [N, d]
 *   FP8_E4M3  data e4m3 [rows, cols]; value = e4m3 * scales[e] (ModelOpt FP8 weight_scale)
 *   NVFP4     data [rows, cols/2] bytes, two e2m1 codes per byte, the even column in the low
 *             nibble; block_scales e4m3 [rows, cols/16]; value = e2m1 * block_scale * scales[e]
 *             (ModelOpt NVFP4: weight, weight_scale, weight_scale_2)
 * scales: FP8 / NVFP4 only, f32 [count] (count = N for the experts, 1 otherwise), finite and > 0
 * (the device values are not checked). input_scales: FP8 only, optional, f32 [count] > 0, the
 * checkpoint's static activation scales: when set, the caller chose W8A8 for this matrix (its
 * input is quantized to e4m3 as sat(a / input_scale) before the product, and the sorted path runs
 * it on CUTLASS's FP8 tensor-core grouped GEMM); NULL: weight-only, bf16 activations. NVFP4 is
 * weight-only (Hopper has no FP4 tensor cores).
 * Quantized matrices need the layer's d, w, m and ms multiples of 32, 16-byte aligned data and
 * block scales, and 16-byte aligned activations in every call (x, out, latent_sorted,
 * expert_out_sorted): LMOE_ERR_UNSUPPORTED otherwise. W8A8 layers always take the sorted path.
 * Weight-only FP8 / NVFP4 products run on tensor cores with the weights dequantized in registers
 * (the decode GEMVs; a dequantizing grouped GEMM on the sorted path). BF16 matrices: the
 * grouped GEMMs (CUTLASS, TMA) need every pointer 16-byte aligned and m, w multiples of 8;
 * other shapes run on a slower SIMT path. */
typedef struct lmoe_cuda_matrix {
  int32_t format;               /* lmoe_weight_format */
  int32_t reserved;             /* must be 0 */
  const void* data;
  const uint8_t* block_scales;  /* NVFP4 only, else NULL */
  const float* scales;          /* FP8 / NVFP4 only, else NULL */
  const float* input_scales;    /* FP8 only, optional (W8A8), else NULL */
} lmoe_cuda_matrix;

/* The layer's weights ("w" = expert width). */
typedef struct lmoe_cuda_weights {
  lmoe_cuda_matrix gate;         /* [N, d] router, BF16 or F32 */
  const float* gate_bias;        /* [N] f32 e_score_correction_bias (selection only), or NULL */
  lmoe_cuda_matrix latent_down;  /* fc1_latent_proj [l, d]; absent when latent_size == 0 */
  lmoe_cuda_matrix latent_up;    /* fc2_latent_proj [d, l]; absent when latent_size == 0 */
  lmoe_cuda_matrix expert_up;    /* [N, m, w] up_proj of every expert */
  lmoe_cuda_matrix expert_gate;  /* [N, m, w] gate_proj; SwiGLU only, else absent */
  lmoe_cuda_matrix expert_down;  /* [N, w, m] down_proj */
  lmoe_cuda_matrix shared_up;    /* [ms, d]; absent when shared_intermediate_size == 0 */
  lmoe_cuda_matrix shared_gate;  /* [ms, d]; SwiGLU only, else absent */
  lmoe_cuda_matrix shared_down;  /* [d, ms]; absent when shared_intermediate_size == 0 */
} lmoe_cuda_weights;

/* Validates cfg and weights: matrices present where required (and absent where not), formats
 * allowed for the matrix, reserved 0, scales / block scales / input scales present exactly where
 * the format wants them, the shape and alignment rules above. Host-only check: it reads no
 * device memory. */
lmoe_status lmoe_cuda_validate(const lmoe_config* cfg, const lmoe_cuda_weights* weights);

/* ---------------------------------------------------------------- tuning
 * Every knob of the CUDA backend, in one process-wide struct. The library starts from the
 * compiled-in defaults (lmoe_cuda_tuning_defaults: the H200's best, bench/results/gpu/), each
 * overridden once, at the first call that needs the knobs, by the environment variable named
 * beside its field (for sweeps: bench/bundle/tune.sh); lmoe_cuda_set_tuning replaces the whole
 * struct (tests, benchmarks). An environment value is mapped into its field's range (e.g.
 * LMOE_CUDA_DEC_MINB other than 2 -> 3, stream stages 1..7 -> 4 and > 8 -> 8, a negative prefetch
 * -> 0, an unknown name -> the default); set_tuning rejects out-of-range fields instead. Each
 * kernel entry point takes one snapshot, so a call never mixes two settings. Workspace sizes
 * depend on the knobs (stream): set them before querying sizes.
 * Every setting is deterministic; different paths round differently (not bitwise equal).
 *
 * Decode path: for few tokens, instead of sort -> grouped GEMMs -> combine, a weight stream of
 * GEMV-style tensor-core kernels (router + latent down + shared up; top-K; shared down + expert
 * FC1 per (token, k); expert FC2 + weighted combine; latent up), no permutation. lmoe_cuda_forward
 * takes it when the shapes allow it (relu2 or SiLU experts; d, w, m, ms multiples of 8; x and
 * weights 16-byte aligned; no W8A8 matrix) and decode is LMOE_CUDA_DECODE_ON, or
 * LMOE_CUDA_DECODE_AUTO with num_tokens <= decode_max_tokens (default 16: on an H200 at the Super
 * shape decode beats the sorted path up to T = 16 and loses from T = 32,
 * bench/results/gpu/2026-11-26-bundle-h200-run2). It runs as five kernels chained by programmatic
 * dependent launch, or as one fused kernel that takes its stages from a task queue in dependency
 * order (decode_fused). FP8 / NVFP4 weights and SiLU run on the five kernels (decode_fused and the
 * streamed kernels take BF16 relu2 layers only). lmoe_cuda_forward_workspace_bytes covers both
 * paths. */
#define LMOE_CUDA_EXPERTS_AUTO 0          /* CUTLASS sm90 grouped GEMM where shapes/alignment allow,
                                             its tile chosen by token bucket; else SIMT */
#define LMOE_CUDA_EXPERTS_SIMT 1          /* SIMT fallback always (tests, debugging); W8A8 matrices
                                             then run on the dequantizing kernels */
#define LMOE_CUDA_EXPERTS_CUTLASS_NARROW 2 /* CUTLASS 128x128 tiles always (also the dense projections) */
#define LMOE_CUDA_EXPERTS_CUTLASS_WIDE 3  /* CUTLASS 128x256 tiles always (also the dense projections) */
#define LMOE_CUDA_DECODE_AUTO 0
#define LMOE_CUDA_DECODE_ON 1
#define LMOE_CUDA_DECODE_OFF 2
typedef struct lmoe_cuda_tuning {
  int32_t experts;           /* LMOE_CUDA_EXPERTS_*, default AUTO (LMOE_CUDA_EXPERTS=auto|simt|narrow|wide) */
  int32_t fc1_tile;          /* 256, or 192: 128x192 FC1 tiles where 128x256 ones would run (relu2;
                                opt-in, not yet measured), default 256 (LMOE_CUDA_FC1_TILE) */
  int32_t decode;            /* LMOE_CUDA_DECODE_*, default AUTO (LMOE_CUDA_DECODE=auto|on|off) */
  int32_t decode_max_tokens; /* >= 0: AUTO's threshold, default 16 (LMOE_CUDA_DECODE_MAX_TOKENS) */
  int32_t decode_fused;      /* 0: five chained kernels, 1: one fused kernel; default 0 (LMOE_CUDA_DECODE_FUSED) */
  int32_t pdl;               /* 0 or 1: programmatic dependent launch between the decode kernels,
                                default 1 (LMOE_CUDA_PDL) */
  int32_t prefetch_kb;       /* 0..65536: KiB of its weights a decode block prefetches into L2 before
                                its dependency wait, default 0 (LMOE_CUDA_PREFETCH_KB) */
  int32_t fc2_blocks_per_sm; /* 1..1024: decode FC2 k groups chosen for about this many blocks per SM,
                                default 4 (LMOE_CUDA_FC2_BLOCKS) */
  int32_t min_blocks;        /* 2 or 3: decode FC1/FC2 blocks per SM the registers are sized for,
                                default 2 (LMOE_CUDA_DEC_MINB) */
  int32_t stream;            /* 0, 4 or 8: decode FC1/FC2 as persistent kernels streaming through a
                                cp.async ring of that many stages per warp (opt-in, not yet
                                measured), default 0 (LMOE_CUDA_DEC_STREAM) */
  int32_t stream_dense;      /* 0, 4 or 8: the same for the dense decode launches, default 0
                                (LMOE_CUDA_DEC_STREAM_DENSE) */
} lmoe_cuda_tuning;
/* The compiled-in defaults (no environment). */
lmoe_status lmoe_cuda_tuning_defaults(lmoe_cuda_tuning* tuning);
/* The knobs in effect. */
lmoe_status lmoe_cuda_get_tuning(lmoe_cuda_tuning* tuning);
/* Replaces the knobs in effect (validated: LMOE_ERR_INVALID_ARGUMENT names a bad field and
 * changes nothing). Kernel calls already enqueued and captured graphs keep their setting. */
lmoe_status lmoe_cuda_set_tuning(const lmoe_cuda_tuning* tuning);
/* tuning as one line "experts=auto fc1_tile=256 decode=auto ..." into buf (NUL-terminated,
 * truncated to size), as the benchmarks print it. */
lmoe_status lmoe_cuda_tuning_string(const lmoe_cuda_tuning* tuning, char* buf, int64_t size);

/* Which path lmoe_cuda_forward would take now for these arguments (x: the device input, only
 * its alignment is looked at): LMOE_CUDA_PATH_SORTED or LMOE_CUDA_PATH_DECODE; -1 if invalid. */
#define LMOE_CUDA_PATH_SORTED 0
#define LMOE_CUDA_PATH_DECODE 1
int32_t lmoe_cuda_forward_path(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                               const void* x, int64_t num_tokens);

/* Router + top-K. x [T,d] bf16 -> topk_ids [T,K] (descending by biased score, ties to the lower
 * id), topk_weights [T,K] (unbiased scores, normalised if norm_topk_prob, times scale). */
int64_t lmoe_cuda_router_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cuda_router_topk(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                                  const void* x, int64_t num_tokens,
                                  int32_t* topk_ids, float* topk_weights,
                                  void* workspace, int64_t workspace_bytes, void* stream);

/* Down-projection + dispatch (stable counting sort by expert, computed on the device).
 * expert_offsets [N+1]; sorted_row_of_slot [T*K] (slot t*K+k -> row); latent_sorted [T*K, w].
 * topk_ids outside [0, N) are treated as expert 0 (memory-safe, not an error: no host sync). */
int64_t lmoe_cuda_dispatch_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cuda_dispatch(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                               const void* x, int64_t num_tokens, const int32_t* topk_ids,
                               int32_t* expert_offsets, int32_t* sorted_row_of_slot,
                               void* latent_sorted,
                               void* workspace, int64_t workspace_bytes, void* stream);

/* Grouped expert GEMMs: expert_out_sorted [T*K, w] = act(latent_sorted up^T [, gate]) down^T
 * per expert, rows of expert e = [expert_offsets[e], expert_offsets[e+1]). */
int64_t lmoe_cuda_experts_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cuda_experts(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                              int64_t num_tokens, const int32_t* expert_offsets,
                              const void* latent_sorted, void* expert_out_sorted,
                              void* workspace, int64_t workspace_bytes, void* stream);

/* Combine + up-projection + shared expert:
 * out[t] = W_up (sum_k topk_weights[t,k] * expert_out_sorted[sorted_row_of_slot[t*K+k]])
 *          + shared(x[t]); k summed in order 0..K-1 in f32; out [T,d] bf16. */
int64_t lmoe_cuda_combine_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cuda_combine(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                              const void* x, int64_t num_tokens, const float* topk_weights,
                              const int32_t* sorted_row_of_slot, const void* expert_out_sorted,
                              void* workspace, int64_t workspace_bytes, void* out, void* stream);

/* The whole layer: x [T,d] bf16 -> out [T,d] bf16; topk_ids / topk_weights [T,K] (device)
 * receive the routing. workspace (device): lmoe_cuda_forward_workspace_bytes(cfg, T) bytes.
 * The workspace size depends on the current device (SM count): query it on that device. */
int64_t lmoe_cuda_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cuda_forward(const lmoe_config* cfg, const lmoe_cuda_weights* weights,
                              const void* x, int64_t num_tokens,
                              int32_t* topk_ids, float* topk_weights,
                              void* workspace, int64_t workspace_bytes, void* out, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* LATENTMOE_CUDA_H */
