/*
 * A plain C11 consumer of latentmoe_engine.h, as a native engine would use it. Each run writes
 * its own small random checkpoint (config.json + safetensors, written here byte by byte), then:
 *
 *   forward_f32 | forward_bf16 | forward_f16 | forward_swiglu | forward_sharded  DIR
 *       opens the layer, runs raw pointers, DLPack and Arrow (also a sliced Arrow input), checks
 *       the three outputs are bit-identical, that the DLPack / Arrow inputs were read in place
 *       (lmoe_layer_last_input) and compares with a float64 reference computed here from the
 *       stored weight values: max|y - ref| / max|ref| <= 1e-5 for every weight dtype (f32
 *       accumulation error only: the bf16 weights enter the reference exactly).
 *   errors DIR     bad checkpoints and bad arguments return an error status with a message.
 *   threads DIR    4 threads share one layer; every result equals the single-threaded one.
 *   fuzz DIR N     N random mutations of a valid safetensors header / config.json never crash.
 *
 * Decisions tested here (documented in latentmoe_engine.h): T == 0 is a valid no-op; NaN / Inf
 * in x is rejected; out overlapping x is rejected.
 * Exit status 0 = pass, 1 = failure (the failing check is printed).
 */
#include "latentmoe_engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_failures = 0;

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

/* ------------------------------------------------------------------ random numbers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static float uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0));
}

/* ------------------------------------------------------------------ dtypes */

enum { DT_F32, DT_BF16, DT_F16, DT_I32 };

static uint16_t f32_to_bf16(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint32_t r = 0x7FFF + ((b >> 16) & 1);
  return (uint16_t)((b + r) >> 16);
}
static float bf16_to_f32(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
/* float -> half, round to nearest even (inputs here are small normal numbers or 0) */
static uint16_t f32_to_f16(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint32_t sign = (b >> 16) & 0x8000;
  int32_t exp = (int32_t)((b >> 23) & 0xFF) - 127 + 15;
  uint32_t man = b & 0x7FFFFF;
  if (exp <= 0) return (uint16_t)sign; /* flush tiny values (never generated) */
  uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
  uint32_t rest = man & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)h;
}
static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  uint32_t b = exp == 0 ? sign : sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static const char* dt_name(int dt) {
  return dt == DT_F32 ? "F32" : dt == DT_BF16 ? "BF16" : dt == DT_F16 ? "F16" : "I32";
}

/* ------------------------------------------------------------------ model description */

typedef struct {
  int d, l, n, k, m, ms;
  int swiglu, softmax, norm, has_bias;
  float scale;
  int layer;       /* layer index the tensors are written under */
  int wdt, gdt;    /* stored dtypes: non-gate matrices, gate */
  int shared_dt;   /* stored dtype of the shared expert (mixed dtypes) */
  int bias_dt;     /* stored dtype of the correction bias */
  int bias_2d;     /* store the bias as [1, N] */
  int shards;      /* 0 = model.safetensors, 2 = two shards + index */
} Model;

/* Values as the engine sees them (after the stored dtype's rounding), row-major. */
typedef struct {
  float *gate, *bias, *down, *up, *su, *sg, *sd;
  float **eu, **eg, **ed;
} Weights;

typedef struct {
  char name[160];
  int dt;
  int64_t rows, cols; /* cols == 0: 1-D [rows]; rows == -1: [1, cols] */
  float* values;      /* rows*cols values to store (rounded in place to dt) */
  int shard;
} Tensor;

#define MAX_TENSORS 512
static Tensor g_t[MAX_TENSORS];
static int g_nt;

static float* add_tensor(const Model* md, const char* suffix, int dt, int64_t rows, int64_t cols, float bound,
                         int shard) {
  Tensor* t = &g_t[g_nt++];
  snprintf(t->name, sizeof t->name, "backbone.layers.%d.mixer.%s", md->layer, suffix);
  t->dt = dt;
  t->rows = rows;
  t->cols = cols;
  t->shard = shard;
  int64_t n = rows * (cols ? cols : 1);
  t->values = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n; ++i) {
    float v = uniform(-bound, bound);
    if (dt == DT_BF16) v = bf16_to_f32(f32_to_bf16(v));
    if (dt == DT_F16) v = f16_to_f32(f32_to_f16(v));
    t->values[i] = v;
  }
  return t->values;
}

static void make_weights(const Model* md, Weights* w) {
  g_nt = 0;
  int wd = md->l > 0 ? md->l : md->d;
  w->gate = add_tensor(md, "gate.weight", md->gdt, md->n, md->d, 1.0f / sqrtf((float)md->d), 0);
  w->bias = NULL;
  if (md->has_bias) {
    w->bias = add_tensor(md, "gate.e_score_correction_bias", md->bias_dt, md->bias_2d ? 1 : md->n,
                         md->bias_2d ? md->n : 0, 0.1f, 0);
    if (md->bias_2d) g_t[g_nt - 1].rows = -1;
  }
  w->down = w->up = NULL;
  if (md->l > 0) {
    w->down = add_tensor(md, "fc1_latent_proj.weight", md->wdt, md->l, md->d, 1.0f / sqrtf((float)md->d), 0);
    w->up = add_tensor(md, "fc2_latent_proj.weight", md->wdt, md->d, md->l, 1.0f / sqrtf((float)md->l), 1);
  }
  w->eu = calloc((size_t)md->n, sizeof(float*));
  w->eg = calloc((size_t)md->n, sizeof(float*));
  w->ed = calloc((size_t)md->n, sizeof(float*));
  char nm[96];
  for (int e = 0; e < md->n; ++e) {
    snprintf(nm, sizeof nm, "experts.%d.up_proj.weight", e);
    w->eu[e] = add_tensor(md, nm, md->wdt, md->m, wd, 1.0f / sqrtf((float)wd), e % 2);
    if (md->swiglu) {
      snprintf(nm, sizeof nm, "experts.%d.gate_proj.weight", e);
      w->eg[e] = add_tensor(md, nm, md->wdt, md->m, wd, 1.0f / sqrtf((float)wd), e % 2);
    }
    snprintf(nm, sizeof nm, "experts.%d.down_proj.weight", e);
    w->ed[e] = add_tensor(md, nm, md->wdt, wd, md->m, 1.0f / sqrtf((float)md->m), (e + 1) % 2);
  }
  w->su = w->sg = w->sd = NULL;
  if (md->ms > 0) {
    w->su = add_tensor(md, "shared_experts.up_proj.weight", md->shared_dt, md->ms, md->d, 1.0f / sqrtf((float)md->d), 1);
    if (md->swiglu)
      w->sg = add_tensor(md, "shared_experts.gate_proj.weight", md->shared_dt, md->ms, md->d, 1.0f / sqrtf((float)md->d), 1);
    w->sd = add_tensor(md, "shared_experts.down_proj.weight", md->shared_dt, md->d, md->ms, 1.0f / sqrtf((float)md->ms), 0);
  }
}

static void free_weights(const Model* md, Weights* w) {
  (void)md;
  for (int i = 0; i < g_nt; ++i) free(g_t[i].values);
  free(w->eu);
  free(w->eg);
  free(w->ed);
  g_nt = 0;
}

/* ------------------------------------------------------------------ files */

static void write_file(const char* path, const void* data, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  if (n && fwrite(data, 1, n, f) != n) exit(1);
  fclose(f);
}

typedef struct {
  char* p;
  size_t n, cap;
} Buf;
static void buf_add(Buf* b, const void* d, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void buf_printf(Buf* b, const char* fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  buf_add(b, tmp, (size_t)k);
}

/* Serialises the tensors of one shard (shard < 0: all) as a safetensors file image. */
static Buf safetensors_image(int shard) {
  Buf hdr = {0}, data = {0};
  {
    const char* h0 = "{\"__metadata__\":{\"format\":\"pt\"}";
    buf_add(&hdr, h0, strlen(h0));
  }
  for (int i = 0; i < g_nt; ++i) {
    Tensor* t = &g_t[i];
    if (shard >= 0 && t->shard != shard) continue;
    int64_t n = (t->rows < 0 ? 1 : t->rows) * (t->cols ? t->cols : 1);
    size_t begin = data.n;
    for (int64_t j = 0; j < n; ++j) {
      if (t->dt == DT_F32) buf_add(&data, &t->values[j], 4);
      else if (t->dt == DT_BF16) { uint16_t h = f32_to_bf16(t->values[j]); buf_add(&data, &h, 2); }
      else if (t->dt == DT_F16) { uint16_t h = f32_to_f16(t->values[j]); buf_add(&data, &h, 2); }
      else { int32_t v = (int32_t)t->values[j]; buf_add(&data, &v, 4); }
    }
    if (t->rows < 0) buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[1,%lld],\"data_offsets\":[%zu,%zu]}",
                                t->name, dt_name(t->dt), (long long)t->cols, begin, data.n);
    else if (t->cols == 0) buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                      t->name, dt_name(t->dt), (long long)t->rows, begin, data.n);
    else buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}", t->name,
                    dt_name(t->dt), (long long)t->rows, (long long)t->cols, begin, data.n);
  }
  buf_add(&hdr, "}", 1);
  while (hdr.n % 8) buf_add(&hdr, " ", 1);
  Buf out = {0};
  uint64_t len = hdr.n;
  unsigned char le[8];
  for (int k = 0; k < 8; ++k) le[k] = (unsigned char)(len >> (8 * k));
  buf_add(&out, le, 8);
  buf_add(&out, hdr.p, hdr.n);
  if (data.n) buf_add(&out, data.p, data.n);
  free(hdr.p);
  free(data.p);
  return out;
}

static Buf config_json(const Model* md) {
  Buf b = {0};
  buf_printf(&b, "{\n  \"architectures\": [\"NemotronHForCausalLM\"],\n  \"hidden_size\": %d,\n", md->d);
  if (md->l > 0) buf_printf(&b, "  \"moe_latent_size\": %d,\n", md->l);
  else buf_printf(&b, "  \"moe_latent_size\": null,\n");
  buf_printf(&b, "  \"n_routed_experts\": %d,\n  \"num_experts_per_tok\": %d,\n  \"moe_intermediate_size\": %d,\n",
             md->n, md->k, md->m);
  buf_printf(&b, "  \"moe_shared_expert_intermediate_size\": %d,\n  \"routed_scaling_factor\": %.9g,\n", md->ms,
             (double)md->scale);
  buf_printf(&b, "  \"norm_topk_prob\": %s,\n  \"mlp_hidden_act\": \"%s\",\n  \"scoring_func\": \"%s\",\n",
             md->norm ? "true" : "false", md->swiglu ? "silu" : "relu2", md->softmax ? "softmax" : "sigmoid");
  buf_printf(&b, "  \"n_group\": 1,\n  \"rope_theta\": 1e4, \"name\": \"caf\\u00e9 \\ud83d\\ude00\"\n}\n");
  return b;
}

static void write_checkpoint(const char* dir, const Model* md) {
  mkdir(dir, 0777);
  char p[1024];
  Buf c = config_json(md);
  snprintf(p, sizeof p, "%s/config.json", dir);
  write_file(p, c.p, c.n);
  free(c.p);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  unlink(p);
  if (md->shards == 0) {
    Buf s = safetensors_image(-1);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_file(p, s.p, s.n);
    free(s.p);
    return;
  }
  Buf idx = {0};
  buf_printf(&idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
  for (int i = 0; i < g_nt; ++i)
    buf_printf(&idx, "%s\"%s\":\"%smodel-%05d-of-00002.safetensors\"", i ? "," : "", g_t[i].name,
               g_t[i].shard ? "sub/../" : "", g_t[i].shard + 1);
  buf_printf(&idx, "}}");
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  write_file(p, idx.p, idx.n);
  free(idx.p);
  for (int s = 0; s < 2; ++s) {
    Buf img = safetensors_image(s);
    snprintf(p, sizeof p, "%s/model-%05d-of-00002.safetensors", dir, s + 1);
    write_file(p, img.p, img.n);
    free(img.p);
  }
}

/* ------------------------------------------------------------------ float64 reference */

static double dot_d(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += (double)a[i] * (double)b[i];
  return s;
}

/* ref [T,d]. The routing used is the kernel's (ids): first checked against float64 scores (the
 * chosen experts must be a top-K of the biased scores up to 1e-5), so near-ties cannot flake. */
static void reference(const Model* md, const Weights* w, const float* x, int T, const int32_t* ids,
                      const float* kw, double* ref) {
  int d = md->d, n = md->n, K = md->k, m = md->m, wd = md->l > 0 ? md->l : md->d;
  double* s = malloc(sizeof(double) * (size_t)n);
  double* z = malloc(sizeof(double) * (size_t)wd);
  float* zf = malloc(sizeof(float) * (size_t)wd);
  double* h = malloc(sizeof(double) * (size_t)(m > md->ms ? m : md->ms));
  double* acc = malloc(sizeof(double) * (size_t)wd);
  for (int t = 0; t < T; ++t) {
    const float* xt = x + (size_t)t * d;
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < n; ++e) {
      s[e] = dot_d(xt, w->gate + (size_t)e * d, d);
      if (s[e] > mx) mx = s[e];
    }
    for (int e = 0; e < n; ++e) {
      if (md->softmax) { s[e] = exp(s[e] - mx); sum += s[e]; }
      else s[e] = 1.0 / (1.0 + exp(-s[e]));
    }
    if (md->softmax)
      for (int e = 0; e < n; ++e) s[e] /= sum;
    /* selection check */
    double minsel = INFINITY, wsum = 0;
    int chosen[2048] = {0};
    for (int k = 0; k < K; ++k) {
      int e = ids[t * K + k];
      CHECK(e >= 0 && e < n, "expert id %d out of range", e);
      if (e < 0 || e >= n) return;
      CHECK(!chosen[e], "expert %d chosen twice", e);
      chosen[e] = 1;
      double b = s[e] + (w->bias ? w->bias[e] : 0);
      if (b < minsel) minsel = b;
      wsum += s[e];
    }
    for (int e = 0; e < n; ++e) {
      double b = s[e] + (w->bias ? w->bias[e] : 0);
      CHECK(chosen[e] || b <= minsel + 1e-5, "token %d: unselected expert %d scores %g > selected %g", t, e, b,
            minsel);
    }
    /* weights */
    for (int k = 0; k < K; ++k) {
      double wk = s[ids[t * K + k]];
      if (md->norm) wk /= (wsum + 1e-20);
      wk *= md->scale;
      CHECK(fabs(wk - kw[t * K + k]) <= 1e-5 * (1 + fabs(wk)), "token %d slot %d: weight %g vs %g", t, k,
            (double)kw[t * K + k], wk);
    }
    /* latent */
    for (int i = 0; i < wd; ++i) z[i] = md->l > 0 ? dot_d(xt, w->down + (size_t)i * d, d) : xt[i];
    for (int i = 0; i < wd; ++i) acc[i] = 0;
    for (int k = 0; k < K; ++k) {
      int e = ids[t * K + k];
      double wk = s[e];
      if (md->norm) wk /= (wsum + 1e-20);
      wk *= md->scale;
      for (int r = 0; r < m; ++r) {
        double u = 0, g = 0;
        for (int i = 0; i < wd; ++i) u += z[i] * w->eu[e][(size_t)r * wd + i];
        if (md->swiglu) {
          for (int i = 0; i < wd; ++i) g += z[i] * w->eg[e][(size_t)r * wd + i];
          h[r] = g / (1 + exp(-g)) * u;
        } else {
          h[r] = u > 0 ? u * u : 0;
        }
      }
      for (int i = 0; i < wd; ++i) {
        double y = 0;
        for (int r = 0; r < m; ++r) y += h[r] * w->ed[e][(size_t)i * m + r];
        acc[i] += wk * y;
      }
    }
    for (int o = 0; o < d; ++o) {
      double v = 0;
      if (md->l > 0)
        for (int i = 0; i < wd; ++i) v += acc[i] * w->up[(size_t)o * wd + i];
      else
        v = acc[o];
      ref[(size_t)t * d + o] = v;
    }
    if (md->ms > 0) {
      for (int r = 0; r < md->ms; ++r) {
        double u = dot_d(xt, w->su + (size_t)r * d, d);
        if (md->swiglu) {
          double g = dot_d(xt, w->sg + (size_t)r * d, d);
          h[r] = g / (1 + exp(-g)) * u;
        } else {
          h[r] = u > 0 ? u * u : 0;
        }
      }
      for (int o = 0; o < d; ++o) {
        double v = 0;
        for (int r = 0; r < md->ms; ++r) v += h[r] * w->sd[(size_t)o * md->ms + r];
        ref[(size_t)t * d + o] += v;
      }
    }
  }
  (void)zf;
  free(s); free(z); free(zf); free(h); free(acc);
}

/* ------------------------------------------------------------------ DLPack / Arrow helpers */

static void make_dl(DLManagedTensorVersioned* m, int64_t* shape, float* data, int64_t T, int64_t d) {
  memset(m, 0, sizeof *m);
  m->version.major = DLPACK_MAJOR_VERSION;
  m->version.minor = DLPACK_MINOR_VERSION;
  shape[0] = T;
  shape[1] = d;
  m->dl_tensor.data = data;
  m->dl_tensor.device.device_type = kDLCPU;
  m->dl_tensor.device.device_id = 0;
  m->dl_tensor.ndim = 2;
  m->dl_tensor.dtype.code = kDLFloat;
  m->dl_tensor.dtype.bits = 32;
  m->dl_tensor.dtype.lanes = 1;
  m->dl_tensor.shape = shape;
  m->dl_tensor.strides = NULL;
  m->dl_tensor.byte_offset = 0;
}

static void noop_array_release(struct ArrowArray* a) { a->release = NULL; }
static void noop_schema_release(struct ArrowSchema* s) { s->release = NULL; }

typedef struct {
  struct ArrowSchema schema, child_schema;
  struct ArrowSchema* schema_children[1];
  struct ArrowArray array, child;
  struct ArrowArray* children[1];
  const void* buffers[1];
  const void* child_buffers[2];
  char format[32];
} ArrowIn;

/* A FixedSizeList<float>[d] array of length T over values (array offset off, child offset coff). */
static void make_arrow(ArrowIn* a, const float* values, int64_t T, int64_t d, int64_t off, int64_t coff,
                       const char* metadata) {
  memset(a, 0, sizeof *a);
  snprintf(a->format, sizeof a->format, "+w:%lld", (long long)d);
  a->child_schema.format = "f";
  a->child_schema.name = "item";
  a->child_schema.flags = ARROW_FLAG_NULLABLE;
  a->child_schema.release = noop_schema_release;
  a->schema_children[0] = &a->child_schema;
  a->schema.format = a->format;
  a->schema.name = "x";
  a->schema.metadata = metadata;
  a->schema.n_children = 1;
  a->schema.children = a->schema_children;
  a->schema.release = noop_schema_release;
  a->child_buffers[0] = NULL;
  a->child_buffers[1] = values;
  a->child.length = (off + T) * d;
  a->child.offset = coff;
  a->child.n_buffers = 2;
  a->child.buffers = a->child_buffers;
  a->child.release = noop_array_release;
  a->children[0] = &a->child;
  a->buffers[0] = NULL;
  a->array.length = T;
  a->array.offset = off;
  a->array.n_buffers = 1;
  a->array.buffers = a->buffers;
  a->array.n_children = 1;
  a->array.children = a->children;
  a->array.release = noop_array_release;
}

/* Checks an exported output and copies its values to y (T*d floats); releases it. */
static void take_arrow_out(struct ArrowArray* out, struct ArrowSchema* os, int64_t T, int64_t d, float* y,
                           int expect_ext) {
  char want[32];
  snprintf(want, sizeof want, "+w:%lld", (long long)d);
  CHECK(os->release != NULL, "out schema has no release");
  CHECK(os->format && strcmp(os->format, want) == 0, "out format %s", os->format ? os->format : "(null)");
  CHECK(os->n_children == 1 && strcmp(os->children[0]->format, "f") == 0, "out child schema");
  CHECK((os->metadata != NULL) == (expect_ext != 0), "out extension metadata presence");
  if (os->metadata) {
    const char* want_ext = "arrow.fixed_shape_tensor";
    int found = 0;
    for (int i = 0; i < 200 && !found; ++i) found = memcmp(os->metadata + i, want_ext, strlen(want_ext)) == 0;
    CHECK(found, "out extension name");
  }
  CHECK(out->release != NULL && out->length == T && out->null_count == 0 && out->n_children == 1,
        "out array header");
  const struct ArrowArray* c = out->children[0];
  CHECK(c->length == T * d && c->n_buffers == 2 && c->null_count == 0, "out child header");
  CHECK(((uintptr_t)c->buffers[1] % 64) == 0, "out values not 64-byte aligned");
  memcpy(y, c->buffers[1], (size_t)(T * d) * sizeof(float));
  out->release(out);
  os->release(os);
  CHECK(out->release == NULL && os->release == NULL, "release callbacks must mark released");
}

static int bits_equal(const float* a, const float* b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* ------------------------------------------------------------------ forward tests */

static void fill_x(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = uniform(-1.0f, 1.0f);
}

static int run_forward_case(const char* dir, const Model* md, int expect_converted) {
  Weights w;
  make_weights(md, &w);
  write_checkpoint(dir, md);
  lmoe_layer* layer = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, md->layer, &layer));
  lmoe_config cfg;
  REQUIRE_OK(lmoe_layer_config(layer, &cfg));
  CHECK(cfg.hidden_size == md->d && cfg.latent_size == md->l && cfg.num_experts == md->n && cfg.top_k == md->k &&
            cfg.expert_intermediate_size == md->m && cfg.shared_intermediate_size == md->ms &&
            cfg.activation == (md->swiglu ? LMOE_ACT_SWIGLU : LMOE_ACT_RELU2) &&
            cfg.scoring == (md->softmax ? LMOE_SCORING_SOFTMAX : LMOE_SCORING_SIGMOID) &&
            cfg.norm_topk_prob == md->norm && cfg.routed_scaling_factor == md->scale,
        "config does not match config.json");
  int32_t wdt = -1, gdt = -1;
  int64_t conv = -1;
  REQUIRE_OK(lmoe_layer_weight_info(layer, &wdt, &gdt, &conv));
  printf("weights: %s, gate %s, widened bytes %lld\n", wdt == LMOE_DTYPE_BF16 ? "BF16" : "F32",
         gdt == LMOE_DTYPE_BF16 ? "BF16" : "F32", (long long)conv);
  if (expect_converted) CHECK(conv > 0, "expected widened weights");
  else CHECK(conv == 0, "weights should be used in place, %lld bytes widened", (long long)conv);

  const int T = 7, d = md->d, K = md->k;
  float* x = malloc(sizeof(float) * (size_t)(T + 3) * d + 64);
  fill_x(x, (size_t)(T + 3) * d);
  float* y_raw = malloc(sizeof(float) * (size_t)T * d);
  float* y_dl = malloc(sizeof(float) * (size_t)T * d);
  float* y_ar = malloc(sizeof(float) * (size_t)T * d);
  float* y_sl = malloc(sizeof(float) * (size_t)T * d);
  int32_t* ids = malloc(sizeof(int32_t) * (size_t)T * K);
  float* kw = malloc(sizeof(float) * (size_t)T * K);
  double* ref = malloc(sizeof(double) * (size_t)T * d);

  /* raw pointers */
  REQUIRE_OK(lmoe_layer_forward(layer, x, T, y_raw, ids, kw));
  CHECK(lmoe_layer_last_input(layer) == x, "raw path read another pointer");
  /* DLPack */
  DLManagedTensorVersioned mx, my;
  int64_t sx[2], sy[2];
  make_dl(&mx, sx, x, T, d);
  make_dl(&my, sy, y_dl, T, d);
  int64_t strides[2] = {d, 1};
  mx.dl_tensor.strides = strides; /* explicit C-contiguous strides are accepted too */
  REQUIRE_OK(lmoe_layer_forward_dlpack(layer, &mx, &my));
  CHECK(lmoe_layer_last_input(layer) == x, "DLPack input was copied");
  /* DLPack with byte_offset: rows 3.. of x */
  float* y_off = malloc(sizeof(float) * (size_t)T * d);
  DLManagedTensorVersioned mo, myo;
  int64_t so[2], syo[2];
  make_dl(&mo, so, x, T, d);
  mo.dl_tensor.byte_offset = (uint64_t)3 * d * sizeof(float);
  make_dl(&myo, syo, y_off, T, d);
  REQUIRE_OK(lmoe_layer_forward_dlpack(layer, &mo, &myo));
  CHECK(lmoe_layer_last_input(layer) == x + 3 * d, "DLPack byte_offset not honoured in place");
  float* y_off_raw = malloc(sizeof(float) * (size_t)T * d);
  REQUIRE_OK(lmoe_layer_forward(layer, x + 3 * d, T, y_off_raw, NULL, NULL));
  CHECK(bits_equal(y_off, y_off_raw, (size_t)T * d), "DLPack with byte_offset differs from raw");
  /* Arrow */
  ArrowIn ain;
  make_arrow(&ain, x, T, d, 0, 0, NULL);
  struct ArrowArray out;
  struct ArrowSchema osch;
  REQUIRE_OK(lmoe_layer_forward_arrow(layer, &ain.array, &ain.schema, &out, &osch));
  CHECK(lmoe_layer_last_input(layer) == x, "Arrow input was copied");
  take_arrow_out(&out, &osch, T, d, y_ar, 0);
  /* Arrow slice with array offset 2 and child offset d (= rows 3.. of x), with the tensor extension */
  char meta[256];
  {
    char* p = meta;
    const char* k1 = "ARROW:extension:name";
    const char* v1 = "arrow.fixed_shape_tensor";
    const char* k2 = "ARROW:extension:metadata";
    char v2[64];
    snprintf(v2, sizeof v2, "{\"shape\":[%d]}", d);
    int32_t n = 2, l;
    memcpy(p, &n, 4); p += 4;
    l = (int32_t)strlen(k1); memcpy(p, &l, 4); memcpy(p + 4, k1, (size_t)l); p += 4 + l;
    l = (int32_t)strlen(v1); memcpy(p, &l, 4); memcpy(p + 4, v1, (size_t)l); p += 4 + l;
    l = (int32_t)strlen(k2); memcpy(p, &l, 4); memcpy(p + 4, k2, (size_t)l); p += 4 + l;
    l = (int32_t)strlen(v2); memcpy(p, &l, 4); memcpy(p + 4, v2, (size_t)l); p += 4 + l;
  }
  make_arrow(&ain, x, T, d, 2, d, meta);
  REQUIRE_OK(lmoe_layer_forward_arrow(layer, &ain.array, &ain.schema, &out, &osch));
  CHECK(lmoe_layer_last_input(layer) == x + 3 * d, "sliced Arrow input not read in place");
  take_arrow_out(&out, &osch, T, d, y_sl, 1);
  CHECK(bits_equal(y_sl, y_off_raw, (size_t)T * d), "sliced Arrow differs from raw");

  CHECK(bits_equal(y_raw, y_dl, (size_t)T * d), "DLPack output differs from raw pointers");
  CHECK(bits_equal(y_raw, y_ar, (size_t)T * d), "Arrow output differs from raw pointers");

  reference(md, &w, x, T, ids, kw, ref);
  double maxref = 0, maxerr = 0;
  for (int i = 0; i < T * d; ++i) {
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double e = fabs((double)y_raw[i] - ref[i]);
    if (!(e <= maxerr)) maxerr = e;
  }
  double rel = maxerr / (maxref > 0 ? maxref : 1);
  const double tol = 1e-5;
  printf("max |y - ref| / max |ref| = %.3g (tolerance %.0e), max |ref| = %.3g\n", rel, tol, maxref);
  CHECK(rel <= tol, "error %g above %g", rel, tol);
  CHECK(maxref > 1e-3, "reference is degenerate (max %g)", maxref);

  /* T == 0 is a no-op on every path */
  REQUIRE_OK(lmoe_layer_forward(layer, NULL, 0, NULL, NULL, NULL));
  make_dl(&mx, sx, NULL, 0, d);
  make_dl(&my, sy, NULL, 0, d);
  REQUIRE_OK(lmoe_layer_forward_dlpack(layer, &mx, &my));
  make_arrow(&ain, NULL, 0, d, 0, 0, NULL);
  REQUIRE_OK(lmoe_layer_forward_arrow(layer, &ain.array, &ain.schema, &out, &osch));
  CHECK(out.length == 0, "empty Arrow output");
  out.release(&out);
  osch.release(&osch);

  lmoe_layer_close(layer);
  free(x); free(y_raw); free(y_dl); free(y_ar); free(y_sl); free(y_off); free(y_off_raw);
  free(ids); free(kw); free(ref);
  free_weights(md, &w);
  return g_failures ? 1 : 0;
}

static Model base_model(void) {
  Model md;
  memset(&md, 0, sizeof md);
  md.d = 64; md.l = 32; md.n = 8; md.k = 3; md.m = 48; md.ms = 40;
  md.norm = 1; md.has_bias = 1; md.scale = 2.5f; md.layer = 3;
  md.wdt = DT_F32; md.gdt = DT_F32; md.shared_dt = DT_F32; md.bias_dt = DT_F32;
  return md;
}

/* ------------------------------------------------------------------ errors */

static void expect_error(lmoe_status st, const char* what) {
  const char* msg = lmoe_last_error();
  CHECK(st != LMOE_OK, "%s: expected an error", what);
  CHECK(msg && msg[0], "%s: no error message", what);
  printf("  %-44s -> %d: %s\n", what, (int)st, msg ? msg : "(null)");
}

static void expect_open_error(const char* dir, int layer, const char* what) {
  lmoe_layer* L = (lmoe_layer*)(uintptr_t)1;
  lmoe_status st = lmoe_layer_open(dir, layer, &L);
  CHECK(L == NULL, "%s: *out must be NULL on failure", what);
  if (st == LMOE_OK) lmoe_layer_close(L);
  expect_error(st, what);
}

static void replace_in_file(const char* path, const char* from, const char* to) {
  FILE* f = fopen(path, "rb");
  if (!f) exit(1);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* b = malloc((size_t)n + 1);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
  fclose(f);
  b[n] = 0;
  char* p = strstr(b, from);
  if (!p) { fprintf(stderr, "'%s' not in %s\n", from, path); exit(1); }
  Buf o = {0};
  buf_add(&o, b, (size_t)(p - b));
  buf_add(&o, to, strlen(to));
  buf_add(&o, p + strlen(from), (size_t)n - (size_t)(p - b) - strlen(from));
  write_file(path, o.p, o.n);
  free(o.p);
  free(b);
}

static int run_errors(const char* dir) {
  Model md = base_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  char p[1024], cfgp[1024], stp[1024];
  snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
  snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
  Buf good_cfg = config_json(&md);
  Buf good_st = safetensors_image(-1);
  printf("open errors:\n");
  expect_open_error(NULL, 0, "NULL dir");
  expect_error(lmoe_layer_open(dir, 3, NULL), "NULL out");
  expect_open_error(dir, -1, "negative layer index");
  expect_open_error("/nonexistent/lmoe-engine-test", 0, "missing directory");
  expect_open_error(dir, 4, "layer without tensors");
  unlink(cfgp);
  expect_open_error(dir, 3, "missing config.json");
  write_file(cfgp, "{\"hidden_size\": 64,", 19);
  expect_open_error(dir, 3, "truncated config.json");
  write_file(cfgp, "[1,2]", 5);
  expect_open_error(dir, 3, "config.json not an object");
  {
    char deep[300];
    for (int i = 0; i < 150; ++i) { deep[i] = '['; deep[150 + i] = ']'; }
    write_file(cfgp, deep, 300);
    expect_open_error(dir, 3, "config.json nested 150 deep");
  }
  write_file(cfgp, "{\"a\":1,\"a\":2}", 13);
  expect_open_error(dir, 3, "duplicate key");
  write_file(cfgp, "{\"x\":\"\xC0\xAF\"}", 10);
  expect_open_error(dir, 3, "invalid UTF-8");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"n_group\": 1", "\"n_group\": 2");
  expect_open_error(dir, 3, "n_group 2");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"relu2\"", "\"gelu\"");
  expect_open_error(dir, 3, "unknown activation");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"num_experts_per_tok\": 3", "\"num_experts_per_tok\": 9");
  expect_open_error(dir, 3, "top_k > n_routed_experts");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"hidden_size\": 64", "\"hidden_size\": 64.5");
  expect_open_error(dir, 3, "non-integer hidden_size");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"hidden_size\": 64", "\"hidden_size\": 32");
  expect_open_error(dir, 3, "weights of the wrong shape");
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"norm_topk_prob\": true", "\"norm_topk_prob\": 1");
  expect_open_error(dir, 3, "norm_topk_prob not a boolean");
  write_file(cfgp, good_cfg.p, good_cfg.n);

  unlink(stp);
  expect_open_error(dir, 3, "no safetensors file");
  write_file(stp, good_st.p, 5);
  expect_open_error(dir, 3, "file shorter than 8 bytes");
  write_file(stp, good_st.p, 100);
  expect_open_error(dir, 3, "header longer than the file");
  write_file(stp, good_st.p, good_st.n - 4);
  expect_open_error(dir, 3, "data region truncated");
  {
    Buf b = {0};
    buf_add(&b, good_st.p, good_st.n);
    memset(b.p + 4, 0xFF, 4);
    write_file(stp, b.p, b.n);
    expect_open_error(dir, 3, "huge header length");
    memcpy(b.p, good_st.p, 8);
    b.p[8] = '[';
    write_file(stp, b.p, b.n);
    expect_open_error(dir, 3, "corrupt header JSON");
    free(b.p);
  }
  /* wrong dtype: an expert stored as I32; and an unsupported dtype */
  {
    int saved = g_t[4].dt;
    g_t[4].dt = DT_I32;
    Buf s = safetensors_image(-1);
    write_file(stp, s.p, s.n);
    free(s.p);
    expect_open_error(dir, 3, "I32 expert weight");
    g_t[4].dt = saved;
    Buf s2 = safetensors_image(-1);
    char* q = strstr(s2.p + 8, "\"F32\"");
    memcpy(q, "\"F64\"", 5); /* first tensor (the gate) now claims F64: size check fails */
    write_file(stp, s2.p, s2.n);
    free(s2.p);
    expect_open_error(dir, 3, "F64 with F32-sized data");
  }
  /* wrong shape: the gate declared [N, d/2] */
  {
    int64_t saved = g_t[0].cols;
    g_t[0].cols = md.d / 2;
    Buf s = safetensors_image(-1);
    write_file(stp, s.p, s.n);
    free(s.p);
    expect_open_error(dir, 3, "gate of the wrong shape");
    g_t[0].cols = saved;
  }
  write_file(stp, good_st.p, good_st.n);
  /* sharded: escaping shard names, missing shard */
  unlink(stp);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  write_file(p, "{\"weight_map\":{\"a\":\"../x.safetensors\"}}", 39);
  expect_open_error(dir, 3, "shard escaping the directory");
  write_file(p, "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", 34);
  expect_open_error(dir, 3, "absolute shard path");
  write_file(p, "{\"weight_map\":{\"a\":\"missing.safetensors\"}}", 42);
  expect_open_error(dir, 3, "missing shard");
  write_file(p, "{\"weight_map\":[]}", 17);
  expect_open_error(dir, 3, "weight_map not an object");
  unlink(p);
  write_file(stp, good_st.p, good_st.n);

  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 3, &L));
  const int T = 4, d = md.d;
  float x[4 * 64], y[4 * 64];
  fill_x(x, (size_t)T * d);
  printf("forward errors:\n");
  expect_error(lmoe_layer_forward(NULL, x, T, y, NULL, NULL), "NULL layer");
  expect_error(lmoe_layer_forward(L, NULL, T, y, NULL, NULL), "NULL x");
  expect_error(lmoe_layer_forward(L, x, T, NULL, NULL, NULL), "NULL out");
  expect_error(lmoe_layer_forward(L, x, -1, y, NULL, NULL), "T < 0");
  expect_error(lmoe_layer_forward(L, x, T, x, NULL, NULL), "out == x (in place)");
  expect_error(lmoe_layer_forward(L, x, T, (float*)((char*)y + 1), NULL, NULL), "misaligned out");
  x[5] = NAN;
  expect_error(lmoe_layer_forward(L, x, T, y, NULL, NULL), "NaN in x");
  x[5] = INFINITY;
  expect_error(lmoe_layer_forward(L, x, T, y, NULL, NULL), "Inf in x");
  x[5] = 0.5f;
  REQUIRE_OK(lmoe_layer_forward(L, x, T, y, NULL, NULL));
  expect_error(lmoe_layer_config(L, NULL), "config: NULL out");
  expect_error(lmoe_layer_config(NULL, &(lmoe_config){0}), "config: NULL layer");

  printf("DLPack errors:\n");
  DLManagedTensorVersioned mx, my;
  int64_t sx[2], sy[2];
#define RESET() (make_dl(&mx, sx, x, T, d), make_dl(&my, sy, y, T, d))
  RESET();
  expect_error(lmoe_layer_forward_dlpack(L, NULL, &my), "NULL x");
  expect_error(lmoe_layer_forward_dlpack(L, &mx, NULL), "NULL out");
  RESET(); mx.version.major = 0;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "DLPack version 0");
  RESET(); mx.dl_tensor.device.device_type = kDLCUDA;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "CUDA device");
  RESET(); mx.dl_tensor.dtype.bits = 64;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "float64");
  RESET(); mx.dl_tensor.dtype.code = kDLBfloat; mx.dl_tensor.dtype.bits = 16;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "bfloat16");
  RESET(); mx.dl_tensor.ndim = 3;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "3-D");
  RESET(); sx[1] = d + 1;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "wrong width");
  RESET(); sy[0] = T - 1;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "out rows != x rows");
  RESET(); mx.dl_tensor.shape = NULL;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "NULL shape");
  int64_t tr[2] = {1, T};
  RESET(); mx.dl_tensor.strides = tr;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "transposed strides");
  RESET(); my.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "read-only out");
  RESET(); mx.dl_tensor.data = NULL;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "NULL data");
  RESET(); mx.dl_tensor.byte_offset = 2;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "misaligned byte_offset");
  RESET(); my.dl_tensor.data = x;
  expect_error(lmoe_layer_forward_dlpack(L, &mx, &my), "out aliases x");
  RESET();
  REQUIRE_OK(lmoe_layer_forward_dlpack(L, &mx, &my));

  printf("Arrow errors:\n");
  ArrowIn a;
  struct ArrowArray out;
  struct ArrowSchema os;
  memset(&out, 0, sizeof out);
  memset(&os, 0, sizeof os);
  make_arrow(&a, x, T, d, 0, 0, NULL);
  expect_error(lmoe_layer_forward_arrow(L, NULL, &a.schema, &out, &os), "NULL x");
  expect_error(lmoe_layer_forward_arrow(L, &a.array, NULL, &out, &os), "NULL schema");
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, NULL, &os), "NULL out");
  a.array.release = NULL;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "released x");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.schema.format = "+w:63";
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "list size != d");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.schema.format = "+l";
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "variable-size list");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child_schema.format = "g";
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "float64 values");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child.length = T * d - 1;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "child too short");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  unsigned char validity = 0x0D; /* row 1 null */
  a.buffers[0] = &validity;
  a.array.null_count = 1;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "null row");
  validity = 0x0F; /* all valid: accepted */
  a.array.null_count = -1;
  REQUIRE_OK(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os));
  out.release(&out);
  os.release(&os);
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.array.n_children = 0;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "no child array");
  {
    char meta[128];
    const char* k1 = "ARROW:extension:name";
    const char* v1 = "my.tensor";
    int32_t n = 1, l1 = (int32_t)strlen(k1), l2 = (int32_t)strlen(v1);
    memcpy(meta, &n, 4);
    memcpy(meta + 4, &l1, 4);
    memcpy(meta + 8, k1, (size_t)l1);
    memcpy(meta + 8 + l1, &l2, 4);
    memcpy(meta + 12 + l1, v1, (size_t)l2);
    make_arrow(&a, x, T, d, 0, 0, meta);
    expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "unknown extension type");
  }
  CHECK(out.release == NULL, "out must stay untouched on failure");
  lmoe_layer_close(L);
  lmoe_layer_close(NULL);
  free(good_cfg.p);
  free(good_st.p);
  free_weights(&md, &w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ threads */

typedef struct {
  lmoe_layer* layer;
  const float* x;
  const float* want;
  int T, d, iters, bad;
} Job;

static void* worker(void* arg) {
  Job* j = arg;
  float* y = malloc(sizeof(float) * (size_t)j->T * j->d);
  for (int i = 0; i < j->iters; ++i) {
    if (lmoe_layer_forward(j->layer, j->x, j->T, y, NULL, NULL) != LMOE_OK ||
        memcmp(y, j->want, sizeof(float) * (size_t)j->T * j->d) != 0)
      j->bad++;
  }
  free(y);
  return NULL;
}

static int run_threads(const char* dir) {
  Model md = base_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, md.layer, &L));
  enum { NT = 4 };
  Job jobs[NT];
  pthread_t th[NT];
  for (int i = 0; i < NT; ++i) {
    int T = 1 + 5 * i;
    float* x = malloc(sizeof(float) * (size_t)T * md.d);
    float* want = malloc(sizeof(float) * (size_t)T * md.d);
    fill_x(x, (size_t)T * md.d);
    REQUIRE_OK(lmoe_layer_forward(L, x, T, want, NULL, NULL));
    jobs[i] = (Job){L, x, want, T, md.d, 25, 0};
  }
  for (int i = 0; i < NT; ++i) pthread_create(&th[i], NULL, worker, &jobs[i]);
  for (int i = 0; i < NT; ++i) pthread_join(th[i], NULL);
  for (int i = 0; i < NT; ++i) {
    CHECK(jobs[i].bad == 0, "thread %d: %d of %d results differ", i, jobs[i].bad, jobs[i].iters);
    free((void*)jobs[i].x);
    free((void*)jobs[i].want);
  }
  printf("%d threads x %d calls: all bit-identical to the single-threaded results\n", NT, 25);
  lmoe_layer_close(L);
  free_weights(&md, &w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ fuzz */

static void mutate(Buf* b, size_t lo, size_t hi) {
  static const char* tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "null", "true",
                                 "-", "0", "1e999", "-1", "99999999999999999999", "9223372036854775807",
                                 "\"F16\"", "\"BF16\"", "\"I32\"", "\"F8_E4M3\"", "[]", "{}", "\xff", "\xc3", " "};
  if (hi <= lo) return;
  int kind = (int)(next_u64() % 6);
  size_t at = lo + (size_t)(next_u64() % (hi - lo));
  switch (kind) {
    case 0: /* flip bits */
      b->p[at] ^= (char)(1u << (next_u64() % 8));
      break;
    case 1: /* random byte */
      b->p[at] = (char)next_u64();
      break;
    case 2: { /* digit change */
      for (size_t i = at; i < hi; ++i)
        if (b->p[i] >= '0' && b->p[i] <= '9') { b->p[i] = (char)('0' + next_u64() % 10); break; }
      break;
    }
    case 3: { /* insert a token */
      const char* t = tokens[next_u64() % (sizeof tokens / sizeof *tokens)];
      Buf o = {0};
      buf_add(&o, b->p, at);
      buf_add(&o, t, strlen(t));
      buf_add(&o, b->p + at, b->n - at);
      free(b->p);
      *b = o;
      break;
    }
    case 4: { /* delete a run */
      size_t n = 1 + (size_t)(next_u64() % 16);
      if (at + n > b->n) n = b->n - at;
      memmove(b->p + at, b->p + at + n, b->n - at - n);
      b->n -= n;
      break;
    }
    case 5: /* truncate */
      b->n = at;
      break;
  }
}

static int run_fuzz(const char* dir, int iters) {
  Model md = base_model();
  md.d = 16; md.l = 8; md.n = 4; md.k = 2; md.m = 8; md.ms = 8; md.layer = 0;
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  char cfgp[1024], stp[1024];
  snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
  snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
  Buf good_cfg = config_json(&md);
  Buf good_st = safetensors_image(-1);
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | (unsigned char)good_st.p[k];
  int opened = 0, failed = 0;
  float x[3 * 16], y[3 * 16];
  fill_x(x, 48);
  for (int it = 0; it < iters; ++it) {
    Buf c = {0}, s = {0};
    buf_add(&c, good_cfg.p, good_cfg.n);
    buf_add(&s, good_st.p, good_st.n);
    int target = (int)(next_u64() % 3);
    int rounds = 1 + (int)(next_u64() % 4);
    for (int r = 0; r < rounds; ++r) {
      if (target == 0) {
        mutate(&c, 0, c.n);
      } else if (target == 1) {
        /* mutate the JSON header, then usually fix the length field to the new header size */
        size_t before = s.n;
        mutate(&s, 8, 8 + (size_t)hlen < s.n ? 8 + (size_t)hlen : s.n);
        if (s.n >= 8 && next_u64() % 4 != 0) {
          int64_t nl = (int64_t)hlen + ((int64_t)s.n - (int64_t)before);
          if (nl < 0) nl = 0;
          for (int k = 0; k < 8; ++k) s.p[k] = (char)((uint64_t)nl >> (8 * k));
        }
      } else {
        mutate(&s, 0, s.n < 8 ? s.n : 8); /* the length field itself */
      }
    }
    write_file(cfgp, c.p, c.n);
    write_file(stp, s.p, s.n);
    lmoe_layer* L = NULL;
    lmoe_status st = lmoe_layer_open(dir, 0, &L);
    if (st == LMOE_OK) {
      opened++;
      lmoe_config cfg;
      REQUIRE_OK(lmoe_layer_config(L, &cfg));
      if (cfg.hidden_size == 16) (void)lmoe_layer_forward(L, x, 3, y, NULL, NULL);
      lmoe_layer_close(L);
    } else {
      failed++;
      const char* m = lmoe_last_error();
      CHECK(m && m[0], "iteration %d: error %d without a message", it, (int)st);
      CHECK(L == NULL, "iteration %d: *out set on failure", it);
    }
    free(c.p);
    free(s.p);
  }
  printf("fuzz: %d mutations, %d opened (harmless mutations), %d rejected with a message, no crash\n", iters,
         opened, failed);
  CHECK(failed > iters / 4, "too few mutations were rejected (%d) - is the fuzzer mutating?", failed);
  free(good_cfg.p);
  free(good_st.p);
  free_weights(&md, &w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s forward_f32|forward_bf16|forward_f16|forward_swiglu|forward_sharded|errors|threads DIR\n"
                    "       %s fuzz DIR N\n", argv[0], argv[0]);
    return 2;
  }
  const char* test = argv[1];
  const char* dir = argv[2];
  mkdir(dir, 0777);
  printf("engine ABI %d, kernel ABI %d, ISA %d\n", lmoe_engine_abi_version(), lmoe_abi_version(), lmoe_cpu_isa());
  int rc;
  Model md = base_model();
  if (strcmp(test, "forward_f32") == 0) {
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "forward_bf16") == 0) {
    md.l = 0; md.wdt = DT_BF16; md.gdt = DT_BF16; md.shared_dt = DT_BF16;
    md.softmax = 1; md.norm = 0; md.scale = 1.0f; md.layer = 0;
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "forward_f16") == 0) {
    /* mixed: experts F16, shared expert BF16, gate F16, bias BF16 [1, N] -> all widened to F32 */
    md.wdt = DT_F16; md.gdt = DT_F16; md.shared_dt = DT_BF16; md.bias_dt = DT_BF16; md.bias_2d = 1;
    rc = run_forward_case(dir, &md, 1);
  } else if (strcmp(test, "forward_swiglu") == 0) {
    md.swiglu = 1; md.has_bias = 0; md.scale = 1.0f;
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "forward_sharded") == 0) {
    md.shards = 2; md.wdt = DT_BF16; md.gdt = DT_F32; md.shared_dt = DT_BF16;
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "errors") == 0) {
    rc = run_errors(dir);
  } else if (strcmp(test, "threads") == 0) {
    rc = run_threads(dir);
  } else if (strcmp(test, "fuzz") == 0) {
    rc = run_fuzz(dir, argc > 3 ? atoi(argv[3]) : 2000);
  } else {
    fprintf(stderr, "unknown test %s\n", test);
    return 2;
  }
  printf("%s: %s\n", test, rc == 0 && g_failures == 0 ? "PASS" : "FAIL");
  return rc == 0 && g_failures == 0 ? 0 : 1;
}
