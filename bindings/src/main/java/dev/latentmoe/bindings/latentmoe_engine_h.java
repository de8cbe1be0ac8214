package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.latentmoe.bindings.runtime.Downcalls;
import dev.latentmoe.bindings.runtime.Library;
import dev.latentmoe.bindings.runtime.NativeLibraries;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Map;
import java.util.Optional;

/**
 * Bindings for {@code native/include/latentmoe_engine.h} (the engine ABI: a layer opened from a
 * checkpoint directory, run on raw pointers, DLPack or Arrow C Data), written by hand in jextract's
 * shape like {@link latentmoe_h}: one {@code public static final MethodHandle <name>$MH} per C
 * function, a static wrapper with the C name, one constant per enum value and integer macro. The
 * functions live in the same {@code liblatentmoe.so}. {@code LatentmoeHeaderDriftTest} checks the
 * {@code lmoe_*} / {@code LMOE_*} declarations and the DLPack / Arrow constants against the header
 * with clang; the DLPack and Arrow structs are not mirrored (Java passes them as addresses).
 *
 * <p>Class initialisation never fails when the library is missing or lacks a symbol: the affected
 * handles throw {@link UnsatisfiedLinkError} with the reason when called.
 */
public final class latentmoe_engine_h {

  private latentmoe_engine_h() {}

  // ---- macros ----
  public static final int LMOE_ENGINE_ABI_VERSION = 2;
  public static final int DLPACK_MAJOR_VERSION = 1;
  public static final int DLPACK_MINOR_VERSION = 0;
  public static final int ARROW_FLAG_DICTIONARY_ORDERED = 1;
  public static final int ARROW_FLAG_NULLABLE = 2;
  public static final int ARROW_FLAG_MAP_KEYS_SORTED = 4;

  // ---- enum DLDeviceType ----
  public static final int kDLCPU = 1;
  public static final int kDLCUDA = 2;
  public static final int kDLCUDAHost = 3;
  public static final int kDLOpenCL = 4;
  public static final int kDLVulkan = 7;
  public static final int kDLMetal = 8;
  public static final int kDLVPI = 9;
  public static final int kDLROCM = 10;
  public static final int kDLROCMHost = 11;
  public static final int kDLExtDev = 12;
  public static final int kDLCUDAManaged = 13;
  public static final int kDLOneAPI = 14;
  public static final int kDLWebGPU = 15;
  public static final int kDLHexagon = 16;
  public static final int kDLMAIA = 17;

  // ---- enum DLDataTypeCode ----
  public static final int kDLInt = 0;
  public static final int kDLUInt = 1;
  public static final int kDLFloat = 2;
  public static final int kDLOpaqueHandle = 3;
  public static final int kDLBfloat = 4;
  public static final int kDLComplex = 5;
  public static final int kDLBool = 6;

  // ---- library ----
  private static final Library LIBRARY =
      Library.ours(NativeLibraries.CPU, "lmoe_engine_abi_version", LMOE_ENGINE_ABI_VERSION);

  /** C function name to its descriptor, in header order; read by the drift test. */
  public static final Map<String, FunctionDescriptor> DESCRIPTORS = LIBRARY.descriptors();

  /** Whether liblatentmoe.so was loaded (individual symbols may still be missing). */
  public static boolean isAvailable() {
    return LIBRARY.isAvailable();
  }

  /** Why liblatentmoe.so could not be loaded, or empty when it was. */
  public static Optional<String> unavailableReason() {
    return LIBRARY.unavailableReason();
  }

  private static MethodHandle downcall(String name, FunctionDescriptor fd) {
    return LIBRARY.downcall(name, fd);
  }

  // ---- functions, in header order ----

  /** {@code int32_t lmoe_engine_abi_version(void)} */
  public static final MethodHandle lmoe_engine_abi_version$MH =
      downcall("lmoe_engine_abi_version", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_engine_abi_version() {
    try {
      return (int) lmoe_engine_abi_version$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_open(const char* dir, int32_t layer_index, lmoe_layer** out)} */
  public static final MethodHandle lmoe_layer_open$MH =
      downcall("lmoe_layer_open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));

  public static int lmoe_layer_open(MemorySegment dir, int layer_index, MemorySegment out) {
    try {
      return (int) lmoe_layer_open$MH.invokeExact(dir, layer_index, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_checkpoint_config(const char* dir, int32_t layer_index, lmoe_config* out)} */
  public static final MethodHandle lmoe_checkpoint_config$MH =
      downcall("lmoe_checkpoint_config", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));

  public static int lmoe_checkpoint_config(MemorySegment dir, int layer_index, MemorySegment out) {
    try {
      return (int) lmoe_checkpoint_config$MH.invokeExact(dir, layer_index, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_config(const lmoe_layer* layer, lmoe_config* out)} */
  public static final MethodHandle lmoe_layer_config$MH =
      downcall("lmoe_layer_config", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_layer_config(MemorySegment layer, MemorySegment out) {
    try {
      return (int) lmoe_layer_config$MH.invokeExact(layer, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_weights(const lmoe_layer* layer, const lmoe_weights** out)} */
  public static final MethodHandle lmoe_layer_weights$MH =
      downcall("lmoe_layer_weights", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_layer_weights(MemorySegment layer, MemorySegment out) {
    try {
      return (int) lmoe_layer_weights$MH.invokeExact(layer, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_memory_info(const lmoe_layer* layer, lmoe_layer_memory* out)} */
  public static final MethodHandle lmoe_layer_memory_info$MH =
      downcall("lmoe_layer_memory_info", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_layer_memory_info(MemorySegment layer, MemorySegment out) {
    try {
      return (int) lmoe_layer_memory_info$MH.invokeExact(layer, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_weight_info(const lmoe_layer* layer, int32_t* weight_dtype, int32_t* gate_dtype, int64_t* converted_bytes)} */
  public static final MethodHandle lmoe_layer_weight_info$MH =
      downcall("lmoe_layer_weight_info", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_layer_weight_info(MemorySegment layer, MemorySegment weight_dtype, MemorySegment gate_dtype, MemorySegment converted_bytes) {
    try {
      return (int) lmoe_layer_weight_info$MH.invokeExact(layer, weight_dtype, gate_dtype, converted_bytes);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_forward(lmoe_layer* layer, const float* x, int64_t num_tokens, float* out, int32_t* topk_ids, float* topk_weights)} */
  public static final MethodHandle lmoe_layer_forward$MH =
      downcall("lmoe_layer_forward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_layer_forward(MemorySegment layer, MemorySegment x, long num_tokens, MemorySegment out, MemorySegment topk_ids, MemorySegment topk_weights) {
    try {
      return (int) lmoe_layer_forward$MH.invokeExact(layer, x, num_tokens, out, topk_ids, topk_weights);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_forward_dlpack(lmoe_layer* layer, const DLManagedTensorVersioned* x, DLManagedTensorVersioned* out)} */
  public static final MethodHandle lmoe_layer_forward_dlpack$MH =
      downcall("lmoe_layer_forward_dlpack", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_layer_forward_dlpack(MemorySegment layer, MemorySegment x, MemorySegment out) {
    try {
      return (int) lmoe_layer_forward_dlpack$MH.invokeExact(layer, x, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_forward_arrow(lmoe_layer* layer, const struct ArrowArray* x, const struct ArrowSchema* x_schema, struct ArrowArray* out, struct ArrowSchema* out_schema)} */
  public static final MethodHandle lmoe_layer_forward_arrow$MH =
      downcall("lmoe_layer_forward_arrow", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_layer_forward_arrow(MemorySegment layer, MemorySegment x, MemorySegment x_schema, MemorySegment out, MemorySegment out_schema) {
    try {
      return (int) lmoe_layer_forward_arrow$MH.invokeExact(layer, x, x_schema, out, out_schema);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const void* lmoe_layer_last_input(const lmoe_layer* layer)} */
  public static final MethodHandle lmoe_layer_last_input$MH =
      downcall("lmoe_layer_last_input", FunctionDescriptor.of(ADDRESS, ADDRESS));

  public static MemorySegment lmoe_layer_last_input(MemorySegment layer) {
    try {
      return (MemorySegment) lmoe_layer_last_input$MH.invokeExact(layer);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_layer_close(lmoe_layer* layer)} */
  public static final MethodHandle lmoe_layer_close$MH =
      downcall("lmoe_layer_close", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int lmoe_layer_close(MemorySegment layer) {
    try {
      return (int) lmoe_layer_close$MH.invokeExact(layer);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }
}
