/*
 * Quantized checkpoints through the engine ABI (ModelOpt layouts, written by engine_test.c's own
 * seeded quantizer): FP8 (E4M3 + per-tensor weight_scale), NVFP4 (packed e2m1, e4m3 block scales
 * of 16, weight_scale_2) and mixed layers, described in hf_quant_config.json and/or config.json
 * quantization_config, with ModelOpt 0.47's NUL-sentinel module names. Each forward must match a
 * float64 reference on the dequantized weights to <= 1e-5 relative, bit-identically for 1 and 2
 * threads; the weights are used in place (no widened copy).
 *
 *   fp8 | nvfp4 | nvfp4_standard | mixed | fp8_config_only | swiglu_quant  DIR
 *   errors DIR    every malformed quantized checkpoint is refused with a message naming the tensor
 */
#include "engine_test.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static void check_threads_bitwise(const char* dir, const Model* md) {
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, md->layer, &L));
  const int T = 19, d = md->d;
  float* x = malloc(sizeof(float) * (size_t)T * d);
  float* y1 = malloc(sizeof(float) * (size_t)T * d);
  float* y2 = malloc(sizeof(float) * (size_t)T * d);
  fill_x(x, (size_t)T * d);
  const int32_t saved = lmoe_cpu_num_threads();
  REQUIRE_OK(lmoe_cpu_set_num_threads(1));
  REQUIRE_OK(lmoe_layer_forward(L, x, T, y1, NULL, NULL));
  REQUIRE_OK(lmoe_cpu_set_num_threads(2));
  REQUIRE_OK(lmoe_layer_forward(L, x, T, y2, NULL, NULL));
  REQUIRE_OK(lmoe_cpu_set_num_threads(saved));
  CHECK(memcmp(y1, y2, sizeof(float) * (size_t)T * d) == 0, "1 and 2 threads differ");
  REQUIRE_OK(lmoe_layer_close(L));
  free(x); free(y1); free(y2);
}

static int run_case(const char* dir, Model md, int expect_expert_dtype) {
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, md.layer, &L));
  int32_t wdt = -1, gdt = -1;
  int64_t conv = -1;
  REQUIRE_OK(lmoe_layer_weight_info(L, &wdt, &gdt, &conv));
  lmoe_layer_memory mem;
  REQUIRE_OK(lmoe_layer_memory_info(L, &mem));
  printf("experts dtype %d, gate dtype %d; weight bytes %lld (in place %lld, converted %lld), mapped %lld\n", wdt, gdt,
         (long long)mem.weight_bytes, (long long)mem.in_place_bytes, (long long)mem.converted_bytes,
         (long long)mem.mapped_bytes);
  CHECK(wdt == expect_expert_dtype, "expert dtype %d, expected %d", wdt, expect_expert_dtype);
  CHECK(mem.weight_bytes == mem.in_place_bytes + mem.converted_bytes, "footprint does not add up");
  CHECK(mem.in_place_bytes > 0 && mem.mapped_bytes >= mem.in_place_bytes, "weights not used in place");
  CHECK(conv == mem.converted_bytes, "weight_info and memory_info disagree");
  /* The descriptors are those of the checkpoint: formats per matrix, in place in the mapping. */
  const lmoe_weights* W = NULL;
  REQUIRE_OK(lmoe_layer_weights(L, &W));
  const int want_fmt[] = {LMOE_WFMT_F32, LMOE_WFMT_BF16, LMOE_WFMT_F32, LMOE_WFMT_FP8_E4M3, LMOE_WFMT_NVFP4};
  for (int e = 0; e < md.n; ++e) {
    CHECK(W->expert_up[e].format == want_fmt[md.expert_fmt], "expert %d up format %d", e, W->expert_up[e].format);
    CHECK(W->expert_down[e].format == want_fmt[md.expert_fmt], "expert %d down format", e);
  }
  if (md.ms > 0) CHECK(W->shared_up.format == want_fmt[md.shared_fmt], "shared format %d", W->shared_up.format);
  if (md.l > 0) CHECK(W->latent_down.format == want_fmt[md.latent_fmt], "latent format %d", W->latent_down.format);
  if (md.expert_fmt == FMT_FP8) CHECK(W->expert_up[0].input_scale == 0.0123f, "input_scale not carried");
  REQUIRE_OK(lmoe_layer_close(L));

  forward_vs_reference(dir, &md, &w, 1, 1e-5);
  forward_vs_reference(dir, &md, &w, 5, 1e-5);
  forward_vs_reference(dir, &md, &w, 33, 1e-5);
  check_threads_bitwise(dir, &md);
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ errors */

static void put_scalar(const Model* md, const char* suffix, float v) {
  RawTensor* t = find_tensor(md, suffix);
  if (!t) { fprintf(stderr, "no %s\n", suffix); exit(1); }
  memcpy(t->bytes, &v, 4);
}

static void rewrite(const char* dir, const Model* md) {
  char p[1024];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  Buf s = safetensors_image(-1);
  write_file(p, s.p, s.n);
  free(s.p);
  (void)md;
}

/* Builds md's checkpoint afresh (same seed each time, so tensors are identical). */
static void fresh(const char* dir, const Model* md, Weights* w) {
  if (w->gate) free_weights(w);
  seed_rng(42);
  make_weights(md, w);
  write_checkpoint(dir, md);
}

static int run_errors(const char* dir) {
  char cfg[1024], hq[1024];
  snprintf(cfg, sizeof cfg, "%s/config.json", dir);
  snprintf(hq, sizeof hq, "%s/hf_quant_config.json", dir);
  Model md = base_model();
  md.d = 64; md.l = 32; md.m = 48; md.ms = 32; md.n = 4; md.k = 2; md.layer = 1;
  md.expert_fmt = FMT_NVFP4; md.shared_fmt = FMT_FP8; md.latent_fmt = FMT_BF16;
  Weights w;
  memset(&w, 0, sizeof w);
  fresh(dir, &md, &w);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 1, &L));
  REQUIRE_OK(lmoe_layer_close(L));
  printf("quantization config errors:\n");
  replace_in_file(hq, "\"MIXED_PRECISION\"", "\"W4A8_AWQ\"");
  expect_open_error(dir, 1, "unknown quant_algo", "quant_algo 'W4A8_AWQ' is not supported");
  CHECK(lmoe_layer_open(dir, 1, &L) == LMOE_ERR_UNSUPPORTED, "unknown quant_algo: LMOE_ERR_UNSUPPORTED");
  fresh(dir, &md, &w);
  replace_in_file(hq, "{\"quant_algo\": \"FP8\"}", "{\"quant_algo\": \"INT4_AWQ\"}");
  expect_open_error(dir, 1, "unknown per-module quant_algo", "INT4_AWQ");
  fresh(dir, &md, &w);
  replace_in_file(hq, "\"group_size\": 16", "\"group_size\": 32");
  expect_open_error(dir, 1, "NVFP4 group_size 32", "group_size 32");
  fresh(dir, &md, &w);
  replace_in_file(hq, "\"quantized_layers\": {", "\"quantized_layers\": {\"backbone.layers.1.mixer.foo_proj\": {\"quant_algo\": \"FP8\"}, ");
  expect_open_error(dir, 1, "map names a module the layer lacks", "backbone.layers.1.mixer.foo_proj");
  fresh(dir, &md, &w);
  replace_in_file(hq, "\"quantized_layers\": {", "\"quantized_layers\": {\"backbone.layers.1.mixer.experts.4\": {\"quant_algo\": \"FP8\"}, ");
  expect_open_error(dir, 1, "map names expert 4 of 4", "experts.4");
  fresh(dir, &md, &w);
  replace_in_file(cfg, "\"n_group\": 1", "\"quantization_config\": {\"quant_method\": \"fp8\", \"quant_algo\": \"FP8\"}, \"n_group\": 1");
  expect_open_error(dir, 1, "quant_method other than modelopt", "quant_method 'fp8'");
  fresh(dir, &md, &w);
  replace_in_file(cfg, "\"n_group\": 1", "\"quantization_config\": {\"quant_method\": \"modelopt\", \"quant_algo\": \"FP8\"}, \"n_group\": 1");
  expect_open_error(dir, 1, "hf_quant_config.json and config.json disagree", "but");
  {
    char p[1024];
    snprintf(p, sizeof p, "%s/hf_quant_config.json", dir);
    fresh(dir, &md, &w);
    unlink(p);
    expect_open_error(dir, 1, "quantized tensors without a config", "has no quantization config");
  }

  printf("tensor errors:\n");
  fresh(dir, &md, &w);
  remove_tensor(&md, "shared_experts.up_proj.weight_scale");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "FP8 module without weight_scale", "shared_experts.up_proj has no weight_scale");
  fresh(dir, &md, &w);
  snprintf(find_tensor(&md, "shared_experts.up_proj.weight_scale")->dtype, 12, "I32");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "weight_scale of dtype I32", "shared_experts.up_proj.weight_scale must be an F32 scalar");
  fresh(dir, &md, &w);
  {
    RawTensor* t = find_tensor(&md, "shared_experts.up_proj.weight_scale");
    float two[2] = {0.01f, 0.02f};
    free(t->bytes);
    t->bytes = malloc(8);
    memcpy(t->bytes, two, 8);
    t->nbytes = 8;
    t->rank = 1;
    t->shape[0] = 2;
    rewrite(dir, &md);
    expect_open_error(dir, 1, "weight_scale of shape [2]", "must be an F32 scalar (shape [] or [1]), got F32[2]");
  }
  const float bad_scales[] = {NAN, INFINITY, 0.0f, -0.5f};
  const char* bad_names[] = {"NaN weight_scale", "Inf weight_scale", "zero weight_scale", "negative weight_scale"};
  for (int i = 0; i < 4; ++i) {
    fresh(dir, &md, &w);
    put_scalar(&md, "shared_experts.down_proj.weight_scale", bad_scales[i]);
    rewrite(dir, &md);
    expect_open_error(dir, 1, bad_names[i], "shared_experts.down_proj.weight_scale");
  }
  fresh(dir, &md, &w);
  put_scalar(&md, "experts.2.down_proj.weight_scale_2", 0.0f);
  rewrite(dir, &md);
  expect_open_error(dir, 1, "zero weight_scale_2", "experts.2.down_proj.weight_scale_2");
  fresh(dir, &md, &w);
  put_scalar(&md, "experts.1.up_proj.input_scale", NAN);
  rewrite(dir, &md);
  expect_open_error(dir, 1, "NaN input_scale", "experts.1.up_proj.input_scale");
  fresh(dir, &md, &w);
  put_scalar(&md, "experts.1.up_proj.input_scale", -1.0f);
  rewrite(dir, &md);
  expect_open_error(dir, 1, "negative input_scale", "input scales must be >= 0");
  fresh(dir, &md, &w);
  snprintf(find_tensor(&md, "shared_experts.down_proj.weight")->dtype, 12, "F8_E5M2");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "F8_E5M2 FP8 weight", "is F8_E5M2; FP8 weights must be F8_E4M3");
  fresh(dir, &md, &w);
  snprintf(find_tensor(&md, "experts.0.up_proj.weight_scale")->dtype, 12, "F8_E5M2");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "F8_E5M2 block scales", "block scales must be F8_E4M3");
  fresh(dir, &md, &w);
  remove_tensor(&md, "experts.3.down_proj.weight_scale_2");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "NVFP4 without weight_scale_2", "experts.3.down_proj has no weight_scale_2");
  fresh(dir, &md, &w);
  remove_tensor(&md, "experts.3.down_proj.weight_scale");
  rewrite(dir, &md);
  expect_open_error(dir, 1, "NVFP4 without block scales", "experts.3.down_proj has no weight_scale");
  fresh(dir, &md, &w);
  { /* packed width in/4 instead of in/2 (a [m, w/4] U8 tensor) */
    RawTensor* t = find_tensor(&md, "experts.0.up_proj.weight");
    t->shape[1] /= 2;
    t->nbytes /= 2;
    rewrite(dir, &md);
    expect_open_error(dir, 1, "packed width not in/2", "packed width 8; NVFP4 packs two values per byte, so it must be in/2 = 16");
  }
  fresh(dir, &md, &w);
  { /* block scales [rows, in/16 + 1] */
    RawTensor* t = find_tensor(&md, "experts.0.down_proj.weight_scale");
    size_t nb = (size_t)(t->shape[0] * (t->shape[1] + 1));
    free(t->bytes);
    t->bytes = malloc(nb);
    memset(t->bytes, 0x38, nb);
    t->shape[1] += 1;
    t->nbytes = nb;
    rewrite(dir, &md);
    expect_open_error(dir, 1, "block scales of the wrong shape", "experts.0.down_proj.weight_scale has shape");
  }
  fresh(dir, &md, &w);
  find_tensor(&md, "experts.2.up_proj.weight_scale")->bytes[5] = 0x7F;
  rewrite(dir, &md);
  expect_open_error(dir, 1, "NaN block scale", "holds a NaN block scale");
  fresh(dir, &md, &w);
  find_tensor(&md, "experts.2.up_proj.weight_scale")->bytes[3] = 0xB8;
  rewrite(dir, &md);
  expect_open_error(dir, 1, "negative block scale", "holds a negative block scale");
  fresh(dir, &md, &w);
  replace_in_file(hq, "\"backbone.layers.1.mixer.shared_experts.up_proj\": {\"quant_algo\": \"FP8\"}",
                  "\"backbone.layers.1.mixer.shared_experts.up_proj\": {\"quant_algo\": \"NVFP4\"}");
  expect_open_error(dir, 1, "FP8 tensor where the config says NVFP4", "shared_experts.up_proj.weight is F8_E4M3");
  fresh(dir, &md, &w);
  replace_in_file(hq, "\"backbone.layers.1.mixer.shared_experts.up_proj\": {\"quant_algo\": \"FP8\"}, ", "");
  expect_open_error(dir, 1, "FP8 tensor of an unquantized module", "leaves backbone.layers.1.mixer.shared_experts.up_proj unquantized");
  {
    /* NVFP4 needs in % 16 == 0: a shared expert of 40 rows is FP8-stored; the config claims NVFP4 */
    Model m2 = md;
    m2.ms = 40;
    fresh(dir, &m2, &w);
    replace_in_file(hq, "\"backbone.layers.1.mixer.shared_experts.down_proj\": {\"quant_algo\": \"FP8\"}",
                    "\"backbone.layers.1.mixer.shared_experts.down_proj\": {\"quant_algo\": \"NVFP4\"}");
    expect_open_error(dir, 1, "NVFP4 with in % 16 != 0", "40 input features, not a multiple of the block size 16");
  }
  {
    /* BF16 experts where the config says FP8 */
    Model m3 = md;
    m3.expert_fmt = FMT_BF16;
    m3.latent_fmt = FMT_NVFP4; /* two formats: MIXED_PRECISION with a quantized_layers map */
    fresh(dir, &m3, &w);
    replace_in_file(hq, "\"quantized_layers\": {", "\"quantized_layers\": {\"backbone.layers.1.mixer.experts\": {\"quant_algo\": \"FP8\"}, ");
    expect_open_error(dir, 1, "BF16 weight where the config says FP8", "experts.0.up_proj.weight is BF16 but");
  }
  free_weights(&w);
  return g_failures ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s fp8|nvfp4|nvfp4_standard|mixed|fp8_config_only|swiglu_quant|errors DIR\n", argv[0]);
    return 2;
  }
  const char* test = argv[1];
  const char* dir = argv[2];
  seed_rng(20260101);
  Model md = base_model();
  int rc;
  if (strcmp(test, "fp8") == 0) {
    /* odd sizes everywhere (FP8 has no block constraint) */
    md.d = 67; md.l = 29; md.n = 7; md.k = 3; md.m = 45; md.ms = 37; md.layer = 2;
    md.expert_fmt = md.shared_fmt = md.latent_fmt = FMT_FP8; md.gate_fmt = FMT_BF16;
    rc = run_case(dir, md, LMOE_DTYPE_F8_E4M3);
  } else if (strcmp(test, "nvfp4") == 0) {
    /* the ModelOpt fixtures' shape: d 80, l 48, N 6, K 2, m 112, ms 144 */
    md.d = 80; md.l = 48; md.n = 6; md.k = 2; md.m = 112; md.ms = 144; md.layer = 0;
    md.expert_fmt = md.shared_fmt = md.latent_fmt = FMT_NVFP4; md.gate_fmt = FMT_BF16;
    md.sentinel_names = 1;
    rc = run_case(dir, md, LMOE_DTYPE_U8);
  } else if (strcmp(test, "nvfp4_standard") == 0) {
    md.d = 96; md.l = 0; md.n = 9; md.k = 4; md.m = 48; md.ms = 0; md.layer = 5;
    md.expert_fmt = FMT_NVFP4; md.softmax = 1; md.norm = 0; md.scale = 1.0f;
    rc = run_case(dir, md, LMOE_DTYPE_U8);
  } else if (strcmp(test, "mixed") == 0) {
    /* BF16 latent projections (odd d), NVFP4 routed experts, FP8 shared expert: MIXED_PRECISION */
    md.d = 67; md.l = 48; md.n = 7; md.k = 3; md.m = 80; md.ms = 37; md.layer = 4;
    md.expert_fmt = FMT_NVFP4; md.shared_fmt = FMT_FP8; md.latent_fmt = FMT_BF16; md.gate_fmt = FMT_BF16;
    md.quant_where = QCFG_HF | QCFG_CONFIG; md.sentinel_names = 1;
    rc = run_case(dir, md, LMOE_DTYPE_U8);
  } else if (strcmp(test, "fp8_config_only") == 0) {
    md.d = 51; md.l = 0; md.n = 5; md.k = 2; md.m = 33; md.ms = 23; md.layer = 1;
    md.expert_fmt = md.shared_fmt = FMT_FP8; md.quant_where = QCFG_CONFIG; md.sentinel_names = 1;
    rc = run_case(dir, md, LMOE_DTYPE_F8_E4M3);
  } else if (strcmp(test, "swiglu_quant") == 0) {
    /* gated experts (gate_proj tensors) in FP8, shared expert in NVFP4 */
    md.d = 64; md.l = 32; md.n = 5; md.k = 2; md.m = 48; md.ms = 32; md.layer = 0;
    md.act = ACT_SWIGLU; md.expert_fmt = FMT_FP8; md.shared_fmt = FMT_NVFP4; md.latent_fmt = FMT_FP8;
    rc = run_case(dir, md, LMOE_DTYPE_F8_E4M3);
  } else if (strcmp(test, "errors") == 0) {
    rc = run_errors(dir);
  } else {
    fprintf(stderr, "unknown test %s\n", test);
    return 2;
  }
  printf("%s: %s\n", test, rc == 0 && g_failures == 0 ? "PASS" : "FAIL");
  return rc == 0 && g_failures == 0 ? 0 : 1;
}
