// Shared helpers of the CPU backend's C ABI implementation.
#pragma once
#include "latentmoe.h"
#include "internal.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

namespace lmoe {

void set_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void clear_error();
DotBlockFn current_dot();
int current_isa();
double current_read_sum(const float* a, int64_t n);

// Runs fn on every pool thread; maps exceptions to a status.
lmoe_status parallel(const std::function<void(int, int)>& fn);

// Wraps an entry point body: clears the error, maps exceptions to statuses.
template <class F>
lmoe_status guarded(F&& f) {
  clear_error();
  try {
    return f();
  } catch (const std::bad_alloc&) {
    set_error("out of memory");
    return LMOE_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_error("internal error: %s", e.what());
    return LMOE_ERR_INTERNAL;
  } catch (...) {
    set_error("internal error");
    return LMOE_ERR_INTERNAL;
  }
}

inline void split_range(int64_t n, int i, int nt, int64_t* b, int64_t* e) {
  *b = n * i / nt;
  *e = n * (i + 1) / nt;
}

}  // namespace lmoe
