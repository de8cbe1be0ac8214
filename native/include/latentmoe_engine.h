/*
 * latentmoe_engine.h - the C ABI for native inference engines (and any language with a C FFI):
 * one (Latent)MoE layer opened straight from a Hugging Face style checkpoint directory, run on
 * raw host pointers, DLPack tensors or Arrow C Data arrays. Implemented in liblatentmoe.so next to
 * the kernel ABI of latentmoe.h (whose lmoe_status, lmoe_config, lmoe_dtype and lmoe_last_error
 * it uses).
 *
 * Checkpoint (the same rules as the Java library's Checkpoint / MoeConfig / MoeWeights, so that a
 * layer computes bit for bit what the Java MoeLayer computes on the CPU backend):
 *   DIR/config.json        keys hidden_size, moe_latent_size (absent or null: standard MoE),
 *                          n_routed_experts, num_experts_per_tok, moe_intermediate_size,
 *                          moe_shared_expert_intermediate_size (absent: 0), routed_scaling_factor
 *                          (absent: 1.0), norm_topk_prob (absent: true), mlp_hidden_act (relu2 |
 *                          silu | swiglu; absent: relu2), scoring_func (sigmoid | softmax; absent:
 *                          sigmoid); n_group > 1 is rejected. Strict RFC 8259 JSON, UTF-8, at most
 *                          64 MiB, nesting at most 64.
 *   DIR/model.safetensors  or, when absent, DIR/model.safetensors.index.json whose weight_map
 *                          names the shard of every tensor (relative names that stay inside DIR).
 *   Tensors under "backbone.layers.{i}.mixer.": gate.weight, gate.e_score_correction_bias
 *   (optional), fc1_latent_proj.weight, fc2_latent_proj.weight (LatentMoE only),
 *   experts.{e}.up_proj.weight, experts.{e}.down_proj.weight (+ experts.{e}.gate_proj.weight for
 *   SwiGLU), shared_experts.up_proj.weight, shared_experts.down_proj.weight (+ gate_proj for
 *   SwiGLU) when the shared intermediate size is > 0.
 *   Safetensors files are memory-mapped; the 8-byte header length is checked against the file
 *   size (and 100 MiB), the header JSON, every dtype/shape/data_offsets entry against the data
 *   region. BF16 and F32 matrices are used in place (zero copy). When the non-gate matrices are not
 *   all BF16 they are all widened to F32 once at open (exact for F16 and BF16); an F16 gate is
 *   widened to F32; a non-F32 correction bias is converted to F32 ([1, N] is accepted as [N]).
 *   A file truncated or rewritten while a layer has it mapped is undefined behaviour (SIGBUS), as
 *   for any mmap.
 *
 * Errors: every entry point returns an lmoe_status; on failure lmoe_last_error() holds a message
 * for the calling thread (naming the file / key / tensor / argument at fault). Nothing here
 * aborts or crashes on bad input: NULL pointers, bad shapes, dtypes, strides, devices, released
 * Arrow structs and corrupt checkpoints are LMOE_ERR_INVALID_ARGUMENT (LMOE_ERR_UNSUPPORTED for a
 * valid but unsupported checkpoint feature, LMOE_ERR_OUT_OF_MEMORY when allocation fails).
 *
 * Inputs: x is f32 [T, d], row-major. T == 0 is valid and does nothing (x / out may then be NULL;
 * the DLPack and Arrow paths produce an empty output). NaN or +-Inf anywhere in x is rejected with
 * LMOE_ERR_INVALID_ARGUMENT naming the first (token, column), as the Java library does, so a
 * non-finite input never silently poisons a batch. out must not overlap x (in-place is rejected).
 *
 * Threads: a layer may be used by any number of threads at once (forward calls take a private
 * workspace from a mutex-protected pool that grows on demand; the kernels' thread pool serialises
 * the actual compute). lmoe_layer_close must not race with other calls on the same layer.
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

#define LMOE_ENGINE_ABI_VERSION 1

/* One opened layer: its config, its weights (mapped or widened) and a workspace pool. Opaque. */
typedef struct lmoe_layer lmoe_layer;

int32_t lmoe_engine_abi_version(void);

/* Opens layer layer_index (>= 0) of the checkpoint in directory dir (UTF-8 path). On success
 * *out is the layer; on failure *out is NULL and lmoe_last_error() says why. */
lmoe_status lmoe_layer_open(const char* dir, int32_t layer_index, lmoe_layer** out);

/* Copies the layer's hyper-parameters (as passed to the kernels of latentmoe.h). */
lmoe_status lmoe_layer_config(const lmoe_layer* layer, lmoe_config* out);

/* The dtypes the kernels run on (LMOE_DTYPE_BF16 or LMOE_DTYPE_F32 each), and how many bytes
 * open had to widen into its own memory (0 when every tensor is used in place from the mapping).
 * Any out pointer may be NULL. */
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
 * arrow.fixed_shape_tensor whose shape is [d]; no nulls (a validity bitmap may be present if it
 * marks every row of the slice valid), offsets of the array and its child honoured, values read
 * in place (zero copy). On success *out / *out_schema are exported by the library (a
 * FixedSizeList<float32>[d] of length T, with the same extension when x had it, null_count 0,
 * 64-byte aligned values) and the caller owns them: call their release callbacks (or hand them to
 * an Arrow implementation that does). On failure they are left untouched. */
lmoe_status lmoe_layer_forward_arrow(lmoe_layer* layer, const struct ArrowArray* x,
                                     const struct ArrowSchema* x_schema, struct ArrowArray* out,
                                     struct ArrowSchema* out_schema);

/* For tests of the zero-copy paths: the x data pointer that the last successful forward call on
 * this layer (any path, any thread) read, or NULL before the first. */
const void* lmoe_layer_last_input(const lmoe_layer* layer);

/* Unmaps and frees the layer; NULL is a no-op. No call on the layer may be in flight. */
void lmoe_layer_close(lmoe_layer* layer);

#ifdef __cplusplus
}
#endif

#endif /* LATENTMOE_ENGINE_H */
