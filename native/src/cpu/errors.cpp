// The calling thread's last error message.
#include "errors.h"

#include <cstdarg>
#include <cstdio>
#include <string>

namespace lmoe {
namespace {
thread_local std::string t_error;
}  // namespace

void set_error(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  try {
    t_error = buf;
  } catch (...) {
  }
}

void clear_error() { t_error.clear(); }

const char* last_error() { return t_error.c_str(); }

}  // namespace lmoe
