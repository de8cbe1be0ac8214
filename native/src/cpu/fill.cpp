// Seeded uniform fill (fill.h) and the f32 -> bf16 / f16 conversions it stores with.
#include "fill.h"

#include <cmath>
#include <cstring>

#include "thread_pool.h"

namespace lmoe {
namespace {

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

lmoe_status fill_uniform(void* dst, int dtype, int64_t count, uint64_t seed, float lo, float hi) {
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
}

}  // namespace lmoe
