// Per-phase wall times of one lmoe_cpu_forward call, printed to stderr when LMOE_PHASE_TIMES is
// set (knobs.h); a no-op otherwise.
#pragma once
#include <chrono>
#include <cstdio>

#include "knobs.h"

namespace lmoe {

struct PhaseTimer {
  bool on;
  std::chrono::steady_clock::time_point t;
  char buf[512];
  int len = 0;
  PhaseTimer() : on(knobs().phase_times) {
    if (on) t = std::chrono::steady_clock::now();
  }
  // The phase that ends now, and the weight bytes it streamed.
  void mark(const char* name, double bytes) {
    if (!on) return;
    auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    t = now;
    if (len < (int)sizeof buf - 64)
      len += std::snprintf(buf + len, sizeof buf - len, " %s %.3f ms %.1f GB/s;", name, s * 1e3,
                           bytes > 0 ? bytes / s / 1e9 : 0.0);
  }
  ~PhaseTimer() {
    if (on && len > 0) std::fprintf(stderr, "lmoe phases:%s\n", buf);
  }
};

}  // namespace lmoe
