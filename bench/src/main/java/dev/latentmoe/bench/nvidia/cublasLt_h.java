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
 * The subset of cuBLASLt ({@code cublasLt.h}, CUDA 13) needed for one bf16 GEMM with f32
 * accumulation, in jextract's shape: handle, matmul descriptor, matrix layouts, preference,
 * heuristic algorithm choice and {@code cublasLtMatmul}. Loaded at run time from
 * {@code libcublasLt.so.13}, wherever {@link SystemLibraries#cublasLt()} finds it. Opaque handles
 * ({@code cublasLtHandle_t}, {@code cublasLtMatmulDesc_t}, ...) are addresses; {@code size_t} and
 * {@code uint64_t} are {@code long}, marked {@link dev.latentmoe.bindings.runtime.Unsigned}; {@code cublasStatus_t} and the attribute / type enums are
 * {@code int}. Struct layouts: {@link cublasLtMatmulAlgo_t}, {@link cublasLtMatmulHeuristicResult_t}.
 *
 * <p>The drift test compares the functions, structs and {@code CUBLASLT_*} constants with
 * cublasLt.h; the constants of other headers (cublas_api.h: {@code CUBLAS_*}; library_types.h:
 * {@code CUDA_R_*}) are compared with those headers.
 */
public final class cublasLt_h {

  private cublasLt_h() {}

  // ---- cublas_api.h: enum cublasStatus_t (the values looked at), cublasOperation_t, cublasComputeType_t ----
  public static final int CUBLAS_STATUS_SUCCESS = 0;
  public static final int CUBLAS_STATUS_NOT_SUPPORTED = 15;
  public static final int CUBLAS_OP_N = 0;
  public static final int CUBLAS_OP_T = 1;
  public static final int CUBLAS_COMPUTE_32F = 68;

  // ---- library_types.h: enum cudaDataType_t ----
  public static final int CUDA_R_32F = 0;
  public static final int CUDA_R_16BF = 14;

  // ---- cublasLt.h ----
  public static final int CUBLASLT_ORDER_COL = 0;
  public static final int CUBLASLT_ORDER_ROW = 1;
  public static final int CUBLASLT_MATRIX_LAYOUT_ORDER = 1;
  public static final int CUBLASLT_MATMUL_DESC_TRANSA = 3;
  public static final int CUBLASLT_MATMUL_DESC_TRANSB = 4;
  public static final int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;

  // ---- library ----
  private static final Library LIBRARY = SystemLibraries.cublasLt().library(SystemLibraries.CUBLASLT);

  /** C function name to its descriptor, in binding order; read by the drift test. */
  public static final Map<String, FunctionDescriptor> DESCRIPTORS = LIBRARY.descriptors();

  /** Whether libcublasLt.so.13 was loaded (individual symbols may still be missing). */
  public static boolean isAvailable() {
    return LIBRARY.isAvailable();
  }

  /** Why libcublasLt.so.13 could not be loaded (with every place searched), or empty when it was. */
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

  /** {@code cublasLtGetStatusString(status)} as a Java string. */
  public static String statusString(int status) {
    try {
      return NativeErrors.cString(cublasLtGetStatusString(status));
    } catch (UnsatisfiedLinkError e) {
      return "cublasStatus " + status;
    }
  }

  /** Throws a {@link LatentMoeNativeException} unless {@code status == CUBLAS_STATUS_SUCCESS}. */
  public static void check(int status, String what) {
    NativeErrors.check(status, what, s -> {
      try {
        return NativeErrors.cString(cublasLtGetStatusName(s));
      } catch (UnsatisfiedLinkError e) {
        return "cublasStatus " + s;
      }
    }, () -> statusString(status));
  }

  // ---- functions ----

  /** {@code size_t cublasLtGetVersion(void)} */
  public static final MethodHandle cublasLtGetVersion$MH =
      downcall("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));

  @Unsigned
  public static long cublasLtGetVersion() {
    try {
      return (long) cublasLtGetVersion$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtCreate(cublasLtHandle_t* lightHandle)} */
  public static final MethodHandle cublasLtCreate$MH =
      downcall("cublasLtCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtCreate(MemorySegment lightHandle) {
    try {
      return (int) cublasLtCreate$MH.invokeExact(lightHandle);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle)} */
  public static final MethodHandle cublasLtDestroy$MH =
      downcall("cublasLtDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtDestroy(MemorySegment lightHandle) {
    try {
      return (int) cublasLtDestroy$MH.invokeExact(lightHandle);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const char* cublasLtGetStatusName(cublasStatus_t status)} */
  public static final MethodHandle cublasLtGetStatusName$MH =
      downcall("cublasLtGetStatusName", FunctionDescriptor.of(ADDRESS, JAVA_INT));

  public static MemorySegment cublasLtGetStatusName(int status) {
    try {
      return (MemorySegment) cublasLtGetStatusName$MH.invokeExact(status);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const char* cublasLtGetStatusString(cublasStatus_t status)} */
  public static final MethodHandle cublasLtGetStatusString$MH =
      downcall("cublasLtGetStatusString", FunctionDescriptor.of(ADDRESS, JAVA_INT));

  public static MemorySegment cublasLtGetStatusString(int status) {
    try {
      return (MemorySegment) cublasLtGetStatusString$MH.invokeExact(status);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream)} */
  public static final MethodHandle cublasLtMatmul$MH =
      downcall("cublasLtMatmul", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int cublasLtMatmul(MemorySegment lightHandle, MemorySegment computeDesc, MemorySegment alpha, MemorySegment A, MemorySegment Adesc, MemorySegment B, MemorySegment Bdesc, MemorySegment beta, MemorySegment C, MemorySegment Cdesc, MemorySegment D, MemorySegment Ddesc, MemorySegment algo, MemorySegment workspace, @Unsigned long workspaceSizeInBytes, MemorySegment stream) {
    try {
      return (int) cublasLtMatmul$MH.invokeExact(lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace, workspaceSizeInBytes, stream);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld)} */
  public static final MethodHandle cublasLtMatrixLayoutCreate$MH =
      downcall("cublasLtMatrixLayoutCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));

  public static int cublasLtMatrixLayoutCreate(MemorySegment matLayout, int type, @Unsigned long rows, @Unsigned long cols, long ld) {
    try {
      return (int) cublasLtMatrixLayoutCreate$MH.invokeExact(matLayout, type, rows, cols, ld);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout)} */
  public static final MethodHandle cublasLtMatrixLayoutDestroy$MH =
      downcall("cublasLtMatrixLayoutDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtMatrixLayoutDestroy(MemorySegment matLayout) {
    try {
      return (int) cublasLtMatrixLayoutDestroy$MH.invokeExact(matLayout);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType)} */
  public static final MethodHandle cublasLtMatmulDescCreate$MH =
      downcall("cublasLtMatmulDescCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));

  public static int cublasLtMatmulDescCreate(MemorySegment matmulDesc, int computeType, int scaleType) {
    try {
      return (int) cublasLtMatmulDescCreate$MH.invokeExact(matmulDesc, computeType, scaleType);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc)} */
  public static final MethodHandle cublasLtMatmulDescDestroy$MH =
      downcall("cublasLtMatmulDescDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtMatmulDescDestroy(MemorySegment matmulDesc) {
    try {
      return (int) cublasLtMatmulDescDestroy$MH.invokeExact(matmulDesc);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t sizeInBytes)} */
  public static final MethodHandle cublasLtMatmulDescSetAttribute$MH =
      downcall("cublasLtMatmulDescSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));

  public static int cublasLtMatmulDescSetAttribute(MemorySegment matmulDesc, int attr, MemorySegment buf, @Unsigned long sizeInBytes) {
    try {
      return (int) cublasLtMatmulDescSetAttribute$MH.invokeExact(matmulDesc, attr, buf, sizeInBytes);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref)} */
  public static final MethodHandle cublasLtMatmulPreferenceCreate$MH =
      downcall("cublasLtMatmulPreferenceCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtMatmulPreferenceCreate(MemorySegment pref) {
    try {
      return (int) cublasLtMatmulPreferenceCreate$MH.invokeExact(pref);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)} */
  public static final MethodHandle cublasLtMatmulPreferenceDestroy$MH =
      downcall("cublasLtMatmulPreferenceDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));

  public static int cublasLtMatmulPreferenceDestroy(MemorySegment pref) {
    try {
      return (int) cublasLtMatmulPreferenceDestroy$MH.invokeExact(pref);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t sizeInBytes)} */
  public static final MethodHandle cublasLtMatmulPreferenceSetAttribute$MH =
      downcall("cublasLtMatmulPreferenceSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));

  public static int cublasLtMatmulPreferenceSetAttribute(MemorySegment pref, int attr, MemorySegment buf, @Unsigned long sizeInBytes) {
    try {
      return (int) cublasLtMatmulPreferenceSetAttribute$MH.invokeExact(pref, attr, buf, sizeInBytes);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount)} */
  public static final MethodHandle cublasLtMatmulAlgoGetHeuristic$MH =
      downcall("cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));

  public static int cublasLtMatmulAlgoGetHeuristic(MemorySegment lightHandle, MemorySegment operationDesc, MemorySegment Adesc, MemorySegment Bdesc, MemorySegment Cdesc, MemorySegment Ddesc, MemorySegment preference, int requestedAlgoCount, MemorySegment heuristicResultsArray, MemorySegment returnAlgoCount) {
    try {
      return (int) cublasLtMatmulAlgoGetHeuristic$MH.invokeExact(lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, preference, requestedAlgoCount, heuristicResultsArray, returnAlgoCount);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }
}
