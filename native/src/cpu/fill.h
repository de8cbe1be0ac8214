// lmoe_fill_uniform on validated arguments.
#pragma once
#include <cstdint>

#include "latentmoe.h"

namespace lmoe {

// dst[0..count) uniform in [lo, hi) from a counter-based hash of (seed, index), stored as dtype
// (F32, BF16 or F16, round to nearest even): the same values for any thread count.
lmoe_status fill_uniform(void* dst, int dtype, int64_t count, uint64_t seed, float lo, float hi);

}  // namespace lmoe
