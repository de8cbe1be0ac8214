package dev.latentmoe.bindings;

import java.lang.foreign.MemorySegment;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/** Turns native status codes into {@link LatentMoeNativeException}s. */
public final class NativeErrors {

  private NativeErrors() {}

  /**
   * Returns normally when {@code status == LMOE_OK}; otherwise throws with the calling thread's
   * {@code lmoe_last_error()} text. Call it right after the native call, on the same thread, since
   * the message is per thread and replaced by that thread's next call.
   */
  public static void check(int status, String what) {
    if (status != latentmoe_h.LMOE_OK) {
      throw new LatentMoeNativeException(what, status, statusName(status), lastError());
    }
  }

  /**
   * The same for another library (e.g. the CUDA backend): {@code messageGetter} supplies its
   * last-error text and {@code statusName} names its codes; 0 still means success.
   */
  public static void check(int status, String what, IntFunction<String> statusName,
      Supplier<String> messageGetter) {
    if (status != 0) {
      throw new LatentMoeNativeException(what, status, statusName.apply(status), messageGetter.get());
    }
  }

  /** {@link #check(int, String, IntFunction, Supplier)} with the lmoe_status names. */
  public static void check(int status, String what, Supplier<String> messageGetter) {
    check(status, what, NativeErrors::statusName, messageGetter);
  }

  /** The calling thread's {@code lmoe_last_error()} text, or "" when it is NULL. */
  public static String lastError() {
    return cString(latentmoe_h.lmoe_last_error());
  }

  /** Reads a NUL-terminated UTF-8 string; "" for NULL. */
  @SuppressWarnings("restricted") // this module exists to call native code
  public static String cString(MemorySegment p) {
    if (p == null || p.equals(MemorySegment.NULL)) {
      return "";
    }
    // Downcalls return zero-length segments; widen it to read up to the terminator.
    return p.reinterpret(Long.MAX_VALUE).getString(0);
  }

  /** The C name of an lmoe_status value, or "lmoe_status <n>" for unknown codes. */
  public static String statusName(int status) {
    return switch (status) {
      case latentmoe_h.LMOE_OK -> "LMOE_OK";
      case latentmoe_h.LMOE_ERR_INVALID_ARGUMENT -> "LMOE_ERR_INVALID_ARGUMENT";
      case latentmoe_h.LMOE_ERR_UNSUPPORTED -> "LMOE_ERR_UNSUPPORTED";
      case latentmoe_h.LMOE_ERR_OUT_OF_MEMORY -> "LMOE_ERR_OUT_OF_MEMORY";
      case latentmoe_h.LMOE_ERR_CUDA -> "LMOE_ERR_CUDA";
      case latentmoe_h.LMOE_ERR_INTERNAL -> "LMOE_ERR_INTERNAL";
      default -> "lmoe_status " + status;
    };
  }
}
