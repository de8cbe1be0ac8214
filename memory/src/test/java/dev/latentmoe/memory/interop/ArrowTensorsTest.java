package dev.latentmoe.memory.interop;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import java.util.Map;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Json;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float2Vector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(ArenaLeakCheck.class)
class ArrowTensorsTest {
    private BufferAllocator allocator;

    @BeforeEach
    void open() { allocator = new RootAllocator(); }

    @AfterEach
    void close() {
        assertEquals(0, allocator.getAllocatedMemory(), "Arrow memory leaked");
        allocator.close(); // throws on leaked buffers
    }

    private static Tensor iota(MemoryArena a, DType dt, long... shape) {
        Tensor t = a.allocateTensor(dt, shape);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, i);
        return t;
    }

    @Test
    void f32TensorAsFixedShapeTensorVector() {
        try (HostArena a = HostArena.confined("arrow")) {
            Tensor t = iota(a, DType.F32, 2, 3, 4);
            try (FixedSizeListVector v = ArrowTensors.toVector(t, "x", allocator)) {
                assertEquals(2, v.getValueCount());
                assertEquals(12, v.getListSize());
                assertEquals(0, v.getNullCount());
                Float4Vector child = (Float4Vector) v.getDataVector();
                assertEquals(24, child.getValueCount());
                for (int i = 0; i < 24; i++) assertEquals((float) i, child.get(i));
                List<?> row1 = v.getObject(1);
                assertEquals(12, row1.size());
                assertEquals(12f, row1.get(0));
                assertEquals(23f, row1.get(11));

                // zero copy: same address, and writes through the tensor are visible in the vector
                assertEquals(t.segment().address(), child.getDataBuffer().memoryAddress());
                t.setFloat(13, -42f);
                assertEquals(-42f, child.get(13));
                assertEquals(-42f, v.getObject(1).get(1));
                child.set(0, 7f);
                assertEquals(7f, t.getFloat(0));

                Field field = v.getField();
                assertEquals("x", field.getName());
                assertEquals(new ArrowType.FixedSizeList(12), field.getType());
                Map<String, String> md = field.getMetadata();
                assertEquals("arrow.fixed_shape_tensor", md.get("ARROW:extension:name"));
                assertEquals("{\"shape\":[3,4]}", md.get("ARROW:extension:metadata"));
                assertEquals(List.of(3L, 4L), Json.parseObject(md.get("ARROW:extension:metadata")).get("shape"));

                Tensor back = ArrowTensors.fromVector(v, a);
                assertEquals(DType.F32, back.dtype());
                assertArrayEquals(new long[] {2, 3, 4}, back.shape());
                assertEquals(t.segment().address(), back.segment().address());
                assertEquals(-42f, back.getFloat(13));
            }
            assertTrue(allocator.getAllocatedMemory() == 0);
            assertEquals(7f, t.getFloat(0)); // closing the vector did not free the tensor
        }
    }

    @Test
    void i32AndF16Children() {
        try (HostArena a = HostArena.confined("arrow")) {
            Tensor i = iota(a, DType.I32, 5);
            try (FixedSizeListVector v = ArrowTensors.toVector(i, "ids", allocator)) {
                assertEquals(1, v.getListSize());
                IntVector c = (IntVector) v.getDataVector();
                assertEquals(4, c.get(4));
                assertEquals("{\"shape\":[]}", v.getField().getMetadata().get("ARROW:extension:metadata"));
                i.setInt(2, 99);
                assertEquals(99, c.get(2));
                Tensor back = ArrowTensors.fromVector(v, a);
                assertArrayEquals(new long[] {5}, back.shape());
                assertEquals(99, back.getInt(2));
            }
            Tensor h = iota(a, DType.F16, 2, 2);
            h.setFloat(3, 0.5f);
            try (FixedSizeListVector v = ArrowTensors.toVector(h, "h", allocator)) {
                Float2Vector c = (Float2Vector) v.getDataVector();
                assertEquals(1f, c.getValueAsFloat(1));
                assertEquals(0.5f, c.getValueAsFloat(3));
                Tensor back = ArrowTensors.fromVector(v, a);
                assertEquals(DType.F16, back.dtype());
                assertArrayEquals(h.toFloatArray(), back.toFloatArray());
            }
        }
    }

    @Test
    void bf16RoundTrip() {
        try (HostArena a = HostArena.confined("arrow")) {
            Tensor t = a.allocateTensor(DType.BF16, 3, 2).copyFrom(new float[] {1, -2, 0.5f, 3.25f, -0f, 1e20f});
            try (FixedSizeListVector v = ArrowTensors.toVector(t, "w", allocator)) {
                FixedSizeBinaryVector c = (FixedSizeBinaryVector) v.getDataVector();
                assertEquals(2, c.getByteWidth());
                assertEquals("latentmoe.bfloat16", c.getField().getMetadata().get("ARROW:extension:name"));
                assertEquals(FixedShapeTensor.BFLOAT16_EXTENSION_NAME, v.getField().getChildren().get(0).getMetadata()
                        .get("ARROW:extension:name"));
                byte[] e1 = c.get(1); // -2.0 = 0xC000, little-endian
                assertArrayEquals(new byte[] {0x00, (byte) 0xC0}, e1);
                t.setFloat(1, 1.5f); // 0x3FC0
                assertArrayEquals(new byte[] {(byte) 0xC0, 0x3F}, c.get(1));
                Tensor back = ArrowTensors.fromVector(v, a);
                assertEquals(DType.BF16, back.dtype());
                assertArrayEquals(new long[] {3, 2}, back.shape());
                assertArrayEquals(t.toFloatArray(), back.toFloatArray());
                assertEquals(1.5f, back.getFloat(1));
            }
        }
    }

    @Test
    void emptyTensorAndPlainVectors() {
        try (HostArena a = HostArena.confined("arrow")) {
            Tensor t = a.allocateTensor(DType.F32, 0, 3);
            try (FixedSizeListVector v = ArrowTensors.toVector(t, "e", allocator)) {
                assertEquals(0, v.getValueCount());
                Tensor back = ArrowTensors.fromVector(v, a);
                assertArrayEquals(new long[] {0, 3}, back.shape());
            }
            // a vector built by Arrow itself (no extension metadata) reads as [rows, listSize]
            try (FixedSizeListVector v = FixedSizeListVector.empty("plain", 2, allocator)) {
                v.addOrGetVector(org.apache.arrow.vector.types.pojo.FieldType.notNullable(
                        new ArrowType.FloatingPoint(org.apache.arrow.vector.types.FloatingPointPrecision.SINGLE)));
                v.allocateNew();
                Float4Vector c = (Float4Vector) v.getDataVector();
                for (int i = 0; i < 6; i++) c.setSafe(i, i * 10f);
                c.setValueCount(6);
                for (int i = 0; i < 3; i++) v.setNotNull(i);
                v.setValueCount(3);
                Tensor back = ArrowTensors.fromVector(v, a);
                assertArrayEquals(new long[] {3, 2}, back.shape());
                assertEquals(50f, back.getFloat(2, 1));
                v.setNull(1);
                assertThrows(IllegalArgumentException.class, () -> ArrowTensors.fromVector(v, a));
            }
            // unsupported child type
            try (FixedSizeListVector v = FixedSizeListVector.empty("bytes", 2, allocator)) {
                v.addOrGetVector(org.apache.arrow.vector.types.pojo.FieldType.notNullable(new ArrowType.FixedSizeBinary(2)));
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ArrowTensors.fromVector(v, a));
                assertTrue(e.getMessage().contains("latentmoe.bfloat16"), e.getMessage());
            }
        }
    }

    @Test
    void closedTensorCannotBeViewed() {
        HostArena a = HostArena.confined("arrow");
        Tensor t = a.allocateTensor(DType.F32, 2, 2);
        a.close();
        assertThrows(IllegalStateException.class, () -> ArrowTensors.toVector(t, "x", allocator));
    }

    @Test
    void retainedViewsKeepArrowMemoryUntilTheirArenaCloses() {
        // weights an engine keeps in an Arrow vector: the view holds the buffer, closing the vector does not free it
        Float4Vector values = new Float4Vector("w", allocator);
        values.allocateNew(12);
        for (int i = 0; i < 12; i++) values.set(i, i + 0.5f);
        values.setValueCount(12);
        org.apache.arrow.memory.ArrowBuf buf = values.getDataBuffer();
        int vectorsRefs = buf.refCnt();   // validity and data share one allocation
        Tensor t = ArrowTensors.retain(buf, "arrow weights", DType.F32, 3, 4);
        assertEquals(vectorsRefs + 1, buf.refCnt());
        values.close();   // the engine drops its vector first
        assertEquals(1, buf.refCnt(), "the view's reference keeps the memory");
        assertEquals(11.5f, t.getFloat(2, 3));
        assertEquals(buf.memoryAddress(), t.segment().address(), "a view, not a copy");
        t.arena().close();   // releases the reference once: the Arrow memory is freed now
        assertEquals(0, buf.refCnt());
        assertThrows(IllegalStateException.class, t::segment);
        t.arena().close();   // idempotent
        assertEquals(0, allocator.getAllocatedMemory());
        // a released buffer cannot be viewed
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ArrowTensors.retain(buf, "gone", DType.F32, 3, 4));
        assertTrue(e.getMessage().contains("already released"), e.getMessage());

        try (HostArena a = HostArena.confined("src")) {
            Tensor src = iota(a, DType.F32, 2, 3);
            try (FixedSizeListVector v = ArrowTensors.toVector(src, "x", allocator)) {
                Tensor view = ArrowTensors.retain(v, "fixed-shape weights");
                assertArrayEquals(new long[] {2, 3}, view.shape());
                assertEquals(5f, view.getFloat(1, 2));
                assertThrows(IllegalArgumentException.class, () -> ArrowTensors.retain(v.getDataVector().getDataBuffer(),
                        "too big", DType.F32, 3, 3));
                view.arena().close();
            }
        }
    }
}
