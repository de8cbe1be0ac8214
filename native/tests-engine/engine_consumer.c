/*
 * A plain C11 consumer of latentmoe_engine.h, as a native engine would use it. Each run writes
 * its own small random checkpoint (engine_test.c), then:
 *
 *   forward_f32 | forward_bf16 | forward_f16 | forward_swiglu | forward_sharded  DIR
 *       opens the layer, runs raw pointers, DLPack and Arrow (also a sliced Arrow input), checks
 *       the three outputs are bit-identical, that the DLPack / Arrow inputs were read in place
 *       (lmoe_layer_last_input) and compares with a float64 reference computed from the stored
 *       weight values: max|y - ref| / max|ref| <= 1e-5 for every weight dtype.
 *   errors DIR     bad checkpoints and bad arguments return an error status with a message.
 *   threads DIR    4 threads share one layer; every result equals the single-threaded one.
 *   fuzz DIR N     N random mutations of a valid safetensors header / config.json never crash.
 *
 * Decisions tested here (documented in latentmoe_engine.h): T == 0 is a valid no-op; NaN / Inf
 * in x is rejected; out overlapping x is rejected.
 * Exit status 0 = pass, 1 = failure (the failing check is printed).
 */
#include "engine_test.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
            cfg.activation == (md->act == ACT_SWIGLU ? LMOE_ACT_SWIGLU : md->act == ACT_SILU ? LMOE_ACT_SILU : LMOE_ACT_RELU2) &&
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
  const double tol = 1e-5; /* f32 accumulation on the stored values, whatever their dtype */
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

  REQUIRE_OK(lmoe_layer_close(layer));
  free(x); free(y_raw); free(y_dl); free(y_ar); free(y_sl); free(y_off); free(y_off_raw);
  free(ids); free(kw); free(ref);
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ errors */

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
  expect_open_error(NULL, 0, "NULL dir", NULL);
  expect_error(lmoe_layer_open(dir, 3, NULL), "NULL out");
  expect_open_error(dir, -1, "negative layer index", NULL);
  expect_open_error("/nonexistent/lmoe-engine-test", 0, "missing directory", NULL);
  expect_open_error(dir, 4, "layer without tensors", NULL);
  unlink(cfgp);
  expect_open_error(dir, 3, "missing config.json", NULL);
  write_file(cfgp, "{\"hidden_size\": 64,", 19);
  expect_open_error(dir, 3, "truncated config.json", NULL);
  write_file(cfgp, "[1,2]", 5);
  expect_open_error(dir, 3, "config.json not an object", NULL);
  {
    char deep[300];
    for (int i = 0; i < 150; ++i) { deep[i] = '['; deep[150 + i] = ']'; }
    write_file(cfgp, deep, 300);
    expect_open_error(dir, 3, "config.json nested 150 deep", NULL);
  }
  write_file(cfgp, "{\"a\":1,\"a\":2}", 13);
  expect_open_error(dir, 3, "duplicate key", NULL);
  write_file(cfgp, "{\"x\":\"\xC0\xAF\"}", 10);
  expect_open_error(dir, 3, "invalid UTF-8", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"n_group\": 1", "\"n_group\": 2");
  expect_open_error(dir, 3, "n_group 2", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"relu2\"", "\"gelu\"");
  expect_open_error(dir, 3, "unknown activation", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"num_experts_per_tok\": 3", "\"num_experts_per_tok\": 9");
  expect_open_error(dir, 3, "top_k > n_routed_experts", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"hidden_size\": 64", "\"hidden_size\": 64.5");
  expect_open_error(dir, 3, "non-integer hidden_size", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"hidden_size\": 64", "\"hidden_size\": 32");
  expect_open_error(dir, 3, "weights of the wrong shape", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);
  replace_in_file(cfgp, "\"norm_topk_prob\": true", "\"norm_topk_prob\": 1");
  expect_open_error(dir, 3, "norm_topk_prob not a boolean", NULL);
  write_file(cfgp, good_cfg.p, good_cfg.n);

  unlink(stp);
  expect_open_error(dir, 3, "no safetensors file", NULL);
  write_file(stp, good_st.p, 5);
  expect_open_error(dir, 3, "file shorter than 8 bytes", NULL);
  write_file(stp, good_st.p, 100);
  expect_open_error(dir, 3, "header longer than the file", NULL);
  write_file(stp, good_st.p, good_st.n - 4);
  expect_open_error(dir, 3, "data region truncated", NULL);
  {
    Buf b = {0};
    buf_add(&b, good_st.p, good_st.n);
    memset(b.p + 4, 0xFF, 4);
    write_file(stp, b.p, b.n);
    expect_open_error(dir, 3, "huge header length", NULL);
    memcpy(b.p, good_st.p, 8);
    b.p[8] = '[';
    write_file(stp, b.p, b.n);
    expect_open_error(dir, 3, "corrupt header JSON", NULL);
    free(b.p);
  }
  /* wrong dtype: an expert stored as I32; and an unsupported dtype */
  {
    RawTensor* t = find_tensor(&md, "experts.0.up_proj.weight");
    char saved[12];
    memcpy(saved, t->dtype, sizeof saved);
    snprintf(t->dtype, sizeof t->dtype, "I32");
    Buf s = safetensors_image(-1);
    write_file(stp, s.p, s.n);
    free(s.p);
    expect_open_error(dir, 3, "I32 expert weight", "unsupported dtype I32");
    memcpy(t->dtype, saved, sizeof saved);
    Buf s2 = safetensors_image(-1);
    char* q = strstr(s2.p + 8, "\"F32\"");
    memcpy(q, "\"F64\"", 5); /* first tensor (the gate) now claims F64: size check fails */
    write_file(stp, s2.p, s2.n);
    free(s2.p);
    expect_open_error(dir, 3, "F64 with F32-sized data", "F64 needs");
  }
  /* wrong shape: the gate declared [N, d/2] */
  {
    RawTensor* t = find_tensor(&md, "gate.weight");
    t->shape[1] = md.d / 2;
    t->nbytes /= 2;
    Buf s = safetensors_image(-1);
    write_file(stp, s.p, s.n);
    free(s.p);
    expect_open_error(dir, 3, "gate of the wrong shape", "expected [8, 64]");
    t->shape[1] = md.d;
    t->nbytes *= 2;
  }
  write_file(stp, good_st.p, good_st.n);
  /* sharded: escaping shard names, missing shard */
  unlink(stp);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  write_file(p, "{\"weight_map\":{\"a\":\"../x.safetensors\"}}", 39);
  expect_open_error(dir, 3, "shard escaping the directory", NULL);
  write_file(p, "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", 34);
  expect_open_error(dir, 3, "absolute shard path", NULL);
  write_file(p, "{\"weight_map\":{\"a\":\"missing.safetensors\"}}", 42);
  expect_open_error(dir, 3, "missing shard", NULL);
  write_file(p, "{\"weight_map\":[]}", 17);
  expect_open_error(dir, 3, "weight_map not an object", NULL);
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
  free_weights(&w);
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
  free_weights(&w);
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
  free_weights(&w);
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
    md.l = 0; md.expert_fmt = md.gate_fmt = md.shared_fmt = FMT_BF16;
    md.softmax = 1; md.norm = 0; md.scale = 1.0f; md.layer = 0;
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "forward_f16") == 0) {
    /* mixed: experts F16, shared expert BF16, gate F16, bias BF16 [1, N] -> all widened to F32 */
    md.expert_fmt = md.latent_fmt = md.gate_fmt = FMT_F16; md.shared_fmt = FMT_BF16; md.bias_fmt = FMT_BF16; md.bias_2d = 1;
    rc = run_forward_case(dir, &md, 1);
  } else if (strcmp(test, "forward_swiglu") == 0) {
    md.act = ACT_SWIGLU; md.has_bias = 0; md.scale = 1.0f;
    rc = run_forward_case(dir, &md, 0);
  } else if (strcmp(test, "forward_sharded") == 0) {
    md.shards = 2; md.expert_fmt = md.latent_fmt = md.shared_fmt = FMT_BF16; md.gate_fmt = FMT_F32;
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
