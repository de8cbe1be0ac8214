package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * This machine's ceilings, measured, never our kernels' best: memory bandwidth (STREAM copy,
 * triad and a read-only sum over 256 MiB arrays) and the compute rate of a dense bf16 GEMM through
 * the experts kernel (the same GEMM as JMH's PeakBench).
 */
public final class CpuCeilings {
    private CpuCeilings() {}

    static final String[] PROBES = {"copy", "triad", "read"};
    static final long PROBE_ARRAY_BYTES = 256L << 20;

    /** One STREAM-style measurement of probe {@code p} (an index into {@link #PROBES}) in GB/s. */
    static double probe(int p) {
        return Cpu.streamGBps(Cpu.StreamProbe.values()[p], PROBE_ARRAY_BYTES);
    }

    /** Largest of the copy, triad and read medians over 3 measurements each, printed (for the JMH and iso reports). */
    public static double measureBandwidth() {
        double best = 0;
        StringBuilder sb = new StringBuilder("memory bandwidth (STREAM-style, 256 MiB arrays, median of 3):");
        for (int p = 0; p < PROBES.length; p++) {
            List<Double> v = new ArrayList<>();
            for (int i = 0; i < 3; i++) v.add(probe(p));
            double m = Stats.median(v);
            sb.append(String.format(" %s %.1f GB/s", PROBES[p], m));
            best = Math.max(best, m);
        }
        System.out.println(sb.append(String.format("; roofline = %.1f GB/s", best)));
        return best;
    }

    /** The dense GEMM rate (d 2048, m 4096, T rows, bf16) through the experts kernel, best of a few calls, printed. */
    public static double peakGflops(int tokens) {
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
