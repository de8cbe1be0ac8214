package dev.latentmoe.memory;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(ArenaLeakCheck.class)
class TensorTest {
    private static float f(int bits) { return Float.intBitsToFloat(bits); }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3F80, DType.floatToBf16(1.0f));
        // exactly halfway, lower neighbour even -> down
        assertEquals((short) 0x3F80, DType.floatToBf16(f(0x3F808000)));
        // exactly halfway, lower neighbour odd -> up to even
        assertEquals((short) 0x3F82, DType.floatToBf16(f(0x3F818000)));
        // just above halfway -> up
        assertEquals((short) 0x3F81, DType.floatToBf16(f(0x3F808001)));
        // just below halfway -> down
        assertEquals((short) 0x3F80, DType.floatToBf16(f(0x3F807FFF)));
        // negative numbers round by magnitude
        assertEquals((short) 0xBF82, DType.floatToBf16(f(0xBF818000)));
        // overflow to infinity, infinities kept
        assertEquals((short) 0x7F80, DType.floatToBf16(Float.MAX_VALUE));
        assertEquals((short) 0x7F80, DType.floatToBf16(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, DType.floatToBf16(Float.NEGATIVE_INFINITY));
        // subnormals and signed zero
        assertEquals((short) 0x0001, DType.floatToBf16(f(0x00010000)));
        assertEquals((short) 0x8000, DType.floatToBf16(-0.0f));
        assertEquals(1.5f, DType.bf16ToFloat((short) 0x3FC0));
    }

    @Test
    void bf16NaNStaysNaN() {
        assertTrue(Float.isNaN(DType.bf16ToFloat(DType.floatToBf16(Float.NaN))));
        // a signalling NaN whose payload is all in the low half must not become infinity
        short s = DType.floatToBf16(f(0x7F800001));
        assertTrue(Float.isNaN(DType.bf16ToFloat(s)), Integer.toHexString(s));
        short n = DType.floatToBf16(f(0xFFFFFFFF));
        assertTrue(Float.isNaN(DType.bf16ToFloat(n)));
        assertTrue(Float.isNaN(DType.roundToBf16(Float.NaN)));
    }

    @Test
    void f16RoundsToNearestEven() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0)
        assertEquals((short) 0x3C00, Float.floatToFloat16(1f + 0x1p-11f));
        // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even)
        assertEquals((short) 0x3C02, Float.floatToFloat16(1f + 3 * 0x1p-11f));
        assertEquals((short) 0x7BFF, Float.floatToFloat16(65504f));
        assertEquals((short) 0x7BFF, Float.floatToFloat16(65519f));
        assertEquals((short) 0x7C00, Float.floatToFloat16(65520f));
        assertEquals((short) 0x0001, Float.floatToFloat16(0x1p-24f));
        assertEquals((short) 0x0000, Float.floatToFloat16(0x1p-25f)); // tie to even zero
        assertTrue(Float.isNaN(Float.float16ToFloat(Float.floatToFloat16(Float.NaN))));
    }

    @Test
    void tensorConvertsOnStore() {
        try (HostArena a = HostArena.confined("conv")) {
            Tensor b = a.allocateTensor(DType.BF16, 3);
            b.copyFrom(new float[] {f(0x3F818000), Float.NaN, -2.5f});
            assertEquals(f(0x3F820000), b.getFloat(0));
            assertTrue(Float.isNaN(b.getFloat(1)));
            assertEquals(-2.5f, b.getFloat(2));
            assertTrue(b.hasNonFinite());

            Tensor h = a.allocateTensor(DType.F16, 2);
            h.setFloat(0, 1f + 0x1p-11f);
            h.setFloat(1, 70000f);
            assertEquals(1f, h.getFloat(0));
            assertEquals(Float.POSITIVE_INFINITY, h.getFloat(1));

            Tensor i = a.allocateTensor(DType.I32, 2);
            i.setInt(0, -7);
            assertEquals(-7f, i.getFloat(0));
            assertThrows(IllegalStateException.class, () -> b.getInt(0));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getFloat(3));
        }
    }

    @Test
    void reshapeAndRowsShareMemory() {
        try (HostArena a = HostArena.confined("views")) {
            Tensor t = a.allocateTensor(DType.F32, 4, 3);
            float[] v = new float[12];
            for (int k = 0; k < 12; k++) v[k] = k;
            t.copyFrom(v);
            Tensor r = t.reshape(2, 6);
            assertArrayEquals(new long[] {2, 6}, r.shape());
            assertEquals(7f, r.getFloat(1, 1));
            r.setFloat(0, 100f);
            assertEquals(100f, t.getFloat(0, 0));

            Tensor rows = t.rows(1, 3);
            assertArrayEquals(new long[] {2, 3}, rows.shape());
            assertEquals(3f, rows.getFloat(0, 0));
            assertEquals(8f, rows.getFloat(1, 2));
            rows.setFloat(0, -1f);
            assertEquals(-1f, t.getFloat(1, 0));
            assertEquals(t.segment().address() + 12, rows.segment().address());
            assertEquals(0, t.rows(4, 4).numel());

            assertThrows(IllegalArgumentException.class, () -> t.reshape(5, 2));
            assertThrows(IndexOutOfBoundsException.class, () -> t.rows(2, 5));
            assertThrows(IndexOutOfBoundsException.class, () -> t.rows(3, 2));
            assertArrayEquals(new long[] {3, 1}, t.strides());
        }
    }

    @Test
    void wrappedCallerMemoryIsCheckedForLifetimeAndThread() throws Exception {
        try (HostArena owner = HostArena.shared("view owner")) {
            java.lang.foreign.Arena callers = java.lang.foreign.Arena.ofShared();
            Tensor t = Tensor.wrap(owner, callers.allocate(16, 64), DType.F32, 4);
            t.setFloat(3, 2f);
            assertEquals(t.segment().address(), t.segment().address());
            assertTrue(t.isAlive());
            callers.close();   // the caller frees its memory; our arena is still open
            assertFalse(t.isAlive());
            IllegalStateException e = assertThrows(IllegalStateException.class, t::segment);
            assertTrue(e.getMessage().contains("was freed by its owner"), e.getMessage());
            assertThrows(IllegalStateException.class, t::checkAccessible);

            // memory of a confined caller arena, used from another thread
            java.util.concurrent.ExecutorService other = java.util.concurrent.Executors.newSingleThreadExecutor();
            try {
                java.lang.foreign.Arena confined = java.lang.foreign.Arena.ofConfined();
                Tensor c = Tensor.wrap(owner, confined.allocate(16, 64), DType.F32, 4);
                java.util.concurrent.Future<Throwable> f = other.submit(() -> {
                    try {
                        c.segment();
                        return null;
                    } catch (Throwable x) {
                        return x;
                    }
                });
                Throwable got = f.get();
                assertTrue(got instanceof WrongThreadException && got.getMessage().contains("confined arena of another thread"),
                        String.valueOf(got));
                confined.close();
            } finally {
                other.shutdown();
            }
        }
    }
}
