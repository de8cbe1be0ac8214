// Register-only compute probes (lmoe_cpu_peak_probe): the machine's compute ceiling for each
// kernel family, measured without memory traffic. The loops are inline asm (the compiler can
// neither spill nor drop them) with enough independent accumulators to cover latency x ports:
// 24 zmm chains (FMA, vdpbf16ps), 12 ymm / 12 xmm chains, AMX: 4 C tiles x (2 A, 2 B) tiles.
// Operands are random: power, hence clocks, depends on the data (AMX ran ~25% faster on constant
// tiles than on random ones on a Sapphire Rapids), and a GEMM multiplies real values.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "arch/arch.h"
#include "latentmoe.h"

namespace lmoe {
namespace {

alignas(64) float g_rnd_f32[32];
alignas(64) uint16_t g_rnd_bf16[2][512];

void init_operands() {
  static const bool done = [] {
    uint32_t x = 12345;
    auto next = [&] { x = x * 1664525u + 1013904223u; return x; };
    for (float& v : g_rnd_f32) v = (float)((int)(next() >> 9) % 2001 - 1000) * 1e-6f;
    for (auto& row : g_rnd_bf16)  // |v| in [2^-8, 2^-7), random mantissa and sign
      for (uint16_t& v : row)
        v = (uint16_t)(0x3b80 + (next() >> 24) % 0x80) | (uint16_t)((next() >> 31) << 15);
    return true;
  }();
  (void)done;
}

#define LMOE_ACC24 "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23"
#define LMOE_ACC12 "0,1,2,3,4,5,6,7,8,9,10,11"
#define LMOE_CLOBBER24                                                                         \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",    \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", \
      "xmm21", "xmm22", "xmm23"
#define LMOE_CLOBBER12                                                                       \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
      "xmm11"

// One iteration: 24 x vfmadd231ps zmm (24 * 32 flops).
__attribute__((target("avx512f"), noinline)) void loop_fma512(int64_t iters) {
  __asm__ volatile(
      "vmovups %[c], %%zmm30\n\tvmovups 64+%[c], %%zmm31\n\t"
      ".irp i," LMOE_ACC24 "\n\tvxorps %%zmm\\i, %%zmm\\i, %%zmm\\i\n\t.endr\n"
      "1:\n\t"
      ".irp i," LMOE_ACC24 "\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm\\i\n\t.endr\n\t"
      "dec %[it]\n\tjnz 1b\n"
      : [it] "+r"(iters)
      : [c] "m"(*(const float(*)[32])g_rnd_f32)
      : LMOE_CLOBBER24, "xmm30", "xmm31", "cc");
}

// One iteration: 12 x vfmadd231ps ymm (12 * 16 flops).
__attribute__((target("avx2,fma"), noinline)) void loop_fma256(int64_t iters) {
  __asm__ volatile(
      "vmovups %[c], %%ymm14\n\tvmovups 32+%[c], %%ymm15\n\t"
      ".irp i," LMOE_ACC12 "\n\tvxorps %%ymm\\i, %%ymm\\i, %%ymm\\i\n\t.endr\n"
      "1:\n\t"
      ".irp i," LMOE_ACC12 "\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm\\i\n\t.endr\n\t"
      "dec %[it]\n\tjnz 1b\n"
      : [it] "+r"(iters)
      : [c] "m"(*(const float(*)[32])g_rnd_f32)
      : LMOE_CLOBBER12, "xmm14", "xmm15", "cc");
}

// One iteration: 12 x (mulps + addps) xmm (12 * 8 flops): the baseline's separate multiply and
// add, as the scalar kernels (no FMA) compile.
__attribute__((noinline)) void loop_sse2(int64_t iters) {
  __asm__ volatile(
      "movups %[c], %%xmm14\n\tmovups 16+%[c], %%xmm15\n\t"
      ".irp i," LMOE_ACC12 "\n\txorps %%xmm\\i, %%xmm\\i\n\t.endr\n"
      "1:\n\t"
      ".irp i," LMOE_ACC12 "\n\tmovaps %%xmm14, %%xmm13\n\tmulps %%xmm15, %%xmm13\n\taddps %%xmm13, %%xmm\\i\n\t.endr\n\t"
      "dec %[it]\n\tjnz 1b\n"
      : [it] "+r"(iters)
      : [c] "m"(*(const float(*)[32])g_rnd_f32)
      : LMOE_CLOBBER12, "xmm13", "xmm14", "xmm15", "cc");
}

// One iteration: 24 x vdpbf16ps zmm (24 * 64 flops).
__attribute__((target("avx512f,avx512bf16"), noinline)) void loop_dpbf16(int64_t iters) {
  __asm__ volatile(
      "vmovups %[c], %%zmm30\n\tvmovups 64+%[c], %%zmm31\n\t"
      ".irp i," LMOE_ACC24 "\n\tvxorps %%zmm\\i, %%zmm\\i, %%zmm\\i\n\t.endr\n"
      "1:\n\t"
      ".irp i," LMOE_ACC24 "\n\tvdpbf16ps %%zmm30, %%zmm31, %%zmm\\i\n\t.endr\n\t"
      "dec %[it]\n\tjnz 1b\n"
      : [it] "+r"(iters)
      : [c] "m"(*(const uint16_t(*)[64])g_rnd_bf16[0])
      : LMOE_CLOBBER24, "xmm30", "xmm31", "cc");
}

struct alignas(64) TileCfg {
  uint8_t palette, start_row, rsv[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// One iteration: 4 x tdpbf16ps 16x16x32 (4 * 16384 flops). Leaves the tile state released.
__attribute__((target("amx-tile,amx-bf16"), noinline)) void loop_amx(int64_t iters) {
  static thread_local TileCfg cfg;  // not on the stack (see amx.cpp)
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, g_rnd_bf16[0], 64);
  _tile_loadd(5, g_rnd_bf16[1], 64);
  _tile_loadd(6, g_rnd_bf16[1], 64);
  _tile_loadd(7, g_rnd_bf16[0], 64);
  for (int64_t it = 0; it < iters; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_release();
}

}  // namespace

double peak_loop(int probe, int64_t iters) {
  init_operands();
  switch (probe) {
    case LMOE_PEAK_SSE2: loop_sse2(iters); return 96.0 * iters;
    case LMOE_PEAK_FMA_AVX2: loop_fma256(iters); return 192.0 * iters;
    case LMOE_PEAK_FMA_AVX512: loop_fma512(iters); return 768.0 * iters;
    case LMOE_PEAK_DPBF16: loop_dpbf16(iters); return 1536.0 * iters;
    case LMOE_PEAK_AMX_BF16: loop_amx(iters); return 65536.0 * iters;
    default: return 0;
  }
}

}  // namespace lmoe
