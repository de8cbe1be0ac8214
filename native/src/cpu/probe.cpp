// The memory-bandwidth probe: copy, triad and a read-only sum over arrays of array_bytes each,
// split across the pool threads; best of reps.
#include "probe.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

#include "arch/arch.h"
#include "errors.h"
#include "isa.h"
#include "thread_pool.h"

namespace lmoe {
namespace {

// Non-temporal-free STREAM loops; loop-to-memcpy conversion is disabled so glibc's streaming
// stores are never used.
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void copy_loop(
    float* __restrict a, const float* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = b[i];
}

__attribute__((optimize("no-tree-loop-distribute-patterns"))) void triad_loop(
    float* __restrict a, const float* __restrict b, const float* __restrict c, float s,
    int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

__attribute__((optimize("no-tree-loop-distribute-patterns"))) void fill_loop(float* a, float v,
                                                                            int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = v + (float)(i & 7);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

lmoe_status membw_probe(int probe, int64_t array_bytes, int reps, double* best_gbps) {
  const int narr = probe == LMOE_PROBE_COPY ? 2 : probe == LMOE_PROBE_TRIAD ? 3 : 1;
  const int64_t n = array_bytes / (int64_t)sizeof(float);
  const size_t bytes = ((size_t)n * sizeof(float) + 4095) / 4096 * 4096;
  std::unique_ptr<float, FreeDeleter> arr[3];
  for (int i = 0; i < narr; ++i) {
    arr[i].reset((float*)std::aligned_alloc(4096, bytes));
    if (!arr[i]) {
      set_error("lmoe_cpu_membw_probe: cannot allocate %zu bytes", bytes);
      return LMOE_ERR_OUT_OF_MEMORY;
    }
  }
  float* a = arr[0].get();
  float* b = arr[1].get();
  float* c = arr[2].get();
  lmoe_status st = parallel([&](int i, int nt) {
    int64_t lo, hi;
    split_range(n, i, nt, &lo, &hi);
    for (int k = 0; k < narr; ++k) fill_loop(arr[k].get() + lo, 1.0f + k, hi - lo);
  });
  if (st != LMOE_OK) return st;
  const ReadSumFn read_sum = isa_kernels().read_sum;
  std::vector<double> sums(1024, 0.0);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    st = parallel([&](int i, int nt) {
      int64_t lo, hi;
      split_range(n, i, nt, &lo, &hi);
      if (probe == LMOE_PROBE_COPY) copy_loop(a + lo, b + lo, hi - lo);
      else if (probe == LMOE_PROBE_TRIAD) triad_loop(a + lo, b + lo, c + lo, 0.5f, hi - lo);
      else sums[i & 1023] += read_sum(a + lo, hi - lo);
    });
    auto t1 = std::chrono::steady_clock::now();
    if (st != LMOE_OK) return st;
    double sec = std::chrono::duration<double>(t1 - t0).count();
    double gbps = (double)narr * (double)n * sizeof(float) / sec / 1e9;
    if (gbps > best) best = gbps;
  }
  volatile double sink = 0;
  for (double s : sums) sink = sink + s;
  *best_gbps = best;
  return LMOE_OK;
}

namespace {

bool peak_supported(int probe) {
  switch (probe) {
    case LMOE_PEAK_SSE2: return true;
    case LMOE_PEAK_FMA_AVX2: return isa_supported(LMOE_ISA_AVX2);
    case LMOE_PEAK_FMA_AVX512: return isa_supported(LMOE_ISA_AVX512);
    case LMOE_PEAK_DPBF16: return isa_supported(LMOE_ISA_AVX512_BF16);
    case LMOE_PEAK_AMX_BF16: return isa_supported(LMOE_ISA_AMX);
    default: return false;
  }
}

}  // namespace

lmoe_status peak_probe(int probe, double seconds, int reps, double* best_gflops) {
  if (!peak_supported(probe)) {
    set_error("lmoe_cpu_peak_probe: probe %d needs an instruction set this CPU (or OS) lacks",
              probe);
    return LMOE_ERR_UNSUPPORTED;
  }
  // Iterations for `seconds` per thread, from a short run on the caller.
  int64_t iters = 1000;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    peak_loop(probe, iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.02 || iters > ((int64_t)1 << 40)) {
      iters = std::max<int64_t>(1, (int64_t)((double)iters * seconds / std::max(s, 1e-9)));
      break;
    }
    iters *= 8;
  }
  double best = 0;
  std::vector<double> flops(1024, 0.0);
  for (int r = 0; r < reps; ++r) {
    int nthreads = 1;
    auto t0 = std::chrono::steady_clock::now();
    lmoe_status st = parallel([&](int i, int nt) {
      nthreads = nt;
      flops[i & 1023] = peak_loop(probe, iters);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (st != LMOE_OK) return st;
    double total = 0;
    for (int i = 0; i < nthreads; ++i) total += flops[i & 1023];
    best = std::max(best, total / s / 1e9);
  }
  *best_gflops = best;
  return LMOE_OK;
}

}  // namespace lmoe
