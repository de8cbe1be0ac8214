package dev.latentmoe.bench;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code bench}: per token count, the median time of a forward call, the bytes it had to move, the
 * achieved bandwidth, and this machine's memory bandwidth measured in the same run (best of
 * STREAM copy, triad and a read-only sum), with their ratio.
 */
final class BenchCommand {
    private BenchCommand() {}

    record Row(int tokens, double medianMs, long bytes, double achievedGbps, double rooflineGbps, double ratio,
               double tflops, int distinctExperts) {}

    static void run(String[] argv) {
        if (GraphBenchCommand.wants(argv)) { GraphBenchCommand.run(argv); return; } // --graph-overhead (cuda)
        if (CudaBenchCommand.wants(argv)) { CudaBenchCommand.run(argv); return; }   // --backend cuda
        Args a = new Args(argv, 1, Set.of());
        String presetName = a.get("preset", "nemotron3-super");
        List<Integer> tokens = a.intList("tokens", "1,4,16,64");
        int threads = a.intValue("threads", Runtime.getRuntime().availableProcessors());
        String json = a.get("json", null);
        DType dtype = switch (a.get("dtype", "bf16").toLowerCase(Locale.ROOT)) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new Args.UsageException("--dtype must be bf16 or f32");
        };
        long seed = a.longValue("seed", 42);
        int minIters = a.intValue("iters", 7);
        String backendName = a.get("backend", "cpu");
        a.finish();
        MoeConfig cfg = MoeConfig.preset(presetName);
        Backend backend = Backends.get(backendName);
        if (!backend.isAvailable()) throw new IllegalStateException("backend " + backendName + " unavailable: " + backend.unavailableReason());
        if (!"cpu".equals(backend.name())) throw new Args.UsageException("this bench measures the cpu backend; --backend " + backendName + " runs from the GPU bundle");
        Cpu.setThreads(threads);

        System.out.printf("LatentMoE bench: preset %s (d %d, l %d, N %d, K %d, m %d, shared %d), %s weights, %s backend, %d threads, isa %s%n",
                presetName, cfg.hiddenSize(), cfg.latentSize(), cfg.numExperts(), cfg.topK(), cfg.intermediateSize(),
                cfg.sharedIntermediateSize(), dtype, backend.name(), threads, Cpu.isa());

        long t0 = System.nanoTime();
        Progress progress = new Progress("building seeded random weights", cfg.numExperts());
        List<Row> rows = new ArrayList<>();
        try (MoeLayer layer = MoeLayer.random(cfg, dtype, seed, backend, e -> progress.step(e + 1));
             HostArena arena = HostArena.shared("bench")) {
            progress.done(String.format("%.1f s", (System.nanoTime() - t0) / 1e9));
            for (int t : tokens) rows.add(measure(layer, arena, t, seed, minIters));
        }
        printTable(rows);
        if (json != null) writeJson(Path.of(json), rows, presetName, backend.name(), dtype, threads);
    }

    static final String[] PROBES = {"copy", "triad", "read"};
    static final long PROBE_ARRAY_BYTES = 256L << 20;

    /** One STREAM-style measurement (1 repetition over 256 MiB arrays) in GB/s. */
    static double probe(int kind) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_DOUBLE);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_membw_probe(kind, PROBE_ARRAY_BYTES, 1, out), "lmoe_cpu_membw_probe");
            return out.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }

    /** Largest of the copy, triad and read medians over 3 measurements each (for the JMH and iso reports). */
    static double measureBandwidth() {
        double best = 0;
        StringBuilder sb = new StringBuilder("memory bandwidth (STREAM-style, 256 MiB arrays, median of 3):");
        for (int p = 0; p < PROBES.length; p++) {
            List<Double> v = new ArrayList<>();
            for (int i = 0; i < 3; i++) v.add(probe(p));
            double m = median(v);
            sb.append(String.format(" %s %.1f GB/s", PROBES[p], m));
            best = Math.max(best, m);
        }
        System.out.println(sb.append(String.format("; roofline = %.1f GB/s", best)));
        return best;
    }

    static double median(List<Double> v) {
        double[] s = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /**
     * Times the layer at T tokens. This VM's memory bandwidth drifts by tens of percent within a
     * minute, so the STREAM probes run interleaved with the layer calls (rounds of copy, triad,
     * read, then a batch of calls) and the roofline is the largest of the three probes' medians:
     * medians against medians, measured over the same seconds.
     */
    static Row measure(MoeLayer layer, HostArena arena, int tokens, long seed, int minIters) {
        MoeConfig cfg = layer.config();
        // Rotate among several inputs so that repeated calls do not re-read the same experts from cache.
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
            for (int p = 0; p < PROBES.length; p++) probes.get(p).add(probe(p));
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
        double median = median(times);
        double roofline = 0;
        StringBuilder probeText = new StringBuilder();
        for (int p = 0; p < PROBES.length; p++) {
            double m = median(probes.get(p));
            roofline = Math.max(roofline, m);
            probeText.append(String.format(" %s %.1f", PROBES[p], m));
        }
        long meanBytes = Math.round(bytesSum / n);
        double gbps = meanBytes / (median * 1e-3) / 1e9;
        double tflops = flopsSum / n / (median * 1e-3) / 1e12;
        System.err.printf("  T=%d: %d calls, median %.3f ms; interleaved STREAM medians (GB/s):%s%n", tokens, n, median, probeText);
        return new Row(tokens, median, meanBytes, gbps, roofline, gbps / roofline, tflops, (int) Math.round(distinctSum / n));
    }

    private static void printTable(List<Row> rows) {
        System.out.println();
        System.out.printf("%7s %11s %12s %9s %13s %14s %7s %9s%n",
                "tokens", "median_ms", "bytes", "experts", "achieved_GB/s", "roofline_GB/s", "ratio", "GFLOP/s");
        for (Row r : rows) {
            System.out.printf("%7d %11.3f %12d %9d %13.2f %14.2f %6.1f%% %9.2f%n", r.tokens, r.medianMs, r.bytes,
                    r.distinctExperts, r.achievedGbps, r.rooflineGbps, 100 * r.ratio, r.tflops * 1e3);
        }
    }

    private static void writeJson(Path path, List<Row> rows, String preset, String backend, DType dtype, int threads) {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            sb.append(String.format(Locale.ROOT,
                    "  {\"tokens\": %d, \"median_ms\": %.6f, \"bytes\": %d, \"achieved_gbps\": %.4f, \"roofline_gbps\": %.4f, "
                            + "\"ratio\": %.5f, \"tflops\": %.6f, \"distinct_experts\": %d, \"preset\": \"%s\", \"backend\": \"%s\", "
                            + "\"dtype\": \"%s\", \"threads\": %d}%s%n",
                    r.tokens, r.medianMs, r.bytes, r.achievedGbps, r.rooflineGbps, r.ratio, r.tflops, r.distinctExperts,
                    preset, backend, dtype.name().toLowerCase(Locale.ROOT), threads, i + 1 < rows.size() ? "," : ""));
        }
        sb.append("]\n");
        try {
            if (path.getParent() != null) Files.createDirectories(path.getParent());
            Files.writeString(path, sb.toString());
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + path + ": " + e.getMessage(), e);
        }
        System.out.println("wrote " + path);
    }

    /** A one-line progress bar on stderr. */
    static final class Progress {
        private final String what;
        private final int total;
        private int lastPercent = -1;

        Progress(String what, int total) {
            this.what = what;
            this.total = total;
            step(0);
        }

        void step(int done) {
            int pct = (int) (100L * done / Math.max(1, total));
            if (pct / 5 != lastPercent / 5) {
                lastPercent = pct;
                char[] bar = new char[20];
                Arrays.fill(bar, 0, pct / 5, '#');
                Arrays.fill(bar, pct / 5, 20, '.');
                System.err.printf("\r%s [%s] %3d%%", what, new String(bar), pct);
            }
        }

        void done(String note) { System.err.printf("\r%s [####################] 100%% (%s)%n", what, note); }
    }
}
