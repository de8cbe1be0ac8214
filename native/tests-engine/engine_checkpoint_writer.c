/* engine_test.h's checkpoint writer: number formats (bf16, f16, e4m3, e2m1), this file's own
 * FP8 / NVFP4 quantizer, the tensors of a model and the files of a checkpoint (config.json,
 * hf_quant_config.json, single or sharded safetensors). */
#include "engine_test.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

RawTensor g_t[MAX_TENSORS];
int g_nt = 0;

/* ------------------------------------------------------------------ number formats */

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
/* float -> half, round to nearest even (inputs here are small normal numbers) */
static uint16_t f32_to_f16(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint32_t sign = (b >> 16) & 0x8000;
  int32_t exp = (int32_t)((b >> 23) & 0xFF) - 127 + 15;
  uint32_t man = b & 0x7FFFFF;
  if (exp <= 0) return (uint16_t)sign;
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

float e4m3_value(uint8_t code) {
  int sign = code >> 7, exp = (code >> 3) & 0xF, man = code & 7;
  float v;
  if (exp == 0xF && man == 7) return NAN;
  if (exp == 0) v = ldexpf((float)man, -9);
  else v = ldexpf((float)(8 + man), exp - 10);
  return sign ? -v : v;
}

/* Nearest finite e4m3 (ties to the even code), by search over the 127 magnitudes. */
uint8_t e4m3_encode(float v) {
  float a = fabsf(v);
  int best = 0;
  float bestd = INFINITY;
  for (int c = 0; c < 127; ++c) {
    float d = fabsf(e4m3_value((uint8_t)c) - a);
    if (d < bestd || (d == bestd && (c & 1) == 0)) {
      bestd = d;
      best = c;
    }
  }
  return (uint8_t)(best | (v < 0 ? 0x80 : 0));
}

static const float kE2m1[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
static uint8_t e2m1_encode(float v) {
  float a = fabsf(v);
  int best = 0;
  for (int c = 1; c < 8; ++c)
    if (fabsf(kE2m1[c] - a) < fabsf(kE2m1[best] - a)) best = c;
  return (uint8_t)(best | (v < 0 && best ? 8 : 0));
}

/* ------------------------------------------------------------------ tensors */

Model base_model(void) {
  Model md;
  memset(&md, 0, sizeof md);
  md.d = 64; md.l = 32; md.n = 8; md.k = 3; md.m = 48; md.ms = 40;
  md.norm = 1; md.has_bias = 1; md.scale = 2.5f; md.layer = 3;
  md.expert_fmt = md.shared_fmt = md.latent_fmt = md.gate_fmt = md.bias_fmt = FMT_F32;
  return md;
}

RawTensor* add_raw(const Model* md, const char* suffix, const char* dtype, int rank, int64_t r, int64_t c,
                   const void* bytes, size_t nbytes) {
  if (g_nt >= MAX_TENSORS) { fprintf(stderr, "too many tensors\n"); exit(1); }
  RawTensor* t = &g_t[g_nt++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "backbone.layers.%d.mixer.%s", md->layer, suffix);
  snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
  t->rank = rank;
  t->shape[0] = r;
  t->shape[1] = c;
  t->bytes = malloc(nbytes ? nbytes : 1);
  memcpy(t->bytes, bytes, nbytes);
  t->nbytes = nbytes;
  return t;
}

RawTensor* find_tensor(const Model* md, const char* suffix) {
  char name[192];
  snprintf(name, sizeof name, "backbone.layers.%d.mixer.%s", md->layer, suffix);
  for (int i = 0; i < g_nt; ++i)
    if (strcmp(g_t[i].name, name) == 0) return &g_t[i];
  return NULL;
}

void remove_tensor(const Model* md, const char* suffix) {
  RawTensor* t = find_tensor(md, suffix);
  if (!t) { fprintf(stderr, "no tensor %s\n", suffix); exit(1); }
  free(t->bytes);
  int i = (int)(t - g_t);
  memmove(&g_t[i], &g_t[i + 1], sizeof(RawTensor) * (size_t)(g_nt - i - 1));
  g_nt--;
}

static void add_scalar(const Model* md, const char* module, const char* which, float v, int shard) {
  char s[192];
  snprintf(s, sizeof s, "%s.%s", module, which);
  add_raw(md, s, "F32", 0, 0, 0, &v, 4)->shard = shard;
}

/* One matrix [rows, cols] of module (e.g. "experts.3.up_proj") stored in fmt; returns the values
 * the engine must see. */
static float* matrix(const Model* md, const char* module, int fmt, int64_t rows, int64_t cols, int shard) {
  const size_t n = (size_t)(rows * cols);
  const float bound = 1.0f / sqrtf((float)cols);
  float* v = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; ++i) v[i] = uniform(-bound, bound);
  char wname[192];
  snprintf(wname, sizeof wname, "%s.weight", module);
  if (fmt == FMT_F32 || fmt == FMT_I32) {
    if (fmt == FMT_I32) {
      int32_t* iv = malloc(n * 4);
      for (size_t i = 0; i < n; ++i) iv[i] = (int32_t)(v[i] * 100);
      add_raw(md, wname, "I32", 2, rows, cols, iv, n * 4)->shard = shard;
      free(iv);
    } else {
      add_raw(md, wname, "F32", 2, rows, cols, v, n * 4)->shard = shard;
    }
  } else if (fmt == FMT_BF16 || fmt == FMT_F16) {
    uint16_t* h = malloc(n * 2);
    for (size_t i = 0; i < n; ++i) {
      h[i] = fmt == FMT_BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      v[i] = fmt == FMT_BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
    }
    add_raw(md, wname, fmt == FMT_BF16 ? "BF16" : "F16", 2, rows, cols, h, n * 2)->shard = shard;
    free(h);
  } else if (fmt == FMT_FP8) {
    float amax = 0;
    for (size_t i = 0; i < n; ++i) amax = fmaxf(amax, fabsf(v[i]));
    const float scale = amax / 448.0f;
    uint8_t* codes = malloc(n);
    for (size_t i = 0; i < n; ++i) {
      codes[i] = e4m3_encode(v[i] / scale);
      v[i] = (float)((double)e4m3_value(codes[i]) * scale);
    }
    add_raw(md, wname, "F8_E4M3", 2, rows, cols, codes, n)->shard = shard;
    free(codes);
    add_scalar(md, module, "weight_scale", scale, shard);
    add_scalar(md, module, "input_scale", 0.0123f, shard);
  } else { /* NVFP4: blocks of 16 along cols */
    float amax = 0;
    for (size_t i = 0; i < n; ++i) amax = fmaxf(amax, fabsf(v[i]));
    const float scale2 = amax / (6.0f * 448.0f);
    const int64_t blocks = cols / 16;
    uint8_t* packed = calloc((size_t)(rows * cols / 2), 1);
    uint8_t* bs = malloc((size_t)(rows * blocks));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < blocks; ++b) {
        float bmax = 0;
        for (int j = 0; j < 16; ++j) bmax = fmaxf(bmax, fabsf(v[r * cols + b * 16 + j]));
        uint8_t sc = e4m3_encode(bmax / (6.0f * scale2));
        bs[r * blocks + b] = sc;
        const float s = e4m3_value(sc);
        for (int j = 0; j < 16; ++j) {
          const int64_t i = r * cols + b * 16 + j;
          uint8_t q = s > 0 ? e2m1_encode(v[i] / (s * scale2)) : 0;
          packed[i / 2] |= (uint8_t)((j & 1) ? q << 4 : q);
          v[i] = (float)((double)(q & 8 ? -kE2m1[q & 7] : kE2m1[q & 7]) * s * scale2);
        }
      }
    }
    add_raw(md, wname, "U8", 2, rows, cols / 2, packed, (size_t)(rows * cols / 2))->shard = shard;
    char sname[192];
    snprintf(sname, sizeof sname, "%s.weight_scale", module);
    add_raw(md, sname, "F8_E4M3", 2, rows, blocks, bs, (size_t)(rows * blocks))->shard = shard;
    free(packed);
    free(bs);
    add_scalar(md, module, "weight_scale_2", scale2, shard);
    add_scalar(md, module, "input_scale", 0.0045f, shard);
  }
  return v;
}

void make_weights(const Model* md, Weights* w) {
  g_nt = 0;
  memset(w, 0, sizeof *w);
  const int wd = md->l > 0 ? md->l : md->d;
  w->gate = matrix(md, "gate", md->gate_fmt, md->n, md->d, 0);
  if (md->has_bias) {
    w->bias = malloc(sizeof(float) * (size_t)md->n);
    uint16_t* h = malloc(2 * (size_t)md->n);
    for (int e = 0; e < md->n; ++e) {
      float b = uniform(-0.1f, 0.1f);
      if (md->bias_fmt == FMT_BF16) { h[e] = f32_to_bf16(b); b = bf16_to_f32(h[e]); }
      w->bias[e] = b;
    }
    const int bf16 = md->bias_fmt == FMT_BF16;
    add_raw(md, "gate.e_score_correction_bias", bf16 ? "BF16" : "F32", md->bias_2d ? 2 : 1,
            md->bias_2d ? 1 : md->n, md->bias_2d ? md->n : 0, bf16 ? (void*)h : (void*)w->bias,
            (size_t)md->n * (bf16 ? 2 : 4));
    free(h);
  }
  if (md->l > 0) {
    w->down = matrix(md, "fc1_latent_proj", md->latent_fmt, md->l, md->d, 0);
    w->up = matrix(md, "fc2_latent_proj", md->latent_fmt, md->d, md->l, 1);
  }
  w->n_experts = md->n;
  w->eu = calloc((size_t)md->n, sizeof(float*));
  w->eg = calloc((size_t)md->n, sizeof(float*));
  w->ed = calloc((size_t)md->n, sizeof(float*));
  char nm[96];
  for (int e = 0; e < md->n; ++e) {
    snprintf(nm, sizeof nm, "experts.%d.up_proj", e);
    w->eu[e] = matrix(md, nm, md->expert_fmt, md->m, wd, e % 2);
    if (md->act == ACT_SWIGLU) {
      snprintf(nm, sizeof nm, "experts.%d.gate_proj", e);
      w->eg[e] = matrix(md, nm, md->expert_fmt, md->m, wd, e % 2);
    }
    snprintf(nm, sizeof nm, "experts.%d.down_proj", e);
    w->ed[e] = matrix(md, nm, md->expert_fmt, wd, md->m, (e + 1) % 2);
  }
  if (md->ms > 0) {
    w->su = matrix(md, "shared_experts.up_proj", md->shared_fmt, md->ms, md->d, 1);
    if (md->act == ACT_SWIGLU) w->sg = matrix(md, "shared_experts.gate_proj", md->shared_fmt, md->ms, md->d, 1);
    w->sd = matrix(md, "shared_experts.down_proj", md->shared_fmt, md->d, md->ms, 0);
  }
}

void free_weights(Weights* w) {
  for (int i = 0; i < g_nt; ++i) free(g_t[i].bytes);
  g_nt = 0;
  free(w->gate); free(w->bias); free(w->down); free(w->up); free(w->su); free(w->sg); free(w->sd);
  for (int e = 0; w->eu && e < w->n_experts; ++e) { free(w->eu[e]); free(w->eg[e]); free(w->ed[e]); }
  free(w->eu); free(w->eg); free(w->ed);
  memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------ files */

void buf_add(Buf* b, const void* d, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  b->p[b->n] = 0;
}

void buf_printf(Buf* b, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char* tmp = malloc((size_t)k + 1);
  va_start(ap, fmt);
  vsnprintf(tmp, (size_t)k + 1, fmt, ap);
  va_end(ap);
  buf_add(b, tmp, (size_t)k);
  free(tmp);
}

void write_file(const char* path, const void* data, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  if (n && fwrite(data, 1, n, f) != n) exit(1);
  fclose(f);
}

Buf read_file(const char* path) {
  Buf b = {0};
  FILE* f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
  char tmp[65536];
  size_t k;
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_add(&b, tmp, k);
  fclose(f);
  if (!b.p) buf_add(&b, "", 0);
  return b;
}

void replace_in_file(const char* path, const char* from, const char* to) {
  Buf b = read_file(path);
  char* p = strstr(b.p, from);
  if (!p) { fprintf(stderr, "'%s' not in %s\n", from, path); exit(1); }
  Buf o = {0};
  buf_add(&o, b.p, (size_t)(p - b.p));
  buf_add(&o, to, strlen(to));
  buf_add(&o, p + strlen(from), b.n - (size_t)(p - b.p) - strlen(from));
  write_file(path, o.p, o.n);
  free(o.p);
  free(b.p);
}

Buf safetensors_image(int shard) {
  Buf hdr = {0}, data = {0};
  buf_printf(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int i = 0; i < g_nt; ++i) {
    RawTensor* t = &g_t[i];
    if (shard >= 0 && t->shard != shard) continue;
    size_t begin = data.n;
    buf_add(&data, t->bytes, t->nbytes);
    if (t->rank == 0)
      buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[],\"data_offsets\":[%zu,%zu]}", t->name, t->dtype, begin,
                 data.n);
    else if (t->rank == 1)
      buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}", t->name, t->dtype,
                 (long long)t->shape[0], begin, data.n);
    else
      buf_printf(&hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}", t->name,
                 t->dtype, (long long)t->shape[0], (long long)t->shape[1], begin, data.n);
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

static int quantized(int fmt) { return fmt == FMT_FP8 || fmt == FMT_NVFP4; }
static const char* algo(int fmt) { return fmt == FMT_FP8 ? "FP8" : "NVFP4"; }

/* The module name as written in a quantization config (ModelOpt 0.47's sentinel when asked). */
static void module_name(Buf* b, const Model* md, const char* module) {
  buf_printf(b, "\"backbone.layers.%d.mixer.%s%s\"", md->layer, module,
             md->sentinel_names ? ".\\u0000backbone.pt_name_sentinel" : "");
}

/* The quantization description: a global quant_algo with exclusions when every quantized matrix
 * has the same format, MIXED_PRECISION with a per-module map otherwise. `ignore_key` names the
 * exclusion list ("exclude_modules" in hf_quant_config.json, "ignore" in config.json). */
static int quant_members(Buf* b, const Model* md, const char* ignore_key) {
  const int fmts[3] = {md->expert_fmt, md->shared_fmt, md->l > 0 ? md->latent_fmt : FMT_BF16};
  const char* groups[3][3] = {{"experts", NULL, NULL},
                              {"shared_experts.up_proj", "shared_experts.down_proj",
                               md->act == ACT_SWIGLU ? "shared_experts.gate_proj" : NULL},
                              {"fc1_latent_proj", "fc2_latent_proj", NULL}};
  const int present[3] = {1, md->ms > 0, md->l > 0};
  int first = -1, mixed = 0;
  for (int g = 0; g < 3; ++g) {
    if (!present[g] || !quantized(fmts[g])) continue;
    if (first < 0) first = fmts[g];
    else if (fmts[g] != first) mixed = 1;
  }
  if (first < 0) return 0;
  if (!mixed) {
    buf_printf(b, "\"quant_algo\": \"%s\", %s\"%s\": [\"lm_head\", ", algo(first),
               first == FMT_NVFP4 ? "\"group_size\": 16, " : "", ignore_key);
    module_name(b, md, "gate");
    for (int g = 0; g < 3; ++g) {
      if (!present[g] || quantized(fmts[g])) continue;
      for (int k = 0; k < 3 && groups[g][k]; ++k) {
        buf_printf(b, ", ");
        module_name(b, md, groups[g][k]);
      }
    }
    buf_printf(b, "]");
    return 1;
  }
  buf_printf(b, "\"quant_algo\": \"MIXED_PRECISION\", \"quantized_layers\": {");
  int n = 0;
  for (int g = 0; g < 3; ++g) {
    if (!present[g] || !quantized(fmts[g])) continue;
    for (int k = 0; k < 3 && groups[g][k]; ++k) {
      buf_printf(b, "%s", n++ ? ", " : "");
      module_name(b, md, groups[g][k]);
      buf_printf(b, ": {\"quant_algo\": \"%s\"%s}", algo(fmts[g]), fmts[g] == FMT_NVFP4 ? ", \"group_size\": 16" : "");
    }
  }
  buf_printf(b, "}");
  return 1;
}

Buf hf_quant_config_json(const Model* md) {
  Buf b = {0};
  Buf q = {0};
  if (quant_members(&q, md, "exclude_modules")) {
    buf_printf(&b, "{\"producer\": {\"name\": \"modelopt\", \"version\": \"0.47.0\"},\n \"quantization\": {%s, "
               "\"kv_cache_quant_algo\": null}}\n", q.p);
  }
  free(q.p);
  if (!b.p) buf_add(&b, "", 0);
  return b;
}

Buf config_json(const Model* md) {
  Buf b = {0};
  buf_printf(&b, "{\n  \"architectures\": [\"NemotronHForCausalLM\"],\n  \"hidden_size\": %d,\n", md->d);
  if (md->l > 0) buf_printf(&b, "  \"moe_latent_size\": %d,\n", md->l);
  else buf_printf(&b, "  \"moe_latent_size\": null,\n");
  buf_printf(&b, "  \"n_routed_experts\": %d,\n  \"num_experts_per_tok\": %d,\n  \"moe_intermediate_size\": %d,\n",
             md->n, md->k, md->m);
  buf_printf(&b, "  \"moe_shared_expert_intermediate_size\": %d,\n  \"routed_scaling_factor\": %.9g,\n", md->ms,
             (double)md->scale);
  buf_printf(&b, "  \"norm_topk_prob\": %s,\n  \"mlp_hidden_act\": \"%s\",\n  \"scoring_func\": \"%s\",\n",
             md->norm ? "true" : "false", md->act == ACT_RELU2 ? "relu2" : "silu", md->softmax ? "softmax" : "sigmoid");
  if (md->extra_config) buf_printf(&b, "  %s,\n", md->extra_config);
  int where = md->quant_where ? md->quant_where : QCFG_HF;
  Buf q = {0};
  if ((where & QCFG_CONFIG) && quant_members(&q, md, "ignore"))
    buf_printf(&b, "  \"quantization_config\": {\"quant_method\": \"modelopt\", %s},\n", q.p);
  free(q.p);
  buf_printf(&b, "  \"n_group\": 1,\n  \"rope_theta\": 1e4, \"name\": \"caf\\u00e9 \\ud83d\\ude00\"\n}\n");
  return b;
}

void write_checkpoint(const char* dir, const Model* md) {
  mkdir(dir, 0777);
  char p[1024];
  Buf c = config_json(md);
  snprintf(p, sizeof p, "%s/config.json", dir);
  write_file(p, c.p, c.n);
  free(c.p);
  snprintf(p, sizeof p, "%s/hf_quant_config.json", dir);
  unlink(p);
  int where = md->quant_where ? md->quant_where : QCFG_HF;
  Buf hq = hf_quant_config_json(md);
  if ((where & QCFG_HF) && hq.n) write_file(p, hq.p, hq.n);
  free(hq.p);
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

