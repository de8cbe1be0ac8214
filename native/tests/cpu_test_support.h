// The CPU tests' harness: checks and counters, seeded data, layers with weights at odd
// addresses, the float64 reference of every step, the test shapes. Used by cpu_tests.cpp.
#pragma once
#include "latentmoe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace lmoe_test {

inline int g_failures = 0;
// The precision every layer of this run uses (lmoe_precision; argv[3] of lmoe_cpu_tests).
inline int g_precision = LMOE_PRECISION_EXACT;

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

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
inline float from_bf16(uint16_t h) {
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

inline Mat make_mat(int rows, int cols, int dtype, Rng& rng, double scale) {
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
  std::vector<lmoe_matrix> up_p, gt_p, dn_p;
  lmoe_weights w{};
  int width() const { return sp.l > 0 ? sp.l : sp.d; }
};

// A plain F32 / BF16 weight descriptor (the lmoe_dtype codes equal the lmoe_weight_format ones).
inline lmoe_matrix matrix(const void* data, int dtype) {
  lmoe_matrix m{};
  m.format = dtype;
  m.data = data;
  m.scale = 1.0f;
  return m;
}

inline void build(Layer& L, const Spec& s, uint64_t seed) {
  Rng rng(seed);
  L.sp = s;
  lmoe_config& c = L.c;
  c.hidden_size = s.d; c.latent_size = s.l; c.num_experts = s.N; c.top_k = s.K;
  c.expert_intermediate_size = s.m; c.shared_intermediate_size = s.ms; c.activation = s.act;
  c.scoring = s.scoring; c.norm_topk_prob = s.norm; c.routed_scaling_factor = s.scale;
  c.precision = g_precision;
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
    L.up_p.push_back(matrix(L.up[e].ptr, s.wdt));
    L.dn_p.push_back(matrix(L.dn[e].ptr, s.wdt));
    if (s.act == LMOE_ACT_SWIGLU) L.gt_p.push_back(matrix(L.gt[e].ptr, s.wdt));
  }
  lmoe_weights& W = L.w;
  W.gate = matrix(L.gate.ptr, s.gdt);
  W.gate_bias = s.bias ? L.bias.data() : nullptr;
  if (s.l > 0) W.latent_down = matrix(L.ld.ptr, s.wdt);
  if (s.l > 0) W.latent_up = matrix(L.lu.ptr, s.wdt);
  W.expert_up = L.up_p.data(); W.expert_down = L.dn_p.data();
  W.expert_gate = s.act == LMOE_ACT_SWIGLU ? L.gt_p.data() : nullptr;
  if (s.ms > 0) W.shared_up = matrix(L.su.ptr, s.wdt);
  if (s.ms > 0 && s.act == LMOE_ACT_SWIGLU) W.shared_gate = matrix(L.sg.ptr, s.wdt);
  if (s.ms > 0) W.shared_down = matrix(L.sd.ptr, s.wdt);
}

inline std::vector<float> make_x(int T, int d, uint64_t seed) {
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

// An activation vector as a GEMM of the run's precision sees it: unchanged (EXACT), or each
// value rounded to f32 and then to bf16 (RNE) (BF16: every GEMM but the router's).
template <class V>
std::vector<double> act_in(const V* x, int n) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i)
    v[i] = g_precision == LMOE_PRECISION_BF16 ? from_bf16(to_bf16((float)x[i])) : (double)x[i];
  return v;
}
inline std::vector<double> act_in(const std::vector<double>& x) { return act_in(x.data(), (int)x.size()); }

// matvec of a non-router matrix on an activation: the activation as the precision sees it.
template <class V>
std::vector<double> matvec_act(const Mat& M, const V* x) {
  return matvec(M, act_in(x, M.cols).data());
}

inline double act_ref(int act, double g_or_u, double u) {
  if (act == LMOE_ACT_RELU2) {
    double a = g_or_u > 0 ? g_or_u : 0;
    return a * a;
  }
  if (act == LMOE_ACT_SILU) return g_or_u / (1.0 + std::exp(-g_or_u));
  return g_or_u / (1.0 + std::exp(-g_or_u)) * u;
}

inline std::vector<double> scores_ref(const Layer& L, const float* xt) {
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

inline std::vector<double> route_weights_ref(const Layer& L, const std::vector<double>& s,
                                      const int32_t* ids) {
  std::vector<double> w(L.sp.K);
  double sum = 0;
  for (int k = 0; k < L.sp.K; ++k) sum += (w[k] = s[ids[k]]);
  for (auto& v : w) v = (L.sp.norm ? v / (sum + 1e-20) : v) * L.sp.scale;
  return w;
}

// expert e applied to one input row
inline std::vector<double> expert_ref(const Layer& L, int e, const std::vector<double>& z) {
  std::vector<double> u = matvec_act(L.up[e], z.data()), h(L.sp.m);
  if (L.sp.act == LMOE_ACT_SWIGLU) {
    std::vector<double> g = matvec_act(L.gt[e], z.data());
    for (int i = 0; i < L.sp.m; ++i) h[i] = act_ref(L.sp.act, g[i], u[i]);
  } else {
    for (int i = 0; i < L.sp.m; ++i) h[i] = act_ref(L.sp.act, u[i], 0);
  }
  return matvec_act(L.dn[e], h.data());
}

inline std::vector<double> shared_ref(const Layer& L, const float* xt) {
  std::vector<double> u = matvec_act(L.su, xt), h(L.sp.ms);
  if (L.sp.act == LMOE_ACT_SWIGLU) {
    std::vector<double> g = matvec_act(L.sg, xt);
    for (int i = 0; i < L.sp.ms; ++i) h[i] = act_ref(L.sp.act, g[i], u[i]);
  } else {
    for (int i = 0; i < L.sp.ms; ++i) h[i] = act_ref(L.sp.act, u[i], 0);
  }
  return matvec_act(L.sd, h.data());
}

inline double rel_err(const float* a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = (double)a[i] - ref[i];
    if (std::isnan(a[i])) return INFINITY;
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

// Against the reference of the run's precision (BF16: the activations rounded to bf16 where the
// kernels round them). EXACT: the reference multiplies the stored weight values (bf16 widened
// exactly), so what is left is the f32 accumulation error (measured <= 3e-7 for every dtype):
// 1e-5 for every weight dtype; a kernel that rounds an intermediate to bf16 (e.g. the relu²
// output) is ~1e-3 off and fails. BF16: a GEMM whose input is exact in both (dispatch:
// z = x W_down^T) is checked at the f32 accumulation's bound; further down the layer an
// intermediate activation within a few f32 ulps of a bf16 rounding tie can round the other way in
// f32 than in float64 (one bf16 ulp, 2^-8, on that element; seen up to 3.5e-4 over the whole
// output), hence 1e-3 there.
inline double tol_for(const Layer&, bool exact_input = false) {
  if (g_precision == LMOE_PRECISION_BF16) return exact_input ? 1e-5 : 1e-3;
  return 1e-5;
}

inline void check_close(const char* what, const Layer& L, const float* a, const std::vector<double>& ref,
                        bool exact_input = false) {
  double e = rel_err(a, ref);
  const double tol = tol_for(L, exact_input);
  std::printf("    %-28s rel err %.3e (tol %.0e)\n", what, e, tol);
  EXPECT(e <= tol, "%s: %s rel err %g", L.sp.name, what, e);
}

// Validates a routing result against the reference scores: distinct valid ids, descending biased
// score, a valid top-K set (up to tol), weights close to the reference weights for those ids.
inline void check_routing(const Layer& L, const float* x, int T, const int32_t* ids, const float* wts) {
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

inline const Spec kSpecs[] = {
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
    {"latent-bf16-silu-T19", 96, 40, 21, 4, 52, 36, LMOE_ACT_SILU, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_BF16, LMOE_DTYPE_BF16, 1, 19, 2.5f},
    {"std-f32-silu-T1", 61, 0, 7, 2, 27, 19, LMOE_ACT_SILU, LMOE_SCORING_SIGMOID, 1, LMOE_DTYPE_F32, LMOE_DTYPE_F32, 1, 1, 1.0f},
    {"std-f32-swiglu-odd-T1", 77, 0, 9, 2, 33, 21, LMOE_ACT_SWIGLU, LMOE_SCORING_SOFTMAX, 1, LMOE_DTYPE_F32, LMOE_DTYPE_F32, 0, 1, 1.0f},
};

inline uint64_t fresh_seed() {
  const char* e = std::getenv("LMOE_TEST_SEED");
  if (e) return std::strtoull(e, nullptr, 0);
  return (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count() ^ 0x5eedull;
}

// Runs the four kernels in sequence for L on x; outputs into the given vectors.
struct Run {
  std::vector<int32_t> ids, offsets, perm;
  std::vector<float> wts, latent, hidden, eout, scratch, out;
};

inline bool run_chain(const Layer& L, const std::vector<float>& x, int T, Run& r) {
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

}  // namespace lmoe_test
