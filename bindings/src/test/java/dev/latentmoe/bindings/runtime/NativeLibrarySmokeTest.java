package dev.latentmoe.bindings.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.latentmoe.bindings.latentmoe_h;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Loads the real liblatentmoe.so from {@code latentmoe.native.dir} (set by the root pom's
 * surefire argLine) and makes a few calls. The launcher builds the library before the tests, so a
 * missing file is a failure, not a skip.
 */
class NativeLibrarySmokeTest {

  private static Path requireLibrary() {
    String dir = Knob.NATIVE_DIR.get();
    if (dir == null) {
      fail("system property " + NativeLibraries.DIR_PROPERTY + " is not set (the root pom's "
          + "surefire argLine passes it)");
    }
    Path lib = Path.of(dir).resolve(NativeLibraries.fileName(NativeLibraries.CPU)).toAbsolutePath();
    if (!Files.isRegularFile(lib)) {
      fail(lib + " does not exist: build the native library first (cmake -S native -B native/build "
          + "-G Ninja && cmake --build native/build), or pass -D" + NativeLibraries.DIR_PROPERTY
          + "=<dir with liblatentmoe.so>");
    }
    if (!latentmoe_h.isAvailable()) {
      fail("liblatentmoe.so did not load: " + latentmoe_h.unavailableReason().orElse("?"));
    }
    return lib;
  }

  @Test
  void abiVersionAndLastError() throws Exception {
    Path lib = requireLibrary();
    assertEquals(lib.toRealPath(),
        NativeLibraries.loadedPath(NativeLibraries.CPU).orElseThrow().toRealPath());
    assertEquals(latentmoe_h.LMOE_ABI_VERSION, latentmoe_h.lmoe_abi_version());
    assertNotNull(latentmoe_h.lmoe_last_error());
    assertNotNull(latentmoe_h.lastError());
  }

  @Test
  void failureStatusCarriesTheNativeMessage() {
    requireLibrary();
    // The header allows 1..1024 threads, so 0 must be rejected with a message.
    int status = latentmoe_h.lmoe_cpu_set_num_threads(0);
    assertEquals(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, status);
    String message = latentmoe_h.lastError();
    assertFalse(message.isEmpty(), "lmoe_last_error() is empty after a failed call");
    LatentMoeNativeException e = assertThrows(LatentMoeNativeException.class,
        () -> latentmoe_h.check(status, "lmoe_cpu_set_num_threads(0)"));
    assertEquals(status, e.status());
    assertEquals(message, e.nativeMessage());
    assertTrue(e.getMessage().contains("LMOE_ERR_INVALID_ARGUMENT"), e::getMessage);
  }

  @Test
  void aLibraryOfAnotherAbiIsRefusedWithTheReason() {
    requireLibrary();
    Library other = Library.ours(NativeLibraries.CPU, "lmoe_abi_version", latentmoe_h.LMOE_ABI_VERSION + 97);
    assertFalse(other.isAvailable());
    String why = other.unavailableReason().orElseThrow();
    assertTrue(why.contains("implements ABI " + latentmoe_h.LMOE_ABI_VERSION + " but these bindings need ABI "
        + (latentmoe_h.LMOE_ABI_VERSION + 97)), why);
    // nothing is bound: a call throws the reason instead of touching the library
    java.lang.invoke.MethodHandle h = other.downcall("lmoe_abi_version",
        java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT));
    UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class, () -> { int unused = (int) h.invokeExact(); });
    assertTrue(e.getMessage().contains("ABI"), e::getMessage);
    Library noVersion = Library.ours(NativeLibraries.CPU, "lmoe_no_such_version_function", 1);
    assertTrue(noVersion.unavailableReason().orElseThrow().contains("has no lmoe_no_such_version_function"));
  }

  @Test
  void addressDowncallsAreTheHeaderSignatureWithLongsForChosenPointers() {
    requireLibrary();
    java.lang.invoke.MethodType raw = latentmoe_h.addressDowncall("lmoe_cpu_forward", 1, 4, 5, 6).type();
    java.lang.invoke.MethodType header = latentmoe_h.lmoe_cpu_forward$MH.type();
    assertEquals(header.parameterCount(), raw.parameterCount());
    for (int i = 0; i < header.parameterCount(); i++) {
      boolean swapped = i == 1 || i == 4 || i == 5 || i == 6;
      assertEquals(swapped ? long.class : header.parameterType(i), raw.parameterType(i), "argument " + i);
    }
    IllegalArgumentException notPointer = assertThrows(IllegalArgumentException.class,
        () -> latentmoe_h.addressDowncall("lmoe_cpu_forward", 3));
    assertTrue(notPointer.getMessage().contains("argument 3 is not a pointer"), notPointer::getMessage);
    assertThrows(IllegalArgumentException.class, () -> latentmoe_h.addressDowncall("lmoe_no_such_function", 0));
  }
}
