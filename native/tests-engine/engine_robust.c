/*
 * The engine ABI against issue #12's hardening items, one test each:
 *
 *   fifo          (2)  FIFOs named config.json, hf_quant_config.json, model.safetensors, the index
 *                      or a shard are refused at once (a 20 s alarm kills a hang)      [engine_robust_io.c]
 *   closed        (3)  a second close and any call after close return an error status
 *   close_race    (1)  6 threads call forward while the main thread closes, 150 rounds: every call
 *                      returns a bit-exact result or "the layer is closed", nothing else
 *   big_header    (5)  a 100 MiB safetensors header of tiny entries opens within 320 MiB peak RSS
 *                                                                                    [engine_robust_io.c]
 *   mlp_bias      (6)  mlp_bias: true, or a bias tensor in the layer, is refused (LMOE_ERR_UNSUPPORTED)
 *   silu          (7)  mlp_hidden_act silu without gate_proj is transformers' non-gated SiLU: matches
 *                      the float64 reference; relu2 with gate_proj and swiglu without are refused
 *   nonfinite     (8)  NaN / Inf in the router, the correction bias or a latent projection is refused
 *   nan_propagation (8) a NaN in an expert weight reaches the output (relu2, SiLU) instead of a 0
 *   layer_kinds   (9)  mamba / attention / MLP layers and missing layers are named as such
 *   symlinks      (10) files resolving outside the checkpoint (or the hub's blobs) are refused, and
 *                      no message quotes a file's bytes                              [engine_robust_io.c]
 *   arrow_import  (12) released child schemas, null_count 2 without a bitmap, null_count -5 and a
 *                      NULL buffers array are refused with the right message
 */
#include "engine_test.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int run_fifo(const char* dir);
int run_big_header(const char* dir);
int run_symlinks(const char* dir);

static Model small_model(void) {
  Model md = base_model();
  md.d = 48; md.l = 24; md.n = 6; md.k = 2; md.m = 40; md.ms = 24; md.layer = 0;
  return md;
}

/* ------------------------------------------------------------------ (3) closed handles */

static int run_closed(const char* dir) {
  Model md = small_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  float x[2 * 48], y[2 * 48];
  fill_x(x, 96);
  REQUIRE_OK(lmoe_layer_forward(L, x, 2, y, NULL, NULL));
  CHECK(lmoe_layer_last_input(L) == x, "last input");
  REQUIRE_OK(lmoe_layer_close(L));
  expect_error(lmoe_layer_close(L), "second close");
  CHECK(strstr(lmoe_last_error(), "already closed") != NULL, "second close message: %s", lmoe_last_error());
  expect_error(lmoe_layer_forward(L, x, 2, y, NULL, NULL), "forward after close");
  CHECK(strstr(lmoe_last_error(), "the layer is closed") != NULL, "message: %s", lmoe_last_error());
  lmoe_config c;
  expect_error(lmoe_layer_config(L, &c), "config after close");
  const lmoe_weights* W = NULL;
  expect_error(lmoe_layer_weights(L, &W), "weights after close");
  lmoe_layer_memory mem;
  expect_error(lmoe_layer_memory_info(L, &mem), "memory info after close");
  expect_error(lmoe_layer_weight_info(L, NULL, NULL, NULL), "weight info after close");
  DLManagedTensorVersioned dx, dy;
  memset(&dx, 0, sizeof dx);
  memset(&dy, 0, sizeof dy);
  expect_error(lmoe_layer_forward_dlpack(L, &dx, &dy), "DLPack forward after close");
  CHECK(lmoe_layer_last_input(L) == NULL, "last input of a closed layer");
  CHECK(lmoe_layer_close(NULL) == LMOE_OK, "close(NULL) is a no-op");
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (1) close during forward */

typedef struct {
  lmoe_layer* layer;
  const float* x;
  const float* want;
  int T, d;
  int ok, refused, bad;
} Racer;

static void* racer(void* arg) {
  Racer* r = arg;
  float* y = malloc(sizeof(float) * (size_t)r->T * r->d);
  for (;;) {
    lmoe_status st = lmoe_layer_forward(r->layer, r->x, r->T, y, NULL, NULL);
    if (st == LMOE_OK) {
      if (memcmp(y, r->want, sizeof(float) * (size_t)r->T * r->d) == 0) r->ok++;
      else r->bad++;
      continue;
    }
    if (st == LMOE_ERR_INVALID_ARGUMENT && strstr(lmoe_last_error(), "the layer is closed")) r->refused++;
    else r->bad++;
    break;  /* closed: every later call is refused too */
  }
  free(y);
  return NULL;
}

static int run_close_race(const char* dir) {
  Model md = small_model();
  md.n = 16; md.k = 4; md.m = 96;
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  enum { NT = 6, ROUNDS = 150 };
  const int T = 37;
  float* x = malloc(sizeof(float) * (size_t)T * md.d);
  float* want = malloc(sizeof(float) * (size_t)T * md.d);
  fill_x(x, (size_t)T * md.d);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  REQUIRE_OK(lmoe_layer_forward(L, x, T, want, NULL, NULL));
  REQUIRE_OK(lmoe_layer_close(L));
  long ok = 0, refused = 0, bad = 0;
  for (int round = 0; round < ROUNDS; ++round) {
    REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
    Racer r[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; ++i) {
      r[i] = (Racer){L, x, want, T, md.d, 0, 0, 0};
      pthread_create(&th[i], NULL, racer, &r[i]);
    }
    struct timespec ts = {0, (long)(next_u64() % 3000000)};  /* 0-3 ms: some rounds close mid-call */
    nanosleep(&ts, NULL);
    REQUIRE_OK(lmoe_layer_close(L));
    for (int i = 0; i < NT; ++i) {
      pthread_join(th[i], NULL);
      ok += r[i].ok;
      refused += r[i].refused;
      bad += r[i].bad;
    }
  }
  printf("%d rounds x %d threads: %ld calls completed bit-exact, %ld refused as closed, %ld other\n", ROUNDS, NT, ok,
         refused, bad);
  CHECK(bad == 0, "%ld calls neither completed nor were refused as closed", bad);
  CHECK(refused == (long)ROUNDS * NT, "every thread must end on a refusal (%ld)", refused);
  CHECK(ok > 0, "no call completed: the race was not exercised");
  free(x);
  free(want);
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (6) mlp_bias */

static int run_mlp_bias(const char* dir) {
  Model md = small_model();
  md.extra_config = "\"mlp_bias\": true";
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "mlp_bias: true", "mlp_bias is true");
  lmoe_layer* L = NULL;
  CHECK(lmoe_layer_open(dir, 0, &L) == LMOE_ERR_UNSUPPORTED, "mlp_bias: LMOE_ERR_UNSUPPORTED");
  md.extra_config = "\"mlp_bias\": false";
  write_checkpoint(dir, &md);
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  REQUIRE_OK(lmoe_layer_close(L));
  /* a bias tensor without mlp_bias in config.json is refused as well, never ignored */
  float b[48];
  fill_x(b, 48);
  add_raw(&md, "fc2_latent_proj.bias", "F32", 1, 48, 0, b, sizeof b);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "fc2_latent_proj.bias tensor", "fc2_latent_proj.bias' is a bias");
  remove_tensor(&md, "fc2_latent_proj.bias");
  add_raw(&md, "shared_experts.up_proj.bias", "F32", 1, 24, 0, b, 24 * 4);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "shared_experts.up_proj.bias tensor", "is a bias");
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (7) non-gated SiLU */

static int run_silu(const char* dir) {
  Model md = small_model();
  md.act = ACT_SILU;
  md.d = 53; md.l = 31; md.m = 45; md.ms = 29; md.n = 7; md.k = 3; md.layer = 2;
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 2, &L));
  lmoe_config c;
  REQUIRE_OK(lmoe_layer_config(L, &c));
  CHECK(c.activation == LMOE_ACT_SILU, "mlp_hidden_act silu without gate_proj must be LMOE_ACT_SILU, got %d", c.activation);
  REQUIRE_OK(lmoe_layer_close(L));
  forward_vs_reference(dir, &md, &w, 1, 1e-5);
  forward_vs_reference(dir, &md, &w, 40, 1e-5);
  /* swiglu without gate_proj tensors, relu2 with them */
  char cfg[1024];
  snprintf(cfg, sizeof cfg, "%s/config.json", dir);
  replace_in_file(cfg, "\"silu\"", "\"swiglu\"");
  expect_open_error(dir, 2, "swiglu without gate_proj", "mlp_hidden_act is swiglu but the checkpoint has no");
  free_weights(&w);
  md.act = ACT_SWIGLU;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  replace_in_file(cfg, "\"silu\"", "\"relu2\"");
  expect_open_error(dir, 2, "relu2 with gate_proj", "is a gate projection but mlp_hidden_act is relu2");
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (8) non-finite weights */

static void poison_f32(const Model* md, const char* suffix, size_t index, float v) {
  RawTensor* t = find_tensor(md, suffix);
  memcpy(t->bytes + 4 * index, &v, 4);
}

static int run_nonfinite(const char* dir) {
  Model md = small_model();
  md.latent_fmt = FMT_BF16;
  Weights w;
  make_weights(&md, &w);
  char p[1024];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  REQUIRE_OK(lmoe_layer_close(L));
  poison_f32(&md, "gate.e_score_correction_bias", 3, NAN);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "NaN correction bias", "gate.e_score_correction_bias (router correction bias) holds a NaN");
  poison_f32(&md, "gate.e_score_correction_bias", 3, 0.01f);
  poison_f32(&md, "gate.weight", 7, INFINITY);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "Inf in the router", "gate.weight");
  poison_f32(&md, "gate.weight", 7, 0.01f);
  RawTensor* down = find_tensor(&md, "fc1_latent_proj.weight");
  down->bytes[2 * 100 + 1] = 0x7F; /* bf16 0x7Fxx with a non-zero exponent field of all ones: NaN or Inf */
  down->bytes[2 * 100] = 0xC1;
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "NaN in fc1_latent_proj", "fc1_latent_proj.weight");
  free_weights(&w);
  /* an FP8 latent projection with a NaN code */
  md.latent_fmt = FMT_FP8;
  make_weights(&md, &w);
  find_tensor(&md, "fc2_latent_proj.weight")->bytes[11] = 0xFF;
  write_checkpoint(dir, &md);
  expect_open_error(dir, 0, "NaN code in an FP8 fc2_latent_proj", "fc2_latent_proj.weight");
  free_weights(&w);
  return g_failures ? 1 : 0;
}

static int run_nan_propagation(const char* dir) {
  for (int a = 0; a < 2; ++a) {
    Model md = small_model();
    md.act = a == 0 ? ACT_RELU2 : ACT_SILU;
    md.ms = 0;
    Weights w;
    make_weights(&md, &w);
    /* row 0 of every expert's up projection: NaN (experts are not scanned at load) */
    for (int e = 0; e < md.n; ++e) {
      char s[64];
      snprintf(s, sizeof s, "experts.%d.up_proj.weight", e);
      poison_f32(&md, s, 0, NAN);
    }
    write_checkpoint(dir, &md);
    lmoe_layer* L = NULL;
    REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
    const int T = 5;
    float x[5 * 48], y[5 * 48];
    fill_x(x, sizeof x / sizeof *x);
    REQUIRE_OK(lmoe_layer_forward(L, x, T, y, NULL, NULL));
    int nans = 0;
    for (int i = 0; i < T * md.d; ++i) nans += isnan(y[i]) != 0;
    printf("  %s: %d of %d outputs NaN\n", a == 0 ? "relu2" : "silu", nans, T * md.d);
    CHECK(nans == T * md.d, "%s: a NaN weight must reach every output (torch propagates it), %d of %d",
          a == 0 ? "relu2" : "silu", nans, T * md.d);
    REQUIRE_OK(lmoe_layer_close(L));
    free_weights(&w);
  }
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (9) layer kinds */

static int run_layer_kinds(const char* dir) {
  Model md = small_model();
  md.layer = 2;
  const char* kinds[] = {
      "\"layers_block_type\": [\"moe\", \"mamba\", \"moe\", \"attention\", \"mlp\"]",
      "\"layers_block_type\": [\"moe\", \"linear_attention\", \"moe\", \"full_attention\", \"mlp\"]",
      "\"hybrid_override_pattern\": \"EME*-\""};
  Weights w;
  make_weights(&md, &w);
  for (int k = 0; k < 3; ++k) {
    md.extra_config = kinds[k];
    write_checkpoint(dir, &md);
    printf("%s\n", kinds[k]);
    expect_open_error(dir, 1, "layer 1", "layer 1 is a mamba layer, not a MoE layer");
    expect_open_error(dir, 3, "layer 3", "layer 3 is an attention layer, not a MoE layer");
    expect_open_error(dir, 4, "layer 4", "layer 4 is an MLP layer, not a MoE layer");
    expect_open_error(dir, 5, "layer 5", "layer 5 does not exist");
    lmoe_layer* L = NULL;
    REQUIRE_OK(lmoe_layer_open(dir, 2, &L));
    lmoe_config opened, planned;
    REQUIRE_OK(lmoe_layer_config(L, &opened));
    REQUIRE_OK(lmoe_layer_close(L));
    /* the config without reading weights: the same, and the same refusals of other layers */
    REQUIRE_OK(lmoe_checkpoint_config(dir, 2, &planned));
    CHECK(memcmp(&opened, &planned, sizeof opened) == 0, "lmoe_checkpoint_config differs from the opened layer's");
    expect_error(lmoe_checkpoint_config(dir, 1, &planned), "config of layer 1");
    CHECK(strstr(lmoe_last_error(), "layer 1 is a mamba layer") != NULL, "message: %s", lmoe_last_error());
  }
  /* no layer kinds in config.json: a mamba layer's tensors are named in the message */
  md.extra_config = NULL;
  float v[16];
  fill_x(v, 16);
  Model mamba = md;
  mamba.layer = 1;
  add_raw(&mamba, "in_proj.weight", "F32", 2, 4, 4, v, sizeof v);
  write_checkpoint(dir, &md);
  expect_open_error(dir, 1, "layer 1 without layer kinds", "in_proj.weight: not a MoE layer?");
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (12) Arrow importer */

static int run_arrow_import(const char* dir) {
  Model md = small_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  const int T = 4, d = md.d;
  float x[5 * 48];
  fill_x(x, sizeof x / sizeof *x);
  ArrowIn a;
  struct ArrowArray out;
  struct ArrowSchema os;
  memset(&out, 0, sizeof out);
  memset(&os, 0, sizeof os);
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child_schema.release = NULL;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "released child schema");
  CHECK(strstr(lmoe_last_error(), "child is released") != NULL, "message: %s", lmoe_last_error());
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.array.null_count = 2;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "null_count 2 without a bitmap");
  CHECK(strstr(lmoe_last_error(), "null_count 2 but no validity bitmap") != NULL, "message: %s", lmoe_last_error());
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.array.null_count = -5;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "null_count -5");
  CHECK(strstr(lmoe_last_error(), "null_count -5") != NULL, "message: %s", lmoe_last_error());
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child.null_count = -5;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "child null_count -5");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child.null_count = 3;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "child null_count 3 without a bitmap");
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.array.buffers = NULL;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "NULL buffers");
  CHECK(strstr(lmoe_last_error(), "NULL buffers array") != NULL && strstr(lmoe_last_error(), "got 1") == NULL,
        "message: %s", lmoe_last_error());
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.child.buffers = NULL;
  expect_error(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os), "child NULL buffers");
  CHECK(out.release == NULL, "out must stay untouched on failure");
  /* accepted: null_count -1 (unknown) without a bitmap; a null outside the slice */
  make_arrow(&a, x, T, d, 0, 0, NULL);
  a.array.null_count = -1;
  REQUIRE_OK(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os));
  out.release(&out);
  os.release(&os);
  unsigned char validity = 0x1E; /* row 0 null, rows 1..4 valid */
  make_arrow(&a, x, T, d, 1, 0, NULL);
  a.buffers[0] = &validity;
  a.array.null_count = 1;
  REQUIRE_OK(lmoe_layer_forward_arrow(L, &a.array, &a.schema, &out, &os));
  out.release(&out);
  os.release(&os);
  REQUIRE_OK(lmoe_layer_close(L));
  free_weights(&w);
  return g_failures ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s fifo|closed|close_race|big_header|mlp_bias|silu|nonfinite|nan_propagation|"
                    "layer_kinds|symlinks|arrow_import DIR\n", argv[0]);
    return 2;
  }
  const char* test = argv[1];
  const char* dir = argv[2];
  seed_rng(777);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (system(cmd) != 0) return 2;
  struct { const char* name; int (*fn)(const char*); } tests[] = {
      {"fifo", run_fifo}, {"closed", run_closed}, {"close_race", run_close_race}, {"big_header", run_big_header},
      {"mlp_bias", run_mlp_bias}, {"silu", run_silu}, {"nonfinite", run_nonfinite},
      {"nan_propagation", run_nan_propagation}, {"layer_kinds", run_layer_kinds}, {"symlinks", run_symlinks},
      {"arrow_import", run_arrow_import}};
  for (size_t i = 0; i < sizeof tests / sizeof *tests; ++i) {
    if (strcmp(test, tests[i].name) != 0) continue;
    int rc = tests[i].fn(dir);
    printf("%s: %s\n", test, rc == 0 && g_failures == 0 ? "PASS" : "FAIL");
    return rc == 0 && g_failures == 0 ? 0 : 1;
  }
  fprintf(stderr, "unknown test %s\n", test);
  return 2;
}
