/* The engine tests' shared code (engine_test.h): RNG, float64 reference, checks, Arrow inputs;
 * the checkpoint writer is engine_checkpoint_writer.c. */
#include "engine_test.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int g_failures = 0;

/* ------------------------------------------------------------------ random numbers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
void seed_rng(uint64_t seed) { g_rng = seed * 0x9E3779B97F4A7C15ull + 1; }
uint64_t next_u64(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0)); }
void fill_x(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = uniform(-1.0f, 1.0f);
}

/* ------------------------------------------------------------------ float64 reference */

static double dot_d(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += (double)a[i] * (double)b[i];
  return s;
}

static double act(int kind, double u, double g) {
  switch (kind) {
    case ACT_SILU: return u / (1 + exp(-u));
    case ACT_SWIGLU: return g / (1 + exp(-g)) * u;
    default: return u > 0 ? u * u : 0;
  }
}

void reference(const Model* md, const Weights* w, const float* x, int T, const int32_t* ids, const float* kw,
               double* ref) {
  const int d = md->d, n = md->n, K = md->k, m = md->m, wd = md->l > 0 ? md->l : md->d;
  double* s = malloc(sizeof(double) * (size_t)n);
  double* z = malloc(sizeof(double) * (size_t)wd);
  double* h = malloc(sizeof(double) * (size_t)(m > md->ms ? m : md->ms));
  double* acc = malloc(sizeof(double) * (size_t)wd);
  int* chosen = malloc(sizeof(int) * (size_t)n);
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
    /* the kernel's selection must be a top-K of the biased float64 scores (up to 1e-5) */
    double minsel = INFINITY, wsum = 0;
    memset(chosen, 0, sizeof(int) * (size_t)n);
    for (int k = 0; k < K; ++k) {
      int e = ids[t * K + k];
      CHECK(e >= 0 && e < n, "expert id %d out of range", e);
      if (e < 0 || e >= n) goto done;
      CHECK(!chosen[e], "expert %d chosen twice", e);
      chosen[e] = 1;
      double b = s[e] + (w->bias ? w->bias[e] : 0);
      if (b < minsel) minsel = b;
      wsum += s[e];
    }
    for (int e = 0; e < n; ++e) {
      double b = s[e] + (w->bias ? w->bias[e] : 0);
      CHECK(chosen[e] || b <= minsel + 1e-5, "token %d: unselected expert %d scores %g > selected %g", t, e, b, minsel);
    }
    for (int k = 0; k < K; ++k) {
      double wk = s[ids[t * K + k]];
      if (md->norm) wk /= (wsum + 1e-20);
      wk *= md->scale;
      CHECK(fabs(wk - kw[t * K + k]) <= 1e-5 * (1 + fabs(wk)), "token %d slot %d: weight %g vs %g", t, k,
            (double)kw[t * K + k], wk);
    }
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
        if (md->act == ACT_SWIGLU)
          for (int i = 0; i < wd; ++i) g += z[i] * w->eg[e][(size_t)r * wd + i];
        h[r] = act(md->act, u, g);
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
        double g = md->act == ACT_SWIGLU ? dot_d(xt, w->sg + (size_t)r * d, d) : 0;
        h[r] = act(md->act, u, g);
      }
      for (int o = 0; o < d; ++o) {
        double v = 0;
        for (int r = 0; r < md->ms; ++r) v += h[r] * w->sd[(size_t)o * md->ms + r];
        ref[(size_t)t * d + o] += v;
      }
    }
  }
done:
  free(s); free(z); free(h); free(acc); free(chosen);
}

double rel_error(const float* y, const double* ref, size_t n, double* max_ref) {
  double maxref = 0, maxerr = 0;
  for (size_t i = 0; i < n; ++i) {
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double e = fabs((double)y[i] - ref[i]);
    if (!(e <= maxerr)) maxerr = e; /* NaN sticks */
  }
  if (max_ref) *max_ref = maxref;
  return maxerr / (maxref > 0 ? maxref : 1);
}

double forward_vs_reference(const char* dir, const Model* md, const Weights* w, int T, double tol) {
  lmoe_layer* layer = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, md->layer, &layer));
  const int d = md->d, K = md->k;
  float* x = malloc(sizeof(float) * (size_t)T * d);
  float* y = malloc(sizeof(float) * (size_t)T * d);
  int32_t* ids = malloc(sizeof(int32_t) * (size_t)T * K);
  float* kw = malloc(sizeof(float) * (size_t)T * K);
  double* ref = malloc(sizeof(double) * (size_t)T * d);
  fill_x(x, (size_t)T * d);
  for (size_t i = 0; i < (size_t)T * d; ++i) y[i] = NAN; /* unwritten outputs fail */
  REQUIRE_OK(lmoe_layer_forward(layer, x, T, y, ids, kw));
  reference(md, w, x, T, ids, kw, ref);
  double maxref = 0;
  double rel = rel_error(y, ref, (size_t)T * d, &maxref);
  printf("  T=%d: max |y - ref| / max |ref| = %.3g (tolerance %.0e), max |ref| = %.3g\n", T, rel, tol, maxref);
  CHECK(rel <= tol, "error %g above %g", rel, tol);
  CHECK(maxref > 1e-3, "reference is degenerate (max %g)", maxref);
  REQUIRE_OK(lmoe_layer_close(layer));
  free(x); free(y); free(ids); free(kw); free(ref);
  return rel;
}

void expect_error(lmoe_status st, const char* what) {
  const char* msg = lmoe_last_error();
  CHECK(st != LMOE_OK, "%s: expected an error", what);
  CHECK(msg && msg[0], "%s: no error message", what);
  printf("  %-44s -> %d: %s\n", what, (int)st, msg ? msg : "(null)");
}

void expect_open_error(const char* dir, int layer, const char* what, const char* needle) {
  lmoe_layer* L = (lmoe_layer*)(uintptr_t)1;
  lmoe_status st = lmoe_layer_open(dir, layer, &L);
  CHECK(L == NULL, "%s: *out must be NULL on failure", what);
  if (st == LMOE_OK) lmoe_layer_close(L);
  expect_error(st, what);
  if (needle && st != LMOE_OK) {
    const char* msg = lmoe_last_error();
    CHECK(strstr(msg, needle) != NULL, "%s: message lacks '%s'", what, needle);
  }
}

/* ------------------------------------------------------------------ Arrow input */

void noop_array_release(struct ArrowArray* a) { a->release = NULL; }
void noop_schema_release(struct ArrowSchema* s) { s->release = NULL; }


/* A FixedSizeList<float>[d] array of length T over values (array offset off, child offset coff). */
void make_arrow(ArrowIn* a, const float* values, int64_t T, int64_t d, int64_t off, int64_t coff,
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

