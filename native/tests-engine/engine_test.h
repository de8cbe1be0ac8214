/*
 * What the engine ABI's C tests share: a seeded RNG, a checkpoint writer
 * (engine_checkpoint_writer.c: config.json, hf_quant_config.json, safetensors written byte by byte,
 * single file or two shards) whose matrices may be F32, BF16, F16, FP8 (E4M3 + per-tensor scale) or
 * NVFP4 (packed e2m1 + e4m3 block scales + per-tensor scale) from its own quantizer, and a float64
 * reference of the layer computed from the dequantized values the writer stored (engine_test.c).
 */
#ifndef LMOE_ENGINE_TEST_H
#define LMOE_ENGINE_TEST_H

#include "latentmoe_engine.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int g_failures;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fprintf(stderr, "\n");                                          \
      g_failures++;                                                   \
    }                                                                 \
  } while (0)

#define REQUIRE_OK(call)                                                                \
  do {                                                                                  \
    lmoe_status st_ = (call);                                                           \
    if (st_ != LMOE_OK) {                                                               \
      fprintf(stderr, "FAIL %s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, (int)st_, \
              lmoe_last_error());                                                       \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

/* ---- random numbers */
void seed_rng(uint64_t seed);
uint64_t next_u64(void);
float uniform(float lo, float hi);
void fill_x(float* x, size_t n);

/* ---- storage formats of a matrix */
enum { FMT_F32, FMT_BF16, FMT_F16, FMT_FP8, FMT_NVFP4, FMT_I32 };
enum { ACT_RELU2, ACT_SILU, ACT_SWIGLU };  /* SILU: "silu" without gate_proj; SWIGLU: gate_proj tensors */
/* Where the quantization is described. */
enum { QCFG_HF = 1, QCFG_CONFIG = 2 };

typedef struct {
  int d, l, n, k, m, ms;
  int act, softmax, norm, has_bias;
  float scale;
  int layer;                            /* layer index the tensors are written under */
  int expert_fmt, shared_fmt, latent_fmt, gate_fmt;
  int bias_fmt, bias_2d;                /* correction bias stored as F32 / BF16 (FMT_*), maybe [1, N] */
  int shards;                           /* 0 = model.safetensors, 2 = two shards + index */
  int quant_where;                      /* QCFG_* bits; 0 = QCFG_HF when a matrix is quantized */
  int sentinel_names;                   /* write module names as ModelOpt 0.47 does (NUL sentinel) */
  const char* extra_config;             /* more members for config.json, e.g. "\"mlp_bias\": true" */
} Model;

Model base_model(void);

/* The values the engine must see (dequantized), row-major, for the reference. */
typedef struct {
  float *gate, *bias, *down, *up, *su, *sg, *sd;
  float **eu, **eg, **ed;
  int n_experts;
} Weights;

/* One stored tensor. */
typedef struct {
  char name[192];
  char dtype[12];
  int rank;
  int64_t shape[2];
  unsigned char* bytes;
  size_t nbytes;
  int shard;
} RawTensor;

#define MAX_TENSORS 1024
extern RawTensor g_t[MAX_TENSORS];
extern int g_nt;

/* Builds the tensors of md (seeded by the RNG state) into g_t and the dequantized values into w. */
void make_weights(const Model* md, Weights* w);
void free_weights(Weights* w);
/* The stored tensor named "backbone.layers.{layer}.mixer.<suffix>", or NULL. */
RawTensor* find_tensor(const Model* md, const char* suffix);
/* Adds a raw tensor under the layer's mixer prefix (F32 scalar when rank 0). */
RawTensor* add_raw(const Model* md, const char* suffix, const char* dtype, int rank, int64_t r, int64_t c,
                   const void* bytes, size_t nbytes);
void remove_tensor(const Model* md, const char* suffix);

/* ---- files */
typedef struct {
  char* p;
  size_t n, cap;
} Buf;
void buf_add(Buf* b, const void* d, size_t n);
void buf_printf(Buf* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void write_file(const char* path, const void* data, size_t n);
Buf read_file(const char* path);
void replace_in_file(const char* path, const char* from, const char* to);
Buf safetensors_image(int shard);            /* shard < 0: every tensor */
Buf config_json(const Model* md);
Buf hf_quant_config_json(const Model* md);   /* empty when nothing is quantized */
void write_checkpoint(const char* dir, const Model* md);

/* ---- reference and checks */
/* ref [T,d] from w for the kernel's routing (ids, kw), which is checked against float64 scores. */
void reference(const Model* md, const Weights* w, const float* x, int T, const int32_t* ids, const float* kw,
               double* ref);
/* max |y - ref| / max |ref| */
double rel_error(const float* y, const double* ref, size_t n, double* max_ref);
/* Opens dir, runs T tokens, compares with the reference within tol; returns the error. */
double forward_vs_reference(const char* dir, const Model* md, const Weights* w, int T, double tol);

void expect_error(lmoe_status st, const char* what);
void expect_open_error(const char* dir, int layer, const char* what, const char* needle);

/* ---- Arrow C Data input: a FixedSizeList<float>[d] of length T over values (array offset off,
 * child offset coff), borrowed structs with no-op release callbacks */
typedef struct {
  struct ArrowSchema schema, child_schema;
  struct ArrowSchema* schema_children[1];
  struct ArrowArray array, child;
  struct ArrowArray* children[1];
  const void* buffers[1];
  const void* child_buffers[2];
  char format[32];
} ArrowIn;
void make_arrow(ArrowIn* a, const float* values, int64_t T, int64_t d, int64_t off, int64_t coff,
                const char* metadata);
void noop_array_release(struct ArrowArray* a);
void noop_schema_release(struct ArrowSchema* s);

/* e4m3 (OCP FN) */
float e4m3_value(uint8_t code);
uint8_t e4m3_encode(float v);  /* nearest, ties to even; |v| <= 448 */

#endif
