// Errors of the CPU library: the calling thread's message (lmoe_last_error), the status of a
// failed check, and the wrapper that turns exceptions into statuses at every entry point.
#pragma once
#include "latentmoe.h"

#include <exception>
#include <new>

namespace lmoe {

void set_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void clear_error();
const char* last_error();

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

}  // namespace lmoe

// Returns LMOE_ERR_INVALID_ARGUMENT with a message from the enclosing function when cond fails.
#define CHECK_ARG(cond, ...)            \
  do {                                  \
    if (!(cond)) {                      \
      ::lmoe::set_error(__VA_ARGS__);   \
      return LMOE_ERR_INVALID_ARGUMENT; \
    }                                   \
  } while (0)

// Returns a failed status from the enclosing function.
#define TRY(expr)                 \
  do {                            \
    lmoe_status s_ = (expr);      \
    if (s_ != LMOE_OK) return s_; \
  } while (0)
