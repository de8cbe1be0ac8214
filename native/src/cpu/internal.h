// Internal declarations of the CPU backend (not part of the ABI).
#pragma once
#include <cstdint>
#include <cstddef>
#include <functional>

namespace lmoe {

// out[t*ldo + r] = sum_i X[t*ldx + i] * W[r*ldw + i]   for t < ntok, r < nrows, i < n.
// W is bf16 (wdtype 1) or f32 (wdtype 0), any 2-byte alignment. Every output element is computed
// with the same per-ISA lane layout and reduction order whatever ntok/nrows are, so results never
// depend on how the caller partitions rows or tokens.
typedef void (*DotBlockFn)(const float* X, int64_t ldx, int ntok, const void* W, int64_t ldw,
                           int wdtype, int n, int nrows, float* out, int64_t ldo);

void dot_block_scalar(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                      int64_t);
void dot_block_avx2(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                    int64_t);
void dot_block_avx512(const float*, int64_t, int, const void*, int64_t, int, int, int, float*,
                      int64_t);

// Read-bandwidth probe loop (per ISA, so the probe is not limited by the baseline's SSE2).
double read_sum_scalar(const float* a, int64_t n);
double read_sum_avx2(const float* a, int64_t n);
double read_sum_avx512(const float* a, int64_t n);

// Thread pool: run(fn) calls fn(thread_index, num_threads) on every thread (the caller is 0)
// and returns when all are done. Exceptions thrown by fn are caught; run returns false then.
int pool_num_threads();
void pool_set_num_threads(int n);
bool pool_run(const std::function<void(int, int)>& fn);

// Per-thread grow-only scratch (thread_local); throws std::bad_alloc.
float* thread_scratch(int slot, size_t floats);

}  // namespace lmoe
