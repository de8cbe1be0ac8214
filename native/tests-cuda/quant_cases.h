// quant_cases.h - lmoe_cuda_test's cases with their own float64 reference (quant_cases.cpp):
// FP8 / NVFP4 weights (weight-only, and W8A8 with input scales), SiLU on them, and relu2's NaN
// propagation. Each case prints its measured errors and counts its checks (common.h).
#pragma once

#include <stdint.h>

namespace lt {

// FP8 / NVFP4 / mixed layers on every path (decode with both register budgets, sorted with the
// CUTLASS and the fallback kernels, the four step entry points), W8A8 included, and the device fill
// of the quantized dtypes. Scaled-down shapes (quick mode).
void run_quant_cases(void* stream, uint64_t seed);

// relu2(NaN) = NaN on every path: a NaN in one expert's up weights makes exactly the tokens routed
// to that expert NaN; a NaN in the shared expert's up weights makes every token NaN.
void run_nan_cases(void* stream, uint64_t seed);

}  // namespace lt
