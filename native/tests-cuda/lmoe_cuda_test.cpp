// lmoe_cuda_test - CUDA backend vs the CPU library (liblatentmoe.so) and a float64 reference.
// Usage: lmoe_cuda_test [all|quick|super|sanitize|sanitize-small] [seed]
//   quick:    scaled-down shapes, every kernel + forward + graph replay + determinism; BF16 layers
//             (relu2, SwiGLU, SiLU) against the CPU library, FP8 / NVFP4 / W8A8 layers against a
//             float64 reference on the dequantized weights, relu2's NaN propagation (quant_cases.cpp)
//   super:    one full Super-shape layer, CPU vs CUDA (needs ~12 GB host RAM, ~6 GB GPU)
//   all:      quick + super
//   sanitize: Super-shape forwards with device-filled weights, no CPU reference (for
//             compute-sanitizer: few launches, checks outputs finite): T=1 and 33, decode and
//             sorted paths, CUTLASS and SIMT experts; BF16, then FP8, NVFP4 and W8A8 weights
//   sanitize-small: T=1 (decode, sorted) and T=4 (decode) only, plus NVFP4 T=1 sorted - sized
//             for racecheck
// Prints "SKIPPED: <reason>" and exits 0 when there is no usable GPU. (The knob struct itself is
// tested without a GPU by lmoe_cuda_tuning_test.)
// Closing line: "N passed, N failed".
#include <inttypes.h>

#include <map>
#include <set>

#include "common.h"
#include "debug_trace.h"
#include "quant_cases.h"

using namespace lt;

// The library's default decode_max_tokens (lmoe_cuda_tuning_defaults); the tests set it
// explicitly and restore the knobs in effect at start (g_base: defaults + environment).
static constexpr int kDecodeMax = 16;
static lmoe_cuda_tuning g_base;
// One run's knobs: the starting ones with this experts backend, decode policy and (fused >= 0)
// decode form.
static void set_knobs(int experts, int decode, int fused = -1) {
  lmoe_cuda_tuning t = g_base;
  t.experts = experts;
  t.decode = decode;
  t.decode_max_tokens = kDecodeMax;
  if (fused >= 0) t.decode_fused = fused;
  CK(lmoe_cuda_set_tuning(&t));
}

static double rel_frob(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = double(got[i]) - double(ref[i]);
    if (!std::isfinite(double(got[i]))) return INFINITY;
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}
static std::vector<float> bf_to_f(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf2f(v[i]);
  return o;
}

struct Model {
  lmoe_config c;
  int gate_f32;
  bool has_bias;
  std::vector<float> gate32, bias;
  std::vector<uint16_t> gate16, ldown, lup, eup, egate, edown, sup, sgate, sdown;
  std::vector<const void*> up_ptrs, gate_ptrs, down_ptrs;
  std::vector<lmoe_matrix> up_mats, gate_mats, down_mats;  // the CPU reference's descriptors
  lmoe_weights cpu{};
  lmoe_cuda_weights gpu{};
  std::vector<DBuf> bufs;
  void* stream;

  template <class T>
  const void* up(const std::vector<T>& v) {
    if (v.empty()) return nullptr;
    bufs.emplace_back(int64_t(v.size() * sizeof(T)), stream);
    bufs.back().upload(v);
    return bufs.back().p;
  }

  Model(const lmoe_config& cfg, int gate_is_f32, bool bias_on, uint64_t seed, void* s)
      : c(cfg), gate_f32(gate_is_f32), has_bias(bias_on), stream(s) {
    const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, W = width(c);
    const int64_t m = c.expert_intermediate_size, ms = c.shared_intermediate_size;
    const bool sw = c.activation == LMOE_ACT_SWIGLU;
    auto a = [](int64_t fan_in) { return float(1.0 / sqrt(double(fan_in))); };
    if (gate_f32) { gate32.resize(N * d); fill_f32(gate32, seed + 1, -a(d), a(d)); }
    else { gate16.resize(N * d); fill_bf16(gate16, seed + 1, -a(d), a(d)); }
    if (bias_on) { bias.resize(N); fill_f32(bias, seed + 2, -0.05f, 0.05f); }
    if (l > 0) {
      ldown.resize(l * d); fill_bf16(ldown, seed + 3, -a(d), a(d));
      lup.resize(d * l); fill_bf16(lup, seed + 4, -a(l), a(l));
    }
    eup.resize(N * m * W); fill_bf16(eup, seed + 5, -2 * a(W), 2 * a(W));
    if (sw) { egate.resize(N * m * W); fill_bf16(egate, seed + 6, -2 * a(W), 2 * a(W)); }
    edown.resize(N * W * m); fill_bf16(edown, seed + 7, -a(m), a(m));
    if (ms > 0) {
      sup.resize(ms * d); fill_bf16(sup, seed + 8, -2 * a(d), 2 * a(d));
      if (sw) { sgate.resize(ms * d); fill_bf16(sgate, seed + 9, -2 * a(d), 2 * a(d)); }
      sdown.resize(d * ms); fill_bf16(sdown, seed + 10, -a(ms), a(ms));
    }
    for (int64_t e = 0; e < N; ++e) {
      up_ptrs.push_back(eup.data() + e * m * W);
      gate_ptrs.push_back(sw ? egate.data() + e * m * W : nullptr);
      down_ptrs.push_back(edown.data() + e * W * m);
    }
    auto mat = [](const void* p, int fmt) {  // a plain descriptor for the CPU reference
      lmoe_matrix mm{};
      mm.format = fmt;
      mm.data = p;
      mm.scale = 1.0f;
      return mm;
    };
    for (int64_t e = 0; e < N; ++e) {
      up_mats.push_back(mat(up_ptrs[e], LMOE_WFMT_BF16));
      gate_mats.push_back(mat(gate_ptrs[e], LMOE_WFMT_BF16));
      down_mats.push_back(mat(down_ptrs[e], LMOE_WFMT_BF16));
    }
    cpu.gate = gate_f32 ? mat(gate32.data(), LMOE_WFMT_F32) : mat(gate16.data(), LMOE_WFMT_BF16);
    cpu.gate_bias = bias_on ? bias.data() : nullptr;
    if (l > 0) cpu.latent_down = mat(ldown.data(), LMOE_WFMT_BF16);
    if (l > 0) cpu.latent_up = mat(lup.data(), LMOE_WFMT_BF16);
    cpu.expert_up = up_mats.data();
    cpu.expert_gate = sw ? gate_mats.data() : nullptr;
    cpu.expert_down = down_mats.data();
    if (ms > 0) cpu.shared_up = mat(sup.data(), LMOE_WFMT_BF16);
    if (ms > 0 && sw) cpu.shared_gate = mat(sgate.data(), LMOE_WFMT_BF16);
    if (ms > 0) cpu.shared_down = mat(sdown.data(), LMOE_WFMT_BF16);

    bufs.reserve(16);
    gpu.gate = dmat(gate_f32 ? up(gate32) : up(gate16), gate_f32 ? LMOE_WFMT_F32 : LMOE_WFMT_BF16);
    gpu.gate_bias = static_cast<const float*>(up(bias));
    gpu.latent_down = dmat(up(ldown));
    gpu.latent_up = dmat(up(lup));
    gpu.expert_up = dmat(up(eup));
    gpu.expert_gate = dmat(up(egate));
    gpu.expert_down = dmat(up(edown));
    gpu.shared_up = dmat(up(sup));
    gpu.shared_gate = dmat(up(sgate));
    gpu.shared_down = dmat(up(sdown));
    CK(lmoe_cuda_stream_synchronize(stream));
  }
};

// float64 router reference: biased and unbiased scores of token t.
static void ref_scores(const Model& M, const std::vector<float>& x, int64_t t, std::vector<double>& s,
                       std::vector<double>& biased) {
  const int N = M.c.num_experts, d = M.c.hidden_size;
  std::vector<double> lg(N);
  for (int e = 0; e < N; ++e) {
    double acc = 0;
    for (int i = 0; i < d; ++i) {
      double g = M.gate_f32 ? M.gate32[size_t(e) * d + i] : bf2f(M.gate16[size_t(e) * d + i]);
      acc += double(x[size_t(t) * d + i]) * g;
    }
    lg[e] = acc;
  }
  s.assign(N, 0);
  biased.assign(N, 0);
  if (M.c.scoring == LMOE_SCORING_SIGMOID) {
    for (int e = 0; e < N; ++e) s[e] = 1.0 / (1.0 + exp(-lg[e]));
  } else {
    double mx = *std::max_element(lg.begin(), lg.end()), sum = 0;
    for (int e = 0; e < N; ++e) sum += (s[e] = exp(lg[e] - mx));
    for (int e = 0; e < N; ++e) s[e] /= sum;
  }
  for (int e = 0; e < N; ++e) biased[e] = s[e] + (M.has_bias ? M.bias[e] : 0.0);
}

// Shapes the decode path takes (ReLU^2, dims multiples of 8; the test's buffers are aligned).
static bool decode_capable(const lmoe_config& c) {
  const int W = width(c);
  return (c.activation == LMOE_ACT_RELU2 || c.activation == LMOE_ACT_SILU) && c.hidden_size % 8 == 0 && W % 8 == 0 &&
         c.expert_intermediate_size % 8 == 0 && c.shared_intermediate_size % 8 == 0;
}

static void run_case(const char* name, const lmoe_config& cfg, int gate_f32, bool bias_on,
                     const std::vector<int64_t>& Ts, uint64_t seed, void* stream) {
  printf("case %s: d=%d l=%d N=%d K=%d m=%d ms=%d act=%d scoring=%d norm=%d gate=%s bias=%d seed=%" PRIu64 "\n",
         name, cfg.hidden_size, cfg.latent_size, cfg.num_experts, cfg.top_k,
         cfg.expert_intermediate_size, cfg.shared_intermediate_size, cfg.activation, cfg.scoring,
         cfg.norm_topk_prob, gate_f32 ? "f32" : "bf16", int(bias_on), seed);
  fflush(stdout);
  double t0 = now_s();
  Model M(cfg, gate_f32, bias_on, seed, stream);
  CKCPU(lmoe_validate(&M.c, &M.cpu));
  CK(lmoe_cuda_validate(&M.c, &M.gpu));
  const int N = cfg.num_experts, K = cfg.top_k, d = cfg.hidden_size, W = width(cfg);
  const int64_t m = cfg.expert_intermediate_size;
  char buf[512];

  for (int64_t T : Ts) {
    const int64_t TK = T * K;
    std::vector<uint16_t> xb(T * d);
    fill_bf16(xb, seed * 7919 + uint64_t(T), -1.f, 1.f);
    std::vector<float> xf = bf_to_f(xb);
    DBuf dx(T * d * 2, stream);
    dx.upload(xb);

    // ---------------- router
    DBuf ids(TK * 4, stream), wts(TK * 4, stream);
    ids.poison(); wts.poison();
    int64_t rws = lmoe_cuda_router_workspace_bytes(&cfg, T);
    DBuf ws(rws, stream);
    CK(lmoe_cuda_router_topk(&cfg, &M.gpu, dx.p, T, ids.as<int32_t>(), wts.as<float>(), ws.p, rws, stream));
    std::vector<int32_t> gid = ids.download<int32_t>(TK);
    std::vector<float> gw = wts.download<float>(TK);
    {
      int bad = 0, cpu_mismatch = 0;
      double max_wrel = 0;
      std::vector<int32_t> cid(TK);
      std::vector<float> cw(TK);
      CKCPU(lmoe_cpu_router_topk(&M.c, &M.cpu, xf.data(), T, cid.data(), cw.data()));
      std::vector<double> s, b;
      for (int64_t t = 0; t < T; ++t) {
        ref_scores(M, xf, t, s, b);
        std::set<int> sel;
        double sum = 0;
        for (int k = 0; k < K; ++k) {
          int e = gid[t * K + k];
          if (e < 0 || e >= N || sel.count(e)) { ++bad; break; }
          sel.insert(e);
          sum += s[e];
          if (k > 0 && b[e] > b[gid[t * K + k - 1]] + 1e-5) ++bad;  // order (near-ties allowed)
        }
        if (int(sel.size()) != K) continue;
        double min_sel = INFINITY, max_un = -INFINITY;
        for (int e = 0; e < N; ++e) {
          if (sel.count(e)) min_sel = std::min(min_sel, b[e]);
          else max_un = std::max(max_un, b[e]);
        }
        if (max_un > min_sel + 1e-5) ++bad;  // a clearly better expert was skipped
        for (int k = 0; k < K; ++k) {
          int e = gid[t * K + k];
          double w = s[e];
          if (cfg.norm_topk_prob) w = w / (sum + 1e-20);
          w *= cfg.routed_scaling_factor;
          max_wrel = std::max(max_wrel, fabs(gw[t * K + k] - w) / (fabs(w) + 1e-30));
          if (cid[t * K + k] != gid[t * K + k]) ++cpu_mismatch;
        }
      }
      snprintf(buf, sizeof buf, "T=%" PRId64 " bad=%d max_w_rel=%.3g cpu_id_mismatches=%d", T, bad,
               max_wrel, cpu_mismatch);
      printf("  router    %s\n", buf);
      check(bad == 0 && max_wrel < 1e-3, "router", buf);
    }

    // ---------------- dispatch (from the GPU routing)
    DBuf offs((N + 1) * 4, stream), srow(TK * 4, stream), lat(TK * W * 2, stream);
    offs.poison(); srow.poison(); lat.poison();
    int64_t dws = lmoe_cuda_dispatch_workspace_bytes(&cfg, T);
    DBuf ws2(dws, stream);
    CK(lmoe_cuda_dispatch(&cfg, &M.gpu, dx.p, T, ids.as<int32_t>(), offs.as<int32_t>(),
                          srow.as<int32_t>(), lat.p, ws2.p, dws, stream));
    std::vector<int32_t> goff = offs.download<int32_t>(N + 1), gsr = srow.download<int32_t>(TK);
    std::vector<float> glat = bf_to_f(lat.download<uint16_t>(TK * W));
    std::vector<int32_t> coff(N + 1), csr(TK);
    std::vector<float> clat(TK * W);
    CKCPU(lmoe_cpu_dispatch(&M.c, &M.cpu, xf.data(), T, gid.data(), coff.data(), csr.data(), clat.data()));
    {
      bool same = goff == coff && gsr == csr;
      double r = rel_frob(glat, clat);
      snprintf(buf, sizeof buf, "T=%" PRId64 " offsets/rows %s rel=%.3g", T, same ? "equal" : "DIFFER", r);
      printf("  dispatch  %s\n", buf);
      check(same && r <= 1e-2, "dispatch", buf);
    }

    // ---------------- experts (both backends), input = GPU latent_sorted
    std::vector<float> hid(TK * m * (cfg.activation == LMOE_ACT_SWIGLU ? 2 : 1) + 1), cyo(TK * W);
    CKCPU(lmoe_cpu_experts(&M.c, &M.cpu, T, goff.data(), glat.data(), hid.data(), cyo.data()));
    int64_t ews = lmoe_cuda_experts_workspace_bytes(&cfg, T);
    DBuf ws3(ews, stream), yo(TK * W * 2, stream);
    std::vector<float> gyo_auto;
    for (int backend : {LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_EXPERTS_SIMT, LMOE_CUDA_EXPERTS_CUTLASS_NARROW,
                        LMOE_CUDA_EXPERTS_CUTLASS_WIDE}) {
      set_knobs(backend, LMOE_CUDA_DECODE_AUTO);
      yo.poison();
      CK(lmoe_cuda_experts(&cfg, &M.gpu, T, offs.as<int32_t>(), lat.p, yo.p, ws3.p, ews, stream));
      std::vector<float> gyo = bf_to_f(yo.download<uint16_t>(TK * W));
      double r = rel_frob(gyo, cyo);
      double worst = 0;
      int worst_e = -1;
      for (int e = 0; e < N; ++e) {
        int64_t r0 = goff[e], r1 = goff[e + 1];
        if (r1 == r0) continue;
        std::vector<float> a(gyo.begin() + r0 * W, gyo.begin() + r1 * W), bb(cyo.begin() + r0 * W, cyo.begin() + r1 * W);
        double re = rel_frob(a, bb);
        if (re > worst) { worst = re; worst_e = e; }
      }
      snprintf(buf, sizeof buf, "T=%" PRId64 " backend=%s rel=%.3g worst_expert=%d (%.3g)", T,
               backend_name(backend), r, worst_e, worst);
      printf("  experts   %s\n", buf);
      check(r <= 1e-2 && worst <= 2e-2, "experts", buf);
      if (backend == LMOE_CUDA_EXPERTS_AUTO) gyo_auto = gyo;
    }
    CK(lmoe_cuda_set_tuning(&g_base));
    // restore the auto result in yo for combine
    CK(lmoe_cuda_experts(&cfg, &M.gpu, T, offs.as<int32_t>(), lat.p, yo.p, ws3.p, ews, stream));

    // ---------------- combine, input = GPU expert output
    std::vector<float> cout_(T * d);
    {
      std::vector<float> scratch(std::max<int64_t>(1, lmoe_cpu_combine_scratch_floats(&M.c, T)));
      CKCPU(lmoe_cpu_combine(&M.c, &M.cpu, xf.data(), T, gw.data(), gsr.data(), gyo_auto.data(),
                             scratch.data(), cout_.data()));
      int64_t cws = lmoe_cuda_combine_workspace_bytes(&cfg, T);
      DBuf ws4(cws, stream), out(T * d * 2, stream);
      out.poison();
      CK(lmoe_cuda_combine(&cfg, &M.gpu, dx.p, T, wts.as<float>(), srow.as<int32_t>(), yo.p,
                           ws4.p, cws, out.p, stream));
      std::vector<float> gout = bf_to_f(out.download<uint16_t>(T * d));
      double r = rel_frob(gout, cout_);
      snprintf(buf, sizeof buf, "T=%" PRId64 " rel=%.3g", T, r);
      printf("  combine   %s\n", buf);
      check(r <= 1e-2, "combine", buf);
    }

    // ---------------- forward vs the CPU chain in f32 from the GPU routing
    {
      std::vector<int32_t> roff(N + 1), rsr(TK);
      std::vector<float> rlat(TK * W), ryo(TK * W), rout(T * d);
      CKCPU(lmoe_cpu_dispatch(&M.c, &M.cpu, xf.data(), T, gid.data(), roff.data(), rsr.data(), rlat.data()));
      CKCPU(lmoe_cpu_experts(&M.c, &M.cpu, T, roff.data(), rlat.data(), hid.data(), ryo.data()));
      std::vector<float> scratch(std::max<int64_t>(1, lmoe_cpu_combine_scratch_floats(&M.c, T)));
      CKCPU(lmoe_cpu_combine(&M.c, &M.cpu, xf.data(), T, gw.data(), rsr.data(), ryo.data(),
                             scratch.data(), rout.data()));
      int64_t fws = lmoe_cuda_forward_workspace_bytes(&cfg, T);
      DBuf ws5(fws, stream), out(T * d * 2, stream), fid(TK * 4, stream), fw(TK * 4, stream);
      // CPU's own forward (its own routing), informative
      std::vector<int32_t> cfid(TK);
      std::vector<float> cfw(TK), cfo(T * d);
      int64_t cwsb = lmoe_cpu_forward_workspace_bytes(&M.c, T);
      std::vector<uint8_t> cws_mem(size_t(cwsb) + 64);
      void* cws_p = cws_mem.data() + (64 - (reinterpret_cast<uintptr_t>(cws_mem.data()) % 64)) % 64;
      CKCPU(lmoe_cpu_forward(&M.c, &M.cpu, xf.data(), T, cfid.data(), cfw.data(), cws_p, cwsb, cfo.data()));
      // every forward path: auto, decode forced on, decode off (sorted grouped GEMMs), and the
      // sorted path once more with the wide CUTLASS tiles forced on every GEMM
      // {decode, decode_fused (-1: as started), experts}
      const int runs[6][3] = {{LMOE_CUDA_DECODE_AUTO, -1, LMOE_CUDA_EXPERTS_AUTO},
                              {LMOE_CUDA_DECODE_ON, -1, LMOE_CUDA_EXPERTS_AUTO},
                              {LMOE_CUDA_DECODE_ON, 1, LMOE_CUDA_EXPERTS_AUTO},
                              {LMOE_CUDA_DECODE_ON, 0, LMOE_CUDA_EXPERTS_AUTO},
                              {LMOE_CUDA_DECODE_OFF, -1, LMOE_CUDA_EXPERTS_AUTO},
                              {LMOE_CUDA_DECODE_OFF, -1, LMOE_CUDA_EXPERTS_CUTLASS_WIDE}};
      for (const auto& run : runs) {
        const int mode = run[0];
        set_knobs(run[2], mode, run[1]);
        const int path = lmoe_cuda_forward_path(&cfg, &M.gpu, dx.p, T);
        const char* mname = mode == LMOE_CUDA_DECODE_AUTO ? "auto"
                             : mode == LMOE_CUDA_DECODE_ON && run[1] == 1 ? "on-fused"
                             : mode == LMOE_CUDA_DECODE_ON && run[1] == 0 ? "on-staged"
                             : mode == LMOE_CUDA_DECODE_ON ? "on"
                             : run[2] == LMOE_CUDA_EXPERTS_CUTLASS_WIDE ? "off+wide" : "off";
        const char* pname = path == LMOE_CUDA_PATH_DECODE ? "decode" : path == LMOE_CUDA_PATH_SORTED ? "sorted" : "INVALID";
        check(path == LMOE_CUDA_PATH_DECODE || path == LMOE_CUDA_PATH_SORTED, "forward_path");
        if (mode == LMOE_CUDA_DECODE_OFF) check(path == LMOE_CUDA_PATH_SORTED, "forward_path off -> sorted");
        if (mode == LMOE_CUDA_DECODE_AUTO && T > kDecodeMax) check(path == LMOE_CUDA_PATH_SORTED, "forward_path auto T>kDecodeMax -> sorted");
        if (mode == LMOE_CUDA_DECODE_ON && decode_capable(cfg))
          check(path == LMOE_CUDA_PATH_DECODE, "forward_path on -> decode");
        if (mode == LMOE_CUDA_DECODE_AUTO && T <= kDecodeMax && decode_capable(cfg))
          check(path == LMOE_CUDA_PATH_DECODE, "forward_path auto T<=64 -> decode");
        out.poison(); fid.poison(); fw.poison();
        CK(lmoe_cuda_forward(&cfg, &M.gpu, dx.p, T, fid.as<int32_t>(), fw.as<float>(), ws5.p, fws, out.p, stream));
        std::vector<uint16_t> o1 = out.download<uint16_t>(T * d);
        std::vector<float> gout = bf_to_f(o1);
        bool same_route = fid.download<int32_t>(TK) == gid && fw.download<float>(TK) == gw;
        double r = rel_frob(gout, rout);
        double r_cpu = rel_frob(gout, cfo);
        snprintf(buf, sizeof buf, "T=%" PRId64 " mode=%s path=%s rel(vs CPU chain on GPU routing)=%.3g rel(vs lmoe_cpu_forward)=%.3g routing %s",
                 T, mname, pname, r, r_cpu, same_route ? "same as router_topk" : "DIFFERS from router_topk");
        printf("  forward   %s\n", buf);
        check(r <= 1e-2 && same_route, "forward", buf);

        // determinism + graph replay
        out.poison();
        CK(lmoe_cuda_forward(&cfg, &M.gpu, dx.p, T, fid.as<int32_t>(), fw.as<float>(), ws5.p, fws, out.p, stream));
        bool det = out.download<uint16_t>(T * d) == o1;
        snprintf(buf, sizeof buf, "T=%" PRId64 " mode=%s: second forward differs bitwise", T, mname);
        check(det, "determinism", buf);
        void* gexec = nullptr;
        out.poison();
        CK(lmoe_cuda_stream_synchronize(stream));
        CK(lmoe_cuda_graph_begin_capture(stream));
        lmoe_status fs = lmoe_cuda_forward(&cfg, &M.gpu, dx.p, T, fid.as<int32_t>(), fw.as<float>(), ws5.p, fws, out.p, stream);
        std::string ferr = lmoe_cuda_last_error();
        lmoe_status es = lmoe_cuda_graph_end_capture(stream, &gexec);
        std::string eerr = lmoe_cuda_last_error();
        bool gok = fs == LMOE_OK && es == LMOE_OK;
        if (gok) {
          CK(lmoe_cuda_graph_launch(gexec, stream));
          CK(lmoe_cuda_graph_launch(gexec, stream));
          gok = out.download<uint16_t>(T * d) == o1;
          CK(lmoe_cuda_graph_destroy(gexec));
        }
        snprintf(buf, sizeof buf, "T=%" PRId64 " mode=%s capture=%d/%d %s %s", T, mname, int(fs), int(es), ferr.c_str(), eerr.c_str());
        check(gok, "graph", buf);
      }
      CK(lmoe_cuda_set_tuning(&g_base));
    }
  }
  printf("  (%.1f s)\n", now_s() - t0);
}

static lmoe_config mk(int d, int l, int N, int K, int m, int ms, int act = LMOE_ACT_RELU2,
                      int scoring = LMOE_SCORING_SIGMOID, int norm = 1, float scale = 2.5f) {
  lmoe_config c{};
  c.hidden_size = d; c.latent_size = l; c.num_experts = N; c.top_k = K;
  c.expert_intermediate_size = m; c.shared_intermediate_size = ms;
  c.activation = act; c.scoring = scoring; c.norm_topk_prob = norm; c.routed_scaling_factor = scale;
  return c;
}

static void test_errors(void* stream) {
  lmoe_config c = mk(64, 16, 8, 2, 32, 0);
  lmoe_cuda_weights w{};
  check(lmoe_cuda_validate(&c, &w) != LMOE_OK && lmoe_cuda_last_error()[0] != 0, "errors: empty weights rejected");
  check(lmoe_cuda_validate(nullptr, &w) == LMOE_ERR_INVALID_ARGUMENT, "errors: NULL cfg");
  lmoe_config bad = c; bad.top_k = 33;
  check(lmoe_cuda_forward_workspace_bytes(&bad, 4) < 0, "errors: bad top_k ws query");
  // (the descriptor checks run without a GPU: lmoe_cuda_tuning_test validate)
  check(lmoe_cuda_forward_path(&c, &w, nullptr, 1) == -1, "errors: forward_path invalid -> -1");
  // the diagnostic entry points (debug_trace.h)
  {
    DBuf recs(16 * int64_t(sizeof(DebugTraceRecord)), stream);
    CK(lmoe_cuda_stream_synchronize(stream));
    check(lmoe_cuda_debug_trace(recs.as<DebugTraceRecord>(), 0) == LMOE_ERR_INVALID_ARGUMENT,
          "errors: debug trace capacity 0");
    check(lmoe_cuda_debug_trace_count(nullptr) == LMOE_ERR_INVALID_ARGUMENT, "errors: debug trace count NULL");
    int64_t n = -1;
    check(lmoe_cuda_debug_trace(recs.as<DebugTraceRecord>(), 16) == LMOE_OK &&
              lmoe_cuda_debug_trace_count(&n) == LMOE_OK && n == 0 && lmoe_cuda_debug_trace(nullptr, 0) == LMOE_OK,
          "debug trace on and off, nothing recorded without a launch");
  }
}

// small: racecheck-sized (T=1 on both paths, T=4 decode); full: T=1 and 33, every path.
// small: racecheck-sized (T=1 on both paths, T=4 decode; NVFP4 T=1 sorted for the dequantizing
// GEMM's reduction); full: T=1 and 33 on every path for BF16 weights, then FP8, NVFP4 and W8A8
// weights (decode, sorted on CUTLASS and on the fallback kernels).
static void run_sanitize(void* stream, uint64_t seed, bool small) {
  lmoe_config c = super_config();
  const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, m = c.expert_intermediate_size;
  const int64_t ms = c.shared_intermediate_size, W = width(c);
  printf("sanitize: Super shape, device-filled weights, seed=%" PRIu64 "\n", seed);
  DBuf gate(N * d * 4, stream), bias(N * 4, stream);
  auto fill = [&](DBuf& b, int dt, int64_t n, uint64_t s, float a) {
    CK(lmoe_cuda_fill_uniform(b.p, dt, n, s, -a, a, stream));
  };
  fill(gate, LMOE_DTYPE_F32, N * d, seed + 1, 0.02f);
  fill(bias, LMOE_DTYPE_F32, N, seed + 2, 0.05f);
  struct Run { int64_t T; int backend; int decode; };
  const std::vector<std::string> dtypes = small ? std::vector<std::string>{"bf16", "nvfp4"}
                                                : std::vector<std::string>{"bf16", "fp8", "nvfp4", "w8a8"};
  for (const std::string& dt : dtypes) {
    std::vector<DBuf> bufs;
    bufs.reserve(32);
    lmoe_cuda_weights w{};
    w.gate = dmat(gate.p, LMOE_WFMT_F32);
    w.gate_bias = bias.as<float>();
    w.latent_down = device_matrix(dt, 1, l, d, seed + 3, 0.016f, bufs, stream);
    w.latent_up = device_matrix(dt, 1, d, l, seed + 4, 0.03f, bufs, stream);
    w.expert_up = device_matrix(dt, N, m, W, seed + 5, 0.06f, bufs, stream);
    w.expert_down = device_matrix(dt, N, W, m, seed + 6, 0.02f, bufs, stream);
    w.shared_up = device_matrix(dt, 1, ms, d, seed + 7, 0.03f, bufs, stream);
    w.shared_down = device_matrix(dt, 1, d, ms, seed + 8, 0.014f, bufs, stream);
    CK(lmoe_cuda_validate(&c, &w));
    std::vector<Run> runs;
    if (small) {
      if (dt == "bf16")
        runs = {{1, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_ON}, {1, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_OFF},
                {4, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_ON}};
      else
        runs = {{1, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_OFF}};
    } else {
      for (int64_t T : {int64_t(1), int64_t(33)}) {
        runs.push_back({T, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_ON});
        runs.push_back({T, LMOE_CUDA_EXPERTS_AUTO, LMOE_CUDA_DECODE_OFF});
        runs.push_back({T, LMOE_CUDA_EXPERTS_SIMT, LMOE_CUDA_DECODE_OFF});
      }
    }
    for (const Run& run : runs) {
      const int64_t T = run.T;
      const int backend = run.backend;
      set_knobs(backend, run.decode);
      DBuf x(T * d * 2, stream), out(T * d * 2, stream), ids(T * c.top_k * 4, stream), wt(T * c.top_k * 4, stream);
      const int path = lmoe_cuda_forward_path(&c, &w, x.p, T);
      fill(x, LMOE_DTYPE_BF16, T * d, seed + 100 + T, 1.0f);
      out.poison();
      int64_t fws = lmoe_cuda_forward_workspace_bytes(&c, T);
      DBuf ws(fws, stream);
      CK(lmoe_cuda_forward(&c, &w, x.p, T, ids.as<int32_t>(), wt.as<float>(), ws.p, fws, out.p, stream));
      std::vector<uint16_t> o = out.download<uint16_t>(T * d);
      int64_t nonfinite = 0;
      double ss = 0;
      for (uint16_t v : o) { float f = bf2f(v); if (!std::isfinite(f)) ++nonfinite; else ss += double(f) * f; }
      char buf[200];
      snprintf(buf, sizeof buf, "%s T=%" PRId64 " backend=%d path=%s nonfinite=%" PRId64 " rms=%.4g", dt.c_str(), T,
               backend, path == LMOE_CUDA_PATH_DECODE ? "decode" : "sorted", nonfinite, sqrt(ss / double(o.size())));
      printf("  forward %s\n", buf);
      check(nonfinite == 0 && ss > 0, "sanitize forward", buf);
    }
    CK(lmoe_cuda_stream_synchronize(stream));
  }
  CK(lmoe_cuda_set_tuning(&g_base));
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "all";
  uint64_t seed = argc > 2 ? strtoull(argv[2], nullptr, 10)
                           : uint64_t(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  setvbuf(stdout, nullptr, _IOLBF, 0);
  CK(lmoe_cuda_get_tuning(&g_base));
  std::string why = gpu_unavailable_reason();
  if (!why.empty()) {
    printf("SKIPPED: %s\n", why.c_str());
    return 0;
  }
  char name[256] = "";
  int32_t sms = 0;
  int64_t mem = 0;
  CK(lmoe_cuda_device_info(0, nullptr, nullptr, &sms, &mem, name, sizeof name));
  printf("device 0: %s, %d SMs, %.1f GiB; mode=%s seed=%" PRIu64 "\n", name, sms, mem / 1073741824.0, mode.c_str(), seed);
  {
    char tune[256] = "";
    CK(lmoe_cuda_tuning_string(&g_base, tune, sizeof tune));
    printf("tuning: %s\n", tune);
  }
  lmoe_cpu_set_num_threads(std::max(1u, std::min(64u, std::thread::hardware_concurrency())));
  void* stream = nullptr;
  CK(lmoe_cuda_stream_create(&stream));

  if (mode == "sanitize" || mode == "sanitize-small") {
    run_sanitize(stream, seed, mode == "sanitize-small");
  } else {
    if (mode == "quick" || mode == "all") {
      test_errors(stream);
      run_case("latent-small", mk(256, 64, 64, 8, 128, 256), 1, true, {1, 5, 64, 300}, seed, stream);
      run_case("latent-K22-N512", mk(512, 128, 512, 22, 192, 384), 1, true, {1, 2, 3, 7, 16, 37, 1024}, seed + 11, stream);
      run_case("latent-K32-oddN", mk(384, 96, 127, 32, 160, 0), 0, true, {1, 2, 3, 7, 16, 257}, seed + 22, stream);
      run_case("standard-shared", mk(256, 0, 32, 4, 96, 128), 0, false, {1, 200}, seed + 33, stream);
      // decode path: standard MoE, K=22 N=512, no shared, bf16 gate; latent + shared, K=32 odd N,
      // f32 gate, dims not multiples of 16/32 (row/k tails)
      run_case("decode-std-K22-N512", mk(512, 0, 512, 22, 192, 0), 0, true, {1, 2, 3, 7, 16, 17, 64, 65}, seed + 111, stream);
      run_case("decode-latent-K32-N127", mk(392, 104, 127, 32, 168, 232), 1, true, {1, 2, 3, 7, 16}, seed + 122, stream);
      run_case("decode-std-shared-K22-N513", mk(264, 0, 513, 22, 200, 136, LMOE_ACT_RELU2, LMOE_SCORING_SOFTMAX, 0, 1.0f),
               1, false, {1, 3, 16}, seed + 133, stream);
      run_case("swiglu-softmax", mk(256, 128, 16, 2, 64, 128, LMOE_ACT_SWIGLU, LMOE_SCORING_SOFTMAX, 0, 1.0f),
               1, false, {1, 100}, seed + 44, stream);
      run_case("odd-shapes-simt", mk(200, 60, 33, 5, 100, 72), 1, true, {7, 129}, seed + 55, stream);
      run_case("nano-like-standard", mk(512, 0, 128, 6, 192, 384), 0, true, {2, 512}, seed + 66, stream);
      run_case("T4096-K22-N512", mk(256, 64, 512, 22, 64, 0), 1, true, {4096}, seed + 77, stream);
      // non-gated SiLU (BF16): decode and sorted paths against the CPU library
      run_case("silu-latent-shared", mk(256, 64, 64, 8, 128, 256, LMOE_ACT_SILU), 1, true, {1, 5, 16, 300}, seed + 88, stream);
      run_case("silu-standard-odd-simt", mk(200, 0, 33, 5, 100, 72, LMOE_ACT_SILU, LMOE_SCORING_SOFTMAX, 0, 1.0f), 0, false,
               {3, 129}, seed + 89, stream);
      // FP8 / NVFP4 weights (weight-only and W8A8) and relu2's NaN propagation: quant_cases.cpp
      run_quant_cases(stream, seed + 200);
      run_nan_cases(stream, seed + 300);
    }
    if (mode == "super" || mode == "all") {
      run_case("super-full", super_config(), 1, true, {1, 4, 16, 32}, seed + 99, stream);
    }
  }
  CK(lmoe_cuda_stream_synchronize(stream));
  CK(lmoe_cuda_stream_destroy(stream));
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
