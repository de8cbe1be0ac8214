package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Our FFM Arrow C Data / C Device Data structs against the specification: field offsets, and Arrow
 * Java's own C Data module (JNI, an independent implementation) importing what we export and
 * exporting what we import, with release callbacks counted.
 */
@ExtendWith(ArenaLeakCheck.class)
class ArrowCDataTest {
    private BufferAllocator allocator;
    private int liveBefore;

    @BeforeEach
    void open() {
        allocator = new RootAllocator();
        liveBefore = ArrowCData.liveExports();
    }

    @AfterEach
    void close() {
        assertEquals(liveBefore, ArrowCData.liveExports(), "exports left unreleased");
        assertEquals(0, allocator.getAllocatedMemory(), "Arrow memory leaked");
        allocator.close();
    }

    private static Tensor iota(MemoryArena a, DType dt, long... shape) {
        Tensor t = a.allocateTensor(dt, shape);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, i * 0.5f - 3);
        return t;
    }

    @Test
    void layoutsFollowTheSpecification() {
        assertEquals(72, ArrowCData.ARROW_SCHEMA.byteSize());
        assertEquals(80, ArrowCData.ARROW_ARRAY.byteSize());
        assertEquals(128, ArrowCData.ARROW_DEVICE_ARRAY.byteSize());
        long[] schema = {ArrowCData.S_FORMAT, ArrowCData.S_NAME, ArrowCData.S_METADATA, ArrowCData.S_FLAGS, ArrowCData.S_N_CHILDREN,
                ArrowCData.S_CHILDREN, ArrowCData.S_DICTIONARY, ArrowCData.S_RELEASE, ArrowCData.S_PRIVATE};
        assertArrayEquals(new long[] {0, 8, 16, 24, 32, 40, 48, 56, 64}, schema);
        long[] array = {ArrowCData.A_LENGTH, ArrowCData.A_NULL_COUNT, ArrowCData.A_OFFSET, ArrowCData.A_N_BUFFERS, ArrowCData.A_N_CHILDREN,
                ArrowCData.A_BUFFERS, ArrowCData.A_CHILDREN, ArrowCData.A_DICTIONARY, ArrowCData.A_RELEASE, ArrowCData.A_PRIVATE};
        assertArrayEquals(new long[] {0, 8, 16, 24, 32, 40, 48, 56, 64, 72}, array);
        assertArrayEquals(new long[] {80, 88, 96, 104},
                new long[] {ArrowCData.D_DEVICE_ID, ArrowCData.D_DEVICE_TYPE, ArrowCData.D_SYNC_EVENT, ArrowCData.D_RESERVED});
        assertEquals(1, ArrowCData.ARROW_DEVICE_CPU);
        assertEquals(2, ArrowCData.ARROW_DEVICE_CUDA);
        assertEquals(3, ArrowCData.ARROW_DEVICE_CUDA_HOST);
    }

    @Test
    void exportedSchemaStrings() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(ArrowCData.ARROW_SCHEMA);
            ArrowCData.exportSchema(DType.BF16, new long[] {5, 2, 3}, "w", s);
            CDataFormat.SchemaInfo info = CDataImporter.readSchema(s, 0);
            assertEquals("+w:6", info.format());
            assertEquals("w", info.name());
            assertEquals(FixedShapeTensor.EXTENSION, info.metadata().get("ARROW:extension:name"));
            assertEquals("{\"shape\":[2,3]}", info.metadata().get("ARROW:extension:metadata"));
            CDataFormat.SchemaInfo child = info.children().getFirst();
            assertEquals("w:2", child.format());
            assertEquals("item", child.name());
            assertEquals(Map.of("ARROW:extension:name", "latentmoe.bfloat16", "ARROW:extension:metadata", ""), child.metadata());
            // binary metadata layout: int32 count, then (int32 len, bytes) pairs
            MemorySegment meta = s.get(ADDRESS, ArrowCData.S_METADATA).reinterpret(1 << 10);
            assertEquals(2, meta.get(JAVA_INT, 0));
            assertEquals("ARROW:extension:name".length(), meta.get(JAVA_INT, 4));
            ArrowCData.releaseSchema(s);
            assertEquals(MemorySegment.NULL, s.get(ADDRESS, ArrowCData.S_RELEASE), "release marks the struct released");
            ArrowCData.releaseSchema(s); // no-op once released
        }
    }

    @Test
    void arrowJavaImportsOurExportZeroCopy() {
        for (DType dt : DType.ACTIVATION_TYPES) {
            try (HostArena a = HostArena.shared("export-" + dt);
                 ArrowSchema cs = ArrowSchema.allocateNew(allocator);
                 ArrowArray ca = ArrowArray.allocateNew(allocator)) {
                Tensor t = iota(a, dt, 3, 2, 4);
                ArrowCData.exportTensor(t, "x", MemorySegment.ofAddress(cs.memoryAddress()), MemorySegment.ofAddress(ca.memoryAddress()));
                assertEquals(1, a.holds());
                try (FieldVector v = Data.importVector(allocator, ArrowArray.wrap(ca.memoryAddress()), ArrowSchema.wrap(cs.memoryAddress()), null)) {
                    FixedSizeListVector list = assertInstanceOf(FixedSizeListVector.class, v);
                    assertEquals(3, list.getValueCount());
                    assertEquals(8, list.getListSize());
                    assertEquals(FixedShapeTensor.EXTENSION, list.getField().getMetadata().get("ARROW:extension:name"));
                    assertEquals(t.segment().address(), list.getDataVector().getDataBuffer().memoryAddress(), "no copy");
                    // read through ArrowTensors (an independent reader of the same conventions)
                    try (HostArena view = HostArena.shared("view")) {
                        Tensor back = ArrowTensors.fromVector(list, view);
                        assertEquals(dt, back.dtype());
                        assertArrayEquals(new long[] {3, 2, 4}, back.shape());
                        assertArrayEquals(t.toFloatArray(), back.toFloatArray());
                    }
                    if (dt == DType.F32) assertEquals(-3f, ((Float4Vector) list.getDataVector()).get(0));
                    if (dt == DType.I32) assertEquals(-3, ((IntVector) list.getDataVector()).get(0));
                    if (dt == DType.BF16) assertInstanceOf(FixedSizeBinaryVector.class, list.getDataVector());
                    assertEquals(1, a.holds(), "held while Arrow Java uses it");
                }
                assertEquals(0, a.holds(), "Arrow Java's close called our release");
            }
        }
    }

    @Test
    void arenaClosedBeforeConsumerReleasesIsFreedOnRelease() {
        HostArena a = HostArena.shared("early-close");
        Tensor t = iota(a, DType.F32, 4, 4);
        float[] expect = t.toFloatArray();
        try (ArrowSchema cs = ArrowSchema.allocateNew(allocator); ArrowArray ca = ArrowArray.allocateNew(allocator)) {
            ArrowCData.exportTensor(t, "x", MemorySegment.ofAddress(cs.memoryAddress()), MemorySegment.ofAddress(ca.memoryAddress()));
            FieldVector v = Data.importVector(allocator, ca, cs, null);
            a.close(); // deferred: the consumer still reads
            assertEquals(1, MemoryAccounting.openArenas());
            Float4Vector child = (Float4Vector) ((FixedSizeListVector) v).getDataVector();
            for (int i = 0; i < 16; i++) assertEquals(expect[i], child.get(i));
            v.close();
            assertEquals(0, MemoryAccounting.hostBytes(), "freed by the consumer's release");
            assertEquals(0, MemoryAccounting.openArenas());
        }
    }

    @Test
    void weImportWhatArrowJavaExports() {
        try (HostArena src = HostArena.shared("src");
             ArrowSchema cs = ArrowSchema.allocateNew(allocator);
             ArrowArray ca = ArrowArray.allocateNew(allocator)) {
            long structBytes = allocator.getAllocatedMemory();
            Tensor t = iota(src, DType.F32, 5, 3);
            Tensor copy;
            // an Arrow-owned vector (copy the data into Arrow memory through a view)
            try (FixedSizeListVector view = ArrowTensors.toVector(t, "x", allocator);
                 FixedSizeListVector owned = (FixedSizeListVector) view.getField().createVector(allocator)) {
                owned.allocateNew();
                for (int r = 0; r < 5; r++) owned.copyFromSafe(r, r, view);
                owned.setValueCount(5);
                Data.exportVector(allocator, owned, null, ca, cs);
            }
            assertTrue(allocator.getAllocatedMemory() > structBytes, "the export keeps Arrow's buffers alive");
            copy = ArrowCData.importTensor(MemorySegment.ofAddress(cs.memoryAddress()), MemorySegment.ofAddress(ca.memoryAddress()));
            assertEquals(MemorySegment.NULL, MemorySegment.ofAddress(ca.memoryAddress()).reinterpret(80).get(ADDRESS, ArrowCData.A_RELEASE),
                    "the source struct is moved (marked released)");
            ForeignArena fa = (ForeignArena) copy.arena();
            assertArrayEquals(new long[] {5, 3}, copy.shape());
            assertArrayEquals(t.toFloatArray(), copy.toFloatArray());
            assertFalse(fa.isReleased());
            fa.close();
            assertTrue(fa.isReleased());
            assertEquals(structBytes, allocator.getAllocatedMemory(), "Arrow's release ran");
            fa.close(); // idempotent: release ran once
            assertThrows(IllegalStateException.class, copy::segment);
        }
    }

    @Test
    void weImportAPlainPrimitiveArray() {
        try (Float4Vector v = new Float4Vector("f", allocator);
             ArrowSchema cs = ArrowSchema.allocateNew(allocator);
             ArrowArray ca = ArrowArray.allocateNew(allocator)) {
            v.allocateNew(7);
            for (int i = 0; i < 7; i++) v.set(i, i + 0.25f);
            v.setValueCount(7);
            Data.exportVector(allocator, v, null, ca, cs);
            Tensor t = ArrowCData.importTensor(MemorySegment.ofAddress(cs.memoryAddress()), MemorySegment.ofAddress(ca.memoryAddress()));
            try (MemoryArena a = t.arena()) {
                assertArrayEquals(new long[] {7}, t.shape());
                assertEquals(v.getDataBuffer().memoryAddress(), t.segment().address());
                assertEquals(6.25f, t.getFloat(6));
            }
        }
    }

    @Test
    void javaToJavaRoundTripAndExactlyOnceRelease() {
        try (HostArena a = HostArena.shared("rt"); Arena structs = Arena.ofConfined()) {
            Tensor t = iota(a, DType.BF16, 2, 3);
            MemorySegment s = structs.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment arr = structs.allocate(ArrowCData.ARROW_ARRAY);
            ArrowCData.exportTensor(t, "x", s, arr);
            Tensor back = ArrowCData.importTensor(s, arr);
            assertEquals(t.segment().address(), back.segment().address());
            assertArrayEquals(t.toFloatArray(), back.toFloatArray());
            assertEquals(DType.BF16, back.dtype());
            assertEquals(1, a.holds());
            back.arena().close();
            assertEquals(0, a.holds());
        }
    }

    @Test
    void foreignReleaseIsCalledExactlyOnceAlsoOnFailure() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(4 * 6, 64);
            for (int i = 0; i < 6; i++) data.setAtIndex(JAVA_INT, i, Float.floatToIntBits(i));
            // good: "+w:3" over "f"
            MemorySegment cs = a.allocate(ArrowCData.ARROW_SCHEMA), ps = a.allocate(ArrowCData.ARROW_SCHEMA);
            long childSchema = CountingProducer.schema(a, cs, "f", null);
            long parentSchema = CountingProducer.schema(a, ps, "+w:3", null, cs);
            MemorySegment ca = a.allocate(ArrowCData.ARROW_ARRAY), pa = a.allocate(ArrowCData.ARROW_ARRAY);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            long parentArray = CountingProducer.array(a, pa, 2, 0, 0, new MemorySegment[] {MemorySegment.NULL}, ca);
            Tensor t = ArrowCData.importTensor(ps, pa);
            assertEquals(1, CountingProducer.calls(parentSchema), "schema released during import");
            assertEquals(0, CountingProducer.calls(childSchema), "children are the parent release's business");
            assertEquals(0, CountingProducer.calls(parentArray));
            assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, t.toFloatArray());
            assertArrayEquals(new long[] {2, 3}, t.shape());
            t.arena().close();
            t.arena().close();
            assertEquals(1, CountingProducer.calls(parentArray));

            // bad: 2 rows of 4 need 8 child values, the child has 6
            long s2 = CountingProducer.schema(a, cs, "f", null);
            long p2 = CountingProducer.schema(a, ps, "+w:4", null, cs);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            long pa2 = CountingProducer.array(a, pa, 2, 0, 0, new MemorySegment[] {MemorySegment.NULL}, ca);
            InteropException e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("less than"), e.getMessage());
            assertEquals(1, CountingProducer.calls(p2));
            assertEquals(1, CountingProducer.calls(pa2), "a failed import releases the array at once");
            assertEquals(0, CountingProducer.calls(s2));

            // bad schema: unsupported element type "g" (float64)
            CountingProducer.schema(a, cs, "g", null);
            long p3 = CountingProducer.schema(a, ps, "+w:3", null, cs);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            long pa3 = CountingProducer.array(a, pa, 2, 0, 0, new MemorySegment[] {MemorySegment.NULL}, ca);
            e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("'g'"), e.getMessage());
            assertEquals(1, CountingProducer.calls(p3));
            assertEquals(1, CountingProducer.calls(pa3));

            // nulls are refused; validity counted when null_count is unknown (-1)
            MemorySegment bitmap = a.allocate(8);
            bitmap.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 0b111011);
            CountingProducer.schema(a, ps, "f", null);
            long pa4 = CountingProducer.array(a, pa, 6, -1, 0, new MemorySegment[] {bitmap, data});
            e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("null at index 2"), e.getMessage());
            assertEquals(1, CountingProducer.calls(pa4));
        }
    }

    /**
     * What pyarrow 22 exports for {@code pa.array([[1,2],None,[3,4],[5,6]], pa.list_(pa.float32(),2)).slice(2,2)}
     * (read back through its C Data export): parent length 2, offset 2, null_count 0, validity
     * 0b1101; child length 8, offset 0, null_count 2 (the null list's two values), validity
     * 0b11110011. The slice holds no null, so it imports, although the child's null_count is not 0.
     * A null inside the slice (parent or child) is still refused.
     */
    @Test
    void slicedArrayWithNullsOutsideTheSliceImports() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(4 * 8, 64);
            float[] values = {1, 2, 0, 0, 3, 4, 5, 6};
            for (int i = 0; i < 8; i++) data.setAtIndex(JAVA_INT, i, Float.floatToIntBits(values[i]));
            MemorySegment parentBits = a.allocate(8), childBits = a.allocate(8);
            MemorySegment cs = a.allocate(ArrowCData.ARROW_SCHEMA), ps = a.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment ca = a.allocate(ArrowCData.ARROW_ARRAY), pa = a.allocate(ArrowCData.ARROW_ARRAY);

            parentBits.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 0b1101);
            childBits.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 0b11110011);
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:2", null, cs);
            CountingProducer.array(a, ca, 8, 2, 0, new MemorySegment[] {childBits, data});
            long parent = CountingProducer.array(a, pa, 2, 0, 2, new MemorySegment[] {parentBits}, ca);
            Tensor t = ArrowCData.importTensor(ps, pa);
            assertArrayEquals(new long[] {2, 2}, t.shape());
            assertArrayEquals(new float[] {3, 4, 5, 6}, t.toFloatArray());
            t.arena().close();
            assertEquals(1, CountingProducer.calls(parent));

            // The same slice with the parent's null_count unknown (-1): the bits decide.
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:2", null, cs);
            CountingProducer.array(a, ca, 8, -1, 0, new MemorySegment[] {childBits, data});
            CountingProducer.array(a, pa, 2, -1, 2, new MemorySegment[] {parentBits}, ca);
            t = ArrowCData.importTensor(ps, pa);
            assertArrayEquals(new float[] {3, 4, 5, 6}, t.toFloatArray());
            t.arena().close();

            // slice(1, 2) holds the null list: refused, naming the row.
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:2", null, cs);
            CountingProducer.array(a, ca, 8, 2, 0, new MemorySegment[] {childBits, data});
            long p2 = CountingProducer.array(a, pa, 2, 1, 1, new MemorySegment[] {parentBits}, ca);
            InteropException e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("ArrowArray has a null at index 0"), e.getMessage());
            assertEquals(1, CountingProducer.calls(p2));

            // A valid list row whose values hold a null (child bit 5 cleared): refused, naming the value.
            childBits.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 0b11010011);
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:2", null, cs);
            CountingProducer.array(a, ca, 8, 3, 0, new MemorySegment[] {childBits, data});
            CountingProducer.array(a, pa, 2, 0, 2, new MemorySegment[] {parentBits}, ca);
            e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("ArrowArray child has a null at index 1"), e.getMessage());
        }
    }

    @Test
    void fixedShapeTensorMetadataIsChecked() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(4 * 6, 64);
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("ARROW:extension:name", "arrow.fixed_shape_tensor");
            meta.put("ARROW:extension:metadata", "{\"shape\":[2,2]}");
            MemorySegment cs = a.allocate(ArrowCData.ARROW_SCHEMA), ps = a.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment ca = a.allocate(ArrowCData.ARROW_ARRAY), pa = a.allocate(ArrowCData.ARROW_ARRAY);
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:3", CountingProducer.metadata(a, meta), cs);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            CountingProducer.array(a, pa, 2, 0, 0, new MemorySegment[] {MemorySegment.NULL}, ca);
            InteropException e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("does not match list size 3"), e.getMessage());

            meta.put("ARROW:extension:metadata", "{\"shape\":[1,3],\"permutation\":[1,0]}");
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:3", CountingProducer.metadata(a, meta), cs);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            CountingProducer.array(a, pa, 2, 0, 0, new MemorySegment[] {MemorySegment.NULL}, ca);
            e = assertThrows(InteropException.class, () -> ArrowCData.importTensor(ps, pa));
            assertTrue(e.getMessage().contains("permutation"), e.getMessage());

            meta.put("ARROW:extension:metadata", "{\"shape\":[1,3]}");
            CountingProducer.schema(a, cs, "f", null);
            CountingProducer.schema(a, ps, "+w:3", CountingProducer.metadata(a, meta), cs);
            CountingProducer.array(a, ca, 6, 0, 0, new MemorySegment[] {MemorySegment.NULL, data});
            CountingProducer.array(a, pa, 1, 0, 1, new MemorySegment[] {MemorySegment.NULL}, ca); // row 1 only
            Tensor t = ArrowCData.importTensor(ps, pa);
            assertArrayEquals(new long[] {1, 1, 3}, t.shape());
            assertEquals(data.address() + 12, t.segment().address(), "parent offset moves by one list");
            t.arena().close();
        }
    }

    @Test
    void deviceArraysCarryDeviceTypeIdAndSyncEvent() {
        try (HostArena host = HostArena.shared("dev"); Arena structs = Arena.ofConfined()) {
            Tensor t = iota(host, DType.F32, 2, 2);
            MemorySegment s = structs.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment d = structs.allocate(ArrowCData.ARROW_DEVICE_ARRAY);
            d.fill((byte) 0x5A);
            ArrowCData.exportDeviceTensor(t, "x", s, d, MemorySegment.NULL);
            assertEquals(ArrowCData.ARROW_DEVICE_CPU, d.get(JAVA_INT, ArrowCData.D_DEVICE_TYPE));
            assertEquals(-1L, d.get(JAVA_LONG, ArrowCData.D_DEVICE_ID));
            assertEquals(MemorySegment.NULL, d.get(ADDRESS, ArrowCData.D_SYNC_EVENT));
            for (int i = 0; i < 3; i++) assertEquals(0L, d.get(JAVA_LONG, ArrowCData.D_RESERVED + 8L * i), "reserved zeroed");
            Tensor back = ArrowCData.importDeviceTensor(s, d);
            assertEquals(Device.CPU, back.device());
            assertArrayEquals(t.toFloatArray(), back.toFloatArray());
            back.arena().close();

            // a CUDA tensor (faked: a cuda:1 arena over host bytes; never dereferenced) with an event
            MemorySegment event = structs.allocate(8);
            try (ForeignArena fake = ForeignArena.view("fake-cuda", Device.cuda(1))) {
                Tensor dt = Tensor.wrap(fake, t.segment(), DType.F32, 2, 2);
                ArrowCData.exportDeviceTensor(dt, "x", s, d, event);
                assertEquals(ArrowCData.ARROW_DEVICE_CUDA, d.get(JAVA_INT, ArrowCData.D_DEVICE_TYPE));
                assertEquals(1L, d.get(JAVA_LONG, ArrowCData.D_DEVICE_ID));
                assertEquals(event.address(), d.get(ADDRESS, ArrowCData.D_SYNC_EVENT).address());
                MemorySegment values = d.get(ADDRESS, ArrowCData.A_CHILDREN).reinterpret(8).get(ADDRESS, 0).reinterpret(80);
                assertEquals(t.segment().address(),
                        values.get(ADDRESS, ArrowCData.A_BUFFERS).reinterpret(16).getAtIndex(ADDRESS, 1).address(), "device pointer as is");
                assertThrows(InteropException.class, () -> ArrowCData.exportTensor(dt, "x", s, structs.allocate(80)),
                        "the plain C Data interface is host-only");
                Tensor imported = ArrowCData.importDeviceTensor(s, d);
                assertEquals(Device.cuda(1), imported.device());
                assertEquals(MemoryArena.Kind.DEVICE, imported.arena().kind());
                assertEquals(event.address(), ((ForeignArena) imported.arena()).syncEvent().address());
                assertThrows(IllegalStateException.class, () -> imported.getFloat(0), "device memory is not read from Java");
                imported.arena().close();
                assertEquals(0, fake.holds());
            }

            // unsupported device type: both structs released, clean exception
            ArrowCData.exportDeviceTensor(t, "x", s, d, MemorySegment.NULL);
            d.set(JAVA_INT, ArrowCData.D_DEVICE_TYPE, ArrowCData.ARROW_DEVICE_METAL);
            InteropException e = assertThrows(InteropException.class, () -> ArrowCData.importDeviceTensor(s, d));
            assertTrue(e.getMessage().contains("device_type 8"), e.getMessage());
            assertEquals(0, host.holds());
        }
    }

    @Test
    void childMovedOutIsReleasedIndependently() {
        try (HostArena a = HostArena.shared("move"); Arena structs = Arena.ofConfined()) {
            Tensor t = iota(a, DType.F32, 2, 2);
            MemorySegment s = structs.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment arr = structs.allocate(ArrowCData.ARROW_ARRAY);
            ArrowCData.exportTensor(t, "x", s, arr);
            ArrowCData.releaseSchema(s);
            // the consumer moves the child out, then releases the parent
            MemorySegment child = arr.get(ADDRESS, ArrowCData.A_CHILDREN).reinterpret(8).get(ADDRESS, 0).reinterpret(80);
            MemorySegment moved = structs.allocate(ArrowCData.ARROW_ARRAY);
            moved.copyFrom(child);
            child.set(ADDRESS, ArrowCData.A_RELEASE, MemorySegment.NULL);
            ArrowCData.releaseArray(arr);
            assertEquals(1, a.holds(), "the moved child still holds the data");
            ArrowCData.releaseArray(moved);
            assertEquals(0, a.holds());
        }
    }

    @Test
    void nullAndReleasedStructsRaise() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(ArrowCData.ARROW_SCHEMA);
            MemorySegment arr = a.allocate(ArrowCData.ARROW_ARRAY);
            assertThrows(InteropException.class, () -> ArrowCData.importTensor(MemorySegment.NULL, MemorySegment.NULL));
            assertThrows(InteropException.class, () -> ArrowCData.importTensor(s, arr), "zeroed structs are released ones");
            assertThrows(InteropException.class, () -> ArrowCData.exportSchema(DType.F32, new long[] {2, Integer.MAX_VALUE, 2}, "x", s));
        }
        assertInstanceOf(IllegalArgumentException.class, new InteropException("x"));
        assertTrue(new ArrowType.FixedSizeList(2) != null);
    }
}
