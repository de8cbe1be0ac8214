package dev.latentmoe.bench.gpu;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.WeightFormat;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Seeded random weights in FP8 (e4m3 with per-tensor scales) or NVFP4 (e2m1 codes, e4m3 block
 * scales, per-tensor scales) for {@code bench --backend cuda --dtype fp8|nvfp4}: every matrix but
 * the router gate (BF16) in that format, built on the host and uploaded as it is stored. Values stay
 * about uniform in ±1/sqrt(fan_in) like {@code MoeWeights.random}'s: FP8 codes with exponents 9..14
 * (2^2..2^7 x (1+m/8)) times a scale of 1/(256 sqrt(fan_in)); NVFP4 random codes, block scales in
 * [0.5, 2), a scale of 1/(6 sqrt(fan_in)). With {@code inputScale > 0} every FP8 matrix carries that
 * static activation scale (for {@code --w8a8}). No NaN codes. For timings, not for accuracy checks
 * (the tests build their own).
 */
final class QuantizedRandomWeights {
    private QuantizedRandomWeights() {}

    static MoeWeights random(MoeConfig c, WeightFormat format, float inputScale, long seed, MemoryArena arena,
                             IntConsumer expertDone) {
        if (!format.isQuantized()) throw new IllegalArgumentException("FP8_E4M3 or NVFP4, got " + format);
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean swiglu = c.activation() == Activation.SWIGLU;
        long[] s = {seed * 0x9E3779B97F4A7C15L + 1};
        Gen g = new Gen(format, inputScale, arena, s);
        WeightMatrix gate = WeightMatrix.of(g.bf16(n, d, d));
        Tensor bias = arena.allocateTensor(DType.F32, n);
        for (int i = 0; i < n; i++) bias.setFloat(i, (float) (0.2 * (unit(s[0], i) - 0.5)));
        WeightMatrix down = c.isLatent() ? g.matrix(l, d) : null;
        WeightMatrix up = c.isLatent() ? g.matrix(d, l) : null;
        WeightMatrix[] eu = new WeightMatrix[n], ed = new WeightMatrix[n], eg = swiglu ? new WeightMatrix[n] : null;
        for (int e = 0; e < n; e++) {
            eu[e] = g.matrix(m, w);
            if (swiglu) eg[e] = g.matrix(m, w);
            ed[e] = g.matrix(w, m);
            if (expertDone != null) expertDone.accept(e);
        }
        WeightMatrix su = ms > 0 ? g.matrix(ms, d) : null;
        WeightMatrix sg = ms > 0 && swiglu ? g.matrix(ms, d) : null;
        WeightMatrix sd = ms > 0 ? g.matrix(d, ms) : null;
        return new MoeWeights(c, gate, bias, down, up, eu, eg, ed, su, sg, sd);
    }

    /** Uniform in [0, 1) from a splitmix64 hash of (seed, index). */
    static double unit(long seed, long i) {
        return (mix(seed ^ mix(i)) >>> 11) * 0x1.0p-53;
    }

    private static long mix(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static final class Gen {
        final WeightFormat format;
        final float inputScale;
        final MemoryArena arena;
        final long[] seed;

        Gen(WeightFormat format, float inputScale, MemoryArena arena, long[] seed) {
            this.format = format;
            this.inputScale = inputScale;
            this.arena = arena;
            this.seed = seed;
        }

        long next() {
            long s = seed[0];
            seed[0] = s + 0x632BE59BD9B4E019L;
            return s;
        }

        Tensor bf16(long rows, long cols, int fanIn) {
            Tensor t = arena.allocateTensor(DType.BF16, rows, cols);
            long s = next();
            double a = 1.0 / Math.sqrt(fanIn);
            MemorySegment seg = t.segment();
            for (long i = 0; i < rows * cols; i++) {
                seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, DType.floatToBf16((float) (a * (2 * unit(s, i) - 1))));
            }
            return t;
        }

        /** A [rows, cols] matrix in the format; bytes filled in parallel (one hash per 8 bytes). */
        WeightMatrix matrix(long rows, long cols) {
            long s = next();
            double a = 1.0 / Math.sqrt(cols);
            if (format == WeightFormat.FP8_E4M3) {
                Tensor data = arena.allocateTensor(DType.F8_E4M3, rows, cols);
                fill(data.segment(), s, b -> {  // sign, exponent 9..14, any mantissa: never NaN
                    int e = 9 + (int) Long.remainderUnsigned(b >>> 8, 6);
                    return (int) ((b & 0x80) | (e << 3) | ((b >>> 4) & 7));
                });
                return WeightMatrix.fp8(data, (float) (a / 256), inputScale);
            }
            Tensor data = arena.allocateTensor(DType.U8, rows, cols / 2);
            fill(data.segment(), s, b -> (int) (b & 0xFF));  // any two e2m1 codes
            Tensor scales = arena.allocateTensor(DType.F8_E4M3, rows, cols / 16);
            fill(scales.segment(), s + 1, b -> {  // 2^-1 .. 2^1 x (1+m/8)
                int e = 6 + (int) Long.remainderUnsigned(b >>> 8, 2);
                return (e << 3) | (int) ((b >>> 4) & 7);
            });
            return WeightMatrix.nvfp4(data, scales, (float) (a / 6), 0f);
        }

        interface ByteOf {
            int of(long hash);
        }

        static void fill(MemorySegment seg, long seed, ByteOf f) {
            long n = seg.byteSize();
            int chunks = (int) Math.min(1024, Math.max(1, n >>> 16));
            IntStream.range(0, chunks).parallel().forEach(ci -> {
                long lo = n * ci / chunks, hi = n * (ci + 1) / chunks;
                for (long i = lo; i < hi; i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) f.of(mix(seed ^ mix(i))));
            });
        }
    }
}
