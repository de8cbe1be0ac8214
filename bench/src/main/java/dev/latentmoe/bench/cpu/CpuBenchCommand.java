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
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench}: per token count, the median time of a forward call, the bytes it had to move, the
 * achieved bandwidth, and this machine's memory bandwidth measured in the same run (best of
 * STREAM copy, triad and a read-only sum), with their ratio ({@link CpuLayerTiming}).
 */
public final class CpuBenchCommand {
    private CpuBenchCommand() {}

    public static void run(String[] argv) {
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
        List<CpuLayerTiming.Row> rows = new ArrayList<>();
        try (MoeLayer layer = MoeLayer.random(cfg, dtype, seed, backend, e -> progress.step(e + 1));
             HostArena arena = HostArena.shared("bench")) {
            progress.done(String.format("%.1f s", (System.nanoTime() - t0) / 1e9));
            for (int t : tokens) rows.add(CpuLayerTiming.measure(layer, arena, t, seed, minIters));
        }
        System.out.println();
        System.out.print(table(rows));
        if (json != null) {
            ReportFile.json(Path.of(json), json(rows, presetName, backend.name(), dtype, threads));
            System.out.println("wrote " + json);
        }
    }

    static String table(List<CpuLayerTiming.Row> rows) {
        Table t = new Table().column("tokens", "%7s", "%7d").column("median_ms", "%11s", "%11.3f")
                .column("bytes", "%12s", "%12d").column("experts", "%9s", "%9d").column("achieved_GB/s", "%13s", "%13.2f")
                .column("roofline_GB/s", "%14s", "%14.2f").column("ratio", "%7s", "%6.1f%%").column("GFLOP/s", "%9s", "%9.2f");
        for (CpuLayerTiming.Row r : rows) {
            t.row(r.tokens(), r.medianMs(), r.bytes(), r.distinctExperts(), r.achievedGbps(), r.rooflineGbps(),
                    100 * r.ratio(), r.tflops() * 1e3);
        }
        return t.toString();
    }

    /** One object per T: tokens, median_ms, bytes, achieved_gbps, roofline_gbps, ratio, tflops, distinct_experts, preset, backend, dtype, threads. */
    static List<JsonRow> json(List<CpuLayerTiming.Row> rows, String preset, String backend, DType dtype, int threads) {
        List<JsonRow> out = new ArrayList<>();
        for (CpuLayerTiming.Row r : rows) {
            out.add(new JsonRow().with("tokens", r.tokens()).num("median_ms", r.medianMs(), 6).with("bytes", r.bytes())
                    .num("achieved_gbps", r.achievedGbps(), 4).num("roofline_gbps", r.rooflineGbps(), 4)
                    .num("ratio", r.ratio(), 5).num("tflops", r.tflops(), 6).with("distinct_experts", r.distinctExperts())
                    .with("preset", preset).with("backend", backend).with("dtype", dtype.name().toLowerCase(Locale.ROOT))
                    .with("threads", threads));
        }
        return out;
    }
}
