package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CUDA backend's registration and its behaviour with and without a usable GPU. */
@ExtendWith(NoLeaks.class)
class CudaBackendTest {
    @Test
    void registeredThroughServiceLoader() {
        Backend b = assertDoesNotThrow(() -> Backends.get("cuda"));
        assertInstanceOf(CudaBackend.class, b, "the cuda provider is registered in META-INF/services");
        assertEquals("cuda", b.name());
        assertEquals(Device.cuda(0), b.device());
        assertTrue(Backends.all().contains(b));
        System.out.println("cuda backend available: " + b.isAvailable()
                + (b.isAvailable() ? "" : " (" + b.unavailableReason() + ")"));
    }

    @Test
    void unavailableSaysWhyAndRefusesWork() {
        Backend b = Backends.get("cuda");
        Assumptions.assumeFalse(b.isAvailable(), "CUDA is available here; the unavailable path is not testable");
        String why = b.unavailableReason();
        assertNotNull(why);
        assertTrue(why.contains("liblatentmoe_cuda.so") || why.contains("driver") || why.contains("device"),
                "reason should name the library, the driver or the device: " + why);
        try (HostArena a = HostArena.shared("w")) {
            MoeWeights w = MoeWeights.random(BadInputTest.CFG, DType.BF16, 1, a, null);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.prepare(w));
            assertTrue(e.getMessage().contains(why), e.getMessage());
            IllegalStateException e2 = assertThrows(IllegalStateException.class, () -> MoeLayer.of(w, b));
            assertTrue(e2.getMessage().contains("unavailable"), e2.getMessage());
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.newActivationArena("x"));
        assertTrue(e.getMessage().contains(why), e.getMessage());
    }

    @Test
    void availableBackendRoundTripsAndRejectsHostTensors() {
        Backend b = Backends.get("cuda");
        TestBackend.skipUnless(b);
        assertNull(b.unavailableReason());
        try (MoeLayer layer = MoeLayer.random(BadInputTest.CFG, DType.BF16, 3, b);
             HostArena host = HostArena.shared("host");
             MemoryArena devArena = b.newActivationArena("dev")) {
            assertEquals(DType.BF16, layer.kernels().activationDType());
            Tensor x = Cases.input(host, 5, BadInputTest.CFG.hiddenSize(), 9).convertTo(DType.BF16, host);
            // Host tensors are refused with a device message before any native call.
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.forward(x));
            assertTrue(e.getMessage().contains("cuda:0"), e.getMessage());
            Tensor dx = devArena.allocateTensor(DType.BF16, 5, BadInputTest.CFG.hiddenSize());
            dev.latentmoe.memory.cuda.CudaCopies.copy(x, dx);
            Tensor y = layer.forward(dx);
            assertEquals(Device.cuda(0), y.device());
            assertThrows(IllegalStateException.class, () -> y.getFloat(0));
            Tensor yh = dev.latentmoe.memory.cuda.CudaCopies.toHost(y, host);
            assertTrue(!yh.hasNonFinite());
        }
    }

    @Test
    void forwardAsyncOnOwnStreamEqualsForwardAndIsTimedByEvents() {
        Backend b = Backends.get("cuda");
        TestBackend.skipUnless(b);
        MoeConfig cfg = Cases.SUPER_SMALL;
        int tokens = 64;
        // The stream's arena is declared first so it closes last, after the layer that used it.
        try (dev.latentmoe.memory.DeviceArena own = dev.latentmoe.memory.DeviceArena.create("own-stream", 0);
             MoeLayer layer = MoeLayer.random(cfg, DType.BF16, 11, b);
             HostArena host = HostArena.shared("host");
             dev.latentmoe.memory.cuda.CudaEvent start = dev.latentmoe.memory.cuda.CudaEvent.create();
             dev.latentmoe.memory.cuda.CudaEvent end = dev.latentmoe.memory.cuda.CudaEvent.create()) {
            var kernels = (dev.latentmoe.kernels.cuda.CudaLayerKernels) layer.kernels();
            Tensor x = Cases.input(host, tokens, cfg.hiddenSize(), 5).convertTo(DType.BF16, host);
            Tensor dx = own.upload(x);
            Tensor out = own.allocateTensor(DType.BF16, tokens, cfg.hiddenSize());
            Tensor ids = own.allocateTensor(DType.I32, tokens, cfg.topK());
            Tensor w = own.allocateTensor(DType.F32, tokens, cfg.topK());
            kernels.forwardAsync(dx, ids, w, out, own.stream()); // warm-up (grows the workspace)
            start.record(own.stream());
            kernels.forwardAsync(dx, ids, w, out, own.stream());
            end.record(own.stream());
            end.synchronize();
            System.out.printf("super/8 T=%d forwardAsync: %.3f ms%n", tokens, start.elapsedMillisTo(end));
            float[] async = dev.latentmoe.memory.cuda.CudaCopies.toHost(out, host).toFloatArray();
            float[] sync = dev.latentmoe.memory.cuda.CudaCopies.toHost(layer.forward(dx), host).toFloatArray();
            assertTrue(java.util.Arrays.equals(async, sync), "forwardAsync differs from forward");
            // routing not wanted: nulls are allowed and give the same output
            kernels.forwardAsync(dx, null, null, out, own.stream());
            own.stream().synchronize();
            assertTrue(java.util.Arrays.equals(async, dev.latentmoe.memory.cuda.CudaCopies.toHost(out, host).toFloatArray()));
        }
    }
}
