package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CPU backend's two precisions ({@link Precision}): BF16 against the float64 reference of the
 * layer (f32 activations) at bf16's tolerance, and for both: the option reaches the kernels, a
 * token's output is the same bits alone, in a batch of 7 and in a batch of 300, for 1, 2 and 3
 * threads and for any forward chunk size. (EXACT against the reference: {@link LayerForwardTest}.)
 */
@ExtendWith(NoLeaks.class)
class PrecisionTest {

    static float[] forward(MoeLayer layer, HostArena arena, Tensor x) {
        Tensor y = arena.allocateTensor(DType.F32, x.dim(0), layer.config().hiddenSize()).fill(Float.NaN);
        layer.forward(x, y);
        return y.toFloatArray();
    }

    @Test
    void bf16MatchesTheFloat64Layer() {
        record Case(String name, MoeConfig cfg, DType dtype, int tokens) {}
        Case[] cases = {
                new Case("super/8", Cases.SUPER_SMALL, DType.BF16, 1),
                new Case("super/8", Cases.SUPER_SMALL, DType.BF16, 300),
                new Case("nano/8 standard", Cases.NANO_SMALL, DType.BF16, 77),
                new Case("N=512 K=32 odd sizes", Cases.WIDE_N, DType.BF16, 33),
                new Case("odd swiglu f32 weights", Cases.ODD_SWIGLU, DType.F32, 101)};
        for (Case c : cases) {
            long seed = Cases.seed("bf16 " + c.name + " T=" + c.tokens);
            try (MoeLayer layer = MoeLayer.random(c.cfg, c.dtype, seed, Backends.cpu(), Precision.BF16, null);
                 HostArena arena = HostArena.shared("test")) {
                assertEquals(Precision.BF16, layer.precision());
                Tensor x = Cases.input(arena, c.tokens, c.cfg.hiddenSize(), seed ^ 0x5DEECE66DL);
                Tensor y = arena.allocateTensor(DType.F32, c.tokens, c.cfg.hiddenSize()).fill(Float.NaN);
                Routing routing = Routing.allocate(arena, c.tokens, c.cfg.topK());
                layer.forward(x, y, routing);
                System.out.print(c.name + " T=" + c.tokens + " bf16: ");
                // the router is f32 in both precisions: routing at the exact tolerance
                LayerForwardTest.assertMatches(layer, x, y, routing, 1e-2, 1e-5);
            }
        }
    }

    @Test
    void bf16IsNotExact() {
        long seed = Cases.seed("bf16 vs exact");
        try (HostArena arena = HostArena.shared("test");
             MoeLayer exact = MoeLayer.random(Cases.SUPER_SMALL, DType.BF16, seed, Backends.cpu());
             MoeLayer bf16 = MoeLayer.random(Cases.SUPER_SMALL, DType.BF16, seed, Backends.cpu(), Precision.BF16, null)) {
            assertEquals(Precision.EXACT, exact.precision());
            Tensor x = Cases.input(arena, 16, Cases.SUPER_SMALL.hiddenSize(), seed);
            float[] a = forward(exact, arena, x), b = forward(bf16, arena, x);
            double num = 0, den = 0;
            for (int i = 0; i < a.length; i++) {
                num += (a[i] - b[i]) * (double) (a[i] - b[i]);
                den += a[i] * (double) a[i];
            }
            double rel = Math.sqrt(num / den);
            System.out.printf("bf16 vs exact: relative difference %.3e%n", rel);
            assertTrue(rel > 1e-5 && rel < 1e-2, "bf16 vs exact relative difference " + rel);
        }
    }

    @ParameterizedTest
    @EnumSource(Precision.class)
    void aTokensBitsDependOnItsDataOnly(Precision precision) {
        MoeConfig cfg = Cases.SUPER_SMALL;
        int d = cfg.hiddenSize(), t = 300;
        long seed = Cases.seed("invariant " + precision);
        int threads0 = Cpu.threads();
        long chunk0 = Cpu.chunkTokens();
        try (MoeLayer layer = MoeLayer.random(cfg, DType.BF16, seed, Backends.cpu(), precision, null);
             HostArena arena = HostArena.shared("test")) {
            Tensor x = Cases.input(arena, t, d, seed);
            float[] all = forward(layer, arena, x);
            for (int tok : new int[] {0, 5, 150, 299}) {
                float[] alone = forward(layer, arena, x.rows(tok, tok + 1));
                assertArrayEquals(Arrays.copyOfRange(all, tok * d, (tok + 1) * d), alone, 0f, "token " + tok + " alone");
                int q = Math.max(0, Math.min(t - 7, tok - 3));
                float[] seven = forward(layer, arena, x.rows(q, q + 7));
                assertArrayEquals(Arrays.copyOfRange(all, tok * d, (tok + 1) * d),
                        Arrays.copyOfRange(seven, (tok - q) * d, (tok - q + 1) * d), 0f, "token " + tok + " in a batch of 7");
            }
            for (int threads : new int[] {1, 2, 3}) {
                Cpu.setThreads(threads);
                assertArrayEquals(all, forward(layer, arena, x), 0f, threads + " threads");
            }
            Cpu.setThreads(threads0);
            for (long chunk : new long[] {1, 7, 64, 4096}) {
                Cpu.setChunkTokens(chunk);
                assertArrayEquals(all, forward(layer, arena, x), 0f, "chunks of " + chunk + " tokens");
            }
        } finally {
            Cpu.setThreads(threads0);
            Cpu.setChunkTokens(chunk0);
        }
    }

    @Test
    void optionsAreChecked() {
        try (MoeLayer layer = MoeLayer.random(Cases.NANO_SMALL, DType.BF16, 1, Backends.cpu())) {
            assertThrows(IllegalArgumentException.class, () -> MoeLayer.of(layer.weights(), Backends.cpu(), null));
            // The GPU computes with bf16 activations only: EXACT is refused whether or not a GPU is here.
            Backend cuda = Backends.get("cuda");
            assertEquals(Precision.BF16, cuda.defaultPrecision());
            assertThrows(UnsupportedOperationException.class, () -> cuda.prepare(layer.weights(), Precision.EXACT));
        }
        assertEquals(Precision.BF16, Precision.fromName("BF16"));
        assertThrows(IllegalArgumentException.class, () -> Precision.fromName("fp8"));
        assertThrows(IllegalArgumentException.class, () -> Cpu.setChunkTokens(0));
        assertThrows(IllegalArgumentException.class, () -> Cpu.peakGFlops(Cpu.PeakProbe.SSE2, 0));
    }

    @Test
    void kernelAndCeilingAreReported() {
        for (Precision p : Precision.values()) {
            Cpu.GemmKernel k = Cpu.gemmKernel(p);
            assertFalse(k.name().isEmpty());
            assertTrue(k.terms() == 1 || k.terms() == 3, k.toString());
            double g = Cpu.peakGFlops(k.probe(), 0.01);
            System.out.printf("isa %s (best %s), %s: kernel %s, %s probe %.1f GFLOP/s%n", Cpu.isa(), Cpu.bestIsa(), p, k.name(),
                    k.probe().label(), g);
            assertTrue(g > 0 && Double.isFinite(g), "probe " + g);
        }
    }
}
