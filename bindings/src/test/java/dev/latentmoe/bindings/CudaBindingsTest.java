package dev.latentmoe.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * The CUDA backend's bindings load (or say why not) without a GPU: liblatentmoe_cuda.so through
 * NativeLibraries; where it loads, calls that need no GPU work.
 */
class CudaBindingsTest {

  @Test
  void latentmoeCudaLoadsOrSaysWhy() {
    if (latentmoe_cuda_h.isAvailable()) {
      assertEquals(latentmoe_cuda_h.LMOE_CUDA_ABI_VERSION, latentmoe_cuda_h.lmoe_cuda_abi_version());
      try (Arena a = Arena.ofConfined()) {
        MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
        int st = latentmoe_cuda_h.lmoe_cuda_device_count(n);
        System.out.println("lmoe_cuda_device_count: status " + st + ", count "
            + n.get(ValueLayout.JAVA_INT, 0) + ", " + latentmoe_cuda_h.lastError());
        // the knob struct needs no GPU
        MemorySegment t = lmoe_cuda_tuning.allocate(a);
        assertEquals(latentmoe_h.LMOE_OK, latentmoe_cuda_h.lmoe_cuda_tuning_defaults(t));
        assertEquals(16, lmoe_cuda_tuning.decode_max_tokens(t));
        assertEquals(256, lmoe_cuda_tuning.fc1_tile(t));
        MemorySegment line = a.allocate(512);
        assertEquals(latentmoe_h.LMOE_OK, latentmoe_cuda_h.lmoe_cuda_tuning_string(t, line, 512));
        assertTrue(line.getString(0).startsWith("experts=auto fc1_tile=256 decode=auto"),
            line.getString(0));
      }
    } else {
      String why = latentmoe_cuda_h.unavailableReason().orElseThrow();
      System.out.println("liblatentmoe_cuda.so unavailable: " + why);
      assertTrue(why.contains("liblatentmoe_cuda.so"), why);
      UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
          latentmoe_cuda_h::lmoe_cuda_abi_version);
      assertTrue(e.getMessage().startsWith("lmoe_cuda_abi_version: "), e.getMessage());
    }
    assertFalse(latentmoe_cuda_h.DESCRIPTORS.isEmpty());
  }
}
