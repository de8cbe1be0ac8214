package dev.latentmoe.memory.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

@ExtendWith(ArenaLeakCheck.class)
class NpyTest {
    @TempDir Path tmp;

    /** magic + version + little-endian header length (u16 for 1.0, u32 otherwise) + header text + data. */
    static byte[] npy(int major, String header, byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        byte[] h = header.getBytes(major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        if (major == 1) {
            out.write(h.length & 0xFF);
            out.write(h.length >>> 8);
        } else {
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(h.length).array());
        }
        out.writeBytes(h);
        out.writeBytes(data);
        return out.toByteArray();
    }

    static byte[] le(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) b.putFloat(x);
        return b.array();
    }

    static byte[] leInts(int... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : v) b.putInt(x);
        return b.array();
    }

    /** What numpy >= 1.24 writes for np.save(f, np.array([1, 2, 3], dtype='<f4')). */
    static byte[] numpyF32Vector() {
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        // 20 spare spaces for growing axis 0, then 40 of padding so 10 + 118 = 128 bytes, then '\n'
        String header = dict + " ".repeat(60) + "\n";
        assertEquals(118, header.length());
        return npy(1, header, le(1f, 2f, 3f));
    }

    @Test
    void readsNumpyBytes() throws Exception {
        Path f = tmp.resolve("v.npy");
        Files.write(f, numpyF32Vector());
        try (HostArena a = HostArena.confined("npy")) {
            Tensor t = Npy.read(f, a);
            assertEquals(DType.F32, t.dtype());
            assertArrayEquals(new long[] {3}, t.shape());
            assertArrayEquals(new float[] {1, 2, 3}, t.toFloatArray());
        }
    }

    @Test
    void writesNumpyBytes() throws Exception {
        Path f = tmp.resolve("w.npy");
        try (HostArena a = HostArena.confined("npy")) {
            Npy.write(f, a.allocateTensor(DType.F32, 3).copyFrom(new float[] {1, 2, 3}));
        }
        byte[] bytes = Files.readAllBytes(f);
        assertArrayEquals(numpyF32Vector(), bytes);
        assertEquals(0, (bytes.length - 12) % 64);
    }

    @Test
    void readsOlderAndNewerHeaderStyles() throws Exception {
        Path f = tmp.resolve("o.npy");
        try (HostArena a = HostArena.confined("npy")) {
            // old numpy: 16-byte alignment, no spare space; i4 2x3
            String h = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
            h = h + " ".repeat(15 - (10 + h.length()) % 16) + "\n";
            Files.write(f, npy(1, h, leInts(1, 2, 3, -4, 5, Integer.MIN_VALUE)));
            Tensor t = Npy.read(f, a);
            assertEquals(DType.I32, t.dtype());
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertEquals(Integer.MIN_VALUE, t.getInt(5));
            assertEquals(-4, t.getInt(3));

            // version 2.0, double-quoted keys, different key order, f8 converted to f32
            ByteBuffer d = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(0.1).putDouble(-1e300);
            Files.write(f, npy(2, "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f8\"}\n", d.array()));
            Tensor g = Npy.read(f, a);
            assertEquals(DType.F32, g.dtype());
            assertEquals(0.1f, g.getFloat(0));
            assertEquals(Float.NEGATIVE_INFINITY, g.getFloat(1));

            // version 3.0 (utf-8), 0-d array reads as [1]
            Files.write(f, npy(3, "{'descr': '<f2', 'fortran_order': False, 'shape': (), }\n",
                    new byte[] {0x00, 0x3C}));
            Tensor s = Npy.read(f, a);
            assertEquals(DType.F16, s.dtype());
            assertArrayEquals(new long[] {1}, s.shape());
            assertEquals(1f, s.getFloat(0));

            // u2 is bf16 by this project's convention
            Files.write(f, npy(1, "{'descr': '<u2', 'fortran_order': False, 'shape': (1, 2), }\n",
                    new byte[] {(byte) 0x80, 0x3F, (byte) 0xC0, (byte) 0xBF}));
            Tensor b = Npy.read(f, a);
            assertEquals(DType.BF16, b.dtype());
            assertArrayEquals(new float[] {1f, -1.5f}, b.toFloatArray());
        }
    }

    @Test
    void roundTripEveryDtype() throws Exception {
        long[][] shapes = {{5}, {2, 3}, {2, 1, 4}, {0, 3}, {70000}};
        try (HostArena a = HostArena.confined("npy")) {
            for (DType dt : DType.ACTIVATION_TYPES) {
                for (long[] shape : shapes) {
                    Tensor t = a.allocateTensor(dt, shape);
                    for (long i = 0; i < t.numel(); i++) t.setFloat(i, (i % 97) * 0.5f - 7);
                    Path f = tmp.resolve(dt + "-" + shape.length + ".npy");
                    Npy.write(f, t);
                    byte[] bytes = Files.readAllBytes(f);
                    int hlen = (bytes[8] & 0xFF) | (bytes[9] & 0xFF) << 8;
                    assertEquals(0, (10 + hlen) % 64);
                    assertEquals('\n', bytes[10 + hlen - 1]);
                    Tensor back = Npy.read(f, a);
                    assertEquals(dt, back.dtype());
                    assertArrayEquals(shape, back.shape());
                    assertEquals(-1, t.segment().mismatch(back.segment()), dt + " " + shape.length);
                }
            }
        }
    }

    private void bad(byte[] bytes, String fragment) throws Exception {
        Path f = tmp.resolve("bad.npy");
        Files.write(f, bytes);
        try (HostArena a = HostArena.confined("npy")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Npy.read(f, a));
            assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
            assertEquals(0, a.bytesHeld(), "nothing allocated for a bad file");
        }
    }

    private static String h(String descr, String fortran, String shape) {
        return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }\n";
    }

    @Test
    void malformedFilesAreRejected() throws Exception {
        byte[] four = le(1, 2, 3, 4);
        bad(new byte[] {1, 2, 3}, "truncated");
        bad("NUMPY-not-really".getBytes(StandardCharsets.ISO_8859_1), "bad magic");
        byte[] v4 = npy(1, h("<f4", "False", "(4,)"), four);
        v4[6] = 4;
        bad(v4, "unsupported format version 4.0");
        bad(npy(1, h("<f4", "True", "(2, 2)"), four), "fortran_order True");
        bad(npy(1, h(">f4", "False", "(4,)"), four), "big-endian");
        bad(npy(1, h("|u1", "False", "(16,)"), new byte[16]), "unsupported dtype '|u1'");
        bad(npy(1, h("<i8", "False", "(2,)"), new byte[16]), "unsupported dtype '<i8'");
        bad(npy(1, h("<c8", "False", "(2,)"), new byte[16]), "unsupported dtype");
        bad(npy(1, h("<f4", "False", "(5,)"), four), "needs 20 data bytes but the file has 16 (truncated)");
        bad(npy(1, h("<f4", "False", "(3,)"), four), "needs 12 data bytes but the file has 16");
        bad(npy(1, h("<f4", "False", "(4)"), four), "trailing comma");
        bad(npy(1, h("<f4", "False", "[4]"), four), "unexpected value");
        bad(npy(1, h("<f4", "False", "(-4,)"), four), "non-negative integer");
        bad(npy(1, h("<f4", "False", "(04,)"), four), "leading zero");
        bad(npy(1, h("<f4", "False", "(99999999999999999999,)"), four), "out of range");
        bad(npy(1, h("<f4", "False", "(4294967296, 4294967296)"), four), "overflows");
        bad(npy(1, h("<f4", "0", "(4,)"), four), "unexpected value");
        bad(npy(1, "{'descr': '<f4', 'shape': (4,), }\n", four), "exactly descr, fortran_order, shape");
        bad(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': True}\n", four), "exactly");
        bad(npy(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}\n", four), "duplicate key");
        bad(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} junk\n", four), "after the dict");
        bad(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)\n", four), "unexpected end of header");
        bad(npy(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}\n", four), "expected ',' or '}'");
        bad(npy(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (4,)}\n", four), "malformed header");
        bad(npy(1, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (4,)}\n", four), "escapes");
        bad(npy(1, "{'descr': 4, 'fortran_order': False, 'shape': (4,)}\n", four), "unexpected value");
        bad(npy(1, "{'descr': (4,), 'fortran_order': False, 'shape': (4,)}\n", four), "descr must be a string");
        bad(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, ".repeat(65) + ")}\n", four), "more than 64");
        bad(npy(1, "", new byte[0]), "unexpected end of header");
        // header length beyond the file
        byte[] longHeader = npy(1, h("<f4", "False", "(4,)"), new byte[0]);
        longHeader[8] = (byte) 0xFF;
        longHeader[9] = (byte) 0x7F;
        bad(longHeader, "exceeds the file");
        // v2 header length beyond the limit
        byte[] huge = npy(2, h("<f4", "False", "(4,)"), four);
        huge[8] = huge[9] = huge[10] = huge[11] = (byte) 0xFF;
        bad(huge, "exceeds " + Npy.MAX_HEADER_BYTES);
    }

    @Test
    void writeRejectsClosedTensor() {
        HostArena a = HostArena.confined("npy");
        Tensor t = a.allocateTensor(DType.F32, 2);
        a.close();
        assertThrows(IllegalStateException.class, () -> Npy.write(tmp.resolve("x.npy"), t));
    }
}
