/*
 * latentmoe.h - the stable C ABI of the LatentMoE kernel library (CPU backend).
 *
 * Plain C types only. Every entry point returns an lmoe_status; on failure a message for the
 * calling thread is available from lmoe_last_error() until that thread's next call.
 * Matrices are row-major and dense. "w" below is the expert width: latent_size when it is > 0
 * (LatentMoE), hidden_size otherwise (standard MoE).
 *
 * One forward pass, as data (T tokens):
 *   x [T,d] f32
 *   -> lmoe_cpu_router_topk   -> topk_ids [T,K] i32, topk_weights [T,K] f32
 *   -> lmoe_cpu_dispatch      -> expert_offsets [N+1] i32, sorted_row_of_slot [T*K] i32,
 *                                latent_sorted [T*K, w] f32 (z = x W_down^T, rows in expert order)
 *   -> lmoe_cpu_experts       -> expert_out_sorted [T*K, w] f32  (FC1 + activation, FC2)
 *   -> lmoe_cpu_combine       -> out [T,d] f32 (weighted sum over K in w, W_up, + shared expert)
 * lmoe_cpu_forward runs all four with a caller-given workspace.
 *
 * Workspaces: every buffer is the caller's; nothing is allocated per call for the data. Per step:
 * lmoe_cpu_router_topk and lmoe_cpu_dispatch need none; lmoe_cpu_experts needs
 * lmoe_cpu_experts_scratch_floats(cfg, T) floats; lmoe_cpu_combine needs
 * lmoe_cpu_combine_scratch_floats(cfg, T) floats; lmoe_cpu_forward needs
 * lmoe_cpu_forward_workspace_bytes(cfg, T) bytes. A workspace sized for T serves any smaller T.
 *
 * Weights are the caller's too (lmoe_weights holds pointers, nothing is copied; the caller keeps
 * them alive and unchanged for the length of each call). Per-expert descriptors may point into one
 * fused tensor: for transformers' up_proj [N, m, w] (row-major, contiguous), expert_up[e].data =
 * base + e * m * w elements; any other spacing between experts works the same way, but each
 * expert's own [rows, cols] must be dense and row-major.
 * num_tokens == 0 is valid for every entry point and does nothing (lmoe_cpu_dispatch still writes
 * expert_offsets, all 0); num_tokens < 0 is LMOE_ERR_INVALID_ARGUMENT. The int64_t size queries
 * return -1 (and set lmoe_last_error) for an invalid cfg.
 */
#ifndef LATENTMOE_H
#define LATENTMOE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LMOE_ABI_VERSION 2

typedef enum lmoe_status {
  LMOE_OK = 0,
  LMOE_ERR_INVALID_ARGUMENT = 1,
  LMOE_ERR_UNSUPPORTED = 2,
  LMOE_ERR_OUT_OF_MEMORY = 3,
  LMOE_ERR_CUDA = 4,
  LMOE_ERR_INTERNAL = 5
} lmoe_status;

typedef enum lmoe_dtype {
  LMOE_DTYPE_F32 = 0,
  LMOE_DTYPE_BF16 = 1,
  LMOE_DTYPE_F16 = 2,
  LMOE_DTYPE_I32 = 3,
  LMOE_DTYPE_F8_E4M3 = 4,  /* OCP e4m3 (FN: no Inf, 0x7f/0xff NaN, max 448) */
  LMOE_DTYPE_U8 = 5
} lmoe_dtype;

/* How one weight matrix [rows, cols] (rows = output features, cols = input features) is stored.
 * Every format is used in place (never expanded in memory); the kernels dequantize on the fly. */
typedef enum lmoe_weight_format {
  LMOE_WFMT_F32 = 0,       /* data: f32 [rows, cols] */
  LMOE_WFMT_BF16 = 1,      /* data: bf16 [rows, cols] */
  LMOE_WFMT_FP8_E4M3 = 2,  /* data: e4m3 [rows, cols]; value = e4m3 * scale (ModelOpt FP8) */
  LMOE_WFMT_NVFP4 = 3      /* data: [rows, cols/2] bytes, two e2m1 codes per byte, the even column
                              in the low nibble; block_scales: e4m3 [rows, cols/16];
                              value = e2m1 * block_scale * scale (ModelOpt NVFP4) */
} lmoe_weight_format;

/* How the CPU multiplies activations by weights (lmoe_config.precision). The router is f32 in
 * both (selection as in HF's fp32 router). Each (kernel, weight format, width) computes every
 * output element as a fixed function of its own token and weight row: the results are the same
 * bits for any T, token chunking, row partition and thread count; lmoe_cpu_gemm_kernel names the
 * kernel of the ISA in use. */
typedef enum lmoe_precision {
  LMOE_PRECISION_EXACT = 0, /* f32 activations against the stored weight values, f32 accumulation
                               (rel. error ~1e-7; on AMX: each activation as 3 bf16 terms, exact
                               products) */
  LMOE_PRECISION_BF16 = 1   /* every GEMM's activations rounded to bf16 (RNE) once, bf16 x bf16
                               products, f32 accumulation (rel. error ~3e-3, as HF's bf16 model and
                               the GPU path): AMX, AVX512-BF16, else f32 FMA on the rounded values */
} lmoe_precision;

typedef enum lmoe_activation {
  LMOE_ACT_RELU2 = 0,  /* h = relu(z up^T)^2 (Nemotron-H) */
  LMOE_ACT_SWIGLU = 1, /* h = silu(z gate^T) * (z up^T) (checkpoints with gate_proj tensors) */
  LMOE_ACT_SILU = 2    /* h = silu(z up^T), non-gated (transformers nemotron_h "silu") */
} lmoe_activation;

typedef enum lmoe_scoring {
  LMOE_SCORING_SIGMOID = 0,
  LMOE_SCORING_SOFTMAX = 1
} lmoe_scoring;

typedef enum lmoe_isa {
  LMOE_ISA_SCALAR = 0,
  LMOE_ISA_AVX2 = 1,        /* AVX2 + FMA */
  LMOE_ISA_AVX512 = 2,      /* AVX-512F/BW/VL */
  LMOE_ISA_AVX512_BF16 = 3, /* + AVX512-BF16 (vdpbf16ps): the bf16 mode's kernel */
  LMOE_ISA_AMX = 4          /* + AMX-BF16 tiles: both precisions (exact as 3 bf16 terms) */
} lmoe_isa;

/* Register-only compute probes (lmoe_cpu_peak_probe): the loop each kernel family is bound by. */
typedef enum lmoe_peak_probe {
  LMOE_PEAK_SSE2 = 0,        /* f32 mulps + addps (the scalar kernels' baseline) */
  LMOE_PEAK_FMA_AVX2 = 1,    /* f32 FMA, 256-bit */
  LMOE_PEAK_FMA_AVX512 = 2,  /* f32 FMA, 512-bit */
  LMOE_PEAK_DPBF16 = 3,      /* vdpbf16ps, 512-bit */
  LMOE_PEAK_AMX_BF16 = 4     /* tdpbf16ps */
} lmoe_peak_probe;

typedef enum lmoe_probe {
  LMOE_PROBE_COPY = 0,   /* a[i] = b[i];           counts read + write bytes */
  LMOE_PROBE_TRIAD = 1,  /* a[i] = b[i] + s*c[i];  counts 2 reads + 1 write */
  LMOE_PROBE_READ = 2    /* sum += a[i];           counts read bytes */
} lmoe_probe;

/* Layer hyper-parameters. */
typedef struct lmoe_config {
  int32_t hidden_size;              /* d */
  int32_t latent_size;              /* l; 0 = standard MoE */
  int32_t num_experts;              /* N, 1..2048 */
  int32_t top_k;                    /* K, 1..min(32, N) */
  int32_t expert_intermediate_size; /* m */
  int32_t shared_intermediate_size; /* 0 = no shared expert */
  int32_t activation;               /* lmoe_activation */
  int32_t scoring;                  /* lmoe_scoring */
  int32_t norm_topk_prob;           /* 0 or 1 */
  float routed_scaling_factor;
  int32_t precision;                /* lmoe_precision */
} lmoe_config;

/* One weight matrix, dense row-major in host memory; its [rows, cols] follow from the config.
 * An absent matrix has data == NULL. Any alignment of the element size (bytes for FP8/NVFP4). */
typedef struct lmoe_matrix {
  int32_t format;               /* lmoe_weight_format */
  int32_t reserved;             /* must be 0 */
  const void* data;
  const uint8_t* block_scales;  /* NVFP4: e4m3 [rows, cols/16], dense; NULL for other formats */
  float scale;                  /* per-tensor scale: FP8 weight_scale, NVFP4 weight_scale_2;
                                   must be 1 for F32 / BF16 */
  float input_scale;            /* static activation scale of the checkpoint (W8A8 on the GPU),
                                   0 = none; the CPU does not use it */
} lmoe_matrix;

/* The layer's weights ("w" = expert width). The gate is F32 or BF16; every other matrix may have
 * its own format (e.g. BF16 latent projections, FP8 shared expert, NVFP4 routed experts). */
typedef struct lmoe_weights {
  lmoe_matrix gate;                /* [N, d] router, F32 or BF16 */
  const float* gate_bias;          /* [N] e_score_correction_bias (selection only), or NULL */
  lmoe_matrix latent_down;         /* fc1_latent_proj [l, d]; absent when latent_size == 0 */
  lmoe_matrix latent_up;           /* fc2_latent_proj [d, l]; absent when latent_size == 0 */
  const lmoe_matrix* expert_up;    /* N descriptors, each up_proj [m, w] */
  const lmoe_matrix* expert_gate;  /* N descriptors, each gate_proj [m, w]; SwiGLU only, else NULL */
  const lmoe_matrix* expert_down;  /* N descriptors, each down_proj [w, m] */
  lmoe_matrix shared_up;           /* [ms, d]; absent when shared_intermediate_size == 0 */
  lmoe_matrix shared_gate;         /* [ms, d]; SwiGLU only */
  lmoe_matrix shared_down;         /* [d, ms] */
} lmoe_weights;

/* Library information and errors. */
int32_t lmoe_abi_version(void);
const char* lmoe_last_error(void);
int32_t lmoe_cpu_best_isa(void);              /* the best lmoe_isa this CPU supports */
int32_t lmoe_cpu_isa(void);                   /* the lmoe_isa in use */
lmoe_status lmoe_cpu_set_isa(int32_t isa);    /* force a code path (tests); fails if unsupported */
int32_t lmoe_cpu_num_threads(void);
lmoe_status lmoe_cpu_set_num_threads(int32_t num_threads); /* 1..1024; results never depend on it */

/* Tokens per chunk of lmoe_cpu_forward (process-wide, default 2048): a call over T tokens runs
 * ceil(T / chunk) chunks one after another over one workspace, whose size
 * lmoe_cpu_forward_workspace_bytes gives for min(T, chunk) tokens (query it again after a change).
 * Results never depend on it. Larger chunks stream the routed experts' weights fewer times. */
int64_t lmoe_cpu_chunk_tokens(void);
lmoe_status lmoe_cpu_set_chunk_tokens(int64_t tokens);  /* 1..2^24 */

/* The GEMM kernel the CPU backend runs for a precision (lmoe_precision) on the ISA in use: its
 * name (a static string, e.g. "amx-bf16"), the lmoe_peak_probe whose rate bounds its
 * multiply-adds, and the bf16 terms it multiplies per activation (3 for the AMX exact kernel,
 * which splits each f32 activation into three bf16 numbers, so its useful rate is at most the
 * probe's / 3; 1 otherwise). Any output pointer may be NULL. */
lmoe_status lmoe_cpu_gemm_kernel(int32_t precision, const char** name, int32_t* peak_probe,
                                 int32_t* terms);

/* Validates cfg and weights: non-NULL where required, formats (known, allowed for the matrix,
 * reserved 0, scale finite and > 0 (1 for F32/BF16), NVFP4: cols % 16 == 0 and block scales
 * present), sizes. A valid format or precision without a kernel on this CPU path is
 * LMOE_ERR_UNSUPPORTED naming the matrix. Every entry point runs the checks it needs. */
lmoe_status lmoe_validate(const lmoe_config* cfg, const lmoe_weights* weights);

/* Router + top-K. x [T,d] f32. Writes topk_ids [T,K] (descending by biased score, ties to the
 * lower id) and topk_weights [T,K] (unbiased scores, normalised if norm_topk_prob, times scale). */
lmoe_status lmoe_cpu_router_topk(const lmoe_config* cfg, const lmoe_weights* weights,
                                 const float* x, int64_t num_tokens,
                                 int32_t* topk_ids, float* topk_weights);

/* Down-projection + dispatch. expert_offsets [N+1]: rows of expert e are
 * [expert_offsets[e], expert_offsets[e+1]) of latent_sorted; sorted_row_of_slot [T*K] maps slot
 * t*K+k to its row. Rows of one expert keep slot order (stable). latent_sorted [T*K, w] f32. */
lmoe_status lmoe_cpu_dispatch(const lmoe_config* cfg, const lmoe_weights* weights,
                              const float* x, int64_t num_tokens, const int32_t* topk_ids,
                              int32_t* expert_offsets, int32_t* sorted_row_of_slot,
                              float* latent_sorted);

/* Grouped expert GEMMs: expert_out_sorted = act(latent_sorted up^T [, gate]) down^T per expert.
 * hidden_scratch: at least lmoe_cpu_experts_scratch_floats(cfg, T) (= T*K*m) floats. */
int64_t lmoe_cpu_experts_scratch_floats(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cpu_experts(const lmoe_config* cfg, const lmoe_weights* weights,
                             int64_t num_tokens, const int32_t* expert_offsets,
                             const float* latent_sorted, float* hidden_scratch,
                             float* expert_out_sorted);

/* Combine + up-projection + shared expert:
 * out[t] = W_up (sum_k topk_weights[t,k] * expert_out_sorted[sorted_row_of_slot[t*K+k]])
 *          + shared(x[t]), k summed in order 0..K-1 in f32.
 * scratch: at least lmoe_cpu_combine_scratch_floats(cfg, T) floats. */
int64_t lmoe_cpu_combine_scratch_floats(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cpu_combine(const lmoe_config* cfg, const lmoe_weights* weights,
                             const float* x, int64_t num_tokens, const float* topk_weights,
                             const int32_t* sorted_row_of_slot, const float* expert_out_sorted,
                             float* scratch, float* out);

/* The whole layer. workspace: at least lmoe_cpu_forward_workspace_bytes(cfg, T) bytes, 64-byte
 * aligned. topk_ids / topk_weights [T,K] receive the routing. out [T,d] f32. */
int64_t lmoe_cpu_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens);
lmoe_status lmoe_cpu_forward(const lmoe_config* cfg, const lmoe_weights* weights,
                             const float* x, int64_t num_tokens,
                             int32_t* topk_ids, float* topk_weights,
                             void* workspace, int64_t workspace_bytes, float* out);

/* Register-only compute probe: the inner loop of `probe` (lmoe_peak_probe: independent chains of
 * FMA / vdpbf16ps on registers, or AMX tile products without loads, random operands) on every
 * pool thread for about `seconds` (0.001..60) per repetition; best of reps, in GFLOP/s (a
 * multiply-add = 2 flops) over all threads. The machine's compute ceiling for the kernels that
 * lmoe_cpu_gemm_kernel names; LMOE_ERR_UNSUPPORTED when this CPU (or OS, for AMX) lacks it. */
lmoe_status lmoe_cpu_peak_probe(int32_t probe, double seconds, int32_t reps, double* best_gflops);

/* STREAM-style memory bandwidth probe on arrays of array_bytes each, with the current thread
 * count; best of reps, in GB/s (1e9 bytes/s). */
lmoe_status lmoe_cpu_membw_probe(int32_t probe, int64_t array_bytes, int32_t reps,
                                 double* best_gbps);

/* Fills dst[0..count) with values uniform in [lo, hi) from a counter-based hash of (seed, index):
 * the same seed gives the same values for any thread count. dtype F32, BF16 or F16. */
lmoe_status lmoe_fill_uniform(void* dst, int32_t dtype, int64_t count, uint64_t seed,
                              float lo, float hi);

#ifdef __cplusplus
}
#endif

#endif /* LATENTMOE_H */
