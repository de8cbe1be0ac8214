// STREAM-style memory-bandwidth probe (lmoe_cpu_membw_probe) on validated arguments.
#pragma once
#include <cstdint>

#include "latentmoe.h"

namespace lmoe {

lmoe_status membw_probe(int probe, int64_t array_bytes, int reps, double* best_gbps);

}  // namespace lmoe
