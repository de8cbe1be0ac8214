package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.CudaTests;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link CudaGraph}: a clear failure without a GPU; on a GPU, capture, replay, a failed capture, close. */
@ExtendWith(ArenaLeakCheck.class)
class CudaGraphTest {
    @Test
    void unavailableCudaFailsClearly() {
        Assumptions.assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaGraph.capture(CudaStream.legacyDefault(), () -> { }));
        assertTrue(e.getMessage().contains("CUDA is unavailable") && e.getMessage().contains(Cuda.unavailableReason()), e.getMessage());
    }

    @Test
    void capturedCopyReplaysAndFailedCaptureLeavesTheStreamUsable() {
        CudaTests.skipUnlessCuda();
        try (DeviceArena dev = DeviceArena.create("graph-dev", 0);
             HostArena host = HostArena.shared("graph-host")) {
            CudaStream s = dev.stream();
            float[] values = new float[256];
            for (int i = 0; i < values.length; i++) values[i] = i - 100.5f;
            Tensor src = dev.upload(host.allocateTensor(DType.F32, values.length).copyFrom(values));
            Tensor dst = dev.allocateTensor(DType.F32, values.length);
            s.synchronize();

            assertThrows(IllegalArgumentException.class, () -> CudaGraph.capture(CudaStream.legacyDefault(), () -> { }));
            // A throwing enqueue ends the capture: the stream works normally afterwards.
            IllegalStateException boom = new IllegalStateException("boom");
            assertSame(boom, assertThrows(IllegalStateException.class, () -> CudaGraph.capture(s, () -> { throw boom; })));

            CudaGraph g = CudaGraph.capture(s, () -> Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(
                    dst.segment(), src.segment(), src.byteSize(), s.handle()), "lmoe_cuda_memcpy_d2d_async"));
            try {
                assertArrayEquals(new float[values.length], CudaCopies.toHost(dst, host).toFloatArray(), "capturing runs nothing");
                g.launch(s);
                g.launch(s);
                assertArrayEquals(values, CudaCopies.toHost(dst, host).toFloatArray());
                assertEquals(0, latentmoe_cuda_h.lmoe_cuda_graph_launch(g.handle(), s.handle()), "the raw handle launches too");
                s.synchronize();
            } finally {
                g.close();
            }
            assertFalse(g.isOpen());
            assertThrows(IllegalStateException.class, () -> g.launch(s));
            g.close(); // idempotent
        }
    }
}
