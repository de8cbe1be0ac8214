// What the GEMM engine does with a block of dot products before it stores them: the activation
// functions and the epilogues, in one place. A new activation (e.g. a non-gated SiLU) is one more
// Epi value and one more case below; the step files only name it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "latentmoe.h"

namespace lmoe {

enum Epi {
  EPI_STORE,    // y = v
  EPI_RELU2,    // y = relu(v)^2
  EPI_SWIGLU,   // y = silu(g) * v, g the gate rows' dot products
  EPI_SILU,     // y = silu(v) (non-gated)
  EPI_ADD,      // y = y + v
  EPI_SCATTER   // the row of token t goes to rows scatter[t*K + k] of Y, k < K
};

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

// NaN propagates as in torch (relu(NaN) = NaN); -0 and +0 both give +0.
inline float relu2(float v) {
  float a = v < 0.0f ? 0.0f : v;
  return a * a;
}

// The epilogue of an expert's (or the shared expert's) first layer for an lmoe_activation.
inline int activation_epi(int activation) {
  return activation == LMOE_ACT_SWIGLU ? EPI_SWIGLU : activation == LMOE_ACT_SILU ? EPI_SILU : EPI_RELU2;
}

// Applies epilogue `epi` to token t's `rows` dot products v (gate dot products g for SwiGLU),
// writing columns [r, r + rows) of its output row(s) in Y [.., ldy].
inline void apply_epilogue(int epi, const float* v, const float* g, int rows, float* Y,
                           int64_t ldy, int t, int r, const int32_t* scatter, int K) {
  switch (epi) {
    case EPI_STORE: {
      float* y = Y + t * ldy + r;
      std::memcpy(y, v, rows * sizeof(float));
      break;
    }
    case EPI_RELU2: {
      float* y = Y + t * ldy + r;
      for (int q = 0; q < rows; ++q) y[q] = relu2(v[q]);
      break;
    }
    case EPI_SWIGLU: {
      float* y = Y + t * ldy + r;
      for (int q = 0; q < rows; ++q) y[q] = silu(g[q]) * v[q];
      break;
    }
    case EPI_SILU: {
      float* y = Y + t * ldy + r;
      for (int q = 0; q < rows; ++q) y[q] = silu(v[q]);
      break;
    }
    case EPI_ADD: {
      float* y = Y + t * ldy + r;
      for (int q = 0; q < rows; ++q) y[q] = y[q] + v[q];
      break;
    }
    case EPI_SCATTER: {
      for (int k = 0; k < K; ++k) {
        float* y = Y + (int64_t)scatter[(int64_t)t * K + k] * ldy + r;
        std::memcpy(y, v, rows * sizeof(float));
      }
      break;
    }
  }
}

}  // namespace lmoe
