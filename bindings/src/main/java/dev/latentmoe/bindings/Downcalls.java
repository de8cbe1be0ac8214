package dev.latentmoe.bindings;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Map;
import java.util.Optional;

/**
 * Shared plumbing of the hand-written jextract-shaped header classes ({@link latentmoe_cuda_h},
 * {@link cuda_runtime_h}, {@link cublasLt_h}): a downcall handle when the symbol is there, else a
 * handle of the same type that throws {@link UnsatisfiedLinkError} with the reason when called, so
 * class initialisation never fails on a machine without the library.
 */
final class Downcalls {

  private Downcalls() {}

  private static final Linker LINKER = Linker.nativeLinker();
  private static final MethodHandle NEW_LINK_ERROR;

  static {
    try {
      NEW_LINK_ERROR = MethodHandles.publicLookup().findConstructor(
          UnsatisfiedLinkError.class, MethodType.methodType(void.class, String.class));
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  /**
   * Records {@code fd} under {@code name} in {@code descriptors} and binds it in {@code lookup}
   * (null: the library is missing, {@code reason} says why); {@code where} names the library file
   * for the "symbol not found" message.
   */
  @SuppressWarnings("restricted") // binding native functions is this class's purpose
  static MethodHandle downcall(Map<String, FunctionDescriptor> descriptors, SymbolLookup lookup,
      String reason, String where, String name, FunctionDescriptor fd) {
    descriptors.put(name, fd);
    if (lookup == null) {
      return unavailable(name, fd, reason);
    }
    Optional<MemorySegment> symbol = lookup.find(name);
    if (symbol.isEmpty()) {
      return unavailable(name, fd, "symbol not found in " + where);
    }
    return LINKER.downcallHandle(symbol.get(), fd);
  }

  /** A handle of the descriptor's type that throws a fresh UnsatisfiedLinkError per call. */
  static MethodHandle unavailable(String name, FunctionDescriptor fd, String reason) {
    MethodType type = fd.toMethodType();
    MethodHandle thrower = MethodHandles.throwException(type.returnType(), UnsatisfiedLinkError.class);
    MethodHandle make = MethodHandles.insertArguments(NEW_LINK_ERROR, 0, name + ": " + reason);
    MethodHandle noArgs = MethodHandles.collectArguments(thrower, 0, make);
    return MethodHandles.dropArguments(noArgs, 0, type.parameterList());
  }

  static RuntimeException unexpected(Throwable t) {
    return new IllegalStateException("unexpected checked exception from a downcall", t);
  }
}
