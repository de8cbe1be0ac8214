// Portable (baseline x86-64) kernels: exact, and the bf16 mode as the same arithmetic on
// activations rounded to bf16. Lane layout: 8 partial sums, lane j accumulates the products of
// elements i == j (mod 8) in increasing i (multiply, then add: no FMA), then a fixed pairwise
// reduction. The same for every token count.
#include "arch/arch.h"
#include <cstring>

namespace lmoe {
namespace {

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

size_t xprep_bytes(int ntok, int n, int) { return (size_t)ntok * n * sizeof(float) + 64; }

template <bool ROUND>
void xprep(const float* X, int64_t ldx, int, int t0, int t1, int n, int, void* dst) {
  float* Xp = (float*)dst;
  for (int t = t0; t < t1; ++t)
    for (int i = 0; i < n; ++i) {
      const float v = X[(int64_t)t * ldx + i];
      Xp[(int64_t)t * n + i] = ROUND ? round_bf16(v) : v;
    }
}

void gemm(const void* xp, int ntok, int n, const void* W, int64_t ldw, int wfmt, int nrows,
          float* out, int64_t ldo) {
  const float* X = (const float*)xp;
  for (int r = 0; r < nrows; ++r)
    for (int t = 0; t < ntok; ++t)
      out[t * ldo + r] =
          wfmt == 1 ? dot1<true>(X + (int64_t)t * n, (const uint16_t*)W + (int64_t)r * ldw, n)
                    : dot1<false>(X + (int64_t)t * n, (const float*)W + (int64_t)r * ldw, n);
}

}  // namespace

const GemmKernel kScalarExact = {"scalar-exact", 1, 1, 8, xprep_bytes, xprep<false>, gemm, nullptr};
const GemmKernel kScalarBf16 = {"scalar-bf16emu", 1, 1, 8, xprep_bytes, xprep<true>, gemm, nullptr};

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
