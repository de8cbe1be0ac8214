/*
 * latentmoe_engine.h - the C ABI for native inference engines (and any language with a C FFI):
 * one (Latent)MoE layer opened straight from a Hugging Face style checkpoint directory, run on
 * raw host pointers, DLPack tensors or Arrow C Data arrays. Implemented in liblatentmoe.so next to
 * the kernel ABI of latentmoe.h (whose lmoe_status, lmoe_config, lmoe_weights, lmoe_dtype and
 * lmoe_last_error it uses). This loader is the library's one definition of the checkpoint rules:
 * the Java MoeLayer.fromCheckpoint and the Python package open layers through it.
 *
 * Checkpoint:
 *   DIR/config.json        keys hidden_size, moe_latent_size (absent or null: standard MoE),
 *                          n_routed_experts, num_experts_per_tok, moe_intermediate_size,
 *                          moe_shared_expert_intermediate_size (absent: 0), routed_scaling_factor
 *                          (absent: 1.0), norm_topk_prob (absent: true), mlp_hidden_act (relu2 |
 *                          silu | swiglu; absent: relu2), scoring_func (sigmoid | softmax; absent:
 *                          sigmoid); n_group > 1 is rejected (LMOE_ERR_UNSUPPORTED).
 *                          Layer kinds: when layers_block_type (moe, mamba / linear_attention,
 *                          attention / full_attention, mlp) or else hybrid_override_pattern (E, M,
 *                          *, -) is present, the layer asked for must be a MoE layer ("layer 2 is a
 *                          mamba layer, not a MoE layer") and exist.
 *                          mlp_bias: true (transformers nemotron_h then adds biases to
 *                          fc1/fc2_latent_proj and the shared expert's up/down projections) is
 *                          refused with LMOE_ERR_UNSUPPORTED, as is any *.bias tensor in the layer:
 *                          the kernels apply no biases, and a layer computed without them would be
 *                          another layer.
 *                          Activation: relu2 is h = relu(z up^T)^2. silu follows transformers'
 *                          nemotron_h: non-gated h = silu(z up^T) (LMOE_ACT_SILU) for the experts and
 *                          the shared expert; only a checkpoint with experts.{e}.gate_proj tensors is
 *                          gated SwiGLU h = silu(z gate^T) * (z up^T) (LMOE_ACT_SWIGLU; silu or
 *                          swiglu). gate_proj tensors with relu2, or swiglu without them, are errors.
 *   DIR/hf_quant_config.json and/or config.json quantization_config (quant_method "modelopt"):
 *                          ModelOpt's quantization. Both are read and must agree. quant_algo FP8 or
 *                          NVFP4 quantizes every linear module of the layer except those in
 *                          exclude_modules / ignore; MIXED_PRECISION quantizes exactly the modules of
 *                          quantized_layers (FP8 or NVFP4 each; "...mixer.experts" names every
 *                          expert). Other quant_algo values and methods are LMOE_ERR_UNSUPPORTED; a
 *                          quantized_layers entry naming a module this layer does not have is an
 *                          error. Module names may carry ModelOpt 0.47's "<NUL>backbone.pt_name_sentinel"
 *                          suffix (cut at the NUL); a trailing '*' is a glob. The router
 *                          (gate.weight, e_score_correction_bias) is never quantized.
 *   DIR/model.safetensors  or, when absent, DIR/model.safetensors.index.json whose weight_map
 *                          names the shard of every tensor (relative names that stay inside DIR;
 *                          only the shards holding the layer's tensors are opened).
 *   Tensors under "backbone.layers.{i}.mixer.": gate.weight [N, d] (F32, BF16 or F16),
 *   gate.e_score_correction_bias (optional, [N] or [1, N], F32 / BF16 / F16), fc1_latent_proj [l, d]
 *   and fc2_latent_proj [d, l] (LatentMoE only), experts.{e}.up_proj [m, w], experts.{e}.down_proj
 *   [w, m] (+ experts.{e}.gate_proj for SwiGLU), shared_experts.up_proj [ms, d],
 *   shared_experts.down_proj [d, ms] (+ gate_proj) when ms > 0. Each matrix module P is stored as
 *     unquantized  P.weight F32 / BF16 (used in place) or F16 (widened to F32 once, per matrix);
 *     FP8          P.weight F8_E4M3 [out, in], P.weight_scale F32 scalar ([] or [1]), optional
 *                  P.input_scale F32 scalar; value = e4m3 * weight_scale (F8_E5M2 is refused);
 *     NVFP4        P.weight U8 [out, in/2] (two e2m1 codes per byte, the even column in the low
 *                  nibble; in % 16 == 0), P.weight_scale F8_E4M3 [out, in/16] (block scales, finite,
 *                  >= 0), P.weight_scale_2 F32 scalar, optional P.input_scale; value = e2m1 *
 *                  block scale * weight_scale_2.
 *   Weight scales must be finite and > 0, input scales finite and >= 0. A quantized module missing
 *   a scale, with scales of the wrong dtype or shape, or a tensor whose dtype contradicts the
 *   quantization config is an error naming the tensor. Any other tensor name under the mixer is
 *   refused rather than ignored. At load, one pass checks the router, its correction bias and the
 *   latent projections for NaN / Inf (a NaN bias would silently route every token to experts
 *   0..K-1); the routed and shared experts are not scanned (that would read the whole layer).
 *   Quantized matrices are used in place from the mapping (the kernels dequantize on the fly).
 *
 *   Files: only regular files are read (config.json, hf_quant_config.json, the index and the
 *   shards are opened with O_NONBLOCK and checked with fstat, so a FIFO or device is an error, never
 *   a hang), and only files whose real path (symbolic links resolved) lies inside DIR's real path,
 *   or, when DIR is a Hugging Face hub snapshot (<repo>/snapshots/<rev>), inside <repo>/blobs where
 *   the hub's links point. Messages never quote bytes of a file that is not valid JSON (e.g. a
 *   safetensors length field). config.json and hf_quant_config.json are at most 16 MiB and 2^20
 *   JSON values, the index at most 64 MiB, a safetensors header at most 100 MiB; headers and the
 *   index are streamed and only the layer's entries kept, so memory does not grow with their
 *   size. Strict RFC 8259 JSON, UTF-8, nesting at most 64, no duplicate keys. The safetensors length
 *   field, header JSON and every dtype/shape/data_offsets entry are checked against the file. A
 *   file truncated or rewritten while a layer has it mapped is undefined behaviour (SIGBUS), as for
 *   any mmap.
 *
 * Errors: every entry point returns an lmoe_status; on failure lmoe_last_error() holds a message
 * for the calling thread (naming the file / key / tensor / argument at fault). Nothing here
 * aborts or crashes on bad input: NULL pointers, bad shapes, dtypes, strides, devices, released
 * Arrow structs, closed layers and corrupt checkpoints are LMOE_ERR_INVALID_ARGUMENT
 * (LMOE_ERR_UNSUPPORTED for a valid but unsupported checkpoint feature, LMOE_ERR_OUT_OF_MEMORY when
 * allocation fails).
 *
 * Inputs: x is f32 [T, d], row-major. T == 0 is valid and does nothing (x / out may then be NULL;
 * the DLPack and Arrow paths produce an empty output). NaN or +-Inf anywhere in x is rejected with
 * LMOE_ERR_INVALID_ARGUMENT naming the first (token, column), as the Java library does, so a
 * non-finite input never silently poisons a batch. out must not overlap x (in-place is rejected).
 *
 * Threads and lifetime: a layer may be used by any number of threads at once (forward calls take
 * a private workspace from a pool that grows on demand; the kernels' thread pool serialises the
 * actual compute). lmoe_layer_close may be called while other threads are inside calls on the
 * layer: it refuses new calls at once, waits for the calls in flight to return, then frees. After
 * it, every call on the handle (including a second close) returns LMOE_ERR_INVALID_ARGUMENT
 * ("the layer is closed"): a closed handle stays valid to pass, at a cost of about 120 bytes kept
 * per layer ever opened. A pointer lmoe_layer_open did not return is undefined behaviour.
 * Results never depend on the number of threads (lmoe_cpu_set_num_threads).
 */
#ifndef LATENTMOE_ENGINE_H
#define LATENTMOE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "latentmoe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ DLPack v1.0 (dlpack.h)
 * Declared exactly as dlpack.h v1.0 does, under its include guard, so a translation unit may
 * include dlpack.h before or after this header (whichever comes first wins; the layouts agree). */
#ifndef DLPACK_DLPACK_H_
#define DLPACK_DLPACK_H_

#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 0

typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;

#ifdef __cplusplus
typedef enum : int32_t {
#else
typedef enum {
#endif
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3,
  kDLOpenCL = 4,
  kDLVulkan = 7,
  kDLMetal = 8,
  kDLVPI = 9,
  kDLROCM = 10,
  kDLROCMHost = 11,
  kDLExtDev = 12,
  kDLCUDAManaged = 13,
  kDLOneAPI = 14,
  kDLWebGPU = 15,
  kDLHexagon = 16,
  kDLMAIA = 17
} DLDeviceType;

typedef struct {
  DLDeviceType device_type;
  int32_t device_id;
} DLDevice;

typedef enum {
  kDLInt = 0U,
  kDLUInt = 1U,
  kDLFloat = 2U,
  kDLOpaqueHandle = 3U,
  kDLBfloat = 4U,
  kDLComplex = 5U,
  kDLBool = 6U
} DLDataTypeCode;

typedef struct {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} DLTensor;

typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensor* self);
} DLManagedTensor;

#define DLPACK_FLAG_BITMASK_READ_ONLY (1UL << 0UL)
#define DLPACK_FLAG_BITMASK_IS_COPIED (1UL << 1UL)

typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
} DLManagedTensorVersioned;

#endif /* DLPACK_DLPACK_H_ */

/* ------------------------------------------------------------------ Arrow C Data Interface
 * Exactly as https://arrow.apache.org/docs/format/CDataInterface.html declares it. */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  /* Array type description */
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;

  /* Release callback */
  void (*release)(struct ArrowSchema*);
  /* Opaque producer-specific data */
  void* private_data;
};

struct ArrowArray {
  /* Array data description */
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;

  /* Release callback */
  void (*release)(struct ArrowArray*);
  /* Opaque producer-specific data */
  void* private_data;
};

#endif /* ARROW_C_DATA_INTERFACE */

/* ------------------------------------------------------------------ layers */

#define LMOE_ENGINE_ABI_VERSION 2

/* One opened layer: its config, its weights (mapped or converted) and a workspace pool. Opaque. */
typedef struct lmoe_layer lmoe_layer;

/* Where a layer's weights live (lmoe_layer_memory_info), for footprint reports. */
typedef struct lmoe_layer_memory {
  int64_t weight_bytes;    /* bytes the kernels read: every matrix's data and block scales and the
                              correction bias (= in_place_bytes + converted_bytes) */
  int64_t in_place_bytes;  /* of those, used in place from the memory-mapped files */
  int64_t converted_bytes; /* of those, in the layer's own memory: F16 matrices widened to F32, a
                              non-F32 bias, tensors at an offset their element size does not divide */
  int64_t mapped_bytes;    /* size of the safetensors files the layer maps (they may hold more
                              than this layer) */
} lmoe_layer_memory;

int32_t lmoe_engine_abi_version(void);

/* Opens layer layer_index (>= 0) of the checkpoint in directory dir (UTF-8 path). On success
 * *out is the layer; on failure *out is NULL and lmoe_last_error() says why. */
lmoe_status lmoe_layer_open(const char* dir, int32_t layer_index, lmoe_layer** out);

/* The hyper-parameters layer layer_index of the checkpoint in dir would have, from config.json and
 * the tensor names alone (no weight is read or checked): for shape planning before a layer is
 * opened. lmoe_layer_open may still refuse the layer. */
lmoe_status lmoe_checkpoint_config(const char* dir, int32_t layer_index, lmoe_config* out);

/* Copies the layer's hyper-parameters (as passed to the kernels of latentmoe.h). */
lmoe_status lmoe_layer_config(const lmoe_layer* layer, lmoe_config* out);

/* *out = the layer's weight descriptors, exactly what its forward calls pass to the kernels
 * (lmoe_matrix per matrix: format, data, block scales, scales; matrix shapes follow from the
 * config). The struct and every pointer in it stay valid until lmoe_layer_close; a caller that
 * runs the kernels of latentmoe.h on them must not close the layer meanwhile. */
lmoe_status lmoe_layer_weights(const lmoe_layer* layer, const lmoe_weights** out);

/* Where the layer's weights live (see lmoe_layer_memory). */
lmoe_status lmoe_layer_memory_info(const lmoe_layer* layer, lmoe_layer_memory* out);

/* The storage of the routed experts (expert 0's up projection) as an lmoe_dtype: LMOE_DTYPE_BF16,
 * LMOE_DTYPE_F32 (also for widened F16), LMOE_DTYPE_F8_E4M3 (FP8) or LMOE_DTYPE_U8 (NVFP4); the
 * gate's (LMOE_DTYPE_BF16 or LMOE_DTYPE_F32); and how many bytes open converted into its own
 * memory (lmoe_layer_memory.converted_bytes; 0 when every tensor is used in place). Other matrices
 * may have other formats (lmoe_layer_weights). Any out pointer may be NULL. */
lmoe_status lmoe_layer_weight_info(const lmoe_layer* layer, int32_t* weight_dtype,
                                   int32_t* gate_dtype, int64_t* converted_bytes);

/* out [T,d] = layer(x [T,d]), f32 row-major host memory. topk_ids [T,K] / topk_weights [T,K]
 * receive the routing when non-NULL. */
lmoe_status lmoe_layer_forward(lmoe_layer* layer, const float* x, int64_t num_tokens, float* out,
                               int32_t* topk_ids, float* topk_weights);

/* The same on DLPack tensors, borrowed for the call (their deleters are never called here):
 * x and out must be DLPack major version 1, on kDLCPU (or kDLCUDAHost, host-visible), dtype
 * float32 (code kDLFloat, bits 32, lanes 1), ndim 2, shape [T, d] (out: the same T), strides NULL
 * or C-contiguous (a dimension of extent 1 may have any stride), data + byte_offset 4-byte
 * aligned; out must not carry DLPACK_FLAG_BITMASK_READ_ONLY. x is read in place (zero copy). */
lmoe_status lmoe_layer_forward_dlpack(lmoe_layer* layer, const DLManagedTensorVersioned* x,
                                      DLManagedTensorVersioned* out);

/* The same on Arrow C Data: x / x_schema (borrowed, not released here) is a FixedSizeList<float32>
 * of list size d and length T ("+w:d" with one child "f"), optionally with the extension
 * arrow.fixed_shape_tensor whose shape is [d]; no nulls (null_count -1 (unknown) or >= 0, a
 * positive one with a validity bitmap; a bitmap may be present if it marks every row and value of
 * the slice valid), released schemas or children refused, offsets of the array and its child honoured, values read
 * in place (zero copy). On success *out / *out_schema are exported by the library (a
 * FixedSizeList<float32>[d] of length T, with the same extension when x had it, null_count 0,
 * 64-byte aligned values) and the caller owns them: call their release callbacks (or hand them to
 * an Arrow implementation that does). On failure they are left untouched. */
lmoe_status lmoe_layer_forward_arrow(lmoe_layer* layer, const struct ArrowArray* x,
                                     const struct ArrowSchema* x_schema, struct ArrowArray* out,
                                     struct ArrowSchema* out_schema);

/* For tests of the zero-copy paths: the x data pointer that the last successful forward call on
 * this layer (any path, any thread) read, or NULL before the first and once closed. */
const void* lmoe_layer_last_input(const lmoe_layer* layer);

/* Closes the layer: refuses new calls, waits for the calls in flight, unmaps and frees. NULL is a
 * no-op (LMOE_OK); a closed layer gives LMOE_ERR_INVALID_ARGUMENT (see "Threads and lifetime"). */
lmoe_status lmoe_layer_close(lmoe_layer* layer);

#ifdef __cplusplus
}
#endif

#endif /* LATENTMOE_ENGINE_H */
