package dev.latentmoe.memory;

import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaEvent;
import dev.latentmoe.memory.cuda.CudaStream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link DeviceArena}, {@link PinnedHostArena}, {@link CudaCopies}, {@link CudaStream} and
 * {@link CudaEvent}: clear failures without a GPU; on a GPU, round trips and accounting.
 */
@ExtendWith(ArenaLeakCheck.class)
class DeviceArenaTest {
    @Test
    void unavailableCudaFailsClearly() {
        Assumptions.assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        String why = Cuda.unavailableReason();
        assertNotNull(why);
        System.out.println("CUDA unavailable: " + why);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> DeviceArena.create("d", 0));
        assertTrue(e.getMessage().contains("CUDA is unavailable") && e.getMessage().contains(why), e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> PinnedHostArena.create("p"));
        assertTrue(e.getMessage().contains(why), e.getMessage());
        assertThrows(IllegalStateException.class, () -> CudaStream.create(0));
        assertThrows(IllegalStateException.class, CudaEvent::create);
        assertEquals(0, Cuda.deviceCount());
        // Nothing was opened by the failed creations (ArenaLeakCheck also checks this).
        assertEquals(0, MemoryAccounting.openArenas());
    }

    @Test
    void deviceRoundTripAndAccounting() {
        CudaTests.skipUnlessCuda();
        float[] values = new float[1000];
        for (int i = 0; i < values.length; i++) values[i] = i * 0.25f - 7;
        try (DeviceArena dev = DeviceArena.create("dev", 0);
             HostArena host = HostArena.shared("host");
             PinnedHostArena pinned = PinnedHostArena.create("pinned")) {
            Tensor h = host.allocateTensor(DType.F32, 10, 100).copyFrom(values);
            Tensor d = dev.upload(h);
            assertEquals(Device.cuda(0), d.device());
            assertEquals(MemoryArena.paddedSize(4000), dev.bytesHeld());
            assertEquals(MemoryArena.paddedSize(4000), MemoryAccounting.deviceBytes());
            assertThrows(IllegalStateException.class, () -> d.getFloat(0), "device memory is not readable from Java");
            // device -> device, then into pinned memory asynchronously
            Tensor d2 = dev.allocateTensor(DType.F32, 10, 100);
            CudaCopies.copy(d, d2);
            Tensor p = pinned.allocateTensor(DType.F32, 10, 100);
            assertEquals(0f, p.getFloat(5), "pinned memory is zeroed and readable");
            CudaCopies.copyAsync(d2.rows(2, 10), p.rows(2, 10), dev.stream());
            dev.stream().synchronize();
            float[] back = p.toFloatArray();
            for (int i = 0; i < 200; i++) assertEquals(0f, back[i]);
            for (int i = 200; i < 1000; i++) assertEquals(values[i], back[i]);
            assertArrayEquals(values, CudaCopies.toHost(d, host).toFloatArray());
            // fresh device memory is zeroed
            assertArrayEquals(new float[64], CudaCopies.toHost(dev.allocateTensor(DType.F32, 64), host).toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> CudaCopies.copy(d, host.allocateTensor(DType.F32, 3)));
        }
        assertEquals(0, MemoryAccounting.deviceBytes());
        assertEquals(0, MemoryAccounting.hostBytes());
    }

    @Test
    void eventsTimeStreamWork() {
        CudaTests.skipUnlessCuda();
        try (DeviceArena dev = DeviceArena.create("dev", 0);
             CudaEvent start = CudaEvent.create();
             CudaEvent end = CudaEvent.create()) {
            start.record(dev.stream());
            Tensor big = dev.allocateTensor(DType.BF16, 1 << 24);
            Tensor big2 = dev.allocateTensor(DType.BF16, 1 << 24);
            CudaCopies.copyAsync(big, big2, dev.stream());
            end.record(dev.stream());
            end.synchronize();
            float ms = start.elapsedMillisTo(end);
            assertTrue(ms >= 0 && ms < 10_000, "elapsed " + ms + " ms");
        }
    }

    @Test
    void closedArenaRefusesUse() {
        CudaTests.skipUnlessCuda();
        DeviceArena dev = DeviceArena.create("dev", 0);
        Tensor d = dev.allocateTensor(DType.I32, 4);
        dev.close();
        assertFalse(dev.isOpen());
        assertThrows(IllegalStateException.class, d::segment);
        assertThrows(IllegalStateException.class, () -> dev.allocate(8));
        dev.close(); // idempotent
    }
}
