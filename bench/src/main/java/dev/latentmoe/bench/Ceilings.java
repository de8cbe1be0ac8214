package dev.latentmoe.bench;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

/** The compute ceiling outside JMH: the same dense GEMM as PeakBench (d 2048, m 4096, T rows, bf16), best of a few calls. */
final class Ceilings {
    private Ceilings() {}

    static double peakGflops(int tokens) {
        int d = 2048, m = 4096;
        MoeConfig c = new MoeConfig(d, 0, 1, 1, m, 0, 1f, false, Activation.RELU2, Scoring.SIGMOID);
        try (MoeLayer layer = MoeLayer.random(c, DType.BF16, 7, Backends.cpu());
             HostArena arena = HostArena.shared("peak")) {
            Tensor offsets = arena.allocateTensor(DType.I32, 2);
            offsets.setInt(1, tokens);
            Tensor in = arena.allocateTensor(DType.F32, tokens, d).fill(0.25f);
            Tensor out = arena.allocateTensor(DType.F32, tokens, d);
            double flops = 2.0 * tokens * 2 * d * m, best = Double.MAX_VALUE;
            long start = System.nanoTime();
            for (int i = 0; i < 3 || (i < 20 && System.nanoTime() - start < 2_000_000_000L); i++) {
                long t0 = System.nanoTime();
                layer.kernels().experts(offsets, in, out);
                best = Math.min(best, (System.nanoTime() - t0) / 1e9);
            }
            double g = flops / best / 1e9;
            System.out.printf("compute ceiling (dense bf16 GEMM d %d x m %d, T %d, experts kernel): %.1f GFLOP/s%n", d, m, tokens, g);
            return g;
        }
    }
}
