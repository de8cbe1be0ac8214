package dev.latentmoe.memory.io;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

@ExtendWith(ArenaLeakCheck.class)
class SafeTensorsTest {
    @TempDir Path tmp;

    private static final String PUNCT = "{}[]\",:0123456789-";

    /** Writes {@code u64 n | headerAndData}. */
    static void raw(Path f, long n, byte[] rest) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(8 + rest.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(n).put(rest);
        Files.write(f, b.array());
    }

    /** Writes a file with the given JSON header and {@code dataBytes} bytes of data 0,1,2,... */
    static Path raw(Path f, String header, int dataBytes) throws Exception {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        byte[] rest = new byte[h.length + dataBytes];
        System.arraycopy(h, 0, rest, 0, h.length);
        for (int i = 0; i < dataBytes; i++) rest[h.length + i] = (byte) i;
        raw(f, h.length, rest);
        return f;
    }

    static SafeTensorsException fails(Path f, String fragment) {
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensorsFile.open(f).close());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
        assertEquals(0, MemoryAccounting.openArenas(), "failed open must unmap");
        return e;
    }

    static Map<String, Tensor> sampleTensors(MemoryArena a) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        Tensor f32 = a.allocateTensor(DType.F32, 2, 3);
        f32.copyFrom(new float[] {1, -2, 3.5f, Float.MIN_VALUE, 1e30f, -0f});
        Tensor bf16 = a.allocateTensor(DType.BF16, 3);
        bf16.copyFrom(new float[] {1.5f, -0.125f, 256f});
        Tensor f16 = a.allocateTensor(DType.F16, 2, 2);
        f16.copyFrom(new float[] {0.5f, 65504f, -1f, 0x1p-24f});
        Tensor i32 = a.allocateTensor(DType.I32, 5);
        for (int i = 0; i < 5; i++) i32.setInt(i, i * 1000 - 2);
        Tensor empty = a.allocateTensor(DType.F32, 0, 4);
        m.put("layers.0.w", f32);
        m.put("layers.0.b16", bf16);
        m.put("embed.h", f16);
        m.put("ids", i32);
        m.put("empty", empty);
        return m;
    }

    @Test
    void roundTripAllDtypesZeroCopy() throws Exception {
        Path f = tmp.resolve("m.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            Map<String, Tensor> src = sampleTensors(a);
            SafeTensorsWriter.write(f, src, Map.of("format", "pt"));
            try (SafeTensorsFile st = SafeTensorsFile.open(f)) {
                assertEquals(src.keySet(), st.names());
                assertEquals(Map.of("format", "pt"), st.metadata());
                assertEquals(0, st.dataOffset() % 8);
                MemorySegment map = st.arena().segment();
                assertEquals(Files.size(f), MemoryAccounting.mappedBytes());
                long lastEnd = 0;
                for (var e : src.entrySet()) {
                    Tensor orig = e.getValue();
                    SafeTensorsFile.TensorInfo info = st.info(e.getKey());
                    assertEquals(orig.dtype().safetensorsName(), info.dtype());
                    assertArrayEquals(orig.shape(), info.shape());
                    assertEquals(0, info.begin() % orig.dtype().byteSize(), "element-aligned");
                    lastEnd = Math.max(lastEnd, info.end());
                    Tensor t = st.tensor(e.getKey());
                    assertSame(st.arena(), t.arena());
                    assertEquals(orig.dtype(), t.dtype());
                    assertArrayEquals(orig.shape(), t.shape());
                    assertEquals(-1, orig.segment().mismatch(t.segment()), e.getKey());
                    // zero copy: the tensor lies inside the mapping at the header's offsets
                    assertEquals(map.address() + st.dataOffset() + info.begin(), t.segment().address());
                    assertTrue(t.segment().address() + t.byteSize() <= map.address() + map.byteSize());
                    assertTrue(t.segment().isReadOnly());
                }
                assertEquals(Files.size(f) - st.dataOffset(), lastEnd, "no gaps, no trailing bytes");
                assertEquals(3.5f, st.tensor("layers.0.w").getFloat(0, 2));
                assertEquals(-0.125f, st.tensor("layers.0.b16").getFloat(1));
                assertEquals(65504f, st.tensor("embed.h").getFloat(1));
                assertEquals(3998, st.tensor("ids").getInt(4));
                assertThrows(IllegalArgumentException.class, () -> st.tensor("ids").setInt(0, 1)); // read-only mapping
            }
        }
    }

    @Test
    void headerLayoutMatchesReferenceWriter() throws Exception {
        Path f = tmp.resolve("h.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            Tensor t = a.allocateTensor(DType.BF16, 3);
            Tensor u = a.allocateTensor(DType.F32, 1);
            SafeTensorsWriter.write(f, Map.of("b", t, "a", u), null);
        }
        byte[] bytes = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, (8 + n) % 8);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertEquals("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[4,10]}}", header.stripTrailing());
        assertEquals(8 + n + 10, bytes.length);
    }

    @Test
    void tensorsInvalidAfterClose() throws Exception {
        Path f = tmp.resolve("c.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            SafeTensorsWriter.write(f, Map.of("x", a.allocateTensor(DType.F32, 2)), null);
        }
        SafeTensorsFile st = SafeTensorsFile.open(f);
        Tensor x = st.tensor("x");
        st.close();
        assertThrows(IllegalStateException.class, () -> x.getFloat(0));
        assertThrows(IllegalStateException.class, () -> st.tensor("x"));
        st.close();
        assertTrue(st.has("x")); // the header stays readable
    }

    @Test
    void truncatedFiles() throws Exception {
        Path good = tmp.resolve("good.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            SafeTensorsWriter.write(good, sampleTensors(a), null);
        }
        byte[] bytes = Files.readAllBytes(good);
        Path f = tmp.resolve("trunc.safetensors");
        Files.write(f, Arrays.copyOf(bytes, bytes.length - 3));
        fails(f, "run past");
        Files.write(f, Arrays.copyOf(bytes, 40));
        fails(f, "header length");
        Files.write(f, Arrays.copyOf(bytes, 5));
        fails(f, "truncated");
        Files.write(f, new byte[0]);
        fails(f, "truncated");
    }

    @Test
    void headerLengthChecks() throws Exception {
        Path f = tmp.resolve("len.safetensors");
        raw(f, 1000, "{}".getBytes(StandardCharsets.UTF_8));
        fails(f, "exceeds");
        raw(f, SafeTensorsFile.MAX_HEADER_BYTES + 1, new byte[16]);
        fails(f, "limit");
        raw(f, -1L, new byte[16]); // 2^64 - 1 unsigned
        fails(f, "18446744073709551615");
        raw(f, 0, new byte[0]);
        fails(f, "corrupt header");
    }

    @Test
    void corruptHeaders() throws Exception {
        Path f = tmp.resolve("bad.safetensors");
        fails(raw(f, "not json at all", 0), "corrupt header: invalid JSON at offset 0");
        fails(raw(f, "[1,2]", 0), "expected a JSON object, got array");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 4), "invalid JSON");
        raw(f, 2, new byte[] {'"', (byte) 0xC3});
        fails(f, "not valid UTF-8");
        fails(raw(f, "{\"x\": 5}", 0), "tensor 'x': entry must be an object");
        fails(raw(f, "{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "dtype must be a string");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "non-negative integers");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4), "non-negative integers");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4), "shape must be an array");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4), "data_offsets must be");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4), "data_offsets must be");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4), "overflows");
        fails(raw(f, "{\"__metadata__\":{\"a\":1}}", 0), "__metadata__ value of 'a' must be a string");
        fails(raw(f, "{\"__metadata__\":[]}", 0), "__metadata__ must be an object");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "duplicate key");
        fails(raw(f, "[".repeat(10_000), 0), "nesting deeper");
    }

    @Test
    void offsetsOutOfRangeOrNotMatchingShape() throws Exception {
        Path f = tmp.resolve("off.safetensors");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4), "run past the 4-byte data region");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8), "begin <= end");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8), "begin <= end");
        fails(raw(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12), "needs 12 bytes");
        fails(raw(f, "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 8), "needs 8 bytes");
        // sizes of unsupported dtypes are validated too
        fails(raw(f, "{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16), "needs 16 bytes");
        fails(raw(f, "{\"x\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2), "needs 12 bits");
    }

    @Test
    void overlappingAndGappedTensorsAreAllowed() throws Exception {
        Path f = raw(tmp.resolve("ov.safetensors"),
                "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                        + "\"c\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[12,14]}}", 16);
        try (SafeTensorsFile st = SafeTensorsFile.open(f)) {
            assertEquals(st.tensor("a").getInt(1), st.tensor("b").getInt(0));
            assertEquals(0x07060504, st.tensor("b").getInt(0));
            assertArrayEquals(new long[0], st.info("c").shape());
            assertArrayEquals(new long[] {1}, st.tensor("c").shape()); // scalar viewed as [1]
        }
    }

    @Test
    void unsupportedDtypeOnlyFailsWhenRequested() throws Exception {
        Path f = raw(tmp.resolve("f64.safetensors"),
                "{\"__metadata__\":{\"k\":\"v\"},"
                        + "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                        + "\"q\":{\"dtype\":\"F8_E5M2\",\"shape\":[4],\"data_offsets\":[8,12]},"
                        + "\"w\":{\"dtype\":\"FUTURE_TYPE\",\"shape\":[4],\"data_offsets\":[8,9]},"
                        + "\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16);
        try (SafeTensorsFile st = SafeTensorsFile.open(f)) {
            assertEquals(List.of("d", "q", "w", "ok"), List.copyOf(st.names()));
            assertEquals("F64", st.info("d").dtype());
            assertFalse(st.info("d").isSupported());
            assertTrue(st.info("ok").isSupported());
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> st.tensor("d"));
            assertTrue(e.getMessage().contains("'d'") && e.getMessage().contains("F64") && e.getMessage().contains(f.toString()),
                    e.getMessage());
            e = assertThrows(SafeTensorsException.class, () -> st.tensor("q"));
            assertTrue(e.getMessage().contains("F8_E5M2"));
            assertEquals(1, st.tensor("ok").numel());
            e = assertThrows(SafeTensorsException.class, () -> st.tensor("nope"));
            assertTrue(e.getMessage().contains("no tensor 'nope'"), e.getMessage());
            assertThrows(SafeTensorsException.class, () -> st.info("nope"));
            assertFalse(st.has("nope"));
            assertFalse(st.has("__metadata__"));
        }
    }

    @Test
    void missingFile() {
        fails(tmp.resolve("absent.safetensors"), "cannot map");
    }

    @Test
    void fuzzedFilesFailCleanly() throws Exception {
        Path good = tmp.resolve("fz.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            SafeTensorsWriter.write(good, sampleTensors(a), Map.of("m", "x"));
        }
        byte[] bytes = Files.readAllBytes(good);
        Random r = new Random(7);
        Path f = tmp.resolve("mut.safetensors");
        int opened = 0;
        for (int i = 0; i < 400; i++) {
            byte[] b = bytes.clone();
            int edits = 1 + r.nextInt(3);
            for (int k = 0; k < edits; k++) {
                int at = r.nextInt(Math.min(b.length, 8 + 200));
                b[at] = (byte) (r.nextBoolean() ? r.nextInt(256) : PUNCT.charAt(r.nextInt(PUNCT.length())));
            }
            if (r.nextInt(8) == 0) b = Arrays.copyOf(b, r.nextInt(b.length));
            Files.write(f, b);
            try (SafeTensorsFile st = SafeTensorsFile.open(f)) {
                opened++;
                for (String n : st.names()) {
                    try {
                        Tensor t = st.tensor(n);
                        if (t.numel() > 0) t.getFloat(t.numel() - 1);
                    } catch (SafeTensorsException unsupported) {
                        // a mutated dtype
                    }
                }
            } catch (SafeTensorsException expected) {
                // fine
            }
        }
        assertTrue(opened > 0);
    }
}
