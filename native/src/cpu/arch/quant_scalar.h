// Scalar decoding of the quantized weight formats (FP8 E4M3, NVFP4) for the GEMM engine: rows are
// expanded in scratch (gemm.cpp stores them as bf16: every e4m3 value and every e2m1 x e4m3 product
// is a bf16) and go through the ISA's bf16-weight kernel, so a quantized product is exact (the
// per-tensor scale is applied after the dot product, as for the other formats) and deterministic
// for any partition or chunking. Slow next to vector kernels that
// read the codes directly; those replace this path format by format.
#pragma once
#include <cstdint>

#include "latentmoe.h"

namespace lmoe {

inline bool is_quantized_format(int format) {
  return format == LMOE_WFMT_FP8_E4M3 || format == LMOE_WFMT_NVFP4;
}

// dst [rows, n] f32 = rows [row0, row0 + rows) of W (n input features) without W.scale:
// FP8: e4m3(code); NVFP4: e2m1(code) * e4m3(block scale).
void dequantize_rows(const lmoe_matrix& W, int64_t row0, int rows, int n, float* dst);

// The value of an OCP e4m3 (FN) byte; 0x7F / 0xFF are NaN.
float e4m3_to_f32(uint8_t code);

}  // namespace lmoe
