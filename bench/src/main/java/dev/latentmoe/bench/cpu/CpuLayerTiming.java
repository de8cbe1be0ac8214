package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.LayerTraffic;
import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Times the layer at T tokens on the CPU against the ceilings of the same seconds: this VM's
 * bandwidth drifts by tens of percent within a minute, so the STREAM probes and the compute probe
 * of the kernel in use run interleaved with the layer's calls (rounds of copy, triad, read, the
 * compute probe, then a batch of calls); the memory ceiling is the largest of the three probes'
 * medians, the compute ceiling the probe's median. Inputs rotate among 8 sets so that the experts
 * read are not all cache-resident; the working set is everything the rotation touches (the union
 * of the experts the 8 sets route to, the dense weights, the activations): when it fits the
 * last-level cache the row is marked so and compared with the compute ceiling only.
 */
final class CpuLayerTiming {
    private CpuLayerTiming() {}

    /** One token count's result; bytes, FLOPs and experts are per-call means over the calls made. */
    record Row(int tokens, int threads, double medianMs, long bytes, double achievedGbps, double rooflineGbps,
               double peakGflops, double gflops, long workingSetBytes, boolean llc, int distinctExperts) {
        double intensity() { return gflops * 1e9 * medianMs * 1e-3 / bytes; }

        /** The attainable GFLOP/s: min(bandwidth x intensity, peak), or the peak for a cache-resident working set. */
        double boundGflops() { return llc ? peakGflops : Math.min(rooflineGbps * intensity(), peakGflops); }

        /** "llc", "memory" or "compute": which ceiling bounds the row. */
        String bound() { return llc ? "llc" : rooflineGbps * intensity() < peakGflops ? "memory" : "compute"; }

        double ratio() { return gflops / boundGflops(); }

        /** Achieved GB/s over the memory ceiling (the decode view). */
        double bandwidthRatio() { return achievedGbps / rooflineGbps; }
    }

    static Row measure(MoeLayer layer, HostArena arena, int tokens, long seed, int minIters, long llcBytes) {
        MoeConfig cfg = layer.config();
        int sets = 8;
        Tensor[] xs = new Tensor[sets];
        long[] bytes = new long[sets];
        double[] flops = new double[sets];
        int[] distinct = new int[sets];
        BitSet union = new BitSet(cfg.numExperts());
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
            for (long t = 0; t < routing.tokens(); t++) for (int k = 0; k < routing.topK(); k++) union.set(routing.expertId(t, k));
        }
        int wb = layer.weights().expertUp(0).data().dtype().byteSize(), gb = layer.weights().gate().data().dtype().byteSize();
        long workingSet = LayerTraffic.of(cfg, wb, gb, union.cardinality(), (long) tokens * sets).bytes();
        Tensor out = arena.allocateTensor(DType.F32, tokens, cfg.hiddenSize());
        for (int i = 0; i < 2; i++) layer.forward(xs[i % sets], out);   // warm-up
        int rounds = 5;
        List<Double> times = new ArrayList<>(), peaks = new ArrayList<>();
        List<List<Double>> probes = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        double bytesSum = 0, flopsSum = 0, distinctSum = 0;
        int call = 0;
        for (int round = 0; round < rounds; round++) {
            for (int p = 0; p < CpuCeilings.PROBES.length; p++) probes.get(p).add(CpuCeilings.probe(p));
            peaks.add(CpuCeilings.peakOnce(layer.precision()));
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
        double peak = Stats.median(peaks);
        long meanBytes = Math.round(bytesSum / n);
        double gbps = meanBytes / (median * 1e-3) / 1e9;
        double gflops = flopsSum / n / (median * 1e-3) / 1e9;
        boolean llc = llcBytes > 0 && workingSet <= llcBytes;
        System.err.printf("  T=%d, %d threads: %d calls, median %.3f ms; interleaved STREAM medians (GB/s):%s; compute probe %.1f GFLOP/s%n",
                tokens, Cpu.threads(), n, median, probeText, peak);
        return new Row(tokens, Cpu.threads(), median, meanBytes, gbps, roofline, peak, gflops,
                workingSet, llc, (int) Math.round(distinctSum / n));
    }
}
