package dev.latentmoe.kernels;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.util.SplittableRandom;

/** Shared test data: configs scaled down from the presets, odd sizes, fresh random inputs. */
final class Cases {
    private Cases() {}

    /** A fresh seed per run, printed so a failure can be replayed with -Dlatentmoe.seed. */
    static long seed(String what) {
        String fixed = Knob.SEED.get();
        long s = fixed != null ? Long.parseLong(fixed) : new SplittableRandom().nextLong();
        System.out.println("seed for " + what + ": " + s);
        return s;
    }

    static MoeConfig cfg(int d, int l, int n, int k, int m, int shared, float scale, Activation act) {
        return new MoeConfig(d, l, n, k, m, shared, scale, true, act, Scoring.SIGMOID);
    }

    /** Super scaled down by 8 (K stays 22). */
    static final MoeConfig SUPER_SMALL = cfg(512, 128, 64, 22, 336, 672, 5.0f, Activation.RELU2);
    /** Nano scaled down by 8 (standard MoE). */
    static final MoeConfig NANO_SMALL = cfg(336, 0, 16, 6, 232, 464, 2.5f, Activation.RELU2);
    /** N = 512 with K = 32 and sizes that are not multiples of 16. */
    static final MoeConfig WIDE_N = cfg(67, 19, 512, 32, 45, 0, 5.0f, Activation.RELU2);
    /** N not a multiple of 8, odd everything, SwiGLU, shared expert. */
    static final MoeConfig ODD_SWIGLU = cfg(203, 51, 37, 5, 83, 29, 1.0f, Activation.SWIGLU);

    /** x [T, d] uniform in [-1, 1) (never zero), f32. */
    static Tensor input(MemoryArena arena, long tokens, int d, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[(int) (tokens * d)];
        for (int i = 0; i < v.length; i++) {
            float f = (float) (r.nextDouble() * 2 - 1);
            v[i] = f == 0 ? 0.5f : f;
        }
        return arena.allocateTensor(DType.F32, tokens, d).copyFrom(v);
    }

    static double[] row(Tensor x, long t) {
        int d = (int) x.dim(1);
        double[] out = new double[d];
        for (int i = 0; i < d; i++) out[i] = x.getFloat(t * d + i);
        return out;
    }

    static float[] floatRow(Tensor y, long t) {
        int d = (int) y.dim(1);
        float[] out = new float[d];
        for (int i = 0; i < d; i++) out[i] = y.getFloat(t * d + i);
        return out;
    }
}
