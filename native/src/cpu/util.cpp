// Library information, errors, ISA selection, the thread-count setting, the memory-bandwidth
// probe and lmoe_fill_uniform.
#include "common.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#define LMOE_API extern "C" __attribute__((visibility("default")))

namespace lmoe {
namespace {

thread_local std::string t_error;

int detect_best_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("avx2"))
    return LMOE_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LMOE_ISA_AVX2;
#endif
  return LMOE_ISA_SCALAR;
}

int best_isa() {
  static const int best = detect_best_isa();
  return best;
}

std::atomic<int> g_isa{-1};

}  // namespace

void set_error(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  try {
    t_error = buf;
  } catch (...) {
  }
}

void clear_error() { t_error.clear(); }

int current_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  return v < 0 ? best_isa() : v;
}

DotBlockFn current_dot() {
  switch (current_isa()) {
    case LMOE_ISA_AVX512: return dot_block_avx512;
    case LMOE_ISA_AVX2: return dot_block_avx2;
    default: return dot_block_scalar;
  }
}

double current_read_sum(const float* a, int64_t n) {
  switch (current_isa()) {
    case LMOE_ISA_AVX512: return read_sum_avx512(a, n);
    case LMOE_ISA_AVX2: return read_sum_avx2(a, n);
    default: return read_sum_scalar(a, n);
  }
}

lmoe_status parallel(const std::function<void(int, int)>& fn) {
  std::atomic<int> err{0};  // 1 = out of memory, 2 = other
  auto wrapped = [&](int i, int n) {
    try {
      fn(i, n);
    } catch (const std::bad_alloc&) {
      err.store(1);
    } catch (...) {
      err.store(2);
    }
  };
  if (!pool_run(wrapped) && err.load() == 0) err.store(2);
  if (err.load() == 1) {
    set_error("out of memory (thread scratch)");
    return LMOE_ERR_OUT_OF_MEMORY;
  }
  if (err.load() != 0) {
    set_error("internal error in a worker thread");
    return LMOE_ERR_INTERNAL;
  }
  return LMOE_OK;
}

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

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint16_t f32_to_bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

inline uint16_t f32_to_f16_rne(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {                                     // f16 subnormal or zero
    if (ax < 0x33000000u) return (uint16_t)sign;              // < 2^-25: rounds to 0
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t s = 126 - e;  // value = mant * 2^(e-150); in units of 2^-24: mant >> (126 - e)
    uint32_t q = mant >> s;
    uint32_t rem = mant & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax - 0x38000000u;  // rebias 127 -> 15 (112 << 23)
  uint32_t q = r >> 13;
  uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return (uint16_t)(sign | q);
}

}  // namespace
}  // namespace lmoe

using namespace lmoe;

LMOE_API int32_t lmoe_abi_version(void) { return LMOE_ABI_VERSION; }

LMOE_API const char* lmoe_last_error(void) { return t_error.c_str(); }

LMOE_API int32_t lmoe_cpu_best_isa(void) { return best_isa(); }

LMOE_API int32_t lmoe_cpu_isa(void) { return current_isa(); }

LMOE_API lmoe_status lmoe_cpu_set_isa(int32_t isa) {
  clear_error();
  if (isa < LMOE_ISA_SCALAR || isa > LMOE_ISA_AVX512) {
    set_error("lmoe_cpu_set_isa: unknown isa %d", (int)isa);
    return LMOE_ERR_INVALID_ARGUMENT;
  }
  if (isa > best_isa()) {
    set_error("lmoe_cpu_set_isa: isa %d is not supported by this CPU (best is %d)", (int)isa,
              best_isa());
    return LMOE_ERR_UNSUPPORTED;
  }
  g_isa.store(isa);
  return LMOE_OK;
}

LMOE_API int32_t lmoe_cpu_num_threads(void) { return pool_num_threads(); }

LMOE_API lmoe_status lmoe_cpu_set_num_threads(int32_t n) {
  return guarded([&]() -> lmoe_status {
    if (n < 1 || n > 1024) {
      set_error("lmoe_cpu_set_num_threads: num_threads must be in 1..1024, got %d", (int)n);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    pool_set_num_threads(n);
    return LMOE_OK;
  });
}

LMOE_API lmoe_status lmoe_cpu_membw_probe(int32_t probe, int64_t array_bytes, int32_t reps,
                                          double* best_gbps) {
  return guarded([&]() -> lmoe_status {
    if (best_gbps == nullptr) {
      set_error("lmoe_cpu_membw_probe: best_gbps is NULL");
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (probe < LMOE_PROBE_COPY || probe > LMOE_PROBE_READ) {
      set_error("lmoe_cpu_membw_probe: unknown probe %d", (int)probe);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (array_bytes < 4096 || array_bytes > ((int64_t)1 << 40)) {
      set_error("lmoe_cpu_membw_probe: array_bytes must be in [4096, 2^40], got %lld",
                (long long)array_bytes);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (reps < 1 || reps > 1000) {
      set_error("lmoe_cpu_membw_probe: reps must be in 1..1000, got %d", (int)reps);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
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
    std::vector<double> sums(1024, 0.0);
    double best = 0;
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      st = parallel([&](int i, int nt) {
        int64_t lo, hi;
        split_range(n, i, nt, &lo, &hi);
        if (probe == LMOE_PROBE_COPY) copy_loop(a + lo, b + lo, hi - lo);
        else if (probe == LMOE_PROBE_TRIAD) triad_loop(a + lo, b + lo, c + lo, 0.5f, hi - lo);
        else sums[i & 1023] += current_read_sum(a + lo, hi - lo);
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
  });
}

LMOE_API lmoe_status lmoe_fill_uniform(void* dst, int32_t dtype, int64_t count, uint64_t seed,
                                       float lo, float hi) {
  return guarded([&]() -> lmoe_status {
    if (count < 0) {
      set_error("lmoe_fill_uniform: count must be >= 0, got %lld", (long long)count);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (count == 0) return LMOE_OK;
    if (dst == nullptr) {
      set_error("lmoe_fill_uniform: dst is NULL");
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (dtype != LMOE_DTYPE_F32 && dtype != LMOE_DTYPE_BF16 && dtype != LMOE_DTYPE_F16) {
      set_error("lmoe_fill_uniform: dtype must be F32, BF16 or F16, got %d", (int)dtype);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi)) {
      set_error("lmoe_fill_uniform: need finite lo < hi, got [%g, %g)", (double)lo, (double)hi);
      return LMOE_ERR_INVALID_ARGUMENT;
    }
    const float span = hi - lo;
    return parallel([&](int i, int nt) {
      int64_t b, e;
      split_range(count, i, nt, &b, &e);
      for (int64_t k = b; k < e; ++k) {
        uint64_t h = splitmix64(seed ^ (uint64_t)k);
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);
        float v = lo + span * u;
        if (v >= hi) v = std::nextafter(hi, lo);
        if (dtype == LMOE_DTYPE_F32) ((float*)dst)[k] = v;
        else if (dtype == LMOE_DTYPE_BF16) ((uint16_t*)dst)[k] = f32_to_bf16_rne(v);
        else ((uint16_t*)dst)[k] = f32_to_f16_rne(v);
      }
    });
  });
}
