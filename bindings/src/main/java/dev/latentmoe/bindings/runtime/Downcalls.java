package dev.latentmoe.bindings.runtime;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * The downcall plumbing every jextract-shaped header class shares: binding a symbol, a stand-in
 * handle for a missing one, and the wrapper methods' translation of checked exceptions. The
 * stand-in has the descriptor's type and throws {@link UnsatisfiedLinkError} with the reason when
 * called, so class initialisation never fails on a machine without the library.
 */
public final class Downcalls {

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

  /** A downcall handle to {@code symbol}. */
  @SuppressWarnings("restricted") // binding native functions is this class's purpose
  static MethodHandle bind(MemorySegment symbol, FunctionDescriptor fd) {
    return LINKER.downcallHandle(symbol, fd);
  }

  /** A handle of the descriptor's type that throws a fresh UnsatisfiedLinkError per call. */
  public static MethodHandle unavailable(String name, FunctionDescriptor fd, String reason) {
    MethodType type = fd.toMethodType();
    MethodHandle thrower = MethodHandles.throwException(type.returnType(), UnsatisfiedLinkError.class);
    MethodHandle make = MethodHandles.insertArguments(NEW_LINK_ERROR, 0, name + ": " + reason);
    MethodHandle noArgs = MethodHandles.collectArguments(thrower, 0, make);
    return MethodHandles.dropArguments(noArgs, 0, type.parameterList());
  }

  /** What a wrapper method throws for a checked exception from {@code invokeExact} (never expected). */
  public static RuntimeException unexpected(Throwable t) {
    return new IllegalStateException("unexpected checked exception from a downcall", t);
  }
}
