package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.IsoVariants;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.WeightCache;
import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Roofline;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench --iso}: the {@link IsoVariants} side by side for T = 1 … 4096 on the CPU backend.
 * Default: scaled shapes (d 1024, N 64, K 4, m 512, shared 1024, ℓ 256, so it finishes in minutes
 * on 2 cores); {@code --preset P} derives the standard base from a preset ({@link IsoVariants.Base#of}).
 */
public final class CpuIsoCommand {
    private CpuIsoCommand() {}

    static final IsoVariants.Base SCALED_BASE =
            new IsoVariants.Base(new MoeConfig(1024, 0, 64, 4, 512, 1024, 2.5f, true, Activation.RELU2, Scoring.SIGMOID), 256);

    public static void run(String[] argv) {
        Args a = new Args(argv, 1, Set.of("iso"));
        a.flag("iso");
        String presetName = a.get("preset", null);
        List<Integer> tokens = a.intList("tokens", "1,4,16,64,256,1024,4096");
        int threads = a.intValue("threads", Runtime.getRuntime().availableProcessors());
        long seed = a.longValue("seed", 42);
        int iters = a.intValue("iters", 3);
        Path json = Path.of(a.get("json", "bench/out/iso.json"));
        a.finish();
        IsoVariants.Base b = presetName == null ? SCALED_BASE : IsoVariants.Base.of(Shapes.byName(presetName));
        Backend backend = Backends.cpu();
        Cpu.setThreads(threads);
        List<IsoVariants.Variant> vs = IsoVariants.of(b.config(), b.latent());
        System.out.printf("iso-weight comparison on the %s backend, %d threads, isa %s, bf16 weights%n", backend.name(),
                threads, Cpu.isa());
        for (IsoVariants.Variant v : vs) {
            System.out.printf("  %-10s %s: routed weights %.1f MB%n", v.name(), Shapes.describe(v.config()),
                    v.routedWeightBytes(2) / 1e6);
        }
        double bw = CpuCeilings.measureBandwidth();
        double peak = CpuCeilings.measurePeak(Precision.EXACT);
        long llc = CpuCeilings.lastLevelCacheBytes();
        List<List<CpuLayerTiming.Row>> all = new ArrayList<>();
        for (IsoVariants.Variant v : vs) {
            System.err.println(v.name() + ":");
            List<CpuLayerTiming.Row> rows = new ArrayList<>();
            try (MoeLayer layer = WeightCache.layer(v.config(), DType.BF16, seed, backend);
                 HostArena arena = HostArena.shared("iso")) {
                for (int t : tokens) rows.add(CpuLayerTiming.measure(layer, arena, t, seed, iters, llc));
            }
            all.add(rows);
        }
        Roofline roof = new Roofline("iso-weight MoE variants (bench --iso" + (presetName == null ? ", scaled" : ", " + presetName) + ")",
                bw, peak, "compute = " + CpuCeilings.kernelNote(Precision.EXACT) + " probe", llc);
        StringBuilder side = new StringBuilder(String.format(Locale.ROOT, "%n%7s", "tokens"));
        for (IsoVariants.Variant v : vs) side.append(String.format(Locale.ROOT, " %14s", v.name() + "_ms"));
        side.append(String.format(Locale.ROOT, " %10s %10s%n", "eff/std", "acc/std"));
        List<JsonRow> js = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) {
            side.append(String.format(Locale.ROOT, "%7d", tokens.get(i)));
            for (int j = 0; j < vs.size(); j++) {
                CpuLayerTiming.Row r = all.get(j).get(i);
                side.append(String.format(Locale.ROOT, " %14.3f", r.medianMs()));
                double flops = r.gflops() * 1e9 * r.medianMs() * 1e-3;
                roof.add(new Roofline.Point(vs.get(j).name(), r.tokens(), r.medianMs() * 1e-3, r.bytes(), flops, Double.NaN,
                        Double.NaN, r.workingSetBytes()));
                MoeConfig c = vs.get(j).config();
                js.add(new JsonRow().with("variant", vs.get(j).name()).with("tokens", r.tokens()).num("median_ms", r.medianMs(), 6)
                        .with("bytes", r.bytes()).num("flops", flops, 0).num("achieved_gbps", r.achievedGbps(), 4)
                        .num("gflops", r.gflops(), 4).with("distinct_experts", r.distinctExperts())
                        .with("d", c.hiddenSize()).with("l", c.latentSize()).with("N", c.numExperts()).with("K", c.topK())
                        .with("m", c.intermediateSize()).with("shared", c.sharedIntermediateSize())
                        .num("bandwidth_gbps", bw, 3).num("peak_gflops", peak, 3).with("threads", threads));
            }
            double s = all.get(0).get(i).medianMs();
            side.append(String.format(Locale.ROOT, " %9.2fx %9.2fx%n", all.get(1).get(i).medianMs() / s, all.get(2).get(i).medianMs() / s));
        }
        System.out.print(roof.table());
        System.out.print(side);
        ReportFile.json(json, js);
        Path svg = json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", "") + ".svg");
        roof.writeSvg(svg);
        System.out.println("wrote " + json + " and " + svg);
    }
}
