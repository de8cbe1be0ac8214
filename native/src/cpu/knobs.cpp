// Reads the environment once (knobs.h).
#include "knobs.h"

#include <cstdlib>

namespace lmoe {

const CpuKnobs& knobs() {
  static const CpuKnobs k = [] {
    CpuKnobs v;
    const char* e = std::getenv("LMOE_PHASE_TIMES");
    v.phase_times = e && e[0] && e[0] != '0';
    return v;
  }();
  return k;
}

}  // namespace lmoe
