// Portable (baseline x86-64) dot-product kernels. Lane layout: 8 partial sums, lane j accumulates
// the products of elements i == j (mod 8) in increasing i, then a fixed pairwise reduction.
#include "arch/arch.h"
#include <cstring>

namespace lmoe {
namespace {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <bool BF16>
inline float dot1(const float* x, const void* wrow, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const uint16_t* wb = (const uint16_t*)wrow;
  const float* wf = (const float*)wrow;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      float w;
      if (BF16) w = bf16_to_f32(wb[i + j]);
      else std::memcpy(&w, wf + i + j, 4);
      acc[j] = acc[j] + w * x[i + j];
    }
  }
  for (int j = 0; i + j < n; ++j) {
    float w;
    if (BF16) w = bf16_to_f32(wb[i + j]);
    else std::memcpy(&w, wf + i + j, 4);
    acc[j] = acc[j] + w * x[i + j];
  }
  float a = (acc[0] + acc[4]) + (acc[2] + acc[6]);
  float b = (acc[1] + acc[5]) + (acc[3] + acc[7]);
  return a + b;
}

}  // namespace

void dot_block_scalar(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw,
                      int wdtype, int n, int nrows, float* out, int64_t ldo) {
  for (int r = 0; r < nrows; ++r) {
    for (int t = 0; t < ntok; ++t) {
      float v;
      if (wdtype == 1)
        v = dot1<true>(X + t * ldx, (const uint16_t*)W + (int64_t)r * ldw, n);
      else
        v = dot1<false>(X + t * ldx, (const float*)W + (int64_t)r * ldw, n);
      out[t * ldo + r] = v;
    }
  }
}

double read_sum_scalar(const float* a, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j];
  for (; i < n; ++i) acc[0] += a[i];
  double s = 0;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

}  // namespace lmoe
