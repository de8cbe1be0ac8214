package dev.latentmoe.bench.nvidia;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.latentmoe.bindings.runtime.Downcalls;
import dev.latentmoe.bindings.runtime.LatentMoeNativeException;
import dev.latentmoe.bindings.runtime.Library;
import dev.latentmoe.bindings.runtime.NativeErrors;
import dev.latentmoe.bindings.runtime.Unsigned;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A subset of the CUDA runtime API ({@code cuda_runtime_api.h}, CUDA 13) in jextract's shape:
 * devices, streams, stream-ordered and pinned allocation, async copies, events and versions. Only
 * tests use it (the library reaches CUDA through {@code latentmoe_cuda.h} alone).
 * Loaded at run time from {@code libcudart.so.13}, wherever {@link SystemLibraries#cudart()} finds
 * it (toolkit, LD_LIBRARY_PATH, a pip-installed {@code nvidia} wheel, the repo's .tools/cuda).
 * Handles of type {@code cudaStream_t} / {@code cudaEvent_t} are plain addresses; {@code size_t}
 * is {@code long}; {@code cudaError_t} and {@code enum cudaMemcpyKind} are {@code int}.
 *
 * <p>The drift test compares the functions below and {@link #CUDART_VERSION} with
 * cuda_runtime_api.h, and the enum/macro constants with driver_types.h.
 *
 * <p>Class initialisation never fails without the library; see {@link #isAvailable()}. A loaded
 * runtime does not mean a GPU: {@code cudaGetDeviceCount} returns {@link #cudaErrorNoDevice} or
 * {@link #cudaErrorInsufficientDriver} then.
 */
public final class cuda_runtime_h {

  private cuda_runtime_h() {}

  // ---- macros (cuda_runtime_api.h) ----
  /** The runtime API version these bindings were written against (13.0). */
  public static final int CUDART_VERSION = 13000;

  // ---- enum cudaError (driver_types.h): the values this code looks at ----
  public static final int cudaSuccess = 0;
  public static final int cudaErrorMemoryAllocation = 2;
  public static final int cudaErrorInsufficientDriver = 35;
  public static final int cudaErrorNoDevice = 100;

  // ---- enum cudaMemcpyKind (driver_types.h) ----
  public static final int cudaMemcpyHostToHost = 0;
  public static final int cudaMemcpyHostToDevice = 1;
  public static final int cudaMemcpyDeviceToHost = 2;
  public static final int cudaMemcpyDeviceToDevice = 3;
  public static final int cudaMemcpyDefault = 4;

  // ---- stream / event flags (driver_types.h macros) ----
  public static final int cudaStreamDefault = 0;
  public static final int cudaStreamNonBlocking = 1;
  public static final int cudaEventDefault = 0;

  // ---- library ----
  private static final Library LIBRARY = SystemLibraries.cudart().library(SystemLibraries.CUDART);

  /** C function name to its descriptor, in binding order; read by the drift test. */
  public static final Map<String, FunctionDescriptor> DESCRIPTORS = LIBRARY.descriptors();

  /** Whether libcudart.so.13 was loaded (individual symbols may still be missing). */
  public static boolean isAvailable() {
    return LIBRARY.isAvailable();
  }

  /** Why libcudart.so.13 could not be loaded (with every place searched), or empty when it was. */
  public static Optional<String> unavailableReason() {
    return LIBRARY.unavailableReason();
  }

  /** The file loaded, or the bare file name when the dynamic loader found it by name. */
  public static String libraryPath() {
    return LIBRARY.file();
  }

  /** The candidate files tried, in order. */
  public static List<java.nio.file.Path> searched() {
    return LIBRARY.searched();
  }

  private static MethodHandle downcall(String name, FunctionDescriptor fd) {
    return LIBRARY.downcall(name, fd);
  }

  /** {@code cudaGetErrorString(error)} as a Java string ("" when unavailable). */
  public static String errorString(int error) {
    try {
      return NativeErrors.cString(cudaGetErrorString(error));
    } catch (UnsatisfiedLinkError e) {
      return "cudaError " + error;
    }
  }

  /** Throws a {@link LatentMoeNativeException} unless {@code error == cudaSuccess}. */
  public static void check(int error, String what) {
    NativeErrors.check(error, what, e -> "cudaError " + e, () -> errorString(error));
  }

  // ---- functions ----

  /** {@code cudaError_t cudaDriverGetVersion(int* driverVersion)} */
  public static final MethodHandle cudaDriverGetVersion$MH =
      downcall("cudaDriverGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaDriverGetVersion(MemorySegment driverVersion) {
    try {
      return (int) cudaDriverGetVersion$MH.invokeExact(driverVersion);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaRuntimeGetVersion(int* runtimeVersion)} */
  public static final MethodHandle cudaRuntimeGetVersion$MH =
      downcall("cudaRuntimeGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaRuntimeGetVersion(MemorySegment runtimeVersion) {
    try {
      return (int) cudaRuntimeGetVersion$MH.invokeExact(runtimeVersion);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const char* cudaGetErrorString(cudaError_t error)} */
  public static final MethodHandle cudaGetErrorString$MH =
      downcall("cudaGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));

  public static MemorySegment cudaGetErrorString(int error) {
    try {
      return (MemorySegment) cudaGetErrorString$MH.invokeExact(error);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaGetDeviceCount(int* count)} */
  public static final MethodHandle cudaGetDeviceCount$MH =
      downcall("cudaGetDeviceCount", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaGetDeviceCount(MemorySegment count) {
    try {
      return (int) cudaGetDeviceCount$MH.invokeExact(count);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaSetDevice(int device)} */
  public static final MethodHandle cudaSetDevice$MH =
      downcall("cudaSetDevice", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

  public static int cudaSetDevice(int device) {
    try {
      return (int) cudaSetDevice$MH.invokeExact(device);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaGetDevice(int* device)} */
  public static final MethodHandle cudaGetDevice$MH =
      downcall("cudaGetDevice", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaGetDevice(MemorySegment device) {
    try {
      return (int) cudaGetDevice$MH.invokeExact(device);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaDeviceSynchronize(void)} */
  public static final MethodHandle cudaDeviceSynchronize$MH =
      downcall("cudaDeviceSynchronize", FunctionDescriptor.of(JAVA_INT));

  public static int cudaDeviceSynchronize() {
    try {
      return (int) cudaDeviceSynchronize$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags)} */
  public static final MethodHandle cudaStreamCreateWithFlags$MH =
      downcall("cudaStreamCreateWithFlags", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));

  public static int cudaStreamCreateWithFlags(MemorySegment pStream, @Unsigned int flags) {
    try {
      return (int) cudaStreamCreateWithFlags$MH.invokeExact(pStream, flags);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaStreamDestroy(cudaStream_t stream)} */
  public static final MethodHandle cudaStreamDestroy$MH =
      downcall("cudaStreamDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaStreamDestroy(MemorySegment stream) {
    try {
      return (int) cudaStreamDestroy$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaStreamSynchronize(cudaStream_t stream)} */
  public static final MethodHandle cudaStreamSynchronize$MH =
      downcall("cudaStreamSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaStreamSynchronize(MemorySegment stream) {
    try {
      return (int) cudaStreamSynchronize$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaMallocAsync(void** devPtr, size_t size, cudaStream_t hStream)} */
  public static final MethodHandle cudaMallocAsync$MH =
      downcall("cudaMallocAsync", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));

  public static int cudaMallocAsync(MemorySegment devPtr, @Unsigned long size, MemorySegment hStream) {
    try {
      return (int) cudaMallocAsync$MH.invokeExact(devPtr, size, hStream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaFreeAsync(void* devPtr, cudaStream_t hStream)} */
  public static final MethodHandle cudaFreeAsync$MH =
      downcall("cudaFreeAsync", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int cudaFreeAsync(MemorySegment devPtr, MemorySegment hStream) {
    try {
      return (int) cudaFreeAsync$MH.invokeExact(devPtr, hStream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaMallocHost(void** ptr, size_t size)} */
  public static final MethodHandle cudaMallocHost$MH =
      downcall("cudaMallocHost", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));

  public static int cudaMallocHost(MemorySegment ptr, @Unsigned long size) {
    try {
      return (int) cudaMallocHost$MH.invokeExact(ptr, size);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaFreeHost(void* ptr)} */
  public static final MethodHandle cudaFreeHost$MH =
      downcall("cudaFreeHost", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaFreeHost(MemorySegment ptr) {
    try {
      return (int) cudaFreeHost$MH.invokeExact(ptr);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream)} */
  public static final MethodHandle cudaMemcpyAsync$MH =
      downcall("cudaMemcpyAsync", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS));

  public static int cudaMemcpyAsync(MemorySegment dst, MemorySegment src, @Unsigned long count, int kind, MemorySegment stream) {
    try {
      return (int) cudaMemcpyAsync$MH.invokeExact(dst, src, count, kind, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaEventCreate(cudaEvent_t* event)} */
  public static final MethodHandle cudaEventCreate$MH =
      downcall("cudaEventCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaEventCreate(MemorySegment event) {
    try {
      return (int) cudaEventCreate$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)} */
  public static final MethodHandle cudaEventRecord$MH =
      downcall("cudaEventRecord", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int cudaEventRecord(MemorySegment event, MemorySegment stream) {
    try {
      return (int) cudaEventRecord$MH.invokeExact(event, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaEventSynchronize(cudaEvent_t event)} */
  public static final MethodHandle cudaEventSynchronize$MH =
      downcall("cudaEventSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaEventSynchronize(MemorySegment event) {
    try {
      return (int) cudaEventSynchronize$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end)} */
  public static final MethodHandle cudaEventElapsedTime$MH =
      downcall("cudaEventElapsedTime", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));

  public static int cudaEventElapsedTime(MemorySegment ms, MemorySegment start, MemorySegment end) {
    try {
      return (int) cudaEventElapsedTime$MH.invokeExact(ms, start, end);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cudaError_t cudaEventDestroy(cudaEvent_t event)} */
  public static final MethodHandle cudaEventDestroy$MH =
      downcall("cudaEventDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cudaEventDestroy(MemorySegment event) {
    try {
      return (int) cudaEventDestroy$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }
}
