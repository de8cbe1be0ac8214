// lmoe_cuda_bench - Super-shape forward timings on the GPU, JSON lines on stdout.
// Usage: lmoe_cuda_bench [--tokens 1,2,4,8,16,32,64,256,4096,8192] [--reps 20] [--backend auto|simt]
//                        [--shape super|nano] [--decode auto|on|off|compare] [--decode-max 16]
//   --decode compare (default): auto for every T, plus the forced other path for T <= 64, so
//   the decode/sorted crossover can be read off one run. Each line says which path ran.
// Each line: {"kind":"forward"|"stage"|"d2d_copy", ...} with median ms over reps (CUDA events),
// bytes needed (weights actually touched + activations), GB/s and TFLOP/s.
#include <inttypes.h>

#include <sstream>

#include "common.h"

using namespace lt;

static double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

int main(int argc, char** argv) {
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 256, 4096, 8192};
  std::string decode = "compare";
  int decode_max = 16;
  int reps = 20;
  int backend = LMOE_CUDA_EXPERTS_AUTO;
  std::string shape = "super";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc) {
      tokens.clear();
      std::stringstream ss(argv[++i]);
      std::string t;
      while (std::getline(ss, t, ',')) tokens.push_back(atoll(t.c_str()));
    } else if (a == "--reps" && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (a == "--backend" && i + 1 < argc) {
      backend = std::string(argv[++i]) == "simt" ? LMOE_CUDA_EXPERTS_SIMT : LMOE_CUDA_EXPERTS_AUTO;
    } else if (a == "--shape" && i + 1 < argc) {
      shape = argv[++i];
    } else if (a == "--decode" && i + 1 < argc) {
      decode = argv[++i];
    } else if (a == "--decode-max" && i + 1 < argc) {
      decode_max = atoi(argv[++i]);
    }
  }
  std::string why = gpu_unavailable_reason();
  if (!why.empty()) {
    printf("{\"kind\":\"skipped\",\"reason\":\"%s\"}\n", why.c_str());
    return 0;
  }
  lmoe_config c = super_config();
  if (shape == "nano") {  // Nemotron-3-Nano-like standard MoE (assumed shape)
    c.hidden_size = 2688; c.latent_size = 0; c.num_experts = 128; c.top_k = 6;
    c.expert_intermediate_size = 1856; c.shared_intermediate_size = 3712; c.routed_scaling_factor = 2.5f;
  }
  CK(lmoe_cuda_set_experts_backend(backend));
  char name[256] = "";
  int32_t sms = 0;
  int64_t mem = 0;
  CK(lmoe_cuda_device_info(0, nullptr, nullptr, &sms, &mem, name, sizeof name));
  void* s = nullptr;
  CK(lmoe_cuda_stream_create(&s));
  void *e0, *e1;
  CK(lmoe_cuda_event_create(&e0));
  CK(lmoe_cuda_event_create(&e1));

  const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, K = c.top_k;
  const int64_t m = c.expert_intermediate_size, ms = c.shared_intermediate_size, W = width(c);
  DBuf gate(N * d * 4, s), bias(N * 4, s), ld(std::max<int64_t>(1, l * d * 2), s),
      lu(std::max<int64_t>(1, d * l * 2), s), eu(N * m * W * 2, s), ed(N * W * m * 2, s),
      su(std::max<int64_t>(1, ms * d * 2), s), sd(std::max<int64_t>(1, d * ms * 2), s);
  CK(lmoe_cuda_fill_uniform(gate.p, LMOE_DTYPE_F32, N * d, 1, -0.02f, 0.02f, s));
  CK(lmoe_cuda_fill_uniform(bias.p, LMOE_DTYPE_F32, N, 2, -0.05f, 0.05f, s));
  if (l > 0) {
    CK(lmoe_cuda_fill_uniform(ld.p, LMOE_DTYPE_BF16, l * d, 3, -0.016f, 0.016f, s));
    CK(lmoe_cuda_fill_uniform(lu.p, LMOE_DTYPE_BF16, d * l, 4, -0.03f, 0.03f, s));
  }
  CK(lmoe_cuda_fill_uniform(eu.p, LMOE_DTYPE_BF16, N * m * W, 5, -0.06f, 0.06f, s));
  CK(lmoe_cuda_fill_uniform(ed.p, LMOE_DTYPE_BF16, N * W * m, 6, -0.02f, 0.02f, s));
  if (ms > 0) {
    CK(lmoe_cuda_fill_uniform(su.p, LMOE_DTYPE_BF16, ms * d, 7, -0.03f, 0.03f, s));
    CK(lmoe_cuda_fill_uniform(sd.p, LMOE_DTYPE_BF16, d * ms, 8, -0.014f, 0.014f, s));
  }
  lmoe_cuda_weights w{};
  w.weight_dtype = LMOE_DTYPE_BF16; w.gate_dtype = LMOE_DTYPE_F32;
  w.gate = gate.p; w.gate_bias = bias.as<float>();
  w.latent_down = l > 0 ? ld.p : nullptr; w.latent_up = l > 0 ? lu.p : nullptr;
  w.expert_up = eu.p; w.expert_down = ed.p;
  w.shared_up = ms > 0 ? su.p : nullptr; w.shared_down = ms > 0 ? sd.p : nullptr;

  // device-to-device copy bandwidth probe (same run)
  {
    const int64_t bytes = int64_t(1) << 30;
    DBuf a(bytes, s), b(bytes, s);
    CK(lmoe_cuda_memset_async(a.p, 1, bytes, s));
    std::vector<float> t;
    for (int r = 0; r < 10; ++r) {
      CK(lmoe_cuda_event_record(e0, s));
      CK(lmoe_cuda_memcpy_d2d_async(b.p, a.p, bytes, s));
      CK(lmoe_cuda_event_record(e1, s));
      CK(lmoe_cuda_event_synchronize(e1));
      float ms_ = 0;
      CK(lmoe_cuda_event_elapsed_ms(e0, e1, &ms_));
      t.push_back(ms_);
    }
    double med = median(t);
    printf("{\"kind\":\"d2d_copy\",\"device\":\"%s\",\"bytes\":%" PRId64 ",\"median_ms\":%.4f,\"gbps_rw\":%.1f}\n",
           name, bytes, med, 2.0 * bytes / (med * 1e-3) / 1e9);
  }

  for (int64_t T : tokens) {
    DBuf x(T * d * 2, s), out(T * d * 2, s), ids(T * K * 4, s), wt(T * K * 4, s);
    CK(lmoe_cuda_fill_uniform(x.p, LMOE_DTYPE_BF16, T * d, 100 + T, -1.f, 1.f, s));
    int64_t fws = lmoe_cuda_forward_workspace_bytes(&c, T);
    if (fws < 0) { fprintf(stderr, "ws query failed: %s\n", lmoe_cuda_last_error()); return 1; }
    DBuf ws(fws, s);
    std::vector<int> modes;
    if (decode == "on") modes = {LMOE_CUDA_DECODE_ON};
    else if (decode == "off") modes = {LMOE_CUDA_DECODE_OFF};
    else if (decode == "auto") modes = {LMOE_CUDA_DECODE_AUTO};
    else {
      modes = {LMOE_CUDA_DECODE_AUTO};
      if (T <= 64) modes.push_back(T <= decode_max ? LMOE_CUDA_DECODE_OFF : LMOE_CUDA_DECODE_ON);
    }
    for (int mode : modes) {
      CK(lmoe_cuda_set_decode_policy(mode, decode_max));
      const int path = lmoe_cuda_forward_path(&c, &w, x.p, T);
      auto fwd = [&] {
        CK(lmoe_cuda_forward(&c, &w, x.p, T, ids.as<int32_t>(), wt.as<float>(), ws.p, fws, out.p, s));
      };
      for (int i = 0; i < 3; ++i) fwd();
      std::vector<float> t;
      for (int r = 0; r < reps; ++r) {
        CK(lmoe_cuda_event_record(e0, s));
        fwd();
        CK(lmoe_cuda_event_record(e1, s));
        CK(lmoe_cuda_event_synchronize(e1));
        float v = 0;
        CK(lmoe_cuda_event_elapsed_ms(e0, e1, &v));
        t.push_back(v);
      }
      double med = median(t);
      // experts actually used
      std::vector<int32_t> hid = ids.download<int32_t>(T * K);
      std::vector<char> used(N, 0);
      for (int32_t e : hid) if (e >= 0 && e < N) used[e] = 1;
      int64_t nused = 0;
      for (char u : used) nused += u;
      const double wbytes = double(N * d * 4) + double(2 * l * d * 2) + double(nused) * (2.0 * m * W * 2) +
                            double(2 * ms * d * 2);
      const double abytes = double(T * d * 2) * 2 + double(T * K * W * 2) * 4 + double(T * K * m * 2) * 2;
      const double flops = 2.0 * T * (double(N * d) + 2.0 * l * d + double(K) * 2.0 * m * W + 2.0 * ms * d);
      const char* mname = mode == LMOE_CUDA_DECODE_AUTO ? "auto" : mode == LMOE_CUDA_DECODE_ON ? "on" : "off";
      printf("{\"kind\":\"forward\",\"device\":\"%s\",\"shape\":\"%s\",\"backend\":\"%s\",\"decode_mode\":\"%s\","
             "\"path\":\"%s\",\"T\":%" PRId64
             ",\"reps\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"experts_used\":%" PRId64
             ",\"bytes_needed\":%.0f,\"gbps\":%.1f,\"tflops\":%.2f,\"workspace_bytes\":%" PRId64 "}\n",
             name, shape.c_str(), backend == LMOE_CUDA_EXPERTS_SIMT ? "simt" : "auto", mname,
             path == LMOE_CUDA_PATH_DECODE ? "decode" : "sorted", T, reps, med,
             double(*std::min_element(t.begin(), t.end())), nused, wbytes + abytes,
             (wbytes + abytes) / (med * 1e-3) / 1e9, flops / (med * 1e-3) / 1e12, fws);
      fflush(stdout);
    }
    CK(lmoe_cuda_set_decode_policy(LMOE_CUDA_DECODE_AUTO, decode_max));
  }
  CK(lmoe_cuda_stream_synchronize(s));
  return 0;
}
