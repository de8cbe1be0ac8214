// The per-ISA kernels (arch/scalar.cpp, arch/avx2.cpp, arch/avx512.cpp; the latter two compiled
// with their ISA's flags, see CMakeLists.txt). Only isa.cpp picks among them: everything else
// calls them through the table of isa.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lmoe {

// out[t*ldo + r] = sum_i X[t*ldx + i] * W[r*ldw + i]   for t < ntok, r < nrows, i < n.
// W is bf16 (wdtype 1) or f32 (wdtype 0), any 2-byte alignment. Every output element is computed
// with the same per-ISA lane layout and reduction order whatever ntok/nrows are, so results never
// depend on how the caller partitions rows or tokens.
typedef void (*DotBlockFn)(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw,
                           int wdtype, int n, int nrows, float* out, int64_t ldo);
// Read-bandwidth probe loop (per ISA, so the probe is not limited by the baseline's SSE2).
typedef double (*ReadSumFn)(const float* a, int64_t n);

void dot_block_scalar(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                      int64_t);
void dot_block_avx2(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                    int64_t);
void dot_block_avx512(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                      int64_t);

double read_sum_scalar(const float* a, int64_t n);
double read_sum_avx2(const float* a, int64_t n);
double read_sum_avx512(const float* a, int64_t n);

}  // namespace lmoe
