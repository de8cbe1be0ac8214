package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A few calls through {@link latentmoe_engine_h} into the real liblatentmoe.so (the engine ABI's
 * full behaviour is tested natively by native/tests-engine and from Python by native/python).
 */
class EngineBindingsSmokeTest {

  @Test
  void abiVersion() {
    if (!latentmoe_engine_h.isAvailable()) {
      fail("liblatentmoe.so did not load: " + latentmoe_engine_h.unavailableReason().orElse("?"));
    }
    assertEquals(latentmoe_engine_h.LMOE_ENGINE_ABI_VERSION,
        latentmoe_engine_h.lmoe_engine_abi_version());
  }

  @Test
  void openingAMissingCheckpointFailsWithAMessage(@TempDir Path tmp) {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment out = arena.allocate(ADDRESS);
      out.set(ADDRESS, 0, MemorySegment.ofAddress(1));
      String dir = tmp.resolve("missing").toString();
      int status = latentmoe_engine_h.lmoe_layer_open(arena.allocateFrom(dir), 0, out);
      assertEquals(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, status);
      assertEquals(MemorySegment.NULL, out.get(ADDRESS, 0), "*out must be NULL on failure");
      String message = latentmoe_h.lastError();
      assertTrue(message.contains("not a checkpoint directory"), message);
      // NULL layer: an error, never a crash.
      assertEquals(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT,
          latentmoe_engine_h.lmoe_layer_forward(MemorySegment.NULL, MemorySegment.NULL, 1,
              MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL));
      assertEquals(latentmoe_h.LMOE_OK, latentmoe_engine_h.lmoe_layer_close(MemorySegment.NULL));
    }
  }
}
