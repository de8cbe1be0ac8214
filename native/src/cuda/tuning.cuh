// tuning.cuh - the knobs of the CUDA backend (lmoe_cuda_tuning, latentmoe_cuda.h). tuning.cu is
// the only unit of liblatentmoe_cuda.so that reads the environment.
#pragma once

#include "latentmoe_cuda.h"

namespace lmoe_cuda {

using Tuning = lmoe_cuda_tuning;

// A copy of the knobs in effect: each entry point takes one and passes it down, so one call
// never mixes two settings.
Tuning tuning();

}  // namespace lmoe_cuda
