package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.interop.ArrowTensors;
import dev.latentmoe.memory.interop.FixedShapeTensor;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ArrowLayer: a VectorSchemaRoot in, one out, the layer reading and writing Arrow's buffers in place. */
@ExtendWith(NoLeaks.class)
class ArrowLayerTest {
    static final MoeConfig CFG = Cases.cfg(96, 32, 12, 3, 40, 24, 2.5f, Activation.RELU2);

    /** The CPU backend, recording the addresses forward() is given. */
    static final class Recording implements Backend {
        final Backend cpu = Backends.cpu();
        final AtomicLong xAddress = new AtomicLong(), outAddress = new AtomicLong();

        @Override public String name() { return "recording-cpu"; }
        @Override public boolean isAvailable() { return cpu.isAvailable(); }
        @Override public String unavailableReason() { return cpu.unavailableReason(); }
        @Override public Device device() { return cpu.device(); }
        @Override public MemoryArena newActivationArena(String n) { return cpu.newActivationArena(n); }

        @Override
        public LayerKernels prepare(MoeWeights weights) {
            LayerKernels k = cpu.prepare(weights);
            return (LayerKernels) Proxy.newProxyInstance(LayerKernels.class.getClassLoader(), new Class<?>[] {LayerKernels.class},
                    (proxy, method, args) -> {
                        if (method.getName().equals("forward") && args != null && args.length == 4) {
                            xAddress.set(((Tensor) args[0]).segment().address());
                            outAddress.set(((Tensor) args[3]).segment().address());
                        }
                        try {
                            return method.invoke(k, args);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                    });
        }
    }

    private static FixedSizeListVector input(BufferAllocator allocator, String name, float[] x, int tokens, int d) {
        FixedSizeListVector v = (FixedSizeListVector) ArrowTensors.field(name, DType.F32, tokens, d).createVector(allocator);
        v.setInitialCapacity(tokens);
        v.allocateNew();
        Float4Vector values = (Float4Vector) v.getDataVector();
        for (int i = 0; i < x.length; i++) values.set(i, x[i]);
        for (int t = 0; t < tokens; t++) v.setNotNull(t);
        v.setValueCount(tokens);
        return v;
    }

    @Test
    void forwardReadsAndWritesArrowBuffersInPlace() {
        Recording backend = new Recording();
        TestBackend.skipUnless(backend.cpu);
        int tokens = 7, d = CFG.hiddenSize();
        long seed = Cases.seed("arrow-layer");
        try (BufferAllocator allocator = new RootAllocator();
             MoeLayer layer = MoeLayer.random(CFG, DType.BF16, seed, backend);
             HostArena arena = HostArena.confined("reference")) {
            Tensor x = Cases.input(arena, tokens, d, seed + 1);
            float[] expect = layer.forward(x).toFloatArray();
            FixedSizeListVector xv = input(allocator, "x", x.toFloatArray(), tokens, d);
            IntVector ids = new IntVector("id", allocator);
            ids.allocateNew(tokens);
            for (int t = 0; t < tokens; t++) ids.set(t, t);
            ids.setValueCount(tokens);
            try (VectorSchemaRoot in = new VectorSchemaRoot(List.of(ids, xv));
                 VectorSchemaRoot out = ArrowLayer.forward(layer, in, "x", "y", allocator)) {
                assertEquals(xv.getDataVector().getDataBuffer().memoryAddress(), backend.xAddress.get(), "x read in place");
                FixedSizeListVector yv = (FixedSizeListVector) out.getVector("y");
                assertEquals(yv.getDataVector().getDataBuffer().memoryAddress(), backend.outAddress.get(), "y written in place");
                assertEquals(tokens, out.getRowCount());
                assertEquals(FixedShapeTensor.EXTENSION, yv.getField().getMetadata().get(FixedShapeTensor.EXTENSION_NAME_KEY));
                float[] got = new float[tokens * d];
                Float4Vector yvals = (Float4Vector) yv.getDataVector();
                for (int i = 0; i < got.length; i++) got[i] = yvals.get(i);
                assertArrayEquals(expect, got, "bit-identical to layer.forward on the same tensor");
                assertEquals(0, yv.getNullCount());
            }
            assertEquals(0, allocator.getAllocatedMemory());
        }
    }

    @Test
    void badColumnsRaise() {
        TestBackend.skipUnless(Backends.cpu());
        try (BufferAllocator allocator = new RootAllocator();
             MoeLayer layer = MoeLayer.random(CFG, DType.F32, 1, Backends.cpu())) {
            FixedSizeListVector narrow = input(allocator, "x", new float[4 * 8], 4, 8);
            IntVector ids = new IntVector("id", allocator);
            try (VectorSchemaRoot in = new VectorSchemaRoot(List.of(ids, narrow))) {
                assertTrue(assertThrows(IllegalArgumentException.class, () -> ArrowLayer.forward(layer, in, "nope", allocator))
                        .getMessage().contains("no column"));
                assertTrue(assertThrows(IllegalArgumentException.class, () -> ArrowLayer.forward(layer, in, "id", allocator))
                        .getMessage().contains("fixed-size list"));
                assertTrue(assertThrows(IllegalArgumentException.class, () -> ArrowLayer.forward(layer, in, "x", allocator))
                        .getMessage().contains("hidden size"));
            }
            float[] bad = new float[2 * CFG.hiddenSize()];
            bad[5] = Float.NaN;
            try (VectorSchemaRoot in = new VectorSchemaRoot(List.of(input(allocator, "x", bad, 2, CFG.hiddenSize())))) {
                assertThrows(IllegalArgumentException.class, () -> ArrowLayer.forward(layer, in, "x", allocator));
            }
            assertEquals(0, allocator.getAllocatedMemory(), "failed calls free their output");
        }
    }
}
