package dev.latentmoe.memory.interop;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * Coverage-guided fuzzing of the Arrow C Data and DLPack importers' validation layer. Importers
 * take raw pointers, so the harness builds real structs from fuzzed fields (formats, metadata,
 * child and buffer counts, lengths, offsets, null counts, DLPack version/device/dtype/ndim/shape/
 * strides/byte_offset) pointing at memory it owns, sized so that whatever a correct importer may
 * read (validity bits of the declared range) exists. A target passes when the import either
 * succeeds with a consistent tensor or raises {@link InteropException}, and the producer's release
 * callback (or deleter) has run exactly once either way. Regression inputs:
 * {@code src/test/resources/dev/latentmoe/memory/interop/InteropFuzzTestInputs/<method>/}.
 */
class InteropFuzzTest {
    private static final int DATA_BYTES = 4096;
    private static final long BITMAP_BITS = 8L * DATA_BYTES;

    /** The C Data binary metadata decoder on arbitrary bytes (an exact-size buffer). */
    @FuzzTest(maxDuration = "10s")
    void arrowMetadata(byte[] bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, m, JAVA_BYTE, 0, bytes.length);
            CDataFormat.decodeMetadata(m.asSlice(0, bytes.length), "fuzz");
        } catch (InteropException expected) {
            // documented
        }
    }

    private static String format(FuzzedDataProvider d) {
        return switch (d.consumeInt(0, 9)) {
            case 0 -> "f";
            case 1 -> "i";
            case 2 -> "e";
            case 3 -> "w:2";
            case 4 -> "g";
            case 5 -> "+w:" + d.consumeInt(-2, 70);
            case 6 -> "+w:" + d.consumeString(12);
            case 7 -> null;
            default -> d.consumeString(16);
        };
    }

    private static MemorySegment metadata(FuzzedDataProvider d, Arena a) {
        if (d.consumeBoolean()) return MemorySegment.NULL;
        Map<String, String> m = new LinkedHashMap<>();
        int n = d.consumeInt(0, 3);
        for (int i = 0; i < n; i++) {
            String key = switch (d.consumeInt(0, 2)) {
                case 0 -> "ARROW:extension:name";
                case 1 -> "ARROW:extension:metadata";
                default -> d.consumeString(12);
            };
            String value = switch (d.consumeInt(0, 3)) {
                case 0 -> "arrow.fixed_shape_tensor";
                case 1 -> "latentmoe.bfloat16";
                case 2 -> "{\"shape\":[" + d.consumeString(20) + "]" + (d.consumeBoolean() ? ",\"permutation\":[" + d.consumeString(8) + "]" : "") + "}";
                default -> d.consumeString(40);
            };
            m.put(key, value);
        }
        return CDataFormat.encodeMetadata(a, m);
    }

    private static long listSizeOf(String format) {
        if (format == null || !format.startsWith("+w:")) return 0;
        String digits = format.substring(3);
        if (digits.isEmpty() || digits.length() > 10 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) return 0;
        return Long.parseLong(digits);
    }

    private static long smallOrWild(FuzzedDataProvider d) {
        return d.consumeBoolean() ? d.consumeLong(-2, 70) : d.consumeLong();
    }

    /** Whether [offset, offset + length) × scale bits fit the harness bitmap (what the importer may read). */
    private static boolean bitmapCovers(long offset, long length, long scale) {
        try {
            return offset >= 0 && length >= 0 && Math.multiplyExact(Math.addExact(offset, length), Math.max(1, scale)) <= BITMAP_BITS;
        } catch (ArithmeticException e) {
            return false;
        }
    }

    @FuzzTest(maxDuration = "10s")
    void arrowImport(FuzzedDataProvider d) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(DATA_BYTES, 64);
            MemorySegment bitmap = a.allocate(DATA_BYTES, 64);
            bitmap.fill((byte) (d.consumeBoolean() ? 0xFF : d.consumeByte()));
            boolean device = d.consumeBoolean();
            // schemas: a parent with up to 3 children (all the same child struct) or NULL entries
            MemorySegment childSchema = a.allocate(ArrowCData.ARROW_SCHEMA);
            CountingProducer.schema(a, childSchema, format(d), metadata(d, a));
            MemorySegment schema = a.allocate(ArrowCData.ARROW_SCHEMA);
            int nChildren = d.consumeInt(-1, 3);
            MemorySegment[] kids = new MemorySegment[Math.max(0, nChildren)];
            for (int i = 0; i < kids.length; i++) kids[i] = d.consumeInt(0, 9) == 0 ? MemorySegment.NULL : childSchema;
            String parentFormat = format(d);
            long schemaId = CountingProducer.schema(a, schema, parentFormat, metadata(d, a), kids);
            if (nChildren < 0) schema.set(JAVA_LONG, ArrowCData.S_N_CHILDREN, nChildren);
            if (d.consumeInt(0, 15) == 0) schema.set(ADDRESS, ArrowCData.S_DICTIONARY, childSchema);
            long listSize = listSizeOf(parentFormat); // the list size the importer will see (0: not a list)
            // arrays
            MemorySegment child = a.allocate(ArrowCData.ARROW_ARRAY);
            long length = smallOrWild(d), offset = smallOrWild(d), cLength = smallOrWild(d), cOffset = smallOrWild(d);
            long nullCount = d.pickValue(new long[] {0, 0, -1, 1, -2});
            long cNullCount = d.pickValue(new long[] {0, 0, -1, 3});
            // the child's validity range is [cOffset + offset*listSize, cOffset + (offset+length)*listSize)
            boolean childBitmapOk = cOffset >= 0 && bitmapCovers(offset, length, listSize)
                    && bitmapCovers(cOffset, (offset + length) * listSize, 1);
            MemorySegment dataPtr = d.consumeInt(0, 7) == 0 ? MemorySegment.NULL : data.asSlice(d.consumeInt(0, 8));
            MemorySegment[] childBuffers = new MemorySegment[d.consumeInt(0, 3)];
            for (int i = 0; i < childBuffers.length; i++) {
                childBuffers[i] = i == 0 ? (childBitmapOk && d.consumeBoolean() ? bitmap : MemorySegment.NULL) : dataPtr;
            }
            CountingProducer.array(a, child, cLength, cNullCount, cOffset, childBuffers);
            MemorySegment array = a.allocate(device ? ArrowCData.ARROW_DEVICE_ARRAY.byteSize() : ArrowCData.ARROW_ARRAY.byteSize(), 8);
            int nArrayChildren = d.consumeInt(0, 2);
            MemorySegment[] arrayKids = new MemorySegment[nArrayChildren];
            for (int i = 0; i < nArrayChildren; i++) arrayKids[i] = d.consumeInt(0, 9) == 0 ? MemorySegment.NULL : child;
            boolean parentBitmapOk = bitmapCovers(offset, length, 1);
            MemorySegment[] buffers = new MemorySegment[d.consumeInt(0, 3)];
            for (int i = 0; i < buffers.length; i++) {
                buffers[i] = i == 0 ? (parentBitmapOk && d.consumeBoolean() ? bitmap : MemorySegment.NULL) : dataPtr;
            }
            long arrayId = CountingProducer.array(a, array, length, nullCount, offset, buffers, arrayKids);
            if (device) {
                array.set(JAVA_LONG, ArrowCData.D_DEVICE_ID, d.consumeLong(-2, 4));
                array.set(JAVA_INT, ArrowCData.D_DEVICE_TYPE, d.pickValue(new int[] {1, 1, 2, 3, 8, -1}));
                array.set(ADDRESS, ArrowCData.D_SYNC_EVENT, d.consumeBoolean() ? MemorySegment.NULL : bitmap);
            }
            Tensor t = null;
            try {
                t = device ? ArrowCData.importDeviceTensor(schema, array) : ArrowCData.importTensor(schema, array);
            } catch (InteropException expected) {
                // documented
            }
            if (CountingProducer.calls(schemaId) != 1) throw new AssertionError("schema released " + CountingProducer.calls(schemaId) + " times");
            if (t != null) {
                if (CountingProducer.calls(arrayId) != 0) throw new AssertionError("array released before the tensor's arena closed");
                if (t.byteSize() != t.numel() * t.dtype().byteSize()) throw new AssertionError("inconsistent " + t);
                long at = t.byteSize() == 0 ? data.address() : t.segment().address();
                if (t.device().isHost() && at >= data.address() && at + t.byteSize() <= data.address() + DATA_BYTES) t.toFloatArray();
                t.arena().close();
            }
            if (CountingProducer.calls(arrayId) != 1) throw new AssertionError("array released " + CountingProducer.calls(arrayId) + " times");
            CountingProducer.CALLS.clear();
        }
    }

    @FuzzTest(maxDuration = "10s")
    void dlpackImport(FuzzedDataProvider d) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment data = a.allocate(DATA_BYTES, 64);
            MemorySegment m = a.allocate(DLPack.DL_MANAGED_TENSOR_VERSIONED);
            long id = CountingProducer.newId();
            m.set(JAVA_INT, 0, d.pickValue(new int[] {1, 1, 1, 0, 2, d.consumeInt()}));
            m.set(JAVA_INT, 4, d.consumeInt());
            m.set(ADDRESS, 8, MemorySegment.ofAddress(id));
            m.set(ADDRESS, 16, CountingProducer.DELETER);
            m.set(JAVA_LONG, 24, d.consumeLong());
            m.set(ADDRESS, 32, d.consumeInt(0, 7) == 0 ? MemorySegment.NULL : data.asSlice(d.consumeInt(0, 8)));
            m.set(JAVA_INT, 40, d.pickValue(new int[] {1, 1, 2, 3, 4, 13, d.consumeInt()}));
            m.set(JAVA_INT, 44, d.consumeInt(-2, 8));
            int ndim = d.consumeBoolean() ? d.consumeInt(-1, 40) : d.consumeInt();
            m.set(JAVA_INT, 48, ndim);
            m.set(JAVA_BYTE, 52, (byte) d.pickValue(new int[] {0, 1, 2, 4, 5, d.consumeInt(0, 255)}));
            m.set(JAVA_BYTE, 53, (byte) d.pickValue(new int[] {16, 32, 8, 64, d.consumeInt(0, 255)}));
            m.set(JAVA_SHORT, 54, (short) (d.consumeBoolean() ? 1 : d.consumeInt(0, 65535)));
            int entries = ndim >= 1 && ndim <= 40 ? ndim : 1; // what an importer may read (it rejects ndim > 32 first)
            MemorySegment shape = a.allocate(JAVA_LONG, entries);
            for (int i = 0; i < entries; i++) shape.setAtIndex(JAVA_LONG, i, d.consumeBoolean() ? d.consumeLong(0, 6) : d.consumeLong());
            m.set(ADDRESS, 56, d.consumeInt(0, 9) == 0 ? MemorySegment.NULL : shape);
            MemorySegment strides = a.allocate(JAVA_LONG, entries);
            for (int i = 0; i < entries; i++) strides.setAtIndex(JAVA_LONG, i, d.consumeBoolean() ? d.consumeLong(0, 40) : d.consumeLong());
            m.set(ADDRESS, 64, d.consumeBoolean() ? MemorySegment.NULL : strides);
            m.set(JAVA_LONG, 72, d.consumeBoolean() ? d.consumeLong(0, 64) : d.consumeLong());
            Tensor t = null;
            try {
                t = DLPack.importTensor(m);
            } catch (InteropException expected) {
                // documented
            }
            if (t != null) {
                if (CountingProducer.calls(id) != 0) throw new AssertionError("deleter ran before the tensor's arena closed");
                if (t.byteSize() != t.numel() * t.dtype().byteSize()) throw new AssertionError("inconsistent " + t);
                long at = t.byteSize() == 0 ? data.address() : t.segment().address();
                if (t.device().isHost() && at >= data.address() && at + t.byteSize() <= data.address() + DATA_BYTES) t.toFloatArray();
                t.arena().close();
            }
            if (CountingProducer.calls(id) != 1) throw new AssertionError("deleter ran " + CountingProducer.calls(id) + " times");
            CountingProducer.CALLS.clear();
        }
    }
}
