package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** DLPack 1.x structs against dlpack.h, Java→Java round trips, deleter exactly once. */
@ExtendWith(ArenaLeakCheck.class)
class DLPackTest {
    @Test
    void layoutsFollowDlpackH() {
        assertEquals(8, DLPack.DL_PACK_VERSION.byteSize());
        assertEquals(8, DLPack.DL_DEVICE.byteSize());
        assertEquals(4, DLPack.DL_DATA_TYPE.byteSize());
        assertEquals(48, DLPack.DL_TENSOR.byteSize());
        assertEquals(80, DLPack.DL_MANAGED_TENSOR_VERSIONED.byteSize());
        // DLTensor: data 0, device 8, ndim 16, dtype 20, shape 24, strides 32, byte_offset 40
        assertArrayEquals(new long[] {0, 8, 16, 20, 24, 32, 40}, new long[] {DLPack.T_DATA, DLPack.T_DEVICE_TYPE, DLPack.T_NDIM,
                DLPack.T_CODE, DLPack.T_SHAPE, DLPack.T_STRIDES, DLPack.T_BYTE_OFFSET});
        assertEquals(12, DLPack.T_DEVICE_ID);
        assertArrayEquals(new long[] {20, 21, 22}, new long[] {DLPack.T_CODE, DLPack.T_BITS, DLPack.T_LANES});
        // DLManagedTensorVersioned: version 0, manager_ctx 8, deleter 16, flags 24, dl_tensor 32
        assertArrayEquals(new long[] {0, 4, 8, 16, 24, 32}, new long[] {DLPack.M_MAJOR, DLPack.M_MINOR, DLPack.M_CTX, DLPack.M_DELETER,
                DLPack.M_FLAGS, DLPack.M_TENSOR});
        assertEquals(32, DLPack.DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("dl_tensor")));
        assertEquals(1, DLPack.kDLCPU);
        assertEquals(2, DLPack.kDLCUDA);
        assertEquals(3, DLPack.kDLCUDAHost);
        assertEquals(2, DLPack.kDLFloat);
        assertEquals(4, DLPack.kDLBfloat);
        assertEquals(1L, DLPack.FLAG_READ_ONLY);
        assertEquals(2L, DLPack.FLAG_IS_COPIED);
    }

    @Test
    void exportedFields() {
        try (HostArena a = HostArena.shared("dl")) {
            Tensor t = a.allocateTensor(DType.BF16, 2, 3, 5);
            MemorySegment m = DLPack.export(t).reinterpret(80);
            assertEquals(1, m.get(JAVA_INT, 0), "major");
            assertEquals(DLPack.MINOR_VERSION, m.get(JAVA_INT, 4));
            assertEquals(0L, m.get(JAVA_LONG, 24), "flags");
            assertEquals(t.segment().address(), m.get(ADDRESS, 32).address(), "data, no copy");
            assertEquals(DLPack.kDLCPU, m.get(JAVA_INT, 40));
            assertEquals(0, m.get(JAVA_INT, 44));
            assertEquals(3, m.get(JAVA_INT, 48), "ndim");
            assertEquals(DLPack.kDLBfloat, m.get(JAVA_BYTE, 52));
            assertEquals(16, m.get(JAVA_BYTE, 53));
            assertEquals(1, m.get(JAVA_SHORT, 54));
            assertArrayEquals(new long[] {2, 3, 5}, m.get(ADDRESS, 56).reinterpret(24).toArray(JAVA_LONG));
            assertArrayEquals(new long[] {15, 5, 1}, m.get(ADDRESS, 64).reinterpret(24).toArray(JAVA_LONG));
            assertEquals(0L, m.get(JAVA_LONG, 72), "byte_offset");
            assertEquals(1, a.holds());
            DLPack.delete(m);
            assertEquals(0, a.holds(), "the deleter drops the hold");
        }
    }

    @Test
    void roundTripJavaToJava() {
        for (DType dt : DType.ACTIVATION_TYPES) {
            try (HostArena a = HostArena.shared("rt")) {
                Tensor t = a.allocateTensor(dt, 4, 3);
                for (int i = 0; i < 12; i++) t.setFloat(i, i - 5);
                Tensor back = DLPack.importTensor(DLPack.export(t));
                assertEquals(dt, back.dtype());
                assertArrayEquals(new long[] {4, 3}, back.shape());
                assertEquals(t.segment().address(), back.segment().address());
                assertArrayEquals(t.toFloatArray(), back.toFloatArray());
                back.setFloat(0, 42); // writable, shared memory
                assertEquals(42f, t.getFloat(0));
                assertEquals(1, a.holds());
                back.arena().close();
                back.arena().close();
                assertEquals(0, a.holds(), "deleter ran once");
            }
        }
    }

    @Test
    void deferredCloseFreesOnDeleter() {
        HostArena a = HostArena.shared("late");
        Tensor t = a.allocateTensor(DType.F32, 8);
        MemorySegment m = DLPack.export(t);
        a.close();
        assertEquals(1, dev.latentmoe.memory.MemoryAccounting.openArenas());
        DLPack.delete(m);
        assertEquals(0, dev.latentmoe.memory.MemoryAccounting.openArenas());
    }

    @Test
    void readOnlyMappingIsFlaggedAndImportedReadOnly(@TempDir Path dir) {
        Path f = dir.resolve("w.safetensors");
        try (HostArena a = HostArena.confined("w")) {
            Tensor w = a.allocateTensor(DType.F32, 2, 2).copyFrom(new float[] {1, 2, 3, 4});
            SafeTensorsWriter.write(f, java.util.Map.of("w", w), java.util.Map.of());
        }
        try (dev.latentmoe.memory.MappedFileArena st = dev.latentmoe.memory.MappedFileArena.map(f)) {
            long header = st.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0);
            Tensor mapped = Tensor.wrap(st, st.segment().asSlice(8 + header, 16), DType.F32, 2, 2);
            MemorySegment m = DLPack.export(mapped).reinterpret(80);
            assertEquals(DLPack.FLAG_READ_ONLY, m.get(JAVA_LONG, 24));
            Tensor back = DLPack.importTensor(m);
            assertEquals(4f, back.getFloat(3));
            assertThrows(IllegalArgumentException.class, () -> back.setFloat(0, 1), "read-only");
            back.arena().close();
        }
    }

    @Test
    void cudaTensorFields() {
        // a cuda:3 tensor faked over host bytes (the pointer is only carried, never dereferenced)
        try (HostArena host = HostArena.shared("h"); ForeignArena fake = ForeignArena.view("fake-cuda", Device.cuda(3))) {
            MemorySegment bytes = host.allocate(4 * 6);
            Tensor d = Tensor.wrap(fake, bytes, DType.F32, 2, 3);
            MemorySegment m = DLPack.export(d).reinterpret(80);
            assertEquals(DLPack.kDLCUDA, m.get(JAVA_INT, 40));
            assertEquals(3, m.get(JAVA_INT, 44));
            assertEquals(bytes.address(), m.get(ADDRESS, 32).address());
            Tensor back = DLPack.importTensor(m);
            assertEquals(Device.cuda(3), back.device());
            assertEquals(MemoryArena.Kind.DEVICE, back.arena().kind());
            assertThrows(IllegalStateException.class, () -> back.getFloat(0));
            back.arena().close();
            assertEquals(0, fake.holds());
        }
    }

    /** A hand-built producer tensor with a counting deleter. */
    private static long managed(Arena a, MemorySegment m, int major, int deviceType, int ndim, long[] shape, long[] strides,
                                int code, int bits, int lanes, MemorySegment data, long byteOffset) {
        long id = CountingProducer.newId();
        m.set(JAVA_INT, 0, major);
        m.set(JAVA_INT, 4, 0);
        m.set(ADDRESS, 8, MemorySegment.ofAddress(id));
        m.set(ADDRESS, 16, CountingProducer.DELETER);
        m.set(JAVA_LONG, 24, 0L);
        m.set(ADDRESS, 32, data);
        m.set(JAVA_INT, 40, deviceType);
        m.set(JAVA_INT, 44, 0);
        m.set(JAVA_INT, 48, ndim);
        m.set(JAVA_BYTE, 52, (byte) code);
        m.set(JAVA_BYTE, 53, (byte) bits);
        m.set(JAVA_SHORT, 54, (short) lanes);
        m.set(ADDRESS, 56, shape == null ? MemorySegment.NULL : a.allocateFrom(JAVA_LONG, shape));
        m.set(ADDRESS, 64, strides == null ? MemorySegment.NULL : a.allocateFrom(JAVA_LONG, strides));
        m.set(JAVA_LONG, 72, byteOffset);
        return id;
    }

    @Test
    void foreignDeleterExactlyOnceAndCleanErrors() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(64, 64);
            for (int i = 0; i < 16; i++) data.setAtIndex(JAVA_INT, i, Float.floatToIntBits(i));
            MemorySegment m = a.allocate(DLPack.DL_MANAGED_TENSOR_VERSIONED);
            long id = managed(a, m, 1, DLPack.kDLCPU, 2, new long[] {2, 3}, null, DLPack.kDLFloat, 32, 1, data, 8);
            Tensor t = DLPack.importTensor(m);
            assertArrayEquals(new float[] {2, 3, 4, 5, 6, 7}, t.toFloatArray(), "byte_offset honoured");
            assertEquals(0, CountingProducer.calls(id));
            t.arena().close();
            t.arena().close();
            assertEquals(1, CountingProducer.calls(id));

            // size-1 dimensions may have any stride; scalars are [1]
            id = managed(a, m, 1, DLPack.kDLCUDAHost, 3, new long[] {1, 2, 2}, new long[] {99, 2, 1}, DLPack.kDLFloat, 32, 1, data, 0);
            t = DLPack.importTensor(m);
            assertArrayEquals(new long[] {1, 2, 2}, t.shape());
            t.arena().close();
            id = managed(a, m, 1, DLPack.kDLCPU, 0, null, null, DLPack.kDLInt, 32, 1, data, 4);
            t = DLPack.importTensor(m);
            assertArrayEquals(new long[] {1}, t.shape());
            t.arena().close();

            record Bad(String why, int major, int dev, int ndim, long[] shape, long[] strides, int code, int bits, int lanes, long off) {}
            Bad[] bad = {
                    new Bad("version", 0, 1, 1, new long[] {4}, null, 2, 32, 1, 0),
                    new Bad("device_type", 1, 8, 1, new long[] {4}, null, 2, 32, 1, 0),
                    new Bad("ndim", 1, 1, 33, new long[] {4}, null, 2, 32, 1, 0),
                    new Bad("ndim", 1, 1, -1, new long[] {4}, null, 2, 32, 1, 0),
                    new Bad("not supported", 1, 1, 1, new long[] {4}, null, 2, 64, 1, 0),
                    new Bad("lanes", 1, 1, 1, new long[] {4}, null, 2, 32, 4, 0),
                    new Bad("negative dimension", 1, 1, 2, new long[] {4, -1}, null, 2, 32, 1, 0),
                    new Bad("not compact", 1, 1, 2, new long[] {2, 2}, new long[] {1, 2}, 2, 32, 1, 0),
                    new Bad("aligned", 1, 1, 1, new long[] {4}, null, 2, 32, 1, 2),
                    new Bad("overflow", 1, 1, 2, new long[] {Long.MAX_VALUE / 2, 4}, null, 2, 32, 1, 0),
                    new Bad("byte_offset", 1, 1, 1, new long[] {4}, null, 2, 32, 1, -8),
                    new Bad("shape is NULL", 1, 1, 2, null, null, 2, 32, 1, 0),
            };
            for (Bad b : bad) {
                long bid = managed(a, m, b.major, b.dev, b.ndim, b.shape, b.strides, b.code, b.bits, b.lanes, data, b.off);
                InteropException e = assertThrows(InteropException.class, () -> DLPack.importTensor(m), b.why);
                assertTrue(e.getMessage().contains(b.why), b.why + ": " + e.getMessage());
                assertEquals(1, CountingProducer.calls(bid), "deleter on failure: " + b.why);
            }
            assertThrows(InteropException.class, () -> DLPack.importTensor(MemorySegment.NULL));
        }
    }
}
