// Run-time ISA detection and the per-ISA kernel tables. The ISAs are ordered: each one's CPU
// features include the previous one's (AMX implies AVX512-BF16 on every CPU that has it; the
// check below does not rely on it).
#include "isa.h"

#include <atomic>

#include "errors.h"

namespace lmoe {
namespace {

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool has_avx512() {
  __builtin_cpu_init();
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

std::atomic<int> g_isa{-1};

// AVX512-BF16 CPUs run the exact mode on the AVX-512F FMA kernel; AMX CPUs run both precisions
// on the tiles (exact: 3 bf16 terms per activation), F32 weights on AVX-512F.
const IsaKernels kScalar{&kScalarExact, &kScalarBf16, read_sum_scalar, LMOE_PEAK_SSE2};
const IsaKernels kAvx2{&kAvx2Exact, &kAvx2Bf16, read_sum_avx2, LMOE_PEAK_FMA_AVX2};
const IsaKernels kAvx512{&kAvx512Exact, &kAvx512Bf16Emu, read_sum_avx512, LMOE_PEAK_FMA_AVX512};
const IsaKernels kAvx512Bf16{&kAvx512Exact, &kAvx512Bf16Dp, read_sum_avx512, LMOE_PEAK_DPBF16};
const IsaKernels kAmx{&kAmxExact, &kAmxBf16, read_sum_avx512, LMOE_PEAK_AMX_BF16};

}  // namespace

bool isa_supported(int isa) {
  switch (isa) {
    case LMOE_ISA_SCALAR: return true;
    case LMOE_ISA_AVX2: return has_avx2();
    case LMOE_ISA_AVX512: return has_avx512();
    case LMOE_ISA_AVX512_BF16: return has_avx512() && cpu_has_avx512_bf16();
    case LMOE_ISA_AMX: return has_avx512() && cpu_has_amx_bf16();
    default: return false;
  }
}

int best_isa() {
  static const int best = [] {
    for (int isa = LMOE_ISA_AMX; isa > LMOE_ISA_SCALAR; --isa)
      if (isa_supported(isa)) return isa;
    return (int)LMOE_ISA_SCALAR;
  }();
  return best;
}

int current_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  return v < 0 ? best_isa() : v;
}

lmoe_status set_isa(int isa) {
  if (isa < LMOE_ISA_SCALAR || isa > LMOE_ISA_AMX) {
    set_error("lmoe_cpu_set_isa: unknown isa %d", isa);
    return LMOE_ERR_INVALID_ARGUMENT;
  }
  if (!isa_supported(isa)) {
    set_error("lmoe_cpu_set_isa: isa %d is not supported by this CPU (best is %d)", isa,
              best_isa());
    return LMOE_ERR_UNSUPPORTED;
  }
  g_isa.store(isa);
  return LMOE_OK;
}

const IsaKernels& isa_kernels_of(int isa) {
  switch (isa) {
    case LMOE_ISA_AMX: return kAmx;
    case LMOE_ISA_AVX512_BF16: return kAvx512Bf16;
    case LMOE_ISA_AVX512: return kAvx512;
    case LMOE_ISA_AVX2: return kAvx2;
    default: return kScalar;
  }
}

const IsaKernels& isa_kernels() { return isa_kernels_of(current_isa()); }

}  // namespace lmoe
