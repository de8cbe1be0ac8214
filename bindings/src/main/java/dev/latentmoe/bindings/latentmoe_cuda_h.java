package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.latentmoe.bindings.runtime.Downcalls;
import dev.latentmoe.bindings.runtime.LatentMoeNativeException;
import dev.latentmoe.bindings.runtime.Library;
import dev.latentmoe.bindings.runtime.NativeErrors;
import dev.latentmoe.bindings.runtime.NativeLibraries;
import dev.latentmoe.bindings.runtime.Unsigned;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Map;
import java.util.Optional;

/**
 * Bindings for {@code native/include/latentmoe_cuda.h} (the CUDA backend, {@code
 * liblatentmoe_cuda.so}), written by hand in jextract's shape like {@link latentmoe_h}: one
 * {@code public static final MethodHandle <name>$MH} per C function, a static wrapper with the C
 * name, one constant per integer macro. Status codes, dtypes and {@code lmoe_config} are shared
 * with latentmoe.h ({@link latentmoe_h}, {@link lmoe_config}); the weight struct is
 * {@link lmoe_cuda_weights} (its matrices {@link lmoe_cuda_matrix}), the knobs {@link lmoe_cuda_tuning}. {@code LatentmoeHeaderDriftTest}
 * checks it against the header.
 *
 * <p>The library is loaded through {@link NativeLibraries#load(String)} ({@code
 * -Dlatentmoe.native.dir}, else the jar). Class initialisation never fails when it is missing:
 * the handles then throw {@link UnsatisfiedLinkError} with the reason when called; ask
 * {@link #isAvailable()} / {@link #unavailableReason()} first. A loaded library does not mean a
 * usable GPU: {@code lmoe_cuda_device_count} says that.
 */
public final class latentmoe_cuda_h {

  private latentmoe_cuda_h() {}

  // ---- macros ----
  public static final int LMOE_CUDA_ABI_VERSION = 3;
  public static final int LMOE_CUDA_WORKSPACE_ALIGN = 256;
  public static final int LMOE_CUDA_EXPERTS_AUTO = 0;
  public static final int LMOE_CUDA_EXPERTS_SIMT = 1;
  public static final int LMOE_CUDA_EXPERTS_CUTLASS_NARROW = 2;
  public static final int LMOE_CUDA_EXPERTS_CUTLASS_WIDE = 3;
  public static final int LMOE_CUDA_DECODE_AUTO = 0;
  public static final int LMOE_CUDA_DECODE_ON = 1;
  public static final int LMOE_CUDA_DECODE_OFF = 2;
  public static final int LMOE_CUDA_PATH_SORTED = 0;
  public static final int LMOE_CUDA_PATH_DECODE = 1;

  // ---- library ----
  private static final Library LIBRARY =
      Library.ours(NativeLibraries.CUDA, "lmoe_cuda_abi_version", LMOE_CUDA_ABI_VERSION);

  /** C function name to its descriptor, in header order; read by the drift test. */
  public static final Map<String, FunctionDescriptor> DESCRIPTORS = LIBRARY.descriptors();

  /** Whether liblatentmoe_cuda.so was loaded (individual symbols may still be missing). */
  public static boolean isAvailable() {
    return LIBRARY.isAvailable();
  }

  /** Why liblatentmoe_cuda.so could not be loaded, or empty when it was. */
  public static Optional<String> unavailableReason() {
    return LIBRARY.unavailableReason();
  }

  private static MethodHandle downcall(String name, FunctionDescriptor fd) {
    return LIBRARY.downcall(name, fd);
  }

  /** The calling thread's {@code lmoe_cuda_last_error()} text, or "" when NULL. */
  public static String lastError() {
    return NativeErrors.cString(lmoe_cuda_last_error());
  }

  /**
   * Returns normally when {@code status == LMOE_OK}; otherwise throws a
   * {@link LatentMoeNativeException} with the calling thread's {@code lmoe_cuda_last_error()}.
   */
  public static void check(int status, String what) {
    NativeErrors.check(status, what, latentmoe_h::statusName, latentmoe_cuda_h::lastError);
  }

  // ---- functions, in header order ----

  /** {@code int32_t lmoe_cuda_abi_version(void)} */
  public static final MethodHandle lmoe_cuda_abi_version$MH =
      downcall("lmoe_cuda_abi_version", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_cuda_abi_version() {
    try {
      return (int) lmoe_cuda_abi_version$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const char* lmoe_cuda_last_error(void)} */
  public static final MethodHandle lmoe_cuda_last_error$MH =
      downcall("lmoe_cuda_last_error", FunctionDescriptor.of(ADDRESS));

  public static MemorySegment lmoe_cuda_last_error() {
    try {
      return (MemorySegment) lmoe_cuda_last_error$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_device_count(int32_t* count)} */
  public static final MethodHandle lmoe_cuda_device_count$MH =
      downcall("lmoe_cuda_device_count", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_device_count(MemorySegment count) {
    try {
      return (int) lmoe_cuda_device_count$MH.invokeExact(count);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_device_check(int32_t device)} */
  public static final MethodHandle lmoe_cuda_device_check$MH =
      downcall("lmoe_cuda_device_check", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

  public static int lmoe_cuda_device_check(int device) {
    try {
      return (int) lmoe_cuda_device_check$MH.invokeExact(device);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_device_info(int32_t device, int32_t* cc_major, int32_t* cc_minor, int32_t* sm_count, int64_t* total_mem_bytes, char* name, int32_t name_len)} */
  public static final MethodHandle lmoe_cuda_device_info$MH =
      downcall("lmoe_cuda_device_info", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT));

  public static int lmoe_cuda_device_info(int device, MemorySegment cc_major, MemorySegment cc_minor, MemorySegment sm_count, MemorySegment total_mem_bytes, MemorySegment name, int name_len) {
    try {
      return (int) lmoe_cuda_device_info$MH.invokeExact(device, cc_major, cc_minor, sm_count, total_mem_bytes, name, name_len);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_set_device(int32_t device)} */
  public static final MethodHandle lmoe_cuda_set_device$MH =
      downcall("lmoe_cuda_set_device", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

  public static int lmoe_cuda_set_device(int device) {
    try {
      return (int) lmoe_cuda_set_device$MH.invokeExact(device);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_get_device(int32_t* device)} */
  public static final MethodHandle lmoe_cuda_get_device$MH =
      downcall("lmoe_cuda_get_device", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_get_device(MemorySegment device) {
    try {
      return (int) lmoe_cuda_get_device$MH.invokeExact(device);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_device_synchronize(void)} */
  public static final MethodHandle lmoe_cuda_device_synchronize$MH =
      downcall("lmoe_cuda_device_synchronize", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_cuda_device_synchronize() {
    try {
      return (int) lmoe_cuda_device_synchronize$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_stream_create(void** stream)} */
  public static final MethodHandle lmoe_cuda_stream_create$MH =
      downcall("lmoe_cuda_stream_create", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_stream_create(MemorySegment stream) {
    try {
      return (int) lmoe_cuda_stream_create$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_stream_destroy(void* stream)} */
  public static final MethodHandle lmoe_cuda_stream_destroy$MH =
      downcall("lmoe_cuda_stream_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_stream_destroy(MemorySegment stream) {
    try {
      return (int) lmoe_cuda_stream_destroy$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_stream_synchronize(void* stream)} */
  public static final MethodHandle lmoe_cuda_stream_synchronize$MH =
      downcall("lmoe_cuda_stream_synchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_stream_synchronize(MemorySegment stream) {
    try {
      return (int) lmoe_cuda_stream_synchronize$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_malloc_async(void** device_ptr, int64_t bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_malloc_async$MH =
      downcall("lmoe_cuda_malloc_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_malloc_async(MemorySegment device_ptr, long bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_malloc_async$MH.invokeExact(device_ptr, bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_free_async(void* device_ptr, void* stream)} */
  public static final MethodHandle lmoe_cuda_free_async$MH =
      downcall("lmoe_cuda_free_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_cuda_free_async(MemorySegment device_ptr, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_free_async$MH.invokeExact(device_ptr, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_mempool_set_release_threshold(int64_t bytes)} */
  public static final MethodHandle lmoe_cuda_mempool_set_release_threshold$MH =
      downcall("lmoe_cuda_mempool_set_release_threshold", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));

  public static int lmoe_cuda_mempool_set_release_threshold(long bytes) {
    try {
      return (int) lmoe_cuda_mempool_set_release_threshold$MH.invokeExact(bytes);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_host_alloc(void** host_ptr, int64_t bytes)} */
  public static final MethodHandle lmoe_cuda_host_alloc$MH =
      downcall("lmoe_cuda_host_alloc", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));

  public static int lmoe_cuda_host_alloc(MemorySegment host_ptr, long bytes) {
    try {
      return (int) lmoe_cuda_host_alloc$MH.invokeExact(host_ptr, bytes);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_host_free(void* host_ptr)} */
  public static final MethodHandle lmoe_cuda_host_free$MH =
      downcall("lmoe_cuda_host_free", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_host_free(MemorySegment host_ptr) {
    try {
      return (int) lmoe_cuda_host_free$MH.invokeExact(host_ptr);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_memcpy_h2d_async(void* device_dst, const void* host_src, int64_t bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_memcpy_h2d_async$MH =
      downcall("lmoe_cuda_memcpy_h2d_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_memcpy_h2d_async(MemorySegment device_dst, MemorySegment host_src, long bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_memcpy_h2d_async$MH.invokeExact(device_dst, host_src, bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_memcpy_d2h_async(void* host_dst, const void* device_src, int64_t bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_memcpy_d2h_async$MH =
      downcall("lmoe_cuda_memcpy_d2h_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_memcpy_d2h_async(MemorySegment host_dst, MemorySegment device_src, long bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_memcpy_d2h_async$MH.invokeExact(host_dst, device_src, bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_memcpy_d2d_async(void* device_dst, const void* device_src, int64_t bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_memcpy_d2d_async$MH =
      downcall("lmoe_cuda_memcpy_d2d_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_memcpy_d2d_async(MemorySegment device_dst, MemorySegment device_src, long bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_memcpy_d2d_async$MH.invokeExact(device_dst, device_src, bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_memset_async(void* device_dst, int32_t byte_value, int64_t bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_memset_async$MH =
      downcall("lmoe_cuda_memset_async", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_memset_async(MemorySegment device_dst, int byte_value, long bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_memset_async$MH.invokeExact(device_dst, byte_value, bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_fill_uniform(void* device_dst, int32_t dtype, int64_t count, uint64_t seed, float lo, float hi, void* stream)} */
  public static final MethodHandle lmoe_cuda_fill_uniform$MH =
      downcall("lmoe_cuda_fill_uniform", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, ADDRESS));

  public static int lmoe_cuda_fill_uniform(MemorySegment device_dst, int dtype, long count, @Unsigned long seed, float lo, float hi, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_fill_uniform$MH.invokeExact(device_dst, dtype, count, seed, lo, hi, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_event_create(void** event)} */
  public static final MethodHandle lmoe_cuda_event_create$MH =
      downcall("lmoe_cuda_event_create", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_event_create(MemorySegment event) {
    try {
      return (int) lmoe_cuda_event_create$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_event_destroy(void* event)} */
  public static final MethodHandle lmoe_cuda_event_destroy$MH =
      downcall("lmoe_cuda_event_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_event_destroy(MemorySegment event) {
    try {
      return (int) lmoe_cuda_event_destroy$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_event_record(void* event, void* stream)} */
  public static final MethodHandle lmoe_cuda_event_record$MH =
      downcall("lmoe_cuda_event_record", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_cuda_event_record(MemorySegment event, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_event_record$MH.invokeExact(event, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_event_synchronize(void* event)} */
  public static final MethodHandle lmoe_cuda_event_synchronize$MH =
      downcall("lmoe_cuda_event_synchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_event_synchronize(MemorySegment event) {
    try {
      return (int) lmoe_cuda_event_synchronize$MH.invokeExact(event);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_event_elapsed_ms(void* start, void* end, float* ms)} */
  public static final MethodHandle lmoe_cuda_event_elapsed_ms$MH =
      downcall("lmoe_cuda_event_elapsed_ms", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_cuda_event_elapsed_ms(MemorySegment start, MemorySegment end, MemorySegment ms) {
    try {
      return (int) lmoe_cuda_event_elapsed_ms$MH.invokeExact(start, end, ms);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_graph_begin_capture(void* stream)} */
  public static final MethodHandle lmoe_cuda_graph_begin_capture$MH =
      downcall("lmoe_cuda_graph_begin_capture", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_graph_begin_capture(MemorySegment stream) {
    try {
      return (int) lmoe_cuda_graph_begin_capture$MH.invokeExact(stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_graph_end_capture(void* stream, void** graph_exec)} */
  public static final MethodHandle lmoe_cuda_graph_end_capture$MH =
      downcall("lmoe_cuda_graph_end_capture", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_cuda_graph_end_capture(MemorySegment stream, MemorySegment graph_exec) {
    try {
      return (int) lmoe_cuda_graph_end_capture$MH.invokeExact(stream, graph_exec);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_graph_launch(void* graph_exec, void* stream)} */
  public static final MethodHandle lmoe_cuda_graph_launch$MH =
      downcall("lmoe_cuda_graph_launch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_cuda_graph_launch(MemorySegment graph_exec, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_graph_launch$MH.invokeExact(graph_exec, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_graph_destroy(void* graph_exec)} */
  public static final MethodHandle lmoe_cuda_graph_destroy$MH =
      downcall("lmoe_cuda_graph_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_graph_destroy(MemorySegment graph_exec) {
    try {
      return (int) lmoe_cuda_graph_destroy$MH.invokeExact(graph_exec);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_validate(const lmoe_config* cfg, const lmoe_cuda_weights* weights)} */
  public static final MethodHandle lmoe_cuda_validate$MH =
      downcall("lmoe_cuda_validate", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_cuda_validate(MemorySegment cfg, MemorySegment weights) {
    try {
      return (int) lmoe_cuda_validate$MH.invokeExact(cfg, weights);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_tuning_defaults(lmoe_cuda_tuning* tuning)} */
  public static final MethodHandle lmoe_cuda_tuning_defaults$MH =
      downcall("lmoe_cuda_tuning_defaults", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_tuning_defaults(MemorySegment tuning) {
    try {
      return (int) lmoe_cuda_tuning_defaults$MH.invokeExact(tuning);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_get_tuning(lmoe_cuda_tuning* tuning)} */
  public static final MethodHandle lmoe_cuda_get_tuning$MH =
      downcall("lmoe_cuda_get_tuning", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_get_tuning(MemorySegment tuning) {
    try {
      return (int) lmoe_cuda_get_tuning$MH.invokeExact(tuning);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_set_tuning(const lmoe_cuda_tuning* tuning)} */
  public static final MethodHandle lmoe_cuda_set_tuning$MH =
      downcall("lmoe_cuda_set_tuning", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_cuda_set_tuning(MemorySegment tuning) {
    try {
      return (int) lmoe_cuda_set_tuning$MH.invokeExact(tuning);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_tuning_string(const lmoe_cuda_tuning* tuning, char* buf, int64_t size)} */
  public static final MethodHandle lmoe_cuda_tuning_string$MH =
      downcall("lmoe_cuda_tuning_string", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));

  public static int lmoe_cuda_tuning_string(MemorySegment tuning, MemorySegment buf, long size) {
    try {
      return (int) lmoe_cuda_tuning_string$MH.invokeExact(tuning, buf, size);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int32_t lmoe_cuda_forward_path(const lmoe_config* cfg, const lmoe_cuda_weights* weights, const void* x, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_forward_path$MH =
      downcall("lmoe_cuda_forward_path", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));

  public static int lmoe_cuda_forward_path(MemorySegment cfg, MemorySegment weights, MemorySegment x, long num_tokens) {
    try {
      return (int) lmoe_cuda_forward_path$MH.invokeExact(cfg, weights, x, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cuda_router_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_router_workspace_bytes$MH =
      downcall("lmoe_cuda_router_workspace_bytes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cuda_router_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cuda_router_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_router_topk(const lmoe_config* cfg, const lmoe_cuda_weights* weights, const void* x, int64_t num_tokens, int32_t* topk_ids, float* topk_weights, void* workspace, int64_t workspace_bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_router_topk$MH =
      downcall("lmoe_cuda_router_topk", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_router_topk(MemorySegment cfg, MemorySegment weights, MemorySegment x, long num_tokens, MemorySegment topk_ids, MemorySegment topk_weights, MemorySegment workspace, long workspace_bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_router_topk$MH.invokeExact(cfg, weights, x, num_tokens, topk_ids, topk_weights, workspace, workspace_bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cuda_dispatch_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_dispatch_workspace_bytes$MH =
      downcall("lmoe_cuda_dispatch_workspace_bytes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cuda_dispatch_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cuda_dispatch_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_dispatch(const lmoe_config* cfg, const lmoe_cuda_weights* weights, const void* x, int64_t num_tokens, const int32_t* topk_ids, int32_t* expert_offsets, int32_t* sorted_row_of_slot, void* latent_sorted, void* workspace, int64_t workspace_bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_dispatch$MH =
      downcall("lmoe_cuda_dispatch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_dispatch(MemorySegment cfg, MemorySegment weights, MemorySegment x, long num_tokens, MemorySegment topk_ids, MemorySegment expert_offsets, MemorySegment sorted_row_of_slot, MemorySegment latent_sorted, MemorySegment workspace, long workspace_bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_dispatch$MH.invokeExact(cfg, weights, x, num_tokens, topk_ids, expert_offsets, sorted_row_of_slot, latent_sorted, workspace, workspace_bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cuda_experts_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_experts_workspace_bytes$MH =
      downcall("lmoe_cuda_experts_workspace_bytes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cuda_experts_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cuda_experts_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_experts(const lmoe_config* cfg, const lmoe_cuda_weights* weights, int64_t num_tokens, const int32_t* expert_offsets, const void* latent_sorted, void* expert_out_sorted, void* workspace, int64_t workspace_bytes, void* stream)} */
  public static final MethodHandle lmoe_cuda_experts$MH =
      downcall("lmoe_cuda_experts", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cuda_experts(MemorySegment cfg, MemorySegment weights, long num_tokens, MemorySegment expert_offsets, MemorySegment latent_sorted, MemorySegment expert_out_sorted, MemorySegment workspace, long workspace_bytes, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_experts$MH.invokeExact(cfg, weights, num_tokens, expert_offsets, latent_sorted, expert_out_sorted, workspace, workspace_bytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cuda_combine_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_combine_workspace_bytes$MH =
      downcall("lmoe_cuda_combine_workspace_bytes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cuda_combine_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cuda_combine_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_combine(const lmoe_config* cfg, const lmoe_cuda_weights* weights, const void* x, int64_t num_tokens, const float* topk_weights, const int32_t* sorted_row_of_slot, const void* expert_out_sorted, void* workspace, int64_t workspace_bytes, void* out, void* stream)} */
  public static final MethodHandle lmoe_cuda_combine$MH =
      downcall("lmoe_cuda_combine", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS));

  public static int lmoe_cuda_combine(MemorySegment cfg, MemorySegment weights, MemorySegment x, long num_tokens, MemorySegment topk_weights, MemorySegment sorted_row_of_slot, MemorySegment expert_out_sorted, MemorySegment workspace, long workspace_bytes, MemorySegment out, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_combine$MH.invokeExact(cfg, weights, x, num_tokens, topk_weights, sorted_row_of_slot, expert_out_sorted, workspace, workspace_bytes, out, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cuda_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cuda_forward_workspace_bytes$MH =
      downcall("lmoe_cuda_forward_workspace_bytes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cuda_forward_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cuda_forward_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cuda_forward(const lmoe_config* cfg, const lmoe_cuda_weights* weights, const void* x, int64_t num_tokens, int32_t* topk_ids, float* topk_weights, void* workspace, int64_t workspace_bytes, void* out, void* stream)} */
  public static final MethodHandle lmoe_cuda_forward$MH =
      downcall("lmoe_cuda_forward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS));

  public static int lmoe_cuda_forward(MemorySegment cfg, MemorySegment weights, MemorySegment x, long num_tokens, MemorySegment topk_ids, MemorySegment topk_weights, MemorySegment workspace, long workspace_bytes, MemorySegment out, MemorySegment stream) {
    try {
      return (int) lmoe_cuda_forward$MH.invokeExact(cfg, weights, x, num_tokens, topk_ids, topk_weights, workspace, workspace_bytes, out, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }
}
