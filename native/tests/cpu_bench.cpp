// lmoe_cpu_bench: times lmoe_cpu_forward at Nemotron 3 Super shapes (bf16 weights, relu^2, latent
// MoE) and compares the weight-streaming rate with lmoe_cpu_membw_probe. Not a test.
//   usage: lmoe_cpu_bench [threads (0 = library default)] [reps (default 15)] [T list, e.g. 1,4,16,64]
//                         [rounds (default 5)]
// Memory bandwidth on shared machines drifts, so every round runs the three probes and then the
// layer (reps calls per T) in the same process; the summary gives the medians over the rounds and
// the median of the per-round ratio layer / max(probes).
// LMOE_BENCH_THP=1 advises transparent huge pages on the weights (the probe never does; weights
// allocated by the Java library's arenas get the system's default page policy).
#include "latentmoe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <sys/mman.h>
#include <vector>

#define CK(x)                                                                         \
  do {                                                                                \
    lmoe_status s_ = (x);                                                             \
    if (s_ != LMOE_OK) {                                                              \
      std::fprintf(stderr, "%s failed: %d %s\n", #x, (int)s_, lmoe_last_error());     \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

static void* alloc_fill(int64_t count, int dtype, uint64_t seed, float lo, float hi) {
  size_t bytes = (size_t)count * (dtype == LMOE_DTYPE_F32 ? 4 : 2);
  void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (!p) { std::fprintf(stderr, "alloc failed\n"); std::exit(1); }
  static const bool thp = std::getenv("LMOE_BENCH_THP") && std::atoi(std::getenv("LMOE_BENCH_THP")) > 0;
  if (thp) madvise(p, (bytes + 4095) / 4096 * 4096, MADV_HUGEPAGE);
  CK(lmoe_fill_uniform(p, dtype, count, seed, lo, hi));
  return p;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::atoi(argv[1]) > 0) CK(lmoe_cpu_set_num_threads(std::atoi(argv[1])));
  const int reps = argc > 2 ? std::atoi(argv[2]) : 15;
  lmoe_config c{};
  c.hidden_size = 4096; c.latent_size = 1024; c.num_experts = 512; c.top_k = 22;
  c.expert_intermediate_size = 2688; c.shared_intermediate_size = 5376;
  c.activation = LMOE_ACT_RELU2; c.scoring = LMOE_SCORING_SIGMOID; c.norm_topk_prob = 1;
  c.routed_scaling_factor = 5.0f;
  // LMOE_BENCH_PRECISION=bf16: the bf16-activation kernels (default exact)
  const char* prec = std::getenv("LMOE_BENCH_PRECISION");
  c.precision = prec && std::string(prec) == "bf16" ? LMOE_PRECISION_BF16 : LMOE_PRECISION_EXACT;
  if (const char* ch = std::getenv("LMOE_BENCH_CHUNK")) CK(lmoe_cpu_set_chunk_tokens(std::atoll(ch)));
  const int d = c.hidden_size, l = c.latent_size, N = c.num_experts, m = c.expert_intermediate_size,
            ms = c.shared_intermediate_size;
  const int BF = LMOE_DTYPE_BF16;
  const char* kname = "?";
  CK(lmoe_cpu_gemm_kernel(c.precision, &kname, nullptr, nullptr));
  std::printf("lmoe_cpu_bench: d=%d l=%d N=%d K=%d m=%d ms=%d bf16 relu2, threads=%d isa=%d, "
              "precision %s (kernel %s), chunk %lld tokens\n",
              d, l, N, c.top_k, m, ms, lmoe_cpu_num_threads(), lmoe_cpu_isa(),
              c.precision ? "bf16" : "exact", kname, (long long)lmoe_cpu_chunk_tokens());
  lmoe_weights w{};
  auto mat = [](const void* p) {  // a plain BF16 descriptor
    lmoe_matrix m{};
    m.format = LMOE_WFMT_BF16;
    m.data = p;
    m.scale = 1.0f;
    return m;
  };
  uint64_t seed = 1234;
  w.gate = mat(alloc_fill((int64_t)N * d, BF, seed++, -0.05f, 0.05f));
  std::vector<float> bias(N);
  CK(lmoe_fill_uniform(bias.data(), LMOE_DTYPE_F32, N, seed++, -0.01f, 0.01f));
  w.gate_bias = bias.data();
  w.latent_down = mat(alloc_fill((int64_t)l * d, BF, seed++, -0.03f, 0.03f));
  w.latent_up = mat(alloc_fill((int64_t)d * l, BF, seed++, -0.03f, 0.03f));
  std::vector<lmoe_matrix> up(N), down(N);
  for (int e = 0; e < N; ++e) {
    up[e] = mat(alloc_fill((int64_t)m * l, BF, seed++, -0.03f, 0.03f));
    down[e] = mat(alloc_fill((int64_t)l * m, BF, seed++, -0.03f, 0.03f));
  }
  w.expert_up = up.data(); w.expert_down = down.data();
  w.shared_up = mat(alloc_fill((int64_t)ms * d, BF, seed++, -0.02f, 0.02f));
  w.shared_down = mat(alloc_fill((int64_t)d * ms, BF, seed++, -0.02f, 0.02f));
  CK(lmoe_validate(&c, &w));

  std::vector<int> Ts = {1, 4, 16, 64};
  if (argc > 3) {
    Ts.clear();
    for (const char* p = argv[3]; *p;) {
      Ts.push_back(std::atoi(p));
      while (*p && *p != ',') ++p;
      if (*p == ',') ++p;
    }
  }
  const int rounds = argc > 4 ? std::max(1, std::atoi(argv[4])) : 5;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  const char* pname[3] = {"copy", "triad", "read"};
  // LMOE_BENCH_AB="A=1,B=2|A=3" (A/B tuning): each round runs the layer once per variant, with
  // those environment variables set.
  std::vector<std::vector<std::pair<std::string, std::string>>> variants(1);
  std::vector<std::string> vnames(1);
  if (const char* ab = std::getenv("LMOE_BENCH_AB")) {
    variants.clear();
    vnames.clear();
    std::string all(ab);
    size_t p = 0;
    while (p <= all.size()) {
      size_t q = all.find('|', p);
      if (q == std::string::npos) q = all.size();
      std::string v = all.substr(p, q - p);
      vnames.push_back("[" + v + "]");
      variants.emplace_back();
      size_t a = 0;
      while (a < v.size()) {
        size_t b = v.find(',', a);
        if (b == std::string::npos) b = v.size();
        std::string kv = v.substr(a, b - a);
        size_t eq = kv.find('=');
        if (eq != std::string::npos) variants.back().push_back({kv.substr(0, eq), kv.substr(eq + 1)});
        a = b + 1;
      }
      p = q + 1;
    }
  }
  for (int T : Ts) {
    std::vector<float> x((size_t)T * d), out((size_t)T * d), wts((size_t)T * c.top_k);
    std::vector<int32_t> ids((size_t)T * c.top_k);
    CK(lmoe_fill_uniform(x.data(), LMOE_DTYPE_F32, (int64_t)T * d, 99 + T, -1.0f, 1.0f));
    int64_t wsb = lmoe_cpu_forward_workspace_bytes(&c, T);
    void* ws = std::aligned_alloc(64, (wsb + 63) / 64 * 64);
    CK(lmoe_cpu_forward(&c, &w, x.data(), T, ids.data(), wts.data(), ws, wsb, out.data()));
    std::set<int> uniq(ids.begin(), ids.end());
    const double bytes = 2.0 * ((double)N * d + 2.0 * l * d + 2.0 * ms * d +
                                (double)uniq.size() * 2.0 * m * l);
    const double flops = 2.0 * T * ((double)N * d + 2.0 * l * d + 2.0 * ms * d +
                                    (double)c.top_k * 2.0 * m * l);
    std::vector<double> pr[3];
    std::vector<std::vector<double>> lay(variants.size()), ratio(variants.size());
    for (int rd = 0; rd < rounds; ++rd) {
      double probe[3];
      for (int p = 0; p < 3; ++p) {
        CK(lmoe_cpu_membw_probe(p, (int64_t)512 << 20, 5, &probe[p]));
        pr[p].push_back(probe[p]);
      }
      const double probe_max = std::max(probe[0], std::max(probe[1], probe[2]));
      for (size_t vi = 0; vi < variants.size(); ++vi) {
        const size_t v = rd % 2 ? variants.size() - 1 - vi : vi;  // alternate the order
        for (auto& kv : variants[v]) setenv(kv.first.c_str(), kv.second.c_str(), 1);
        // variants may switch the ISA or the precision (LMOE_BENCH_ISA=2, LMOE_BENCH_PRECISION=bf16)
        if (const char* isa = std::getenv("LMOE_BENCH_ISA")) CK(lmoe_cpu_set_isa(std::atoi(isa)));
        if (const char* pr = std::getenv("LMOE_BENCH_PRECISION"))
          c.precision = std::string(pr) == "bf16" ? LMOE_PRECISION_BF16 : LMOE_PRECISION_EXACT;
        std::vector<double> times;
        for (int r = 0; r < reps + 1; ++r) {
          auto t0 = std::chrono::steady_clock::now();
          CK(lmoe_cpu_forward(&c, &w, x.data(), T, ids.data(), wts.data(), ws, wsb, out.data()));
          auto t1 = std::chrono::steady_clock::now();
          if (r >= 1) times.push_back(std::chrono::duration<double>(t1 - t0).count());
        }
        for (auto& kv : variants[v]) unsetenv(kv.first.c_str());
        if (prec) c.precision = std::string(prec) == "bf16" ? LMOE_PRECISION_BF16 : LMOE_PRECISION_EXACT;
        const double med = median(times);
        const double gbps = bytes / med / 1e9;
        lay[v].push_back(gbps);
        ratio[v].push_back(gbps / probe_max);
        std::printf("T=%-3d round %d: probe copy %5.1f triad %5.1f read %5.1f GB/s | layer%s%s median %8.3f ms "
                    "(best %8.3f) %5.1f GB/s = %5.1f%% of probe max, %7.1f GFLOP/s\n",
                    T, rd, probe[0], probe[1], probe[2], vnames[v].empty() ? "" : " ",
                    vnames[v].c_str(), med * 1e3,
                    *std::min_element(times.begin(), times.end()) * 1e3, gbps, 100.0 * gbps / probe_max,
                    flops / med / 1e9);
        std::fflush(stdout);
      }
    }
    for (size_t v = 0; v < variants.size(); ++v) {
    std::printf("T=%-3d SUMMARY over %d rounds: experts %3zu, weight bytes %6.1f MB; median probe", T,
                rounds, uniq.size(), bytes / 1e6);
    for (int p = 0; p < 3; ++p) std::printf(" %s %.1f", pname[p], median(pr[p]));
    std::printf(" GB/s; layer%s%s median %.1f GB/s; median ratio %.1f%% (min %.1f%%, max %.1f%%)\n",
                vnames[v].empty() ? "" : " ", vnames[v].c_str(), median(lay[v]),
                100.0 * median(ratio[v]), 100.0 * *std::min_element(ratio[v].begin(), ratio[v].end()),
                100.0 * *std::max_element(ratio[v].begin(), ratio[v].end()));
    }
    std::fflush(stdout);
    std::free(ws);
  }
  return 0;
}
