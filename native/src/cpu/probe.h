// The machine probes on validated arguments: STREAM-style memory bandwidth
// (lmoe_cpu_membw_probe) and the register-only compute ceilings (lmoe_cpu_peak_probe).
#pragma once
#include <cstdint>

#include "latentmoe.h"

namespace lmoe {

lmoe_status membw_probe(int probe, int64_t array_bytes, int reps, double* best_gbps);

// Register-only compute probe (lmoe_cpu_peak_probe) on validated arguments.
lmoe_status peak_probe(int probe, double seconds, int reps, double* best_gflops);

}  // namespace lmoe
