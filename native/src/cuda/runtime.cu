// runtime.cu - errors, devices, streams, memory, events, graphs, fill.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mutex>

#include <cuda_fp8.h>

#include "common.cuh"

namespace lmoe_cuda {

static thread_local char g_msg[1024] = "";

lmoe_status set_error(lmoe_status st, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  return st;
}

void clear_error() { g_msg[0] = '\0'; }

lmoe_status cuda_error(cudaError_t err, const char* what) {
  const char* name = cudaGetErrorName(err);
  const char* str = cudaGetErrorString(err);
  if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice)
    return set_error(LMOE_ERR_CUDA, "%s: no usable CUDA driver/GPU: %s: %s", what, name, str);
  return set_error(LMOE_ERR_CUDA, "%s: %s: %s", what, name, str);
}

lmoe_status current_sm_count(int* sm_count, int* device) {
  static std::mutex mu;
  static int cache[64] = {0};
  int dev = 0;
  LMOE_CU(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return set_error(LMOE_ERR_UNSUPPORTED, "device id %d >= 64", dev);
  std::lock_guard<std::mutex> lock(mu);
  if (cache[dev] == 0) {
    int v = 0;
    LMOE_CU(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    cache[dev] = v;
  }
  *sm_count = cache[dev];
  if (device) *device = dev;
  return LMOE_OK;
}

int sm_count_or_default() {
  int sm = 0, dev = 0;
  if (current_sm_count(&sm, &dev) != LMOE_OK || sm <= 0) {
    clear_error();
    (void)cudaGetLastError();
    return 256;
  }
  return sm;
}

// counter-based hash (splitmix64 of seed ^ index)
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// T(v); U8: floor(v) clamped to 0..255; F8_E4M3: rounded to nearest, saturated to +-448.
template <class T>
__device__ __forceinline__ T fill_value(float v) { return T(v); }
template <>
__device__ __forceinline__ uint8_t fill_value<uint8_t>(float v) {
  const float f = floorf(v);
  return uint8_t(f < 0.f ? 0.f : f > 255.f ? 255.f : f);
}
template <>
__device__ __forceinline__ __nv_fp8_e4m3 fill_value<__nv_fp8_e4m3>(float v) {
  __nv_fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
  return r;
}

template <class T>
__global__ void fill_kernel(T* dst, int64_t count, uint64_t seed, float lo, float hi) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    uint64_t h = mix64(seed * 0xD1B54A32D192ED03ull ^ mix64(uint64_t(i)));
    float u = float(h >> 40) * (1.0f / 16777216.0f);  // [0,1)
    float v = lo + (hi - lo) * u;
    if (v >= hi) v = lo;
    dst[i] = fill_value<T>(v);
  }
}

}  // namespace lmoe_cuda

using namespace lmoe_cuda;

#define API_BEGIN clear_error()

LMOE_CUDA_API int32_t lmoe_cuda_abi_version(void) { return LMOE_CUDA_ABI_VERSION; }
LMOE_CUDA_API const char* lmoe_cuda_last_error(void) { return g_msg; }

LMOE_CUDA_API lmoe_status lmoe_cuda_device_count(int32_t* count) {
  API_BEGIN;
  if (!count) return set_error(LMOE_ERR_INVALID_ARGUMENT, "count is NULL");
  *count = 0;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_error(e, "cudaGetDeviceCount");
  }
  *count = n;
  if (n == 0) return set_error(LMOE_ERR_CUDA, "cudaGetDeviceCount: no CUDA device");
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_device_check(int32_t device) {
  API_BEGIN;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_error(e, "cudaGetDeviceCount");
  }
  if (device < 0 || device >= n)
    return set_error(LMOE_ERR_CUDA, "device %d does not exist (%d CUDA devices)", device, n);
  int major = 0, minor = 0;
  LMOE_CU(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  LMOE_CU(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (major != 9 || minor != 0)
    return set_error(LMOE_ERR_UNSUPPORTED,
                     "device %d has compute capability %d.%d; this build has sm_90a code only",
                     device, major, minor);
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_device_info(int32_t device, int32_t* cc_major,
                                                int32_t* cc_minor, int32_t* sm_count,
                                                int64_t* total_mem_bytes, char* name,
                                                int32_t name_len) {
  API_BEGIN;
  cudaDeviceProp p;
  LMOE_CU(cudaGetDeviceProperties(&p, device));
  if (cc_major) *cc_major = p.major;
  if (cc_minor) *cc_minor = p.minor;
  if (sm_count) *sm_count = p.multiProcessorCount;
  if (total_mem_bytes) *total_mem_bytes = int64_t(p.totalGlobalMem);
  if (name && name_len > 0) {
    strncpy(name, p.name, size_t(name_len) - 1);
    name[name_len - 1] = '\0';
  }
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_set_device(int32_t device) {
  API_BEGIN;
  LMOE_CU(cudaSetDevice(device));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_get_device(int32_t* device) {
  API_BEGIN;
  if (!device) return set_error(LMOE_ERR_INVALID_ARGUMENT, "device is NULL");
  int d = 0;
  LMOE_CU(cudaGetDevice(&d));
  *device = d;
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_device_synchronize(void) {
  API_BEGIN;
  LMOE_CU(cudaDeviceSynchronize());
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_stream_create(void** stream) {
  API_BEGIN;
  if (!stream) return set_error(LMOE_ERR_INVALID_ARGUMENT, "stream is NULL");
  cudaStream_t s = nullptr;
  LMOE_CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_stream_destroy(void* stream) {
  API_BEGIN;
  if (!stream) return LMOE_OK;
  LMOE_CU(cudaStreamDestroy(static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_stream_synchronize(void* stream) {
  API_BEGIN;
  LMOE_CU(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_malloc_async(void** ptr, int64_t bytes, void* stream) {
  API_BEGIN;
  if (!ptr) return set_error(LMOE_ERR_INVALID_ARGUMENT, "ptr is NULL");
  *ptr = nullptr;
  if (bytes < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "bytes %lld < 0", (long long)bytes);
  if (bytes == 0) return LMOE_OK;
  cudaError_t e = cudaMallocAsync(ptr, size_t(bytes), static_cast<cudaStream_t>(stream));
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return set_error(LMOE_ERR_OUT_OF_MEMORY, "cudaMallocAsync(%lld bytes): out of device memory",
                     (long long)bytes);
  }
  if (e != cudaSuccess) return cuda_error(e, "cudaMallocAsync");
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_free_async(void* ptr, void* stream) {
  API_BEGIN;
  if (!ptr) return LMOE_OK;
  LMOE_CU(cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_mempool_set_release_threshold(int64_t bytes) {
  API_BEGIN;
  int dev = 0;
  LMOE_CU(cudaGetDevice(&dev));
  cudaMemPool_t pool;
  LMOE_CU(cudaDeviceGetDefaultMemPool(&pool, dev));
  uint64_t v = bytes < 0 ? UINT64_MAX : uint64_t(bytes);
  LMOE_CU(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &v));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_host_alloc(void** ptr, int64_t bytes) {
  API_BEGIN;
  if (!ptr || bytes < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "bad host_alloc arguments");
  *ptr = nullptr;
  if (bytes == 0) return LMOE_OK;
  cudaError_t e = cudaMallocHost(ptr, size_t(bytes));
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return set_error(LMOE_ERR_OUT_OF_MEMORY, "cudaMallocHost(%lld bytes) failed", (long long)bytes);
  }
  if (e != cudaSuccess) return cuda_error(e, "cudaMallocHost");
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_host_free(void* ptr) {
  API_BEGIN;
  if (!ptr) return LMOE_OK;
  LMOE_CU(cudaFreeHost(ptr));
  return LMOE_OK;
}

static lmoe_status copy_async(void* dst, const void* src, int64_t bytes, cudaMemcpyKind kind,
                              void* stream, const char* what) {
  if (bytes < 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: bytes < 0", what);
  if (bytes == 0) return LMOE_OK;
  if (!dst || !src) return set_error(LMOE_ERR_INVALID_ARGUMENT, "%s: NULL pointer", what);
  cudaError_t e = cudaMemcpyAsync(dst, src, size_t(bytes), kind, static_cast<cudaStream_t>(stream));
  if (e != cudaSuccess) return cuda_error(e, what);
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_memcpy_h2d_async(void* dst, const void* src, int64_t bytes,
                                                     void* stream) {
  API_BEGIN;
  return copy_async(dst, src, bytes, cudaMemcpyHostToDevice, stream, "cudaMemcpyAsync(H2D)");
}
LMOE_CUDA_API lmoe_status lmoe_cuda_memcpy_d2h_async(void* dst, const void* src, int64_t bytes,
                                                     void* stream) {
  API_BEGIN;
  return copy_async(dst, src, bytes, cudaMemcpyDeviceToHost, stream, "cudaMemcpyAsync(D2H)");
}
LMOE_CUDA_API lmoe_status lmoe_cuda_memcpy_d2d_async(void* dst, const void* src, int64_t bytes,
                                                     void* stream) {
  API_BEGIN;
  return copy_async(dst, src, bytes, cudaMemcpyDeviceToDevice, stream, "cudaMemcpyAsync(D2D)");
}
LMOE_CUDA_API lmoe_status lmoe_cuda_memset_async(void* dst, int32_t value, int64_t bytes,
                                                 void* stream) {
  API_BEGIN;
  if (bytes < 0 || (bytes > 0 && !dst)) return set_error(LMOE_ERR_INVALID_ARGUMENT, "bad memset arguments");
  if (bytes == 0) return LMOE_OK;
  LMOE_CU(cudaMemsetAsync(dst, value, size_t(bytes), static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_fill_uniform(void* dst, int32_t dtype, int64_t count,
                                                 uint64_t seed, float lo, float hi, void* stream) {
  API_BEGIN;
  if (count < 0 || (count > 0 && !dst) || !(lo < hi))
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "fill_uniform: bad arguments");
  if (count == 0) return LMOE_OK;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t blocks64 = (count + 255) / 256;
  int blocks = int(blocks64 < 65536 ? blocks64 : 65536);
  switch (dtype) {
    case LMOE_DTYPE_F32: fill_kernel<float><<<blocks, 256, 0, s>>>((float*)dst, count, seed, lo, hi); break;
    case LMOE_DTYPE_BF16: fill_kernel<__nv_bfloat16><<<blocks, 256, 0, s>>>((__nv_bfloat16*)dst, count, seed, lo, hi); break;
    case LMOE_DTYPE_F16: fill_kernel<__half><<<blocks, 256, 0, s>>>((__half*)dst, count, seed, lo, hi); break;
    case LMOE_DTYPE_F8_E4M3:
      fill_kernel<__nv_fp8_e4m3><<<blocks, 256, 0, s>>>((__nv_fp8_e4m3*)dst, count, seed, lo, hi);
      break;
    case LMOE_DTYPE_U8: fill_kernel<uint8_t><<<blocks, 256, 0, s>>>((uint8_t*)dst, count, seed, lo, hi); break;
    default: return set_error(LMOE_ERR_UNSUPPORTED, "fill_uniform: dtype %d", dtype);
  }
  LMOE_CU_LAUNCH("fill_uniform");
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_event_create(void** event) {
  API_BEGIN;
  if (!event) return set_error(LMOE_ERR_INVALID_ARGUMENT, "event is NULL");
  cudaEvent_t e;
  LMOE_CU(cudaEventCreate(&e));
  *event = e;
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_event_destroy(void* event) {
  API_BEGIN;
  if (!event) return LMOE_OK;
  LMOE_CU(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_event_record(void* event, void* stream) {
  API_BEGIN;
  if (!event) return set_error(LMOE_ERR_INVALID_ARGUMENT, "event is NULL");
  LMOE_CU(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_event_synchronize(void* event) {
  API_BEGIN;
  if (!event) return set_error(LMOE_ERR_INVALID_ARGUMENT, "event is NULL");
  LMOE_CU(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_event_elapsed_ms(void* start, void* end, float* ms) {
  API_BEGIN;
  if (!start || !end || !ms) return set_error(LMOE_ERR_INVALID_ARGUMENT, "NULL argument");
  LMOE_CU(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_graph_begin_capture(void* stream) {
  API_BEGIN;
  if (!stream) return set_error(LMOE_ERR_INVALID_ARGUMENT, "cannot capture the legacy default stream");
  LMOE_CU(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_graph_end_capture(void* stream, void** graph_exec) {
  API_BEGIN;
  if (!stream || !graph_exec) return set_error(LMOE_ERR_INVALID_ARGUMENT, "NULL argument");
  *graph_exec = nullptr;
  cudaGraph_t g = nullptr;
  LMOE_CU(cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &g));
  cudaGraphExec_t ex = nullptr;
  cudaError_t e = cudaGraphInstantiate(&ex, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) return cuda_error(e, "cudaGraphInstantiate");
  *graph_exec = ex;
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_graph_launch(void* graph_exec, void* stream) {
  API_BEGIN;
  if (!graph_exec) return set_error(LMOE_ERR_INVALID_ARGUMENT, "graph_exec is NULL");
  LMOE_CU(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), static_cast<cudaStream_t>(stream)));
  return LMOE_OK;
}
LMOE_CUDA_API lmoe_status lmoe_cuda_graph_destroy(void* graph_exec) {
  API_BEGIN;
  if (!graph_exec) return LMOE_OK;
  LMOE_CU(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec)));
  return LMOE_OK;
}
