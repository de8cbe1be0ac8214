/* debug_trace.h - per-block timeline of the decode kernels, for the native bench (--trace).
 * A diagnostic entry point of liblatentmoe_cuda.so, not part of the C ABI (latentmoe_cuda.h):
 * it may change with the kernels. Plain C, so that host-only C++ can include it. */
#ifndef LATENTMOE_CUDA_DEBUG_TRACE_H
#define LATENTMOE_CUDA_DEBUG_TRACE_H

#include <stdint.h>

#include "latentmoe_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One decode block: which launch (tag), the SM it ran on, %globaltimer (ns) of thread 0 when the
 * block started, when its inputs were ready (after its dependency wait: the PDL wait or the top-K
 * counter; = start where it has none) and when it ended. */
typedef struct DebugTraceRecord {
  uint32_t tag;
  uint32_t sm;
  uint64_t t0_ns;
  uint64_t ready_ns;
  uint64_t t1_ns;
} DebugTraceRecord;

enum DebugTraceTag {
  TRACE_NONE = 0,
  TRACE_DENSE_A = 1,     /* router + W_down + shared up */
  TRACE_TOPK = 2,        /* top-K blocks of kernel B */
  TRACE_SDOWN = 3,       /* shared-down blocks of kernel B */
  TRACE_FC1 = 4,
  TRACE_FC2 = 5,
  TRACE_DENSE_E = 6,     /* W_up + shared add */
  TRACE_FC1_STREAM = 7,  /* LMOE_CUDA_DEC_STREAM kernels */
  TRACE_FC2_STREAM = 8,
  TRACE_FUSED_ROUTER = 10, /* the fused kernel's stages, in task order: 10 + stage */
  TRACE_FUSED_WDOWN = 11,
  TRACE_FUSED_TOPK = 12,
  TRACE_FUSED_SUP = 13,
  TRACE_FUSED_FC1 = 14,
  TRACE_FUSED_SDOWN = 15,
  TRACE_FUSED_FC2 = 16,
  TRACE_FUSED_WUP = 17
};

/* Start recording into records[0, capacity) (device memory), or stop (records = NULL). Resets the
 * count. Not stream-ordered: call it with the device idle. */
lmoe_status lmoe_cuda_debug_trace(DebugTraceRecord* records, int64_t capacity);
/* Records written since the last lmoe_cuda_debug_trace call (may exceed the capacity: the rest
 * were dropped). Synchronises the device. */
lmoe_status lmoe_cuda_debug_trace_count(int64_t* count);

#ifdef __cplusplus
}
#endif
#endif
