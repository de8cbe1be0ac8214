package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.Progress;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Table;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code bench}: per token count (and per thread count of {@code --threads}), the median time of
 * a forward call, the bytes it had to move and the FLOPs it did, against the ceilings measured in
 * the same run ({@link CpuLayerTiming}): memory bandwidth (best of STREAM copy, triad and a
 * read-only sum) and the register-only compute probe of the kernel in use; each row's ratio to
 * min(bandwidth x intensity, peak), and which ceiling bounds it. With several thread counts, the
 * scaling from the first to each.
 */
public final class CpuBenchCommand {
    private CpuBenchCommand() {}

    public static void run(String[] argv) {
        Args a = new Args(argv, 1, Set.of());
        String presetName = a.get("preset", "nemotron3-super");
        List<Integer> tokens = a.intList("tokens", "1,4,16,64,256,1024,4096");
        List<Integer> threadList = a.intList("threads", String.valueOf(Runtime.getRuntime().availableProcessors()));
        String json = a.get("json", null);
        DType dtype = switch (a.get("dtype", "bf16").toLowerCase(Locale.ROOT)) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new Args.UsageException("--dtype must be bf16 or f32");
        };
        Precision precision;
        try {
            precision = Precision.fromName(a.get("precision", "exact"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--precision must be exact or bf16");
        }
        long chunk = a.longValue("chunk", Cpu.chunkTokens());
        long seed = a.longValue("seed", 42);
        int minIters = a.intValue("iters", 7);
        String backendName = a.get("backend", "cpu");
        a.finish();
        for (int t : threadList) if (t < 1 || t > 1024) throw new Args.UsageException("--threads values must be in 1..1024");
        MoeConfig cfg = MoeConfig.preset(presetName);
        Backend backend = Backends.get(backendName);
        if (!backend.isAvailable()) throw new IllegalStateException("backend " + backendName + " unavailable: " + backend.unavailableReason());
        if (!"cpu".equals(backend.name())) throw new Args.UsageException("this bench measures the cpu backend; --backend " + backendName + " runs from the GPU bundle");
        Cpu.setChunkTokens(chunk);
        long llc = CpuCeilings.lastLevelCacheBytes();

        System.out.printf("LatentMoE bench: preset %s (d %d, l %d, N %d, K %d, m %d, shared %d), %s weights, %s backend, threads %s, isa %s%n",
                presetName, cfg.hiddenSize(), cfg.latentSize(), cfg.numExperts(), cfg.topK(), cfg.intermediateSize(),
                cfg.sharedIntermediateSize(), dtype, backend.name(), threadList, Cpu.isa());
        System.out.printf("precision %s, kernel %s, forward chunk %d tokens, last-level cache %.0f MiB%n",
                precision, CpuCeilings.kernelNote(precision), Cpu.chunkTokens(), llc / 1048576.0);

        long t0 = System.nanoTime();
        Progress progress = new Progress("building seeded random weights", cfg.numExperts());
        List<CpuLayerTiming.Row> rows = new ArrayList<>();
        long weightBytes, workspacePeak;
        try (MoeLayer layer = MoeLayer.random(cfg, dtype, seed, backend, precision, e -> progress.step(e + 1));
             HostArena arena = HostArena.shared("bench")) {
            progress.done(String.format("%.1f s", (System.nanoTime() - t0) / 1e9));
            for (int threads : threadList) {
                Cpu.setThreads(threads);
                for (int t : tokens) rows.add(CpuLayerTiming.measure(layer, arena, t, seed, minIters, llc));
            }
            weightBytes = layer.weights().byteSize();
            workspacePeak = layer.kernels().workspacePeakBytes();
        }
        System.out.println();
        System.out.print(table(rows));
        System.out.println("ratio = achieved GFLOP/s / min(bandwidth x FLOP/B, compute); bound llc: the working set fits the "
                + "last-level cache, compared with compute only; bw_ratio = achieved GB/s / bandwidth");
        System.out.printf("layer memory: weights %.1f MiB, peak workspace %.1f MiB (forward chunk %d tokens)%n",
                weightBytes / 1048576.0, workspacePeak / 1048576.0, Cpu.chunkTokens());
        if (threadList.size() > 1) System.out.print(scaling(rows, threadList));
        if (json != null) {
            ReportFile.json(Path.of(json), json(rows, presetName, backend.name(), dtype, precision, workspacePeak));
            System.out.println("wrote " + json);
        }
    }

    static String table(List<CpuLayerTiming.Row> rows) {
        Table t = new Table().column("tokens", "%7s", "%7d").column("threads", "%7s", "%7d").column("median_ms", "%11s", "%11.3f")
                .column("MB", "%9s", "%9.1f").column("experts", "%8s", "%8d").column("GB/s", "%8s", "%8.2f")
                .column("bw_GB/s", "%8s", "%8.2f").column("bw_ratio", "%8s", "%7.1f%%").column("GFLOP/s", "%9s", "%9.1f")
                .column("peak_GF/s", "%9s", "%9.1f").column("FLOP/B", "%8s", "%8.1f").column("bound", "%7s", "%7s")
                .column("roof_GF/s", "%9s", "%9.1f").column("ratio", "%7s", "%6.1f%%");
        for (CpuLayerTiming.Row r : rows) {
            t.row(r.tokens(), r.threads(), r.medianMs(), r.bytes() / 1e6, r.distinctExperts(), r.achievedGbps(), r.rooflineGbps(),
                    100 * r.bandwidthRatio(), r.gflops(), r.peakGflops(), r.intensity(), r.bound(), r.boundGflops(), 100 * r.ratio());
        }
        return t.toString();
    }

    /** Per T: the time at each thread count and the speedup over the first. */
    static String scaling(List<CpuLayerTiming.Row> rows, List<Integer> threadList) {
        Map<Integer, Map<Integer, Double>> ms = new LinkedHashMap<>();
        for (CpuLayerTiming.Row r : rows) ms.computeIfAbsent(r.tokens(), k -> new LinkedHashMap<>()).put(r.threads(), r.medianMs());
        StringBuilder sb = new StringBuilder(String.format("%nthread scaling (speedup over %d thread%s):%n", threadList.get(0),
                threadList.get(0) == 1 ? "" : "s"));
        for (Map.Entry<Integer, Map<Integer, Double>> e : ms.entrySet()) {
            double base = e.getValue().getOrDefault(threadList.get(0), Double.NaN);
            sb.append(String.format(Locale.ROOT, "  T=%-5d", e.getKey()));
            for (int th : threadList) {
                double v = e.getValue().getOrDefault(th, Double.NaN);
                sb.append(String.format(Locale.ROOT, "  %d thr %9.3f ms (%.2fx)", th, v, base / v));
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** One object per (T, threads) with the keys of the table and the run's settings. */
    static List<JsonRow> json(List<CpuLayerTiming.Row> rows, String preset, String backend, DType dtype, Precision precision,
                              long workspacePeakBytes) {
        List<JsonRow> out = new ArrayList<>();
        Cpu.GemmKernel k = Cpu.gemmKernel(precision);
        for (CpuLayerTiming.Row r : rows) {
            out.add(new JsonRow().with("tokens", r.tokens()).num("median_ms", r.medianMs(), 6).with("bytes", r.bytes())
                    .num("achieved_gbps", r.achievedGbps(), 4).num("roofline_gbps", r.rooflineGbps(), 4)
                    .num("ratio", r.bandwidthRatio(), 5).num("tflops", r.gflops() / 1e3, 6).with("distinct_experts", r.distinctExperts())
                    .num("gflops", r.gflops(), 3).num("peak_gflops", r.peakGflops(), 3).num("intensity", r.intensity(), 4)
                    .with("bound", r.bound()).num("roofline_gflops", r.boundGflops(), 3).num("roofline_ratio", r.ratio(), 5)
                    .with("working_set_bytes", r.workingSetBytes()).with("llc", r.llc())
                    .with("preset", preset).with("backend", backend).with("dtype", dtype.name().toLowerCase(Locale.ROOT))
                    .with("precision", precision.toString()).with("kernel", k.name()).with("threads", r.threads())
                    .with("chunk_tokens", Cpu.chunkTokens()).with("workspace_peak_bytes", workspacePeakBytes));
        }
        return out;
    }
}
