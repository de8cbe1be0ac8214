// decode/trace.cuh - the per-block timeline of the decode kernels (lmoe_cuda_debug_trace,
// debug_trace.h; the native bench's --trace).
// Part of the decode translation unit: included by decode/decode.cu only (its kernels share the
// trace symbols of decode/trace.cuh, which need one translation unit without relocatable code).
#pragma once

#include "debug_trace.h"
#include "decode/primitives.cuh"

namespace lmoe_cuda {
namespace {

// With a buffer set (lmoe_cuda_debug_trace, debug_trace.h; the native bench's --trace) thread 0 of
// every decode block records its kernel, SM and %globaltimer at start and end: where the forward
// leaves the memory pipe idle (kernel boundaries, tails, waits). Without a buffer it costs one
// load per block.
__device__ DebugTraceRecord* g_trace;
__device__ int g_trace_cap;
__device__ int g_trace_n;
__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
struct BlockTrace {
  DebugTraceRecord* buf = nullptr;
  uint64_t t0 = 0, t_ready = 0, t_done = 0;
  int tag;
  __device__ explicit BlockTrace(int tag_) : tag(tag_) {
    if (threadIdx.x == 0 && tag_ != 0) {
      buf = g_trace;
      if (buf) t0 = t_ready = global_ns();
    }
  }
  // the block's dependency wait is over
  __device__ void ready() {
    if (buf) t_ready = global_ns();
  }
  // the block's work is done (before a trailing wait that only orders its completion)
  __device__ void done() {
    if (buf) t_done = global_ns();
  }
  __device__ ~BlockTrace() {
    if (!buf) return;
    uint32_t sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    const int i = atomicAdd(&g_trace_n, 1);
    if (i < g_trace_cap)
      buf[i] = DebugTraceRecord{uint32_t(tag), sm, t0, t_ready, t_done ? t_done : global_ns()};
  }
};

}  // namespace
}  // namespace lmoe_cuda
