// Run-time ISA detection and the per-ISA kernel tables.
#include "isa.h"

#include <atomic>

#include "errors.h"

namespace lmoe {
namespace {

int detect_best_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("avx2"))
    return LMOE_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LMOE_ISA_AVX2;
#endif
  return LMOE_ISA_SCALAR;
}

std::atomic<int> g_isa{-1};

const IsaKernels kScalar{dot_block_scalar, read_sum_scalar};
const IsaKernels kAvx2{dot_block_avx2, read_sum_avx2};
const IsaKernels kAvx512{dot_block_avx512, read_sum_avx512};

}  // namespace

int best_isa() {
  static const int best = detect_best_isa();
  return best;
}

int current_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  return v < 0 ? best_isa() : v;
}

lmoe_status set_isa(int isa) {
  if (isa < LMOE_ISA_SCALAR || isa > LMOE_ISA_AVX512) {
    set_error("lmoe_cpu_set_isa: unknown isa %d", isa);
    return LMOE_ERR_INVALID_ARGUMENT;
  }
  if (isa > best_isa()) {
    set_error("lmoe_cpu_set_isa: isa %d is not supported by this CPU (best is %d)", isa,
              best_isa());
    return LMOE_ERR_UNSUPPORTED;
  }
  g_isa.store(isa);
  return LMOE_OK;
}

const IsaKernels& isa_kernels() {
  switch (current_isa()) {
    case LMOE_ISA_AVX512: return kAvx512;
    case LMOE_ISA_AVX2: return kAvx2;
    default: return kScalar;
  }
}

}  // namespace lmoe
