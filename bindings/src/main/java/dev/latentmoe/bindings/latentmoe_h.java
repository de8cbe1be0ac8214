package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
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
 * Bindings for {@code native/include/latentmoe.h}, written by hand in jextract's shape: one
 * {@code public static final MethodHandle <name>$MH} per C function, a static wrapper with the C
 * name, and one constant per enum value and per integer macro. Struct layouts live in
 * {@link lmoe_config} and {@link lmoe_weights}. {@code LatentmoeHeaderDriftTest} checks all of it
 * against the header with clang, so edit both together.
 *
 * <p>Class initialisation never fails when {@code liblatentmoe.so} is missing or lacks a symbol:
 * the affected handles throw {@link UnsatisfiedLinkError} with the reason when called. Use
 * {@link #isAvailable()} / {@link #unavailableReason()} to ask first.
 */
public final class latentmoe_h {

  private latentmoe_h() {}

  // ---- macros ----
  public static final int LMOE_ABI_VERSION = 2;

  // ---- enum lmoe_status ----
  public static final int LMOE_OK = 0;
  public static final int LMOE_ERR_INVALID_ARGUMENT = 1;
  public static final int LMOE_ERR_UNSUPPORTED = 2;
  public static final int LMOE_ERR_OUT_OF_MEMORY = 3;
  public static final int LMOE_ERR_CUDA = 4;
  public static final int LMOE_ERR_INTERNAL = 5;

  // ---- enum lmoe_dtype ----
  public static final int LMOE_DTYPE_F32 = 0;
  public static final int LMOE_DTYPE_BF16 = 1;
  public static final int LMOE_DTYPE_F16 = 2;
  public static final int LMOE_DTYPE_I32 = 3;
  public static final int LMOE_DTYPE_F8_E4M3 = 4;
  public static final int LMOE_DTYPE_U8 = 5;

  // ---- enum lmoe_weight_format ----
  public static final int LMOE_WFMT_F32 = 0;
  public static final int LMOE_WFMT_BF16 = 1;
  public static final int LMOE_WFMT_FP8_E4M3 = 2;
  public static final int LMOE_WFMT_NVFP4 = 3;

  // ---- enum lmoe_precision ----
  public static final int LMOE_PRECISION_EXACT = 0;
  public static final int LMOE_PRECISION_BF16 = 1;

  // ---- enum lmoe_activation ----
  public static final int LMOE_ACT_RELU2 = 0;
  public static final int LMOE_ACT_SWIGLU = 1;
  public static final int LMOE_ACT_SILU = 2;

  // ---- enum lmoe_scoring ----
  public static final int LMOE_SCORING_SIGMOID = 0;
  public static final int LMOE_SCORING_SOFTMAX = 1;

  // ---- enum lmoe_isa ----
  public static final int LMOE_ISA_SCALAR = 0;
  public static final int LMOE_ISA_AVX2 = 1;
  public static final int LMOE_ISA_AVX512 = 2;
  public static final int LMOE_ISA_AVX512_BF16 = 3;
  public static final int LMOE_ISA_AMX = 4;

  // ---- enum lmoe_peak_probe ----
  public static final int LMOE_PEAK_SSE2 = 0;
  public static final int LMOE_PEAK_FMA_AVX2 = 1;
  public static final int LMOE_PEAK_FMA_AVX512 = 2;
  public static final int LMOE_PEAK_DPBF16 = 3;
  public static final int LMOE_PEAK_AMX_BF16 = 4;

  // ---- enum lmoe_probe ----
  public static final int LMOE_PROBE_COPY = 0;
  public static final int LMOE_PROBE_TRIAD = 1;
  public static final int LMOE_PROBE_READ = 2;

  // ---- library ----
  private static final Library LIBRARY =
      Library.ours(NativeLibraries.CPU, "lmoe_abi_version", LMOE_ABI_VERSION);

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

  /**
   * {@code name}'s downcall with the pointer arguments at {@code positions} as raw addresses
   * ({@code long}); see {@link Library#addressDowncall}. For the CPU entry points' callers that pass
   * pointers into a workspace segment they also pass whole (the stateless kernels).
   */
  public static MethodHandle addressDowncall(String name, int... positions) {
    return LIBRARY.addressDowncall(name, positions);
  }

  /** The calling thread's {@code lmoe_last_error()} text, or "" when it is NULL. */
  public static String lastError() {
    return NativeErrors.cString(lmoe_last_error());
  }

  /**
   * Returns normally when {@code status == LMOE_OK}; otherwise throws a
   * {@link LatentMoeNativeException} with the calling thread's {@code lmoe_last_error()} text. Call
   * it right after the native call, on the same thread.
   */
  public static void check(int status, String what) {
    NativeErrors.check(status, what, latentmoe_h::statusName, latentmoe_h::lastError);
  }

  /** The C name of an lmoe_status value, or "lmoe_status <n>" for unknown codes. */
  public static String statusName(int status) {
    return switch (status) {
      case LMOE_OK -> "LMOE_OK";
      case LMOE_ERR_INVALID_ARGUMENT -> "LMOE_ERR_INVALID_ARGUMENT";
      case LMOE_ERR_UNSUPPORTED -> "LMOE_ERR_UNSUPPORTED";
      case LMOE_ERR_OUT_OF_MEMORY -> "LMOE_ERR_OUT_OF_MEMORY";
      case LMOE_ERR_CUDA -> "LMOE_ERR_CUDA";
      case LMOE_ERR_INTERNAL -> "LMOE_ERR_INTERNAL";
      default -> "lmoe_status " + status;
    };
  }

  // ---- functions, in header order ----

  /** {@code int32_t lmoe_abi_version(void)} */
  public static final MethodHandle lmoe_abi_version$MH =
      downcall("lmoe_abi_version", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_abi_version() {
    try {
      return (int) lmoe_abi_version$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code const char* lmoe_last_error(void)}; see {@link #lastError()}. */
  public static final MethodHandle lmoe_last_error$MH =
      downcall("lmoe_last_error", FunctionDescriptor.of(ADDRESS));

  public static MemorySegment lmoe_last_error() {
    try {
      return (MemorySegment) lmoe_last_error$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int32_t lmoe_cpu_best_isa(void)} */
  public static final MethodHandle lmoe_cpu_best_isa$MH =
      downcall("lmoe_cpu_best_isa", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_cpu_best_isa() {
    try {
      return (int) lmoe_cpu_best_isa$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int32_t lmoe_cpu_isa(void)} */
  public static final MethodHandle lmoe_cpu_isa$MH =
      downcall("lmoe_cpu_isa", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_cpu_isa() {
    try {
      return (int) lmoe_cpu_isa$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cpu_set_isa(int32_t isa)} */
  public static final MethodHandle lmoe_cpu_set_isa$MH =
      downcall("lmoe_cpu_set_isa", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

  public static int lmoe_cpu_set_isa(int isa) {
    try {
      return (int) lmoe_cpu_set_isa$MH.invokeExact(isa);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int32_t lmoe_cpu_num_threads(void)} */
  public static final MethodHandle lmoe_cpu_num_threads$MH =
      downcall("lmoe_cpu_num_threads", FunctionDescriptor.of(JAVA_INT));

  public static int lmoe_cpu_num_threads() {
    try {
      return (int) lmoe_cpu_num_threads$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cpu_set_num_threads(int32_t num_threads)} */
  public static final MethodHandle lmoe_cpu_set_num_threads$MH =
      downcall("lmoe_cpu_set_num_threads", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

  public static int lmoe_cpu_set_num_threads(int num_threads) {
    try {
      return (int) lmoe_cpu_set_num_threads$MH.invokeExact(num_threads);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cpu_chunk_tokens(void)} */
  public static final MethodHandle lmoe_cpu_chunk_tokens$MH =
      downcall("lmoe_cpu_chunk_tokens", FunctionDescriptor.of(JAVA_LONG));

  public static long lmoe_cpu_chunk_tokens() {
    try {
      return (long) lmoe_cpu_chunk_tokens$MH.invokeExact();
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_cpu_set_chunk_tokens(int64_t tokens)} */
  public static final MethodHandle lmoe_cpu_set_chunk_tokens$MH =
      downcall("lmoe_cpu_set_chunk_tokens", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));

  public static int lmoe_cpu_set_chunk_tokens(long tokens) {
    try {
      return (int) lmoe_cpu_set_chunk_tokens$MH.invokeExact(tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_gemm_kernel(int32_t precision, const char** name,
   * int32_t* peak_probe, int32_t* terms)}
   */
  public static final MethodHandle lmoe_cpu_gemm_kernel$MH =
      downcall("lmoe_cpu_gemm_kernel",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_cpu_gemm_kernel(int precision, MemorySegment name,
      MemorySegment peak_probe, MemorySegment terms) {
    try {
      return (int) lmoe_cpu_gemm_kernel$MH.invokeExact(precision, name, peak_probe, terms);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code lmoe_status lmoe_validate(const lmoe_config* cfg, const lmoe_weights* weights)} */
  public static final MethodHandle lmoe_validate$MH =
      downcall("lmoe_validate", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));

  public static int lmoe_validate(MemorySegment cfg, MemorySegment weights) {
    try {
      return (int) lmoe_validate$MH.invokeExact(cfg, weights);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_router_topk(const lmoe_config* cfg, const lmoe_weights* weights,
   * const float* x, int64_t num_tokens, int32_t* topk_ids, float* topk_weights)}
   */
  public static final MethodHandle lmoe_cpu_router_topk$MH =
      downcall("lmoe_cpu_router_topk", FunctionDescriptor.of(
          JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS));

  public static int lmoe_cpu_router_topk(MemorySegment cfg, MemorySegment weights,
      MemorySegment x, long num_tokens, MemorySegment topk_ids, MemorySegment topk_weights) {
    try {
      return (int) lmoe_cpu_router_topk$MH.invokeExact(
          cfg, weights, x, num_tokens, topk_ids, topk_weights);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_dispatch(const lmoe_config* cfg, const lmoe_weights* weights,
   * const float* x, int64_t num_tokens, const int32_t* topk_ids, int32_t* expert_offsets,
   * int32_t* sorted_row_of_slot, float* latent_sorted)}
   */
  public static final MethodHandle lmoe_cpu_dispatch$MH =
      downcall("lmoe_cpu_dispatch", FunctionDescriptor.of(
          JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_cpu_dispatch(MemorySegment cfg, MemorySegment weights, MemorySegment x,
      long num_tokens, MemorySegment topk_ids, MemorySegment expert_offsets,
      MemorySegment sorted_row_of_slot, MemorySegment latent_sorted) {
    try {
      return (int) lmoe_cpu_dispatch$MH.invokeExact(cfg, weights, x, num_tokens, topk_ids,
          expert_offsets, sorted_row_of_slot, latent_sorted);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cpu_experts_scratch_floats(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cpu_experts_scratch_floats$MH =
      downcall("lmoe_cpu_experts_scratch_floats",
          FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cpu_experts_scratch_floats(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cpu_experts_scratch_floats$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_experts(const lmoe_config* cfg, const lmoe_weights* weights,
   * int64_t num_tokens, const int32_t* expert_offsets, const float* latent_sorted,
   * float* hidden_scratch, float* expert_out_sorted)}
   */
  public static final MethodHandle lmoe_cpu_experts$MH =
      downcall("lmoe_cpu_experts", FunctionDescriptor.of(
          JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_cpu_experts(MemorySegment cfg, MemorySegment weights, long num_tokens,
      MemorySegment expert_offsets, MemorySegment latent_sorted, MemorySegment hidden_scratch,
      MemorySegment expert_out_sorted) {
    try {
      return (int) lmoe_cpu_experts$MH.invokeExact(cfg, weights, num_tokens, expert_offsets,
          latent_sorted, hidden_scratch, expert_out_sorted);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cpu_combine_scratch_floats(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cpu_combine_scratch_floats$MH =
      downcall("lmoe_cpu_combine_scratch_floats",
          FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cpu_combine_scratch_floats(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cpu_combine_scratch_floats$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_combine(const lmoe_config* cfg, const lmoe_weights* weights,
   * const float* x, int64_t num_tokens, const float* topk_weights,
   * const int32_t* sorted_row_of_slot, const float* expert_out_sorted, float* scratch,
   * float* out)}
   */
  public static final MethodHandle lmoe_cpu_combine$MH =
      downcall("lmoe_cpu_combine", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
          JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

  public static int lmoe_cpu_combine(MemorySegment cfg, MemorySegment weights, MemorySegment x,
      long num_tokens, MemorySegment topk_weights, MemorySegment sorted_row_of_slot,
      MemorySegment expert_out_sorted, MemorySegment scratch, MemorySegment out) {
    try {
      return (int) lmoe_cpu_combine$MH.invokeExact(cfg, weights, x, num_tokens, topk_weights,
          sorted_row_of_slot, expert_out_sorted, scratch, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /** {@code int64_t lmoe_cpu_forward_workspace_bytes(const lmoe_config* cfg, int64_t num_tokens)} */
  public static final MethodHandle lmoe_cpu_forward_workspace_bytes$MH =
      downcall("lmoe_cpu_forward_workspace_bytes",
          FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));

  public static long lmoe_cpu_forward_workspace_bytes(MemorySegment cfg, long num_tokens) {
    try {
      return (long) lmoe_cpu_forward_workspace_bytes$MH.invokeExact(cfg, num_tokens);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_forward(const lmoe_config* cfg, const lmoe_weights* weights,
   * const float* x, int64_t num_tokens, int32_t* topk_ids, float* topk_weights, void* workspace,
   * int64_t workspace_bytes, float* out)}
   */
  public static final MethodHandle lmoe_cpu_forward$MH =
      downcall("lmoe_cpu_forward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
          JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));

  public static int lmoe_cpu_forward(MemorySegment cfg, MemorySegment weights, MemorySegment x,
      long num_tokens, MemorySegment topk_ids, MemorySegment topk_weights,
      MemorySegment workspace, long workspace_bytes, MemorySegment out) {
    try {
      return (int) lmoe_cpu_forward$MH.invokeExact(cfg, weights, x, num_tokens, topk_ids,
          topk_weights, workspace, workspace_bytes, out);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_peak_probe(int32_t probe, double seconds, int32_t reps,
   * double* best_gflops)}
   */
  public static final MethodHandle lmoe_cpu_peak_probe$MH =
      downcall("lmoe_cpu_peak_probe",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_INT, ADDRESS));

  public static int lmoe_cpu_peak_probe(int probe, double seconds, int reps,
      MemorySegment best_gflops) {
    try {
      return (int) lmoe_cpu_peak_probe$MH.invokeExact(probe, seconds, reps, best_gflops);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_cpu_membw_probe(int32_t probe, int64_t array_bytes, int32_t reps,
   * double* best_gbps)}
   */
  public static final MethodHandle lmoe_cpu_membw_probe$MH =
      downcall("lmoe_cpu_membw_probe",
          FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS));

  public static int lmoe_cpu_membw_probe(int probe, long array_bytes, int reps,
      MemorySegment best_gbps) {
    try {
      return (int) lmoe_cpu_membw_probe$MH.invokeExact(probe, array_bytes, reps, best_gbps);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }

  /**
   * {@code lmoe_status lmoe_fill_uniform(void* dst, int32_t dtype, int64_t count, uint64_t seed,
   * float lo, float hi)}; {@code seed} is the unsigned 64-bit value's bits.
   */
  public static final MethodHandle lmoe_fill_uniform$MH =
      downcall("lmoe_fill_uniform", FunctionDescriptor.of(
          JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT));

  public static int lmoe_fill_uniform(MemorySegment dst, int dtype, long count, @Unsigned long seed,
      float lo, float hi) {
    try {
      return (int) lmoe_fill_uniform$MH.invokeExact(dst, dtype, count, seed, lo, hi);
    } catch (Error | RuntimeException e) {
      throw e;
    } catch (Throwable t) {
      throw Downcalls.unexpected(t);
    }
  }
}
