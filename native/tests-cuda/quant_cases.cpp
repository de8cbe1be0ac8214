// quant_cases.cpp - lmoe_cuda_test's cases for FP8 / NVFP4 weights (weight-only and W8A8), SiLU
// on them, and relu2's NaN propagation (quant_cases.h). The reference is float64 on the
// dequantized weights (e4m3 x scale; e2m1 x e4m3 block scale x scale), fed the GPU's routing
// and rounding the activations to bf16 where the GPU stores them (z, h, the combined latent, the
// shared hidden), so that W8A8 quantizes exactly the same activations (sat(a / input_scale) to
// e4m3, f32 division, round to nearest even) as the library.
#include "quant_cases.h"

#include <inttypes.h>

#include "common.h"

namespace lt {
namespace {

constexpr double kTol = 1e-2;  // bf16 activations: the project's tolerance for the GPU paths

// ---------------------------------------------------------------- e4m3 / e2m1 on the host
double e4m3_value(uint8_t c) {
  const double s = (c & 0x80) ? -1.0 : 1.0;
  const int e = (c >> 3) & 15, m = c & 7;
  if (e == 0) return s * m / 8.0 * std::ldexp(1.0, -6);
  return s * (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
}
// Round to nearest even, saturated to +-448 (the library's satfinite conversion); NaN -> 0x7f.
uint8_t e4m3_encode(float v) {
  if (std::isnan(v)) return 0x7f;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  double a = std::fabs(double(v));
  if (a >= 448.0) return sign | 0x7e;
  if (a < std::ldexp(1.0, -6)) {  // subnormal: multiples of 2^-9
    const double m = std::nearbyint(a * 512.0);
    return sign | uint8_t(m);     // m == 8 is exactly the smallest normal (e=1, m=0)
  }
  int e = 0;
  const double f = std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  int ex = e - 1;                       // a = (2f) * 2^ex, 2f in [1, 2)
  double m = std::nearbyint((2.0 * f - 1.0) * 8.0);
  if (m == 8.0) { m = 0; ++ex; }
  if (ex + 7 > 15 || (ex + 7 == 15 && m == 7)) return sign | 0x7e;
  return sign | uint8_t(((ex + 7) << 3) | int(m));
}
const double kE2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
float bf16r(double v) { return bf2f(f2bf(float(v))); }
double unit(uint64_t seed, uint64_t i) { return double(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0); }

// ---------------------------------------------------------------- one matrix kind, all groups
struct HostMat {
  int fmt = LMOE_WFMT_BF16;
  int64_t groups = 0, rows = 0, cols = 0;
  std::vector<uint8_t> data, bscale;
  std::vector<float> scale, in_scale;  // [groups]; in_scale empty: weight-only
  std::vector<double> deq;             // [groups][rows][cols]
  lmoe_cuda_matrix dev{};
  bool present() const { return groups > 0; }
  bool w8a8() const { return !in_scale.empty(); }
};

// Values ~ uniform +-amp. FP8: per-group scale, codes over the whole e4m3 range, 2% subnormal
// codes; NVFP4: random codes, block scales in [0.25, 2] with 2.5% subnormal ones. W8A8 (FP8
// only): input scales ~1/256 (activations up to ~1.7 land unsaturated).
HostMat make_mat(int fmt, int64_t groups, int64_t rows, int64_t cols, double amp, uint64_t seed, bool w8a8) {
  HostMat M;
  M.fmt = fmt;
  M.groups = groups;
  M.rows = rows;
  M.cols = cols;
  const int64_t per = rows * cols, n = groups * per;
  M.deq.resize(static_cast<size_t>(n));
  if (fmt == LMOE_WFMT_BF16) {
    std::vector<uint16_t> b(static_cast<size_t>(n));
    fill_bf16(b, seed, float(-amp), float(amp));
    M.data.resize(static_cast<size_t>(n) * 2);
    memcpy(M.data.data(), b.data(), M.data.size());
    for (int64_t i = 0; i < n; ++i) M.deq[static_cast<size_t>(i)] = bf2f(b[static_cast<size_t>(i)]);
    return M;
  }
  M.scale.resize(static_cast<size_t>(groups));
  if (fmt == LMOE_WFMT_FP8_E4M3) {
    M.data.resize(static_cast<size_t>(n));
    for (int64_t g = 0; g < groups; ++g) {
      M.scale[static_cast<size_t>(g)] = float(amp * (0.7 + 0.6 * unit(seed + 1, uint64_t(g))) / 448.0);
      for (int64_t i = 0; i < per; ++i) {
        const int64_t k = g * per + i;
        const uint64_t h = mix64(seed ^ mix64(uint64_t(k) + 12345));
        uint8_t code;
        if (h % 50 == 0) code = uint8_t((h >> 8) % 8) | ((h >> 16) & 1 ? 0x80 : 0);  // subnormal (or zero)
        else code = e4m3_encode(float(amp * (2.0 * unit(seed, uint64_t(k)) - 1.0) / M.scale[static_cast<size_t>(g)]));
        M.data[static_cast<size_t>(k)] = code;
        M.deq[static_cast<size_t>(k)] = e4m3_value(code) * M.scale[static_cast<size_t>(g)];
      }
    }
  } else {  // NVFP4
    M.data.resize(static_cast<size_t>(n / 2));
    M.bscale.resize(static_cast<size_t>(n / 16));
    for (int64_t i = 0; i < n / 2; ++i) M.data[static_cast<size_t>(i)] = uint8_t(mix64(seed ^ mix64(uint64_t(i) + 777)) >> 40);
    for (int64_t i = 0; i < n / 16; ++i) {
      const uint64_t h = mix64(seed ^ mix64(uint64_t(i) + 999));
      M.bscale[static_cast<size_t>(i)] = h % 40 == 0 ? uint8_t(1 + (h >> 8) % 7) : e4m3_encode(float(0.25 + 1.75 * unit(seed + 2, uint64_t(i))));
    }
    for (int64_t g = 0; g < groups; ++g) {
      M.scale[static_cast<size_t>(g)] = float(amp * (0.7 + 0.6 * unit(seed + 3, uint64_t(g))) / 6.0);
      for (int64_t i = 0; i < per; ++i) {
        const int64_t k = g * per + i;
        const uint8_t byte = M.data[static_cast<size_t>(k / 2)];
        const int code = (k & 1) ? byte >> 4 : byte & 15;
        const double v = kE2m1[code & 7] * ((code & 8) ? -1.0 : 1.0);
        M.deq[static_cast<size_t>(k)] = v * e4m3_value(M.bscale[static_cast<size_t>(k / 16)]) * M.scale[static_cast<size_t>(g)];
      }
    }
  }
  if (w8a8 && fmt == LMOE_WFMT_FP8_E4M3) {
    M.in_scale.resize(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) M.in_scale[static_cast<size_t>(g)] = float((0.8 + 0.45 * unit(seed + 4, uint64_t(g))) / 256.0);
  }
  return M;
}

// out[r] = sum_c B_g[r, c] * a'[c], a' = a, or (W8A8) e4m3(sat(a / s)) * s.
void apply(const HostMat& B, int64_t g, const float* a, double* out) {
  std::vector<double> aq(static_cast<size_t>(B.cols));
  for (int64_t c = 0; c < B.cols; ++c) {
    if (B.w8a8()) {
      const float s = B.in_scale[static_cast<size_t>(g)];
      aq[static_cast<size_t>(c)] = e4m3_value(e4m3_encode(a[c] / s)) * s;
    } else {
      aq[static_cast<size_t>(c)] = a[c];
    }
  }
  const double* w = B.deq.data() + static_cast<size_t>(g * B.rows * B.cols);
  for (int64_t r = 0; r < B.rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < B.cols; ++c) acc += w[r * B.cols + c] * aq[static_cast<size_t>(c)];
    out[r] = acc;
  }
}

double act_ref(int act, double v) {
  if (act == LMOE_ACT_RELU2) {
    const double r = v < 0 ? 0 : v;
    return r * r;
  }
  return v / (1.0 + std::exp(-v));  // SiLU (also SwiGLU's gate)
}

// Formats of one case's matrices; w8a8: every FP8 matrix gets input scales.
struct QSpec {
  int ldown, lup, up, gate, down, sup, sgate, sdown;
  bool w8a8;
};

struct QLayer {
  lmoe_config c;
  bool gate_f32 = false;
  std::vector<float> gate32, bias;
  std::vector<uint16_t> gate16;
  HostMat ldown, lup, eup, egate, edown, sup, sgate, sdown;
  lmoe_cuda_weights gpu{};
  std::vector<DBuf> bufs;
  void* stream;

  template <class T>
  const void* put(const std::vector<T>& v) {
    if (v.empty()) return nullptr;
    bufs.emplace_back(int64_t(v.size() * sizeof(T)), stream);
    bufs.back().upload(v);
    return bufs.back().p;
  }
  void upload(HostMat& M) {
    if (!M.present()) return;
    M.dev.format = M.fmt;
    M.dev.data = put(M.data);
    M.dev.block_scales = static_cast<const uint8_t*>(put(M.bscale));
    M.dev.scales = static_cast<const float*>(put(M.scale));
    M.dev.input_scales = static_cast<const float*>(put(M.in_scale));
  }

  QLayer(const lmoe_config& cfg, const QSpec& f, bool gf32, uint64_t seed, void* s) : c(cfg), gate_f32(gf32), stream(s) {
    const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, W = width(c);
    const int64_t m = c.expert_intermediate_size, ms = c.shared_intermediate_size;
    const bool sw = c.activation == LMOE_ACT_SWIGLU;
    auto a = [](int64_t fan_in) { return 1.0 / std::sqrt(double(fan_in)); };
    if (gate_f32) { gate32.resize(static_cast<size_t>(N * d)); fill_f32(gate32, seed + 1, float(-a(d)), float(a(d))); }
    else { gate16.resize(static_cast<size_t>(N * d)); fill_bf16(gate16, seed + 1, float(-a(d)), float(a(d))); }
    bias.resize(static_cast<size_t>(N));
    fill_f32(bias, seed + 2, -0.05f, 0.05f);
    if (l > 0) {
      ldown = make_mat(f.ldown, 1, l, d, a(d), seed + 3, f.w8a8);
      lup = make_mat(f.lup, 1, d, l, a(l), seed + 4, f.w8a8);
    }
    eup = make_mat(f.up, N, m, W, 2 * a(W), seed + 5, f.w8a8);
    if (sw) egate = make_mat(f.gate, N, m, W, 2 * a(W), seed + 6, f.w8a8);
    edown = make_mat(f.down, N, W, m, a(m), seed + 7, f.w8a8);
    if (ms > 0) {
      sup = make_mat(f.sup, 1, ms, d, 2 * a(d), seed + 8, f.w8a8);
      if (sw) sgate = make_mat(f.sgate, 1, ms, d, 2 * a(d), seed + 9, f.w8a8);
      sdown = make_mat(f.sdown, 1, d, ms, a(ms), seed + 10, f.w8a8);
    }
    bufs.reserve(64);
    gpu.gate = dmat(gate_f32 ? put(gate32) : put(gate16), gate_f32 ? LMOE_WFMT_F32 : LMOE_WFMT_BF16);
    gpu.gate_bias = static_cast<const float*>(put(bias));
    for (HostMat* M : {&ldown, &lup, &eup, &egate, &edown, &sup, &sgate, &sdown}) upload(*M);
    gpu.latent_down = ldown.dev;
    gpu.latent_up = lup.dev;
    gpu.expert_up = eup.dev;
    gpu.expert_gate = egate.dev;
    gpu.expert_down = edown.dev;
    gpu.shared_up = sup.dev;
    gpu.shared_gate = sgate.dev;
    gpu.shared_down = sdown.dev;
    CK(lmoe_cuda_stream_synchronize(stream));
  }

  // h = act(up_g a) (SwiGLU: silu(gate_g a) * (up_g a), both rounded to bf16 first, as stored),
  // rounded to bf16: the hidden of expert g (or of the shared expert: up = sup, g = 0).
  std::vector<float> hidden(const HostMat& up, const HostMat& gate, int64_t g, const float* a) const {
    const int64_t n = up.rows;
    std::vector<double> u(static_cast<size_t>(n)), gv(static_cast<size_t>(n));
    std::vector<float> h(static_cast<size_t>(n));
    apply(up, g, a, u.data());
    if (c.activation == LMOE_ACT_SWIGLU) {
      apply(gate, g, a, gv.data());
      for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i)] = bf16r(act_ref(LMOE_ACT_SILU, bf16r(gv[static_cast<size_t>(i)])) * bf16r(u[static_cast<size_t>(i)]));
    } else {
      for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i)] = bf16r(act_ref(c.activation, u[static_cast<size_t>(i)]));
    }
    return h;
  }
  // z of token row a (x: bf16 values): W_down a rounded to bf16, or a itself.
  std::vector<float> z(const float* xt) const {
    const int64_t W = width(c);
    if (c.latent_size == 0) return std::vector<float>(xt, xt + W);
    std::vector<double> v(static_cast<size_t>(W));
    apply(ldown, 0, xt, v.data());
    std::vector<float> r(static_cast<size_t>(W));
    for (int64_t i = 0; i < W; ++i) r[static_cast<size_t>(i)] = bf16r(v[static_cast<size_t>(i)]);
    return r;
  }
  // y = down_e h(up_e a): one expert row.
  std::vector<double> expert(int64_t e, const float* a) const {
    std::vector<float> h = hidden(eup, egate, e, a);
    std::vector<double> y(static_cast<size_t>(edown.rows));
    apply(edown, e, h.data(), y.data());
    return y;
  }
  // out[t] from acc (the weighted sum over k, f64) and x[t].
  std::vector<double> combine(const std::vector<double>& acc, const float* xt) const {
    const int64_t d = c.hidden_size, W = width(c);
    std::vector<double> out(static_cast<size_t>(d), 0.0);
    if (c.latent_size > 0) {
      std::vector<float> accb(static_cast<size_t>(W));
      for (int64_t i = 0; i < W; ++i) accb[static_cast<size_t>(i)] = bf16r(acc[static_cast<size_t>(i)]);
      apply(lup, 0, accb.data(), out.data());
    } else {
      out = acc;
    }
    if (c.shared_intermediate_size > 0) {
      std::vector<float> sh = hidden(sup, sgate, 0, xt);
      std::vector<double> so(static_cast<size_t>(d));
      apply(sdown, 0, sh.data(), so.data());
      for (int64_t i = 0; i < d; ++i) out[static_cast<size_t>(i)] += so[static_cast<size_t>(i)];
    }
    return out;
  }
};

double rel_frob_d(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(double(got[i]))) return INFINITY;
    const double df = double(got[i]) - ref[i];
    num += df * df;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
std::vector<float> to_f(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf2f(v[i]);
  return o;
}
const char* fmt_name(int f) {
  return f == LMOE_WFMT_BF16 ? "bf16" : f == LMOE_WFMT_FP8_E4M3 ? "fp8" : f == LMOE_WFMT_NVFP4 ? "nvfp4" : "f32";
}

void run_qcase(const char* name, const lmoe_config& cfg, const QSpec& f, bool gate_f32,
               const std::vector<int64_t>& Ts, uint64_t seed, void* stream) {
  printf("case %s: d=%d l=%d N=%d K=%d m=%d ms=%d act=%d gate=%s ldown=%s lup=%s up=%s gate=%s down=%s "
         "sup=%s sdown=%s w8a8=%d seed=%" PRIu64 "\n",
         name, cfg.hidden_size, cfg.latent_size, cfg.num_experts, cfg.top_k, cfg.expert_intermediate_size,
         cfg.shared_intermediate_size, cfg.activation, gate_f32 ? "f32" : "bf16", fmt_name(f.ldown), fmt_name(f.lup),
         fmt_name(f.up), fmt_name(f.gate), fmt_name(f.down), fmt_name(f.sup), fmt_name(f.sdown), int(f.w8a8), seed);
  const double t0 = now_s();
  QLayer L(cfg, f, gate_f32, seed, stream);
  lmoe_status vs = lmoe_cuda_validate(&L.c, &L.gpu);
  check(vs == LMOE_OK, "quant: validate", lmoe_cuda_last_error());
  if (vs != LMOE_OK) return;
  const int64_t d = cfg.hidden_size, K = cfg.top_k, N = cfg.num_experts, W = width(cfg);
  lmoe_cuda_tuning base{};
  CK(lmoe_cuda_get_tuning(&base));
  char buf[512];
  for (int64_t T : Ts) {
    const int64_t TK = T * K;
    std::vector<uint16_t> xb(static_cast<size_t>(T * d));
    fill_bf16(xb, seed * 7919 + uint64_t(T), -1.f, 1.f);
    const std::vector<float> xf = to_f(xb);
    DBuf dx(T * d * 2, stream);
    dx.upload(xb);
    // routing from the GPU's router (BF16 / F32 gate: covered by the bf16 cases)
    DBuf ids(TK * 4, stream), wts(TK * 4, stream);
    const int64_t rws = lmoe_cuda_router_workspace_bytes(&cfg, T);
    DBuf rw(rws, stream);
    CK(lmoe_cuda_router_topk(&cfg, &L.gpu, dx.p, T, ids.as<int32_t>(), wts.as<float>(), rw.p, rws, stream));
    const std::vector<int32_t> gid = ids.download<int32_t>(static_cast<size_t>(TK));
    const std::vector<float> gw = wts.download<float>(static_cast<size_t>(TK));
    // the float64 reference of the whole layer on that routing
    std::vector<double> ref(static_cast<size_t>(T * d));
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<float> zt = L.z(&xf[static_cast<size_t>(t * d)]);
      std::vector<double> acc(static_cast<size_t>(W), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const std::vector<double> y = L.expert(gid[static_cast<size_t>(t * K + k)], zt.data());
        for (int64_t i = 0; i < W; ++i) acc[static_cast<size_t>(i)] += double(gw[static_cast<size_t>(t * K + k)]) * y[static_cast<size_t>(i)];
      }
      const std::vector<double> o = L.combine(acc, &xf[static_cast<size_t>(t * d)]);
      std::copy(o.begin(), o.end(), ref.begin() + t * d);
    }

    // ---- the four step entry points, each against the reference on the GPU's own inputs
    {
      DBuf offs((N + 1) * 4, stream), srow(TK * 4, stream), lat(TK * W * 2, stream), yo(TK * W * 2, stream),
          out(T * d * 2, stream);
      const int64_t dws = lmoe_cuda_dispatch_workspace_bytes(&cfg, T), ews = lmoe_cuda_experts_workspace_bytes(&cfg, T),
                    cws = lmoe_cuda_combine_workspace_bytes(&cfg, T);
      DBuf w1(dws, stream), w2(ews, stream), w3(cws, stream);
      lat.poison(); yo.poison(); out.poison();
      CK(lmoe_cuda_dispatch(&cfg, &L.gpu, dx.p, T, ids.as<int32_t>(), offs.as<int32_t>(), srow.as<int32_t>(), lat.p,
                            w1.p, dws, stream));
      const std::vector<int32_t> goff = offs.download<int32_t>(static_cast<size_t>(N + 1)), gsr = srow.download<int32_t>(static_cast<size_t>(TK));
      const std::vector<float> glat = to_f(lat.download<uint16_t>(static_cast<size_t>(TK * W)));
      std::vector<double> rlat(static_cast<size_t>(TK * W));
      for (int64_t t = 0; t < T; ++t) {
        const std::vector<float> zt = L.z(&xf[static_cast<size_t>(t * d)]);
        for (int64_t k = 0; k < K; ++k)
          std::copy(zt.begin(), zt.end(), rlat.begin() + int64_t(gsr[static_cast<size_t>(t * K + k)]) * W);
      }
      double r = rel_frob_d(glat, rlat);
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " dispatch rel=%.3g", name, T, r);
      printf("  %s\n", buf);
      check(r <= kTol, "quant: dispatch", buf);
      // experts on the GPU's latent rows: expert of row = the group whose offsets hold it
      CK(lmoe_cuda_experts(&cfg, &L.gpu, T, offs.as<int32_t>(), lat.p, yo.p, w2.p, ews, stream));
      const std::vector<float> gyo = to_f(yo.download<uint16_t>(static_cast<size_t>(TK * W)));
      std::vector<double> ryo(static_cast<size_t>(TK * W));
      for (int64_t e = 0; e < N; ++e)
        for (int64_t row = goff[static_cast<size_t>(e)]; row < goff[static_cast<size_t>(e + 1)]; ++row) {
          const std::vector<double> y = L.expert(e, &glat[static_cast<size_t>(row * W)]);
          std::copy(y.begin(), y.end(), ryo.begin() + row * W);
        }
      r = rel_frob_d(gyo, ryo);
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " experts rel=%.3g", name, T, r);
      printf("  %s\n", buf);
      check(r <= kTol, "quant: experts", buf);
      CK(lmoe_cuda_combine(&cfg, &L.gpu, dx.p, T, wts.as<float>(), srow.as<int32_t>(), yo.p, w3.p, cws, out.p, stream));
      const std::vector<float> gout = to_f(out.download<uint16_t>(static_cast<size_t>(T * d)));
      std::vector<double> rout(static_cast<size_t>(T * d));
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> acc(static_cast<size_t>(W), 0.0);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t row = gsr[static_cast<size_t>(t * K + k)];
          for (int64_t i = 0; i < W; ++i) acc[static_cast<size_t>(i)] += double(gw[static_cast<size_t>(t * K + k)]) * gyo[static_cast<size_t>(row * W + i)];
        }
        const std::vector<double> o = L.combine(acc, &xf[static_cast<size_t>(t * d)]);
        std::copy(o.begin(), o.end(), rout.begin() + t * d);
      }
      r = rel_frob_d(gout, rout);
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " combine rel=%.3g", name, T, r);
      printf("  %s\n", buf);
      check(r <= kTol, "quant: combine", buf);
    }

    // ---- lmoe_cuda_forward on every path
    struct Mode { const char* name; int decode, experts, min_blocks; bool graph; };
    const Mode modes[] = {{"decode", LMOE_CUDA_DECODE_ON, LMOE_CUDA_EXPERTS_AUTO, 2, true},
                          {"decode-minb3", LMOE_CUDA_DECODE_ON, LMOE_CUDA_EXPERTS_AUTO, 3, false},
                          {"sorted", LMOE_CUDA_DECODE_OFF, LMOE_CUDA_EXPERTS_AUTO, 2, true},
                          {"sorted-simt", LMOE_CUDA_DECODE_OFF, LMOE_CUDA_EXPERTS_SIMT, 2, false}};
    const bool decodable = !f.w8a8 && cfg.activation != LMOE_ACT_SWIGLU;
    const int64_t fws = lmoe_cuda_forward_workspace_bytes(&cfg, T);
    DBuf ws(fws, stream), out(T * d * 2, stream), fid(TK * 4, stream), fwt(TK * 4, stream);
    for (const Mode& mo : modes) {
      if (mo.decode == LMOE_CUDA_DECODE_ON && !decodable && mo.min_blocks == 3) continue;
      lmoe_cuda_tuning t = base;
      t.decode = mo.decode;
      t.experts = mo.experts;
      t.min_blocks = mo.min_blocks;
      CK(lmoe_cuda_set_tuning(&t));
      const int path = lmoe_cuda_forward_path(&cfg, &L.gpu, dx.p, T);
      const int want = mo.decode == LMOE_CUDA_DECODE_ON && decodable ? LMOE_CUDA_PATH_DECODE : LMOE_CUDA_PATH_SORTED;
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " mode=%s path=%d want %d", name, T, mo.name, path, want);
      check(path == want, "quant: forward_path", buf);
      out.poison(); fid.poison(); fwt.poison();
      CK(lmoe_cuda_forward(&cfg, &L.gpu, dx.p, T, fid.as<int32_t>(), fwt.as<float>(), ws.p, fws, out.p, stream));
      const std::vector<uint16_t> o1 = out.download<uint16_t>(static_cast<size_t>(T * d));
      const bool same_route = fid.download<int32_t>(static_cast<size_t>(TK)) == gid && fwt.download<float>(static_cast<size_t>(TK)) == gw;
      const double r = rel_frob_d(to_f(o1), ref);
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " mode=%s path=%s rel=%.3g routing %s", name, T, mo.name,
               path == LMOE_CUDA_PATH_DECODE ? "decode" : "sorted", r, same_route ? "same" : "DIFFERS");
      printf("  forward   %s\n", buf);
      check(r <= kTol && same_route, "quant: forward", buf);
      out.poison();
      CK(lmoe_cuda_forward(&cfg, &L.gpu, dx.p, T, fid.as<int32_t>(), fwt.as<float>(), ws.p, fws, out.p, stream));
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " mode=%s: second forward differs bitwise", name, T, mo.name);
      check(out.download<uint16_t>(static_cast<size_t>(T * d)) == o1, "quant: determinism", buf);
      if (!mo.graph) continue;
      void* gexec = nullptr;
      out.poison();
      CK(lmoe_cuda_stream_synchronize(stream));
      CK(lmoe_cuda_graph_begin_capture(stream));
      const lmoe_status fs = lmoe_cuda_forward(&cfg, &L.gpu, dx.p, T, fid.as<int32_t>(), fwt.as<float>(), ws.p, fws,
                                               out.p, stream);
      const lmoe_status es = lmoe_cuda_graph_end_capture(stream, &gexec);
      bool gok = fs == LMOE_OK && es == LMOE_OK;
      if (gok) {
        CK(lmoe_cuda_graph_launch(gexec, stream));
        CK(lmoe_cuda_graph_launch(gexec, stream));
        gok = out.download<uint16_t>(static_cast<size_t>(T * d)) == o1;
        CK(lmoe_cuda_graph_destroy(gexec));
      }
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " mode=%s capture=%d/%d", name, T, mo.name, int(fs), int(es));
      check(gok, "quant: graph replay", buf);
    }
    CK(lmoe_cuda_set_tuning(&base));
  }
  printf("  (%.1f s)\n", now_s() - t0);
}

// The quantized dtypes of lmoe_cuda_fill_uniform: values in range, rounded / floored as documented.
void test_fill(void* stream, uint64_t seed) {
  const int64_t n = 4099;
  DBuf a(n, stream), b(n, stream);
  CK(lmoe_cuda_fill_uniform(a.p, LMOE_DTYPE_F8_E4M3, n, seed, -500.f, 500.f, stream));
  CK(lmoe_cuda_fill_uniform(b.p, LMOE_DTYPE_U8, n, seed, 0.f, 256.f, stream));
  const std::vector<uint8_t> fa = a.download<uint8_t>(static_cast<size_t>(n)), fb = b.download<uint8_t>(static_cast<size_t>(n));
  int bad = 0, sat = 0, distinct_b = 0;
  std::vector<int> seen(256, 0);
  for (uint8_t c : fa) {
    if ((c & 0x7f) == 0x7f) ++bad;  // no NaN codes
    if ((c & 0x7f) == 0x7e) ++sat;  // +-448: |v| > 448 saturates
  }
  for (uint8_t c : fb) distinct_b += seen[c]++ == 0;
  char buf[128];
  snprintf(buf, sizeof buf, "nan_codes=%d saturated=%d (of %" PRId64 ") distinct_u8=%d", bad, sat, n, distinct_b);
  printf("  fill      %s\n", buf);
  check(bad == 0 && sat > 0 && sat < n / 4 && distinct_b > 200, "fill: F8_E4M3 and U8", buf);
}

}  // namespace

void run_quant_cases(void* stream, uint64_t seed) {
  auto mk = [](int d, int l, int N, int K, int m, int ms, int act) {
    lmoe_config c{};
    c.hidden_size = d; c.latent_size = l; c.num_experts = N; c.top_k = K;
    c.expert_intermediate_size = m; c.shared_intermediate_size = ms;
    c.activation = act; c.scoring = LMOE_SCORING_SIGMOID; c.norm_topk_prob = 1; c.routed_scaling_factor = 2.5f;
    return c;
  };
  const int B = LMOE_WFMT_BF16, F = LMOE_WFMT_FP8_E4M3, Q = LMOE_WFMT_NVFP4;
  printf("quantized weights (float64 reference on the dequantized weights, tolerance %.0e)\n", kTol);
  test_fill(stream, seed);
  // {ldown, lup, up, gate, down, sup, sgate, sdown, w8a8}; dims multiples of 32, not of 64 / 128
  // (k tails of the mma loop, warps with no k block), odd N, T across the decode / sorted split
  run_qcase("fp8-experts", mk(256, 96, 37, 6, 160, 224, LMOE_ACT_RELU2), {B, B, F, B, F, B, B, B, false}, true,
            {1, 4, 16, 37, 300}, seed + 201, stream);
  run_qcase("nvfp4-all", mk(256, 96, 37, 6, 160, 224, LMOE_ACT_RELU2), {Q, Q, Q, B, Q, Q, B, Q, false}, false,
            {1, 5, 16, 100}, seed + 202, stream);
  run_qcase("mixed-silu", mk(224, 64, 29, 5, 96, 160, LMOE_ACT_SILU), {Q, B, F, B, Q, F, B, Q, false}, true,
            {1, 7, 64}, seed + 203, stream);
  run_qcase("nvfp4-standard-shared", mk(160, 0, 64, 8, 96, 64, LMOE_ACT_RELU2), {B, B, Q, B, Q, F, B, F, false}, false,
            {2, 33}, seed + 204, stream);
  run_qcase("fp8-swiglu", mk(128, 64, 16, 2, 64, 96, LMOE_ACT_SWIGLU), {F, F, F, F, F, F, F, F, false}, false,
            {3, 50}, seed + 205, stream);
  // W8A8: the FP8 CUTLASS kernels (sorted) and their fallback (sorted-simt)
  run_qcase("w8a8-latent", mk(256, 96, 37, 6, 160, 224, LMOE_ACT_RELU2), {F, F, F, B, F, F, B, F, true}, true,
            {1, 20, 300}, seed + 206, stream);
  run_qcase("w8a8-silu-mixed", mk(192, 0, 24, 4, 128, 96, LMOE_ACT_SILU), {B, B, F, B, F, F, B, Q, true}, false,
            {9, 130}, seed + 207, stream);
  // more than kW8A8ChunkRows (16384) expert rows: the W8A8 row chunks
  run_qcase("w8a8-chunks", mk(64, 32, 16, 8, 64, 0, LMOE_ACT_RELU2), {F, F, F, B, F, B, B, B, true}, false,
            {2100}, seed + 208, stream);
}

void run_nan_cases(void* stream, uint64_t seed) {
  printf("NaN propagation through relu2 (torch: relu(NaN) = NaN)\n");
  lmoe_config c{};
  c.hidden_size = 128; c.latent_size = 64; c.num_experts = 16; c.top_k = 4;
  c.expert_intermediate_size = 96; c.shared_intermediate_size = 64;
  c.activation = LMOE_ACT_RELU2; c.scoring = LMOE_SCORING_SIGMOID; c.norm_topk_prob = 1; c.routed_scaling_factor = 2.5f;
  const int B = LMOE_WFMT_BF16;
  for (int shared_nan = 0; shared_nan < 2; ++shared_nan) {
    QLayer L(c, {B, B, B, B, B, B, B, B, false}, false, seed + 300, stream);
    lmoe_cuda_tuning base{};
    CK(lmoe_cuda_get_tuning(&base));
    const int64_t d = c.hidden_size, K = c.top_k, m = c.expert_intermediate_size, W = width(c);
    for (int64_t T : {int64_t(3), int64_t(40)}) {
      std::vector<uint16_t> xb(static_cast<size_t>(T * d));
      fill_bf16(xb, seed + 301 + uint64_t(T), -1.f, 1.f);
      DBuf dx(T * d * 2, stream), ids(T * K * 4, stream), wts(T * K * 4, stream), out(T * d * 2, stream);
      dx.upload(xb);
      const int64_t rws = lmoe_cuda_router_workspace_bytes(&c, T);
      DBuf rw(rws, stream);
      CK(lmoe_cuda_router_topk(&c, &L.gpu, dx.p, T, ids.as<int32_t>(), wts.as<float>(), rw.p, rws, stream));
      const std::vector<int32_t> gid = ids.download<int32_t>(static_cast<size_t>(T * K));
      const int32_t e_nan = gid[0];  // token 0's first expert
      // one NaN weight: expert e_nan's up row 5 (or the shared up row 5), column 0
      const uint16_t nan = 0x7fc0;
      const lmoe_cuda_matrix& M = shared_nan ? L.gpu.shared_up : L.gpu.expert_up;
      const int64_t off = shared_nan ? 5 * d : (int64_t(e_nan) * m + 5) * W;
      CK(lmoe_cuda_memcpy_h2d_async(static_cast<char*>(const_cast<void*>(M.data)) + off * 2, &nan, 2, stream));
      const int64_t fws = lmoe_cuda_forward_workspace_bytes(&c, T);
      DBuf ws(fws, stream);
      struct Mode { const char* name; int decode, experts; };
      const Mode modes[] = {{"decode", LMOE_CUDA_DECODE_ON, LMOE_CUDA_EXPERTS_AUTO},
                            {"sorted", LMOE_CUDA_DECODE_OFF, LMOE_CUDA_EXPERTS_AUTO},
                            {"sorted-simt", LMOE_CUDA_DECODE_OFF, LMOE_CUDA_EXPERTS_SIMT}};
      for (const Mode& mo : modes) {
        lmoe_cuda_tuning t = base;
        t.decode = mo.decode;
        t.experts = mo.experts;
        CK(lmoe_cuda_set_tuning(&t));
        out.poison();
        CK(lmoe_cuda_forward(&c, &L.gpu, dx.p, T, ids.as<int32_t>(), wts.as<float>(), ws.p, fws, out.p, stream));
        const std::vector<float> o = to_f(out.download<uint16_t>(static_cast<size_t>(T * d)));
        const std::vector<int32_t> fid = ids.download<int32_t>(static_cast<size_t>(T * K));
        int wrong = 0, nan_tokens = 0;
        for (int64_t t = 0; t < T; ++t) {
          bool routed = shared_nan != 0;
          for (int64_t k = 0; k < K; ++k) routed = routed || fid[static_cast<size_t>(t * K + k)] == e_nan;
          int nans = 0;
          for (int64_t i = 0; i < d; ++i) nans += std::isnan(o[static_cast<size_t>(t * d + i)]) ? 1 : 0;
          nan_tokens += nans == d;
          if (routed ? nans != d : nans != 0) ++wrong;
        }
        char buf[256];
        snprintf(buf, sizeof buf, "%s NaN, T=%" PRId64 " mode=%s: %d NaN tokens, %d tokens wrong", shared_nan ? "shared" : "expert",
                 T, mo.name, nan_tokens, wrong);
        printf("  nan       %s\n", buf);
        check(wrong == 0 && nan_tokens > 0, "nan: relu2 propagates NaN", buf);
      }
      // restore the weight for the next T (same value as uploaded)
      uint16_t orig = 0;
      const HostMat& H = shared_nan ? L.sup : L.eup;
      memcpy(&orig, H.data.data() + off * 2, 2);
      CK(lmoe_cuda_memcpy_h2d_async(static_cast<char*>(const_cast<void*>(M.data)) + off * 2, &orig, 2, stream));
      CK(lmoe_cuda_stream_synchronize(stream));
      CK(lmoe_cuda_set_tuning(&base));
    }
  }
}

}  // namespace lt
