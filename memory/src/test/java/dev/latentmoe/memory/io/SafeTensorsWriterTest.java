package dev.latentmoe.memory.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The safetensors writer's layout, read back here from the raw bytes (the library's reader is the
 * native checkpoint loader, tested in native/tests-engine and through MoeLayer.fromCheckpoint).
 */
@ExtendWith(ArenaLeakCheck.class)
class SafeTensorsWriterTest {
    @TempDir Path tmp;

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
    @SuppressWarnings("unchecked")
    void everyDtypePackedAlignedAndByteExact() throws Exception {
        Path f = tmp.resolve("m.safetensors");
        try (HostArena a = HostArena.confined("src")) {
            Map<String, Tensor> src = new LinkedHashMap<>();
            src.put("w", a.allocateTensor(DType.F32, 2, 3).copyFrom(new float[] {1, -2, 3.5f, Float.MIN_VALUE, 1e30f, -0f}));
            src.put("b16", a.allocateTensor(DType.BF16, 3).copyFrom(new float[] {1.5f, -0.125f, 256f}));
            src.put("h", a.allocateTensor(DType.F16, 2, 2).copyFrom(new float[] {0.5f, 65504f, -1f, 0x1p-24f}));
            Tensor codes = a.allocateTensor(DType.U8, 3, 5);
            for (int i = 0; i < 15; i++) codes.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i * 17));
            src.put("packed", codes);
            Tensor e4m3 = a.allocateTensor(DType.F8_E4M3, 7);
            for (int i = 0; i < 7; i++) e4m3.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (0x30 + i));
            src.put("scales", e4m3);
            src.put("empty", a.allocateTensor(DType.F32, 0, 4));
            SafeTensorsWriter.write(f, src, Map.of("format", "pt"));
            byte[] bytes = Files.readAllBytes(f);
            long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
            Map<String, Object> header = Json.parseObject(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));
            assertEquals(Map.of("format", "pt"), header.get("__metadata__"));
            long data = 8 + n, end = 0;
            for (Map.Entry<String, Tensor> e : src.entrySet()) {
                Map<String, Object> entry = (Map<String, Object>) header.get(e.getKey());
                Tensor t = e.getValue();
                assertEquals(t.dtype().safetensorsName(), entry.get("dtype"), e.getKey());
                List<Object> shape = (List<Object>) entry.get("shape");
                assertArrayEquals(t.shape(), shape.stream().mapToLong(o -> (Long) o).toArray(), e.getKey());
                List<Object> offs = (List<Object>) entry.get("data_offsets");
                long begin = (Long) offs.get(0), stop = (Long) offs.get(1);
                assertEquals(t.byteSize(), stop - begin, e.getKey());
                assertEquals(0, begin % t.dtype().byteSize(), e.getKey() + " element-aligned");
                assertArrayEquals(t.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                        Arrays.copyOfRange(bytes, (int) (data + begin), (int) (data + stop)), e.getKey());
                end = Math.max(end, stop);
            }
            assertEquals(bytes.length - data, end, "no gaps, no trailing bytes");
        }
    }

    @Test
    void rejectsReservedNamesAndClosedTensors() {
        try (HostArena a = HostArena.confined("src")) {
            Tensor t = a.allocateTensor(DType.F32, 1);
            assertThrows(IllegalArgumentException.class,
                    () -> SafeTensorsWriter.write(tmp.resolve("x"), Map.of("__metadata__", t), null));
        }
        HostArena closed = HostArena.confined("closed");
        Tensor t = closed.allocateTensor(DType.F32, 1);
        closed.close();
        assertThrows(IllegalStateException.class, () -> SafeTensorsWriter.write(tmp.resolve("y"), Map.of("t", t), null));
    }
}
