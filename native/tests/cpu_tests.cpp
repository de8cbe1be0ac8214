// CPU kernel tests: every kernel and lmoe_cpu_forward against an independent float64 reference,
// exact routing / dispatch checks, determinism across thread counts, argument validation.
//   usage: lmoe_cpu_tests <router|dispatch|experts|combine|forward|determinism|errors|fill|misc>
//                         <scalar|avx2|avx512|best>
// Returns 77 (ctest SKIP) when the CPU lacks the requested ISA.
#include "latentmoe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_failures = 0;

#define EXPECT(cond, ...)                                             \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::printf("FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
      std::printf(__VA_ARGS__);                                       \
      std::printf("\n");                                              \
      ++g_failures;                                                   \
    }                                                                 \
  } while (0)

#define OK(x)                                                                            \
  do {                                                                                   \
    lmoe_status s_ = (x);                                                                \
    if (s_ != LMOE_OK) {                                                                 \
      std::printf("FAILED %s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #x, (int)s_, \
                  lmoe_last_error());                                                    \
      ++g_failures;                                                                      \
      return;                                                                            \
    }                                                                                    \
  } while (0)

// ------------------------------------------------------------------ data

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * ((next() >> 11) * 0x1.0p-53); }
  // never exactly zero
  float nz(double scale) {
    double v = uniform(-scale, scale);
    if (std::fabs(v) < scale * 1e-3) v = v < 0 ? -scale * 1e-3 : scale * 1e-3;
    return (float)v;
  }
};

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A weight matrix stored at a deliberately odd (but element-size aligned) address.
struct Mat {
  int rows = 0, cols = 0, dtype = LMOE_DTYPE_F32;
  std::vector<unsigned char> buf;
  void* ptr = nullptr;
  std::vector<double> ref;  // the exact stored values
  double at(int r, int c) const { return ref[(size_t)r * cols + c]; }
};

Mat make_mat(int rows, int cols, int dtype, Rng& rng, double scale) {
  Mat m;
  m.rows = rows; m.cols = cols; m.dtype = dtype;
  const size_t n = (size_t)rows * cols, es = dtype == LMOE_DTYPE_BF16 ? 2 : 4;
  m.buf.resize(n * es + 64);
  m.ptr = m.buf.data() + (dtype == LMOE_DTYPE_BF16 ? 2 : 4) + 16 * (rng.next() & 1);
  m.ref.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float v = rng.nz(scale);
    if (dtype == LMOE_DTYPE_BF16) {
      uint16_t h = to_bf16(v);
      std::memcpy((uint16_t*)m.ptr + i, &h, 2);
      m.ref[i] = from_bf16(h);
    } else {
      std::memcpy((float*)m.ptr + i, &v, 4);
      m.ref[i] = v;
    }
  }
  return m;
}

struct Spec {
  const char* name;
  int d, l, N, K, m, ms, act, scoring, norm, wdt, gdt, bias, T;
  float scale;
};

struct Layer {
  Spec sp;
  lmoe_config c{};
  Mat gate, ld, lu, su, sg, sd;
  std::vector<float> bias;
  std::vector<Mat> up, gt, dn;
  std::vector<const void*> up_p, gt_p, dn_p;
  lmoe_weights w{};
  int width() const { return sp.l > 0 ? sp.l : sp.d; }
};

void build(Layer& L, const Spec& s, uint64_t seed) {
  Rng rng(seed);
  L.sp = s;
  lmoe_config& c = L.c;
  c.hidden_size = s.d; c.latent_size = s.l; c.num_experts = s.N; c.top_k = s.K;
  c.expert_intermediate_size = s.m; c.shared_intermediate_size = s.ms; c.activation = s.act;
  c.scoring = s.scoring; c.norm_topk_prob = s.norm; c.routed_scaling_factor = s.scale;
  const int w = L.width();
  L.gate = make_mat(s.N, s.d, s.gdt, rng, 2.0 / std::sqrt((double)s.d));
  if (s.bias) {
    L.bias.resize(s.N);
    for (auto& b : L.bias) b = rng.nz(0.05);
  }
  if (s.l > 0) {
    L.ld = make_mat(s.l, s.d, s.wdt, rng, 1.7 / std::sqrt((double)s.d));
    L.lu = make_mat(s.d, s.l, s.wdt, rng, 1.7 / std::sqrt((double)s.l));
  }
  L.up.resize(s.N); L.dn.resize(s.N);
  if (s.act == LMOE_ACT_SWIGLU) L.gt.resize(s.N);
  for (int e = 0; e < s.N; ++e) {
    L.up[e] = make_mat(s.m, w, s.wdt, rng, 1.7 / std::sqrt((double)w));
    if (s.act == LMOE_ACT_SWIGLU) L.gt[e] = make_mat(s.m, w, s.wdt, rng, 1.7 / std::sqrt((double)w));
    L.dn[e] = make_mat(w, s.m, s.wdt, rng, 1.7 / std::sqrt((double)s.m));
  }
  if (s.ms > 0) {
    L.su = make_mat(s.ms, s.d, s.wdt, rng, 1.7 / std::sqrt((double)s.d));
    if (s.act == LMOE_ACT_SWIGLU) L.sg = make_mat(s.ms, s.d, s.wdt, rng, 1.7 / std::sqrt((double)s.d));
    L.sd = make_mat(s.d, s.ms, s.wdt, rng, 1.7 / std::sqrt((double)s.ms));
  }
  for (int e = 0; e < s.N; ++e) {
    L.up_p.push_back(L.up[e].ptr);
    L.dn_p.push_back(L.dn[e].ptr);
    if (s.act == LMOE_ACT_SWIGLU) L.gt_p.push_back(L.gt[e].ptr);
  }
  lmoe_weights& W = L.w;
  W.weight_dtype = s.wdt; W.gate_dtype = s.gdt; W.gate = L.gate.ptr;
  W.gate_bias = s.bias ? L.bias.data() : nullptr;
  W.latent_down = s.l > 0 ? L.ld.ptr : nullptr;
  W.latent_up = s.l > 0 ? L.lu.ptr : nullptr;
  W.expert_up = L.up_p.data(); W.expert_down = L.dn_p.data();
  W.expert_gate = s.act == LMOE_ACT_SWIGLU ? L.gt_p.data() : nullptr;
  W.shared_up = s.ms > 0 ? L.su.ptr : nullptr;
  W.shared_gate = (s.ms > 0 && s.act == LMOE_ACT_SWIGLU) ? L.sg.ptr : nullptr;
  W.shared_down = s.ms > 0 ? L.sd.ptr : nullptr;
}

std::vector<float> make_x(int T, int d, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x((size_t)T * d);
  for (auto& v : x) v = rng.nz(1.0);
  return x;
}

template <class T>
void poison(std::vector<T>& v) {
  if (std::is_same<T, float>::value) {
    float nan = std::nanf("");
    for (auto& e : v) std::memcpy(&e, &nan, 4);
  } else {
    for (auto& e : v) e = (T)0x7eadbeef;
  }
}

// ------------------------------------------------------------------ float64 reference

template <class V>
std::vector<double> matvec(const Mat& M, const V* x) {  // M [r, c] . x[c]
  std::vector<double> y(M.rows);
  for (int r = 0; r < M.rows; ++r) {
    double s = 0;
    const double* row = &M.ref[(size_t)r * M.cols];
    for (int c = 0; c < M.cols; ++c) s += row[c] * (double)x[c];
    y[r] = s;
  }
  return y;
}

double act_ref(int act, double g_or_u, double u) {
  if (act == LMOE_ACT_RELU2) {
    double a = g_or_u > 0 ? g_or_u : 0;
    return a * a;
  }
  return g_or_u / (1.0 + std::exp(-g_or_u)) * u;
}

std::vector<double> scores_ref(const Layer& L, const float* xt) {
  std::vector<double> lg = matvec(L.gate, xt), s(L.sp.N);
  if (L.sp.scoring == LMOE_SCORING_SOFTMAX) {
    double mx = *std::max_element(lg.begin(), lg.end()), sum = 0;
    for (int e = 0; e < L.sp.N; ++e) sum += (s[e] = std::exp(lg[e] - mx));
    for (auto& v : s) v /= sum;
  } else {
    for (int e = 0; e < L.sp.N; ++e) s[e] = 1.0 / (1.0 + std::exp(-lg[e]));
  }
  return s;
}

std::vector<double> route_weights_ref(const Layer& L, const std::vector<double>& s,
                                      const int32_t* ids) {
  std::vector<double> w(L.sp.K);
  double sum = 0;
  for (int k = 0; k < L.sp.K; ++k) sum += (w[k] = s[ids[k]]);
  for (auto& v : w) v = (L.sp.norm ? v / (sum + 1e-20) : v) * L.sp.scale;
  return w;
}

// expert e applied to one input row
std::vector<double> expert_ref(const Layer& L, int e, const std::vector<double>& z) {
  std::vector<double> u = matvec(L.up[e], z.data()), h(L.sp.m);
  if (L.sp.act == LMOE_ACT_SWIGLU) {
    std::vector<double> g = matvec(L.gt[e], z.data());
    for (int i = 0; i < L.sp.m; ++i) h[i] = act_ref(L.sp.act, g[i], u[i]);
  } else {
    for (int i = 0; i < L.sp.m; ++i) h[i] = act_ref(L.sp.act, u[i], 0);
  }
  return matvec(L.dn[e], h.data());
}

std::vector<double> shared_ref(const Layer& L, const float* xt) {
  std::vector<double> u = matvec(L.su, xt), h(L.sp.ms);
  if (L.sp.act == LMOE_ACT_SWIGLU) {
    std::vector<double> g = matvec(L.sg, xt);
    for (int i = 0; i < L.sp.ms; ++i) h[i] = act_ref(L.sp.act, g[i], u[i]);
  } else {
    for (int i = 0; i < L.sp.ms; ++i) h[i] = act_ref(L.sp.act, u[i], 0);
  }
  return matvec(L.sd, h.data());
}

double rel_err(const float* a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = (double)a[i] - ref[i];
    if (std::isnan(a[i])) return INFINITY;
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

double tol_for(const Layer& L) { return L.sp.wdt == LMOE_DTYPE_BF16 ? 1e-2 : 1e-5; }

void check_close(const char* what, const Layer& L, const float* a, const std::vector<double>& ref) {
  double e = rel_err(a, ref);
  std::printf("    %-28s rel err %.3e (tol %.0e)\n", what, e, tol_for(L));
  EXPECT(e <= tol_for(L), "%s: %s rel err %g", L.sp.name, what, e);
}

// Validates a routing result against the reference scores: distinct valid ids, descending biased
// score, a valid top-K set (up to tol), weights close to the reference weights for those ids.
void check_routing(const Layer& L, const float* x, int T, const int32_t* ids, const float* wts) {
  const int N = L.sp.N, K = L.sp.K;
  const double tol = 2e-5;
  std::vector<double> wref, wgot;
  for (int t = 0; t < T; ++t) {
    std::vector<double> s = scores_ref(L, x + (size_t)t * L.sp.d);
    std::vector<double> b(N);
    for (int e = 0; e < N; ++e) b[e] = s[e] + (L.sp.bias ? L.bias[e] : 0.0);
    const int32_t* id = ids + (size_t)t * K;
    std::vector<char> sel(N, 0);
    bool ok = true;
    for (int k = 0; k < K; ++k) {
      if (id[k] < 0 || id[k] >= N || sel[id[k]]) { ok = false; break; }
      sel[id[k]] = 1;
    }
    EXPECT(ok, "%s: token %d: invalid or duplicate expert ids", L.sp.name, t);
    if (!ok) return;
    double minsel = INFINITY, maxun = -INFINITY;
    for (int k = 0; k < K; ++k) {
      minsel = std::min(minsel, b[id[k]]);
      if (k > 0) EXPECT(b[id[k - 1]] >= b[id[k]] - tol, "%s: token %d not descending at k=%d", L.sp.name, t, k);
    }
    for (int e = 0; e < N; ++e)
      if (!sel[e]) maxun = std::max(maxun, b[e]);
    EXPECT(minsel >= maxun - tol, "%s: token %d: selection is not a top-K (%g < %g)", L.sp.name, t,
           minsel, maxun);
    std::vector<double> w = route_weights_ref(L, s, id);
    for (int k = 0; k < K; ++k) {
      wref.push_back(w[k]);
      wgot.push_back(wts[(size_t)t * K + k]);
    }
  }
  std::vector<float> wg(wgot.begin(), wgot.end());
  double e = rel_err(wg.data(), wref);
  std::printf("    %-28s rel err %.3e\n", "topk_weights", e);
  EXPECT(e <= 1e-5, "%s: topk_weights rel err %g", L.sp.name, e);
}

// ------------------------------------------------------------------ specs

const Spec kSpecs[] = {
    // name          d    l    N    K   m    ms   act                scoring               norm wdt               gdt               bias T    scale
    {"latent-bf16-relu2-T37", 200, 72, 37, 5, 88, 120, LMOE_ACT_RELU2, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_BF16, LMOE_DTYPE_BF16, 1, 37, 2.5f},
    {"std-f32-swiglu-softmax-K1-T3", 129, 0, 13, 1, 57, 0, LMOE_ACT_SWIGLU, LMOE_SCORING_SOFTMAX, 0, LMOE_DTYPE_F32, LMOE_DTYPE_F32, 0, 3, 1.0f},
    {"latent-bf16-swiglu-N512-K22-T1", 264, 56, 512, 22, 40, 72, LMOE_ACT_SWIGLU, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_BF16, LMOE_DTYPE_F32, 1, 1, 5.0f},
    {"latent-f32-relu2-K32-T300", 100, 40, 64, 32, 30, 50, LMOE_ACT_RELU2, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_F32, LMOE_DTYPE_BF16, 1, 300, 1.5f},
    {"std-bf16-relu2-shared-T300", 72, 0, 23, 6, 45, 33, LMOE_ACT_RELU2, LMOE_SCORING_SOFTMAX, 1, LMOE_DTYPE_BF16, LMOE_DTYPE_BF16, 0, 300, 1.0f},
    {"latent-bf16-relu2-N512-K22-T37", 136, 48, 512, 22, 24, 0, LMOE_ACT_RELU2, LMOE_SCORING_SIGMOID, 0, LMOE_DTYPE_BF16, LMOE_DTYPE_BF16, 1, 37, 2.0f},
    {"std-f32-swiglu-shared-K32-T37", 47, 0, 41, 32, 19, 23, LMOE_ACT_SWIGLU, LMOE_SCORING_SOFTMAX, 1, LMOE_DTYPE_F32, LMOE_DTYPE_F32, 1, 37, 1.0f},
    // T = 1 (GEMV path): odd widths (row tails of every size class, bf16 rows only 2-byte aligned)
    {"latent-bf16-relu2-odd-T1", 203, 37, 19, 3, 45, 67, LMOE_ACT_RELU2, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_BF16, LMOE_DTYPE_BF16, 1, 1, 2.0f},
    {"std-f32-swiglu-odd-T1", 77, 0, 9, 2, 33, 21, LMOE_ACT_SWIGLU, LMOE_SCORING_SOFTMAX, 1, LMOE_DTYPE_F32, LMOE_DTYPE_F32, 0, 1, 1.0f},
};

uint64_t fresh_seed() {
  const char* e = std::getenv("LMOE_TEST_SEED");
  if (e) return std::strtoull(e, nullptr, 0);
  return (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count() ^ 0x5eedull;
}

// Runs the four kernels in sequence for L on x; outputs into the given vectors.
struct Run {
  std::vector<int32_t> ids, offsets, perm;
  std::vector<float> wts, latent, hidden, eout, scratch, out;
};

bool run_chain(const Layer& L, const std::vector<float>& x, int T, Run& r) {
  const int K = L.sp.K, N = L.sp.N, w = L.width();
  const int64_t S = (int64_t)T * K;
  r.ids.assign(S, 0); r.wts.assign(S, 0); r.offsets.assign(N + 1, 0); r.perm.assign(S, 0);
  r.latent.assign(S * w, 0); r.hidden.assign(S * L.sp.m, 0); r.eout.assign(S * w, 0);
  r.scratch.assign(std::max<int64_t>(1, lmoe_cpu_combine_scratch_floats(&L.c, T)), 0);
  r.out.assign((size_t)T * L.sp.d, 0);
  poison(r.ids); poison(r.wts); poison(r.offsets); poison(r.perm); poison(r.latent);
  poison(r.hidden); poison(r.eout); poison(r.scratch); poison(r.out);
  lmoe_status s;
  if ((s = lmoe_cpu_router_topk(&L.c, &L.w, x.data(), T, r.ids.data(), r.wts.data())) ||
      (s = lmoe_cpu_dispatch(&L.c, &L.w, x.data(), T, r.ids.data(), r.offsets.data(), r.perm.data(),
                             r.latent.data())) ||
      (s = lmoe_cpu_experts(&L.c, &L.w, T, r.offsets.data(), r.latent.data(), r.hidden.data(),
                            r.eout.data())) ||
      (s = lmoe_cpu_combine(&L.c, &L.w, x.data(), T, r.wts.data(), r.perm.data(), r.eout.data(),
                            r.scratch.data(), r.out.data()))) {
    std::printf("FAILED: kernel chain returned %d: %s\n", (int)s, lmoe_last_error());
    ++g_failures;
    return false;
  }
  return true;
}

// ------------------------------------------------------------------ tests

void test_router_ties() {
  // Rows 3, 5, 7 identical (equal top scores), rows 2 and 8 identical (next); K = 4.
  for (int scoring = 0; scoring < 2; ++scoring)
    for (int gdt = 0; gdt < 2; ++gdt) {
      const int d = 19, N = 10, K = 4;
      std::vector<float> gf((size_t)N * d);
      for (int e = 0; e < N; ++e)
        for (int i = 0; i < d; ++i) {
          float v = -0.01f * (float)((e * 7 + i) % 5 + 1);
          if (e == 3 || e == 5 || e == 7) v = 0.25f;
          if (e == 2 || e == 8) v = 0.125f;
          gf[(size_t)e * d + i] = v;
        }
      std::vector<uint16_t> gb(gf.size());
      for (size_t i = 0; i < gf.size(); ++i) gb[i] = to_bf16(gf[i]);
      lmoe_config c{};
      c.hidden_size = d; c.num_experts = N; c.top_k = K; c.expert_intermediate_size = 4;
      c.scoring = scoring; c.norm_topk_prob = 1; c.routed_scaling_factor = 1.0f;
      lmoe_weights w{};
      w.weight_dtype = LMOE_DTYPE_F32; w.gate_dtype = gdt;
      w.gate = gdt == LMOE_DTYPE_BF16 ? (const void*)gb.data() : (const void*)gf.data();
      std::vector<float> x(2 * d, 1.0f);
      std::vector<int32_t> ids(2 * K, -1);
      std::vector<float> wts(2 * K);
      OK(lmoe_cpu_router_topk(&c, &w, x.data(), 2, ids.data(), wts.data()));
      const int expect[4] = {3, 5, 7, 2};
      for (int t = 0; t < 2; ++t)
        for (int k = 0; k < K; ++k)
          EXPECT(ids[t * K + k] == expect[k], "tie-break: token %d slot %d got %d expected %d", t, k,
                 ids[t * K + k], expect[k]);
      EXPECT(wts[0] == wts[1] && wts[1] == wts[2], "tied weights differ");
      // A bias that lifts expert 8 to tie with 2 in biased score but not above 3/5/7; with a bias
      // making 9 equal to 3's score, 3 must still come before 9? 9 has higher id -> after 7.
      std::vector<float> bias(N, 0.0f);
      std::vector<int32_t> ids2(2 * K);
      w.gate_bias = bias.data();
      bias[8] = 0.0f;
      OK(lmoe_cpu_router_topk(&c, &w, x.data(), 1, ids2.data(), wts.data()));
      for (int k = 0; k < K; ++k) EXPECT(ids2[k] == expect[k], "zero-bias tie-break slot %d", k);
      bias[8] = 1.0f;  // 8 now first
      OK(lmoe_cpu_router_topk(&c, &w, x.data(), 1, ids2.data(), wts.data()));
      const int expect2[4] = {8, 3, 5, 7};
      for (int k = 0; k < K; ++k)
        EXPECT(ids2[k] == expect2[k], "biased tie-break slot %d got %d expected %d", k, ids2[k],
               expect2[k]);
    }
}

void test_router(const Layer& L, const std::vector<float>& x, int T) {
  std::vector<int32_t> ids((size_t)T * L.sp.K);
  std::vector<float> wts((size_t)T * L.sp.K);
  poison(ids); poison(wts);
  OK(lmoe_cpu_router_topk(&L.c, &L.w, x.data(), T, ids.data(), wts.data()));
  check_routing(L, x.data(), T, ids.data(), wts.data());
}

void test_dispatch(const Layer& L, const std::vector<float>& x, int T, uint64_t seed) {
  const int N = L.sp.N, K = L.sp.K, w = L.width();
  const int64_t S = (int64_t)T * K;
  // Arbitrary ids (with repeats across tokens, distinct within a token) to test the permutation.
  Rng rng(seed);
  std::vector<int32_t> ids(S);
  for (int t = 0; t < T; ++t) {
    std::vector<int32_t> p(N);
    for (int e = 0; e < N; ++e) p[e] = e;
    for (int k = 0; k < K; ++k) {
      int j = k + (int)(rng.next() % (uint64_t)(N - k));
      std::swap(p[k], p[j]);
      ids[(size_t)t * K + k] = p[k];
    }
  }
  std::vector<int32_t> off(N + 1), perm(S);
  std::vector<float> lat(S * w);
  poison(off); poison(perm); poison(lat);
  OK(lmoe_cpu_dispatch(&L.c, &L.w, x.data(), T, ids.data(), off.data(), perm.data(), lat.data()));
  std::vector<int32_t> eoff(N + 1, 0), eperm(S, -1);
  int32_t row = 0;
  for (int e = 0; e < N; ++e) {
    eoff[e] = row;
    for (int64_t s = 0; s < S; ++s)
      if (ids[s] == e) eperm[s] = row++;
  }
  eoff[N] = row;
  EXPECT(off == eoff, "%s: expert_offsets differ", L.sp.name);
  EXPECT(perm == eperm, "%s: sorted_row_of_slot differs", L.sp.name);
  std::vector<double> ref(S * w);
  for (int t = 0; t < T; ++t) {
    std::vector<double> z;
    const float* xt = x.data() + (size_t)t * L.sp.d;
    if (L.sp.l > 0) z = matvec(L.ld, xt);
    else z.assign(xt, xt + L.sp.d);
    for (int k = 0; k < K; ++k) {
      const int64_t r = eperm[(size_t)t * K + k];
      std::copy(z.begin(), z.end(), ref.begin() + r * w);
      if (k > 0)
        EXPECT(std::memcmp(&lat[r * w], &lat[(int64_t)eperm[(size_t)t * K] * w], w * 4) == 0,
               "%s: copies of token %d differ", L.sp.name, t);
    }
  }
  check_close("latent_sorted", L, lat.data(), ref);
}

void test_experts(const Layer& L, const std::vector<float>& x, int T) {
  Run r;
  if (!run_chain(L, x, T, r)) return;
  const int w = L.width();
  const int64_t S = (int64_t)T * L.sp.K;
  std::vector<double> ref(S * w);
  for (int e = 0; e < L.sp.N; ++e)
    for (int row = r.offsets[e]; row < r.offsets[e + 1]; ++row) {
      std::vector<double> z(r.latent.begin() + (int64_t)row * w, r.latent.begin() + (int64_t)(row + 1) * w);
      std::vector<double> y = expert_ref(L, e, z);
      std::copy(y.begin(), y.end(), ref.begin() + (int64_t)row * w);
    }
  check_close("expert_out_sorted", L, r.eout.data(), ref);
}

void test_combine(const Layer& L, const std::vector<float>& x, int T) {
  Run r;
  if (!run_chain(L, x, T, r)) return;
  const int w = L.width(), K = L.sp.K, d = L.sp.d;
  std::vector<double> ref((size_t)T * d);
  for (int t = 0; t < T; ++t) {
    std::vector<double> acc(w, 0.0);
    for (int k = 0; k < K; ++k) {
      const double wk = r.wts[(size_t)t * K + k];
      const float* y = &r.eout[(int64_t)r.perm[(size_t)t * K + k] * w];
      for (int i = 0; i < w; ++i) acc[i] += wk * y[i];
    }
    std::vector<double> o = L.sp.l > 0 ? matvec(L.lu, acc.data()) : acc;
    if (L.sp.ms > 0) {
      std::vector<double> sh = shared_ref(L, x.data() + (size_t)t * d);
      for (int i = 0; i < d; ++i) o[i] += sh[i];
    }
    std::copy(o.begin(), o.end(), ref.begin() + (size_t)t * d);
  }
  check_close("combine out", L, r.out.data(), ref);
}

void forward_once(const Layer& L, const std::vector<float>& x, int T, std::vector<int32_t>& ids,
                  std::vector<float>& wts, std::vector<float>& out, bool* ok) {
  *ok = false;
  const int64_t S = (int64_t)T * L.sp.K;
  ids.assign(S, 0); wts.assign(S, 0); out.assign((size_t)T * L.sp.d, 0);
  poison(ids); poison(wts); poison(out);
  int64_t wsb = lmoe_cpu_forward_workspace_bytes(&L.c, T);
  EXPECT(wsb > 0, "workspace bytes %lld", (long long)wsb);
  std::vector<float> wsv((size_t)(wsb / 4 + 32));
  poison(wsv);
  void* ws = (void*)(((uintptr_t)wsv.data() + 63) / 64 * 64);
  OK(lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), ws, wsb, out.data()));
  *ok = true;
}

void test_forward(const Layer& L, const std::vector<float>& x, int T) {
  std::vector<int32_t> ids;
  std::vector<float> wts, out;
  bool ok;
  forward_once(L, x, T, ids, wts, out, &ok);
  if (!ok) return;
  check_routing(L, x.data(), T, ids.data(), wts.data());
  const int d = L.sp.d, K = L.sp.K, w = L.width();
  std::vector<double> ref((size_t)T * d);
  for (int t = 0; t < T; ++t) {
    const float* xt = x.data() + (size_t)t * d;
    std::vector<double> s = scores_ref(L, xt);
    std::vector<double> rw = route_weights_ref(L, s, &ids[(size_t)t * K]);
    std::vector<double> z = L.sp.l > 0 ? matvec(L.ld, xt) : std::vector<double>(xt, xt + d);
    std::vector<double> acc(w, 0.0);
    for (int k = 0; k < K; ++k) {
      std::vector<double> y = expert_ref(L, ids[(size_t)t * K + k], z);
      for (int i = 0; i < w; ++i) acc[i] += rw[k] * y[i];
    }
    std::vector<double> o = L.sp.l > 0 ? matvec(L.lu, acc.data()) : acc;
    if (L.sp.ms > 0) {
      std::vector<double> sh = shared_ref(L, xt);
      for (int i = 0; i < d; ++i) o[i] += sh[i];
    }
    std::copy(o.begin(), o.end(), ref.begin() + (size_t)t * d);
  }
  check_close("forward out", L, out.data(), ref);
  // The fused forward must equal the four kernels run one after another, bit for bit.
  Run r;
  if (!run_chain(L, x, T, r)) return;
  EXPECT(r.ids == ids, "%s: forward ids differ from the kernel chain", L.sp.name);
  EXPECT(std::memcmp(r.wts.data(), wts.data(), wts.size() * 4) == 0, "%s: forward weights differ from the chain", L.sp.name);
  EXPECT(std::memcmp(r.out.data(), out.data(), out.size() * 4) == 0,
         "%s: forward out differs from the kernel chain", L.sp.name);
}

void test_determinism(const Layer& L, const std::vector<float>& x, int T) {
  const int counts[] = {1, 2, 3, 7};
  std::vector<int32_t> ids0;
  std::vector<float> wts0, out0;
  for (int n : counts) {
    OK(lmoe_cpu_set_num_threads(n));
    EXPECT(lmoe_cpu_num_threads() == n, "num_threads");
    std::vector<int32_t> ids;
    std::vector<float> wts, out;
    bool ok;
    for (int rep = 0; rep < 2; ++rep) {
      forward_once(L, x, T, ids, wts, out, &ok);
      if (!ok) return;
      if (ids0.empty()) {
        ids0 = ids; wts0 = wts; out0 = out;
        continue;
      }
      EXPECT(ids == ids0, "%s: ids differ with %d threads", L.sp.name, n);
      EXPECT(std::memcmp(wts.data(), wts0.data(), wts.size() * 4) == 0, "%s: weights differ with %d threads", L.sp.name, n);
      EXPECT(std::memcmp(out.data(), out0.data(), out.size() * 4) == 0, "%s: out differs with %d threads", L.sp.name, n);
    }
    std::printf("    %d threads: bit-identical\n", n);
  }
  OK(lmoe_cpu_set_num_threads(2));
}

// ------------------------------------------------------------------ validation tests

void expect_err(const char* what, lmoe_status got, lmoe_status want, const char* needle) {
  const char* msg = lmoe_last_error();
  EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
  EXPECT(msg && std::strstr(msg, needle) != nullptr, "%s: message '%s' lacks '%s'", what, msg, needle);
  std::printf("    %-34s -> %d \"%s\"\n", what, (int)got, msg);
}

void test_errors() {
  Spec s = kSpecs[0];
  Layer L;
  build(L, s, 7);
  const int T = 3, K = s.K, N = s.N, w = L.width();
  std::vector<float> x = make_x(T, s.d, 8), wts(T * K), out(T * s.d), lat(T * K * w),
                     hid(T * K * s.m), eo(T * K * w), sc(lmoe_cpu_combine_scratch_floats(&L.c, T));
  std::vector<int32_t> ids(T * K), off(N + 1), perm(T * K);
  lmoe_config c;
  lmoe_weights w2;
  auto router = [&](const lmoe_config* cc, const lmoe_weights* ww, int64_t t) {
    return lmoe_cpu_router_topk(cc, ww, x.data(), t, ids.data(), wts.data());
  };
  expect_err("router NULL cfg", router(nullptr, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "cfg is NULL");
  expect_err("router NULL weights", router(&L.c, nullptr, T), LMOE_ERR_INVALID_ARGUMENT, "weights is NULL");
  c = L.c; c.num_experts = 0;
  expect_err("N = 0", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "num_experts");
  c = L.c; c.num_experts = 2049;
  expect_err("N = 2049", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "num_experts");
  c = L.c; c.top_k = 0;
  expect_err("K = 0", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "top_k");
  c = L.c; c.top_k = 33; c.num_experts = 40;
  expect_err("K = 33", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "top_k");
  c = L.c; c.top_k = N + 1;
  expect_err("K > N", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "top_k");
  c = L.c; c.activation = 5;
  expect_err("bad activation", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "activation");
  c = L.c; c.scoring = -1;
  expect_err("bad scoring", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "scoring");
  c = L.c; c.hidden_size = 0;
  expect_err("d = 0", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "hidden_size");
  c = L.c; c.routed_scaling_factor = NAN;
  expect_err("NaN scale", router(&c, &L.w, T), LMOE_ERR_INVALID_ARGUMENT, "routed_scaling_factor");
  expect_err("T < 0", router(&L.c, &L.w, -1), LMOE_ERR_INVALID_ARGUMENT, "num_tokens");
  w2 = L.w; w2.gate_dtype = LMOE_DTYPE_F16;
  expect_err("gate dtype F16", router(&L.c, &w2, T), LMOE_ERR_INVALID_ARGUMENT, "gate_dtype");
  w2 = L.w; w2.gate = nullptr;
  expect_err("NULL gate", router(&L.c, &w2, T), LMOE_ERR_INVALID_ARGUMENT, "gate is NULL");
  expect_err("NULL x", lmoe_cpu_router_topk(&L.c, &L.w, nullptr, T, ids.data(), wts.data()),
             LMOE_ERR_INVALID_ARGUMENT, "x is NULL");
  expect_err("NULL topk_ids", lmoe_cpu_router_topk(&L.c, &L.w, x.data(), T, nullptr, wts.data()),
             LMOE_ERR_INVALID_ARGUMENT, "topk_ids is NULL");
  EXPECT(router(&L.c, &L.w, 0) == LMOE_OK, "T == 0 is a no-op");
  EXPECT(router(&L.c, &L.w, T) == LMOE_OK, "valid router call");
  EXPECT(std::strlen(lmoe_last_error()) == 0, "error not cleared after success");

  // dispatch
  std::vector<int32_t> bad = ids;
  bad[4] = N;
  expect_err("dispatch id out of range",
             lmoe_cpu_dispatch(&L.c, &L.w, x.data(), T, bad.data(), off.data(), perm.data(), lat.data()),
             LMOE_ERR_INVALID_ARGUMENT, "topk_ids[4]");
  bad[4] = -1;
  expect_err("dispatch negative id",
             lmoe_cpu_dispatch(&L.c, &L.w, x.data(), T, bad.data(), off.data(), perm.data(), lat.data()),
             LMOE_ERR_INVALID_ARGUMENT, "out of range");
  w2 = L.w; w2.latent_down = nullptr;
  expect_err("dispatch NULL latent_down",
             lmoe_cpu_dispatch(&L.c, &w2, x.data(), T, ids.data(), off.data(), perm.data(), lat.data()),
             LMOE_ERR_INVALID_ARGUMENT, "latent_down is NULL");
  w2 = L.w; w2.weight_dtype = 7;
  expect_err("bad weight dtype",
             lmoe_cpu_dispatch(&L.c, &w2, x.data(), T, ids.data(), off.data(), perm.data(), lat.data()),
             LMOE_ERR_INVALID_ARGUMENT, "weight_dtype");
  EXPECT(lmoe_cpu_dispatch(&L.c, &L.w, x.data(), T, ids.data(), off.data(), perm.data(), lat.data()) == LMOE_OK,
         "valid dispatch");

  // experts
  std::vector<const void*> ups = L.up_p;
  ups[N - 1] = nullptr;
  w2 = L.w; w2.expert_up = ups.data();
  expect_err("NULL expert_up[N-1]",
             lmoe_cpu_experts(&L.c, &w2, T, off.data(), lat.data(), hid.data(), eo.data()),
             LMOE_ERR_INVALID_ARGUMENT, "expert_up[36] is NULL");
  w2 = L.w; w2.expert_down = nullptr;
  expect_err("NULL expert_down",
             lmoe_cpu_experts(&L.c, &w2, T, off.data(), lat.data(), hid.data(), eo.data()),
             LMOE_ERR_INVALID_ARGUMENT, "expert_down is NULL");
  c = L.c; c.activation = LMOE_ACT_SWIGLU;
  expect_err("SwiGLU without expert_gate",
             lmoe_cpu_experts(&c, &L.w, T, off.data(), lat.data(), hid.data(), eo.data()),
             LMOE_ERR_INVALID_ARGUMENT, "expert_gate is NULL");
  std::vector<int32_t> boff = off;
  std::swap(boff[1], boff[N - 1]);
  if (boff[1] != boff[N - 1])
    expect_err("experts bad offsets",
               lmoe_cpu_experts(&L.c, &L.w, T, boff.data(), lat.data(), hid.data(), eo.data()),
               LMOE_ERR_INVALID_ARGUMENT, "expert_offsets");
  boff = off; boff[N] = T * K + 1;
  expect_err("experts bad total",
             lmoe_cpu_experts(&L.c, &L.w, T, boff.data(), lat.data(), hid.data(), eo.data()),
             LMOE_ERR_INVALID_ARGUMENT, "expert_offsets");
  expect_err("experts NULL hidden",
             lmoe_cpu_experts(&L.c, &L.w, T, off.data(), lat.data(), nullptr, eo.data()),
             LMOE_ERR_INVALID_ARGUMENT, "hidden_scratch is NULL");
  EXPECT(lmoe_cpu_experts(&L.c, &L.w, T, off.data(), lat.data(), hid.data(), eo.data()) == LMOE_OK,
         "valid experts");

  // combine
  std::vector<int32_t> bperm = perm;
  bperm[2] = T * K;
  expect_err("combine perm out of range",
             lmoe_cpu_combine(&L.c, &L.w, x.data(), T, wts.data(), bperm.data(), eo.data(), sc.data(), out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "sorted_row_of_slot[2]");
  w2 = L.w; w2.shared_down = nullptr;
  expect_err("combine NULL shared_down",
             lmoe_cpu_combine(&L.c, &w2, x.data(), T, wts.data(), perm.data(), eo.data(), sc.data(), out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "shared_down is NULL");
  w2 = L.w; w2.latent_up = nullptr;
  expect_err("combine NULL latent_up",
             lmoe_cpu_combine(&L.c, &w2, x.data(), T, wts.data(), perm.data(), eo.data(), sc.data(), out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "latent_up is NULL");
  expect_err("combine NULL scratch",
             lmoe_cpu_combine(&L.c, &L.w, x.data(), T, wts.data(), perm.data(), eo.data(), nullptr, out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "scratch is NULL");
  EXPECT(lmoe_cpu_combine(&L.c, &L.w, x.data(), T, wts.data(), perm.data(), eo.data(), sc.data(), out.data()) == LMOE_OK,
         "valid combine");

  // forward
  const int64_t wsb = lmoe_cpu_forward_workspace_bytes(&L.c, T);
  std::vector<float> wsv(wsb / 4 + 32);
  char* ws = (char*)(((uintptr_t)wsv.data() + 63) / 64 * 64);
  expect_err("forward small workspace",
             lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), ws, wsb - 1, out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "workspace_bytes");
  expect_err("forward misaligned workspace",
             lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), ws + 4, wsb, out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "aligned");
  expect_err("forward NULL workspace",
             lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), nullptr, wsb, out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "workspace is NULL");
  expect_err("forward NULL out",
             lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), ws, wsb, nullptr),
             LMOE_ERR_INVALID_ARGUMENT, "out is NULL");
  w2 = L.w; w2.shared_up = nullptr;
  expect_err("forward NULL shared_up",
             lmoe_cpu_forward(&L.c, &w2, x.data(), T, ids.data(), wts.data(), ws, wsb, out.data()),
             LMOE_ERR_INVALID_ARGUMENT, "shared_up is NULL");
  expect_err("validate NULL shared_up", lmoe_validate(&L.c, &w2), LMOE_ERR_INVALID_ARGUMENT, "shared_up is NULL");
  EXPECT(lmoe_validate(&L.c, &L.w) == LMOE_OK, "validate ok");
  EXPECT(lmoe_cpu_forward(&L.c, &L.w, x.data(), 0, nullptr, nullptr, nullptr, 0, nullptr) == LMOE_OK,
         "forward T == 0 is a no-op");
  EXPECT(lmoe_cpu_forward(&L.c, &L.w, x.data(), T, ids.data(), wts.data(), ws, wsb, out.data()) == LMOE_OK,
         "valid forward");
  c = L.c; c.top_k = 0;
  EXPECT(lmoe_cpu_forward_workspace_bytes(&c, T) == -1, "workspace bytes of a bad cfg");
  EXPECT(lmoe_cpu_combine_scratch_floats(&c, T) == -1, "combine scratch of a bad cfg");

  // library settings
  expect_err("set_num_threads(0)", lmoe_cpu_set_num_threads(0), LMOE_ERR_INVALID_ARGUMENT, "num_threads");
  expect_err("set_num_threads(1025)", lmoe_cpu_set_num_threads(1025), LMOE_ERR_INVALID_ARGUMENT, "num_threads");
  expect_err("set_isa(9)", lmoe_cpu_set_isa(9), LMOE_ERR_INVALID_ARGUMENT, "unknown isa");
  double g;
  expect_err("probe bad kind", lmoe_cpu_membw_probe(3, 1 << 20, 1, &g), LMOE_ERR_INVALID_ARGUMENT, "probe");
  expect_err("probe NULL result", lmoe_cpu_membw_probe(0, 1 << 20, 1, nullptr), LMOE_ERR_INVALID_ARGUMENT, "NULL");
  expect_err("fill bad dtype", lmoe_fill_uniform(x.data(), LMOE_DTYPE_I32, 4, 1, 0, 1), LMOE_ERR_INVALID_ARGUMENT, "dtype");
  expect_err("fill lo >= hi", lmoe_fill_uniform(x.data(), LMOE_DTYPE_F32, 4, 1, 1, 1), LMOE_ERR_INVALID_ARGUMENT, "lo < hi");
  expect_err("fill NULL", lmoe_fill_uniform(nullptr, LMOE_DTYPE_F32, 4, 1, 0, 1), LMOE_ERR_INVALID_ARGUMENT, "NULL");
}

double f16_to_double(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp((double)m, -24) : std::ldexp((double)(m | 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

void test_fill() {
  const int64_t n = 100003;
  std::vector<float> a(n), b(n);
  std::vector<uint16_t> hb(n), hb2(n), hf(n);
  OK(lmoe_cpu_set_num_threads(1));
  OK(lmoe_fill_uniform(a.data(), LMOE_DTYPE_F32, n, 42, -0.5f, 2.0f));
  OK(lmoe_fill_uniform(hb.data(), LMOE_DTYPE_BF16, n, 42, -0.5f, 2.0f));
  OK(lmoe_cpu_set_num_threads(3));
  OK(lmoe_fill_uniform(b.data(), LMOE_DTYPE_F32, n, 42, -0.5f, 2.0f));
  OK(lmoe_fill_uniform(hb2.data(), LMOE_DTYPE_BF16, n, 42, -0.5f, 2.0f));
  OK(lmoe_fill_uniform(hf.data(), LMOE_DTYPE_F16, n, 42, -0.5f, 2.0f));
  EXPECT(a == b, "fill depends on the thread count");
  EXPECT(hb == hb2, "bf16 fill depends on the thread count");
  double mean = 0;
  int bad_range = 0, bad_bf16 = 0, bad_f16 = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(a[i] >= -0.5f && a[i] < 2.0f)) ++bad_range;
    if (hb[i] != to_bf16(a[i])) ++bad_bf16;
    double h = f16_to_double(hf[i]);
    // nearest f16 (spacing 2^-11 relative; tolerance half a unit in the last place)
    int ex;
    std::frexp((double)a[i], &ex);
    double ulp = std::ldexp(1.0, std::max(ex - 11, -24));
    if (std::fabs(h - a[i]) > 0.5 * ulp * (1 + 1e-12)) ++bad_f16;
    mean += a[i];
  }
  mean /= n;
  EXPECT(bad_range == 0, "%d values outside [lo, hi)", bad_range);
  EXPECT(bad_bf16 == 0, "%d bf16 values are not the RNE of the f32 value", bad_bf16);
  EXPECT(bad_f16 == 0, "%d f16 values are not the nearest f16", bad_f16);
  EXPECT(std::fabs(mean - 0.75) < 0.02, "mean %g", mean);
  std::vector<float> c(n);
  OK(lmoe_fill_uniform(c.data(), LMOE_DTYPE_F32, n, 43, -0.5f, 2.0f));
  EXPECT(c != a, "different seeds give the same values");
  OK(lmoe_cpu_set_num_threads(2));
}

void test_misc() {
  EXPECT(lmoe_abi_version() == LMOE_ABI_VERSION, "abi version");
  const int best = lmoe_cpu_best_isa();
  std::printf("    best isa %d, threads %d\n", best, lmoe_cpu_num_threads());
  for (int i = 0; i <= best; ++i) {
    OK(lmoe_cpu_set_isa(i));
    EXPECT(lmoe_cpu_isa() == i, "set_isa");
  }
  if (best < LMOE_ISA_AVX512)
    EXPECT(lmoe_cpu_set_isa(LMOE_ISA_AVX512) == LMOE_ERR_UNSUPPORTED, "unsupported isa accepted");
  OK(lmoe_cpu_set_isa(best));
  for (int p = 0; p < 3; ++p) {
    double g = 0;
    OK(lmoe_cpu_membw_probe(p, 16 << 20, 2, &g));
    std::printf("    probe %d (16 MiB, cached): %.1f GB/s\n", p, g);
    EXPECT(g > 0 && std::isfinite(g), "probe result %g", g);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <test> <scalar|avx2|avx512|best>\n", argv[0]);
    return 2;
  }
  const std::string test = argv[1], isa_name = argv[2];
  int isa = isa_name == "scalar" ? 0 : isa_name == "avx2" ? 1 : isa_name == "avx512" ? 2 : -1;
  if (isa_name != "best" && isa < 0) {
    std::fprintf(stderr, "unknown isa %s\n", isa_name.c_str());
    return 2;
  }
  if (isa > lmoe_cpu_best_isa()) {
    std::printf("SKIP: this CPU does not support %s\n", isa_name.c_str());
    return 77;
  }
  if (isa >= 0 && lmoe_cpu_set_isa(isa) != LMOE_OK) {
    std::printf("FAILED: set_isa(%d): %s\n", isa, lmoe_last_error());
    return 1;
  }
  lmoe_cpu_set_num_threads(2);
  const uint64_t seed = fresh_seed();
  std::printf("test %s, isa %s (%d), seed 0x%llx (rerun with LMOE_TEST_SEED=0x%llx)\n", test.c_str(),
              isa_name.c_str(), lmoe_cpu_isa(), (unsigned long long)seed, (unsigned long long)seed);
  if (test == "errors") test_errors();
  else if (test == "fill") test_fill();
  else if (test == "misc") test_misc();
  else {
    if (test == "router") test_router_ties();
    int idx = 0;
    for (const Spec& s : kSpecs) {
      const uint64_t sd = seed + 1000003ull * (uint64_t)idx++;
      if (test == "determinism" && s.T == 3) continue;
      Layer L;
      build(L, s, sd);
      std::vector<float> x = make_x(s.T, s.d, sd ^ 0xabcdef);
      std::printf("  %s (d=%d l=%d N=%d K=%d m=%d ms=%d T=%d)\n", s.name, s.d, s.l, s.N, s.K, s.m, s.ms, s.T);
      if (test == "router") test_router(L, x, s.T);
      else if (test == "dispatch") test_dispatch(L, x, s.T, sd + 5);
      else if (test == "experts") test_experts(L, x, s.T);
      else if (test == "combine") test_combine(L, x, s.T);
      else if (test == "forward") test_forward(L, x, s.T);
      else if (test == "determinism") test_determinism(L, x, s.T);
      else {
        std::fprintf(stderr, "unknown test %s\n", test.c_str());
        return 2;
      }
    }
  }
  if (g_failures) {
    std::printf("%d FAILURE(S) (seed 0x%llx)\n", g_failures, (unsigned long long)seed);
    return 1;
  }
  std::printf("PASSED\n");
  return 0;
}
