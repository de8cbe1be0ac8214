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
  void jarCarriesTheBuiltLibrary(@org.junit.jupiter.api.io.TempDir Path empty) throws Exception {
    Path lib = requireLibrary();
    // The bindings pom packages latentmoe.native.dir into /native/linux-x86_64; extract, don't load.
    Path extracted = NativeLibraries.locate(NativeLibraries.CPU, empty.toString());
    assertTrue(java.util.Arrays.equals(Files.readAllBytes(lib), Files.readAllBytes(extracted)),
        "packaged " + NativeLibraries.RESOURCE_DIR + " copy differs from " + lib
            + " (stale target/classes? rebuild bindings)");
  }
}
