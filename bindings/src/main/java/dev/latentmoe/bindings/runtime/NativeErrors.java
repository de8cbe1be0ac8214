package dev.latentmoe.bindings.runtime;

import java.lang.foreign.MemorySegment;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * Turns a native status code into a {@link LatentMoeNativeException}; each header class supplies
 * its library's status names and last-error text ({@code latentmoe_h.check}, {@code
 * latentmoe_cuda_h.check}).
 */
public final class NativeErrors {

  private NativeErrors() {}

  /**
   * Returns normally when {@code status == 0}; otherwise throws with {@code statusName}'s name for
   * it and {@code messageGetter}'s text (read at once: such texts are per thread and replaced by
   * the thread's next call).
   */
  public static void check(int status, String what, IntFunction<String> statusName,
      Supplier<String> messageGetter) {
    if (status != 0) {
      throw new LatentMoeNativeException(what, status, statusName.apply(status), messageGetter.get());
    }
  }

  /** Reads a NUL-terminated UTF-8 string; "" for NULL. */
  @SuppressWarnings("restricted") // reading a C string a native call returned
  public static String cString(MemorySegment p) {
    if (p == null || p.equals(MemorySegment.NULL)) {
      return "";
    }
    // Downcalls return zero-length segments; widen it to read up to the terminator.
    return p.reinterpret(Long.MAX_VALUE).getString(0);
  }
}
