// Portable decoding of FP8 E4M3 and NVFP4 weights (quant_scalar.h).
#include "arch/quant_scalar.h"

#include <cmath>
#include <cstring>

namespace lmoe {
namespace {

struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int c = 0; c < 256; ++c) {
      const int sign = c >> 7, exp = (c >> 3) & 0xF, man = c & 7;
      float x;
      if (exp == 0xF && man == 7) x = std::nanf("");
      else if (exp == 0) x = std::ldexp((float)man, -9);  // subnormal: man/8 * 2^-6
      else x = std::ldexp((float)(8 + man), exp - 10);  // (1 + man/8) * 2^(exp-7)
      v[c] = sign ? -x : x;
    }
  }
};

const E4m3Table& e4m3() {
  static const E4m3Table t;
  return t;
}

// e2m1: bit 3 sign, bits 0-2 index into {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
constexpr float kE2m1[16] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                             -0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

}  // namespace

float e4m3_to_f32(uint8_t code) { return e4m3().v[code]; }

void dequantize_rows(const lmoe_matrix& W, int64_t row0, int rows, int n, float* dst) {
  const float* t = e4m3().v;
  if (W.format == LMOE_WFMT_FP8_E4M3) {
    const uint8_t* src = (const uint8_t*)W.data + row0 * n;
    for (int64_t i = 0; i < (int64_t)rows * n; ++i) dst[i] = t[src[i]];
    return;
  }
  // NVFP4: byte j of a row holds columns 2j (low nibble) and 2j+1 (high nibble); one e4m3 scale
  // per 16 columns. e2m1 x e4m3 has at most 6 significant bits: the product is exact in f32.
  const int64_t row_bytes = n / 2, blocks = n / 16;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* codes = (const uint8_t*)W.data + (row0 + r) * row_bytes;
    const uint8_t* scales = W.block_scales + (row0 + r) * blocks;
    float* out = dst + (int64_t)r * n;
    for (int64_t b = 0; b < blocks; ++b) {
      const float s = t[scales[b]];
      for (int j = 0; j < 8; ++j) {
        const uint8_t byte = codes[b * 8 + j];
        out[b * 16 + 2 * j] = kE2m1[byte & 0xF] * s;
        out[b * 16 + 2 * j + 1] = kE2m1[byte >> 4] * s;
      }
    }
  }
}

}  // namespace lmoe
