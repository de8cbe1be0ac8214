// common.h - helpers shared by the CUDA test and bench (host C++ only; uses the C ABI).
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "latentmoe.h"
#include "latentmoe_cuda.h"

namespace lt {

inline const char* backend_name(int b) {
  switch (b) {
    case LMOE_CUDA_EXPERTS_AUTO: return "auto";
    case LMOE_CUDA_EXPERTS_SIMT: return "simt";
    case LMOE_CUDA_EXPERTS_CUTLASS_NARROW: return "cutlass128";
    case LMOE_CUDA_EXPERTS_CUTLASS_WIDE: return "cutlass256";
    default: return "?";
  }
}
inline int backend_of(const std::string& n) {
  if (n == "simt") return LMOE_CUDA_EXPERTS_SIMT;
  if (n == "cutlass128") return LMOE_CUDA_EXPERTS_CUTLASS_NARROW;
  if (n == "cutlass256") return LMOE_CUDA_EXPERTS_CUTLASS_WIDE;
  return LMOE_CUDA_EXPERTS_AUTO;
}

inline uint16_t f2bf(float f) {  // round to nearest even
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf2f(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// uniform in [lo,hi), never exactly 0 after bf16 rounding (nudged away).
inline void fill_bf16(std::vector<uint16_t>& v, uint64_t seed, float lo, float hi) {
  const size_t n = v.size();
  unsigned nt = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> th;
  for (unsigned t = 0; t < nt; ++t)
    th.emplace_back([&, t] {
      size_t a = n * t / nt, b = n * (t + 1) / nt;
      for (size_t i = a; i < b; ++i) {
        uint64_t h = mix64(seed ^ mix64(i));
        float u = float(h >> 40) * (1.0f / 16777216.0f);
        float x = lo + (hi - lo) * u;
        uint16_t r = f2bf(x);
        if ((r & 0x7fff) == 0) r = f2bf(x >= 0 ? 1e-3f : -1e-3f);
        v[i] = r;
      }
    });
  for (auto& x : th) x.join();
}
inline void fill_f32(std::vector<float>& v, uint64_t seed, float lo, float hi) {
  for (size_t i = 0; i < v.size(); ++i) {
    uint64_t h = mix64(seed ^ mix64(i));
    float x = lo + (hi - lo) * (float(h >> 40) * (1.0f / 16777216.0f));
    v[i] = x == 0.f ? 1e-3f : x;
  }
}

// Test checks: counted, failures printed at once; the closing line is "N passed, N failed".
inline int g_pass = 0, g_fail = 0;
inline void check(bool ok, const char* what, const char* detail = "") {
  if (ok) {
    ++g_pass;
  } else {
    ++g_fail;
    printf("  FAIL %s %s\n", what, detail);
  }
  fflush(stdout);
}

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#define CK(call)                                                                     \
  do {                                                                               \
    lmoe_status st_ = (call);                                                        \
    if (st_ != LMOE_OK) {                                                            \
      fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, int(st_),  \
              lmoe_cuda_last_error());                                               \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)
#define CKCPU(call)                                                                  \
  do {                                                                               \
    lmoe_status st_ = (call);                                                        \
    if (st_ != LMOE_OK) {                                                            \
      fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, int(st_),  \
              lmoe_last_error());                                                    \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

// A device buffer (stream-ordered alloc on `stream`, freed at scope exit).
struct DBuf {
  void* p = nullptr;
  int64_t bytes = 0;
  void* stream = nullptr;
  DBuf() = default;
  DBuf(int64_t n, void* s) : bytes(n), stream(s) {
    CK(lmoe_cuda_malloc_async(&p, n < 256 ? 256 : n, s));
  }
  DBuf(const DBuf&) = delete;
  DBuf& operator=(const DBuf&) = delete;
  DBuf(DBuf&& o) noexcept { *this = std::move(o); }
  DBuf& operator=(DBuf&& o) noexcept {
    std::swap(p, o.p); std::swap(bytes, o.bytes); std::swap(stream, o.stream);
    return *this;
  }
  ~DBuf() { if (p) lmoe_cuda_free_async(p, stream); }
  template <class T> T* as() const { return static_cast<T*>(p); }
  template <class T> void upload(const std::vector<T>& v) {
    CK(lmoe_cuda_memcpy_h2d_async(p, v.data(), int64_t(v.size() * sizeof(T)), stream));
  }
  template <class T> std::vector<T> download(size_t count) const {
    std::vector<T> v(count);
    CK(lmoe_cuda_memcpy_d2h_async(v.data(), p, int64_t(count * sizeof(T)), stream));
    CK(lmoe_cuda_stream_synchronize(stream));
    return v;
  }
  void poison() { CK(lmoe_cuda_memset_async(p, 0xFF, bytes, stream)); }  // NaN / -1
};

// One matrix kind [groups, rows, cols] made on the device in `dtype`: "bf16", "fp8" (e4m3 codes for
// values in +-400 times per-group scales ~amp/400), "nvfp4" (random e2m1 codes, e4m3 block scales in
// [0.25, 2), per-group scales ~amp/6) or "w8a8" (fp8 with input scales ~1/256); values about
// +-amp. Its buffers are appended to bufs (reserve enough first: they must not move).
inline lmoe_cuda_matrix device_matrix(const std::string& dtype, int64_t groups, int64_t rows, int64_t cols,
                                      uint64_t seed, float amp, std::vector<DBuf>& bufs, void* s) {
  lmoe_cuda_matrix mm{};
  const int64_t n = groups * rows * cols;
  auto buf = [&](int64_t bytes) {
    bufs.emplace_back(bytes < 1 ? 1 : bytes, s);
    return bufs.back().p;
  };
  auto scales = [&](float v, uint64_t sd) {
    void* p = buf(groups * 4);
    CK(lmoe_cuda_fill_uniform(p, LMOE_DTYPE_F32, groups, sd, v, v * 1.25f, s));
    return static_cast<const float*>(p);
  };
  if (dtype == "bf16") {
    mm.format = LMOE_WFMT_BF16;
    mm.data = buf(n * 2);
    CK(lmoe_cuda_fill_uniform(const_cast<void*>(mm.data), LMOE_DTYPE_BF16, n, seed, -amp, amp, s));
  } else if (dtype == "nvfp4") {
    mm.format = LMOE_WFMT_NVFP4;
    mm.data = buf(n / 2);
    CK(lmoe_cuda_fill_uniform(const_cast<void*>(mm.data), LMOE_DTYPE_U8, n / 2, seed, 0.f, 256.f, s));
    void* bs = buf(n / 16);
    CK(lmoe_cuda_fill_uniform(bs, LMOE_DTYPE_F8_E4M3, n / 16, seed + 1000, 0.25f, 2.f, s));
    mm.block_scales = static_cast<const uint8_t*>(bs);
    mm.scales = scales(amp / 6.f, seed + 2000);
  } else {  // fp8, w8a8
    mm.format = LMOE_WFMT_FP8_E4M3;
    mm.data = buf(n);
    CK(lmoe_cuda_fill_uniform(const_cast<void*>(mm.data), LMOE_DTYPE_F8_E4M3, n, seed, -400.f, 400.f, s));
    mm.scales = scales(amp / 400.f, seed + 2000);
    if (dtype == "w8a8") mm.input_scales = scales(1.f / 256.f, seed + 3000);
  }
  return mm;
}

// Returns "" when a usable GPU is present, else the reason.
inline std::string gpu_unavailable_reason() {
  int32_t n = 0;
  if (lmoe_cuda_device_count(&n) != LMOE_OK || n == 0) return lmoe_cuda_last_error();
  if (lmoe_cuda_device_check(0) != LMOE_OK) return lmoe_cuda_last_error();
  return "";
}

// Nemotron 3 Super-like LatentMoE shape (assumed; override in the tools with flags).
inline lmoe_config super_config() {
  lmoe_config c{};
  c.hidden_size = 4096;
  c.latent_size = 1024;
  c.num_experts = 512;
  c.top_k = 22;
  c.expert_intermediate_size = 2688;
  c.shared_intermediate_size = 5376;
  c.activation = LMOE_ACT_RELU2;
  c.scoring = LMOE_SCORING_SIGMOID;
  c.norm_topk_prob = 1;
  c.routed_scaling_factor = 5.0f;
  return c;
}

inline int width(const lmoe_config& c) { return c.latent_size > 0 ? c.latent_size : c.hidden_size; }

// A device matrix descriptor of a plain format (BF16, or F32 for the gate); absent when p is NULL.
inline lmoe_cuda_matrix dmat(const void* p, int format = LMOE_WFMT_BF16) {
  lmoe_cuda_matrix m{};
  m.format = format;
  m.data = p;
  return m;
}

}  // namespace lt
