package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.LayerTraffic;
import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Times the layer at T tokens on the CPU against the memory bandwidth of the same seconds: this
 * VM's bandwidth drifts by tens of percent within a minute, so the STREAM probes run interleaved
 * with the layer's calls (rounds of copy, triad, read, then a batch of calls) and the roofline is
 * the largest of the three probes' medians. Inputs rotate among 8 sets so that the experts read are
 * not all cache-resident.
 */
final class CpuLayerTiming {
    private CpuLayerTiming() {}

    /** One token count's result; bytes, FLOPs and experts are per-call means over the calls made. */
    record Row(int tokens, double medianMs, long bytes, double achievedGbps, double rooflineGbps, double ratio,
               double tflops, int distinctExperts) {}

    static Row measure(MoeLayer layer, HostArena arena, int tokens, long seed, int minIters) {
        MoeConfig cfg = layer.config();
        int sets = 8;
        Tensor[] xs = new Tensor[sets];
        long[] bytes = new long[sets];
        double[] flops = new double[sets];
        int[] distinct = new int[sets];
        SplittableRandom r = new SplittableRandom(seed * 31 + tokens);
        for (int i = 0; i < sets; i++) {
            float[] v = new float[tokens * cfg.hiddenSize()];
            for (int j = 0; j < v.length; j++) v[j] = (float) (r.nextDouble() * 2 - 1);
            xs[i] = arena.allocateTensor(DType.F32, tokens, cfg.hiddenSize()).copyFrom(v);
            Routing routing = layer.route(xs[i]);
            LayerTraffic traffic = LayerTraffic.of(layer.weights(), routing);
            bytes[i] = traffic.bytes();
            flops[i] = traffic.flops();
            distinct[i] = traffic.distinctExperts();
        }
        Tensor out = arena.allocateTensor(DType.F32, tokens, cfg.hiddenSize());
        for (int i = 0; i < 2; i++) layer.forward(xs[i % sets], out);   // warm-up
        int rounds = 5;
        List<Double> times = new ArrayList<>();
        List<List<Double>> probes = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        double bytesSum = 0, flopsSum = 0, distinctSum = 0;
        int call = 0;
        for (int round = 0; round < rounds; round++) {
            for (int p = 0; p < CpuCeilings.PROBES.length; p++) probes.get(p).add(CpuCeilings.probe(p));
            long start = System.nanoTime();
            int perRound = Math.max(1, (minIters + rounds - 1) / rounds);
            for (int i = 0; i < perRound || (System.nanoTime() - start < 200_000_000L && i < 40); i++, call++) {
                int s = call % sets;
                long t0 = System.nanoTime();
                layer.forward(xs[s], out);
                times.add((System.nanoTime() - t0) / 1e6);
                bytesSum += bytes[s];
                flopsSum += flops[s];
                distinctSum += distinct[s];
            }
        }
        int n = times.size();
        double median = Stats.median(times);
        double roofline = 0;
        StringBuilder probeText = new StringBuilder();
        for (int p = 0; p < CpuCeilings.PROBES.length; p++) {
            double m = Stats.median(probes.get(p));
            roofline = Math.max(roofline, m);
            probeText.append(String.format(" %s %.1f", CpuCeilings.PROBES[p], m));
        }
        long meanBytes = Math.round(bytesSum / n);
        double gbps = meanBytes / (median * 1e-3) / 1e9;
        double tflops = flopsSum / n / (median * 1e-3) / 1e12;
        System.err.printf("  T=%d: %d calls, median %.3f ms; interleaved STREAM medians (GB/s):%s%n", tokens, n, median, probeText);
        return new Row(tokens, median, meanBytes, gbps, roofline, gbps / roofline, tflops, (int) Math.round(distinctSum / n));
    }
}
