// The CPU library's thread pool and per-thread scratch. Callers partition the work statically
// (by output rows or tokens), so results never depend on the number of threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "latentmoe.h"

namespace lmoe {

// run(fn) calls fn(thread_index, num_threads) on every thread (the caller is 0) and returns when
// all are done. Exceptions thrown by fn are caught; pool_run returns false then.
int pool_num_threads();
void pool_set_num_threads(int n);
bool pool_run(const std::function<void(int, int)>& fn);

// Runs fn on every pool thread; maps exceptions to a status (and its message).
lmoe_status parallel(const std::function<void(int, int)>& fn);

// Per-thread grow-only scratch (thread_local), slots 0..7 (0-1 gemm.cpp, 2 router, 4-5 arch/); throws std::bad_alloc.
float* thread_scratch(int slot, size_t floats);

// [*b, *e): thread i's share of n items among nt threads.
inline void split_range(int64_t n, int i, int nt, int64_t* b, int64_t* e) {
  *b = n * i / nt;
  *e = n * (i + 1) / nt;
}

}  // namespace lmoe
