package dev.latentmoe.bench;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench --iso}: a standard MoE, ℓ-MoE_eff (αN experts, K active, in ℓ) and ℓ-MoE_acc (αN, αK)
 * at equal routed weight bytes, side by side for T = 1 … 4096 on the CPU backend. Default: scaled
 * shapes (d 1024, N 64, K 4, m 512, shared 1024, ℓ 256, so it finishes in minutes on 2 cores);
 * {@code --preset P} uses a preset's d and m (a latent preset's N and K are divided by α for the
 * standard base, so that its acc variant is the preset's own N with K rounded to α·K/α).
 * With {@code --backend cuda} the GPU version runs instead ({@link CudaIsoCommand}).
 */
final class IsoCommand {
    private IsoCommand() {}

    record Variant(String name, MoeConfig config) {
        /** Bytes of all routed experts' matrices at {@code elementBytes} per weight (N·mats·w·m·bytes). */
        long routedWeightBytes(int elementBytes) { return config.numExperts() * config.expertWeightBytes(elementBytes); }
    }

    /** The standard MoE the variants derive from, and the latent size ℓ they use. */
    record Base(MoeConfig config, int latent) {
        /**
         * From a preset: a latent preset's N and K are divided by α = d/ℓ (so that its acc variant is
         * the preset's own N, with K rounded to α·K/α); a standard preset is the base itself, with ℓ = d/4.
         */
        static Base of(MoeConfig p) {
            if (!p.isLatent()) return new Base(p, p.hiddenSize() / 4);
            int alpha = p.hiddenSize() / p.latentSize();
            return new Base(new MoeConfig(p.hiddenSize(), 0, Math.max(1, p.numExperts() / alpha),
                    Math.max(1, Math.round((float) p.topK() / alpha)), p.intermediateSize(), p.sharedIntermediateSize(),
                    p.routedScalingFactor(), p.normTopkProb(), p.activation(), p.scoring()), p.latentSize());
        }
    }

    static List<Variant> variants(MoeConfig base, int latent) {
        int d = base.hiddenSize(), alpha = d / latent;
        if (d % latent != 0) throw new IllegalArgumentException("d must be a multiple of l");
        MoeConfig std = base;
        MoeConfig eff = new MoeConfig(d, latent, alpha * base.numExperts(), base.topK(), base.intermediateSize(),
                base.sharedIntermediateSize(), base.routedScalingFactor(), base.normTopkProb(), base.activation(), base.scoring());
        MoeConfig acc = eff.withTopK(Math.min(MoeConfig.MAX_TOP_K, alpha * base.topK()));
        return List.of(new Variant("standard", std), new Variant("l-MoE_eff", eff), new Variant("l-MoE_acc", acc));
    }

    static void run(String[] argv) {
        if (CudaBenchCommand.wants(argv)) { CudaIsoCommand.run(argv); return; }   // --backend cuda
        Args a = new Args(argv, 1, Set.of("iso"));
        a.flag("iso");
        String presetName = a.get("preset", null);
        List<Integer> tokens = a.intList("tokens", "1,4,16,64,256,1024,4096");
        int threads = a.intValue("threads", Runtime.getRuntime().availableProcessors());
        long seed = a.longValue("seed", 42);
        int iters = a.intValue("iters", 3);
        Path json = Path.of(a.get("json", "bench/out/iso.json"));
        a.finish();
        Base b = presetName == null
                ? new Base(new MoeConfig(1024, 0, 64, 4, 512, 1024, 2.5f, true, Activation.RELU2, Scoring.SIGMOID), 256)
                : Base.of(Shapes.byName(presetName));
        Backend backend = Backends.cpu();
        Cpu.setThreads(threads);
        List<Variant> vs = variants(b.config(), b.latent());
        System.out.printf("iso-weight comparison on the %s backend, %d threads, isa %s, bf16 weights%n", backend.name(),
                threads, Cpu.isa());
        for (Variant v : vs) {
            System.out.printf("  %-10s %s: routed weights %.1f MB%n", v.name, Shapes.describe(v.config),
                    v.routedWeightBytes(2) / 1e6);
        }
        double bw = BenchCommand.measureBandwidth();
        double peak = Ceilings.peakGflops(512);
        List<List<BenchCommand.Row>> all = new ArrayList<>();
        for (Variant v : vs) {
            System.err.println(v.name + ":");
            List<BenchCommand.Row> rows = new ArrayList<>();
            try (MoeLayer layer = WeightCache.layer(v.config, DType.BF16, seed, backend);
                 HostArena arena = HostArena.shared("iso")) {
                for (int t : tokens) rows.add(BenchCommand.measure(layer, arena, t, seed, iters));
            }
            all.add(rows);
        }
        Roofline roof = new Roofline("iso-weight MoE variants (bench --iso" + (presetName == null ? ", scaled" : ", " + presetName) + ")",
                bw, peak, "compute = dense GEMM");
        StringBuilder side = new StringBuilder(String.format(Locale.ROOT, "%n%7s", "tokens"));
        for (Variant v : vs) side.append(String.format(Locale.ROOT, " %14s", v.name + "_ms"));
        side.append(String.format(Locale.ROOT, " %10s %10s%n", "eff/std", "acc/std"));
        StringBuilder js = new StringBuilder("[\n");
        for (int i = 0; i < tokens.size(); i++) {
            side.append(String.format(Locale.ROOT, "%7d", tokens.get(i)));
            for (int j = 0; j < vs.size(); j++) {
                BenchCommand.Row r = all.get(j).get(i);
                side.append(String.format(Locale.ROOT, " %14.3f", r.medianMs()));
                double flops = r.tflops() * 1e12 * r.medianMs() * 1e-3;
                roof.add(new Roofline.Point(vs.get(j).name, r.tokens(), r.medianMs() * 1e-3, r.bytes(), flops, Double.NaN));
                MoeConfig c = vs.get(j).config;
                js.append(String.format(Locale.ROOT,
                        "  {\"variant\": \"%s\", \"tokens\": %d, \"median_ms\": %.6f, \"bytes\": %d, \"flops\": %.0f, \"achieved_gbps\": %.4f, "
                                + "\"gflops\": %.4f, \"distinct_experts\": %d, \"d\": %d, \"l\": %d, \"N\": %d, \"K\": %d, \"m\": %d, \"shared\": %d, "
                                + "\"bandwidth_gbps\": %.3f, \"peak_gflops\": %.3f, \"threads\": %d},\n",
                        vs.get(j).name, r.tokens(), r.medianMs(), r.bytes(), flops, r.achievedGbps(), r.tflops() * 1e3,
                        r.distinctExperts(), c.hiddenSize(), c.latentSize(), c.numExperts(), c.topK(), c.intermediateSize(),
                        c.sharedIntermediateSize(), bw, peak, threads));
            }
            double s = all.get(0).get(i).medianMs();
            side.append(String.format(Locale.ROOT, " %9.2fx %9.2fx%n", all.get(1).get(i).medianMs() / s, all.get(2).get(i).medianMs() / s));
        }
        if (js.length() > 2) js.setLength(js.length() - 2);
        js.append("\n]\n");
        System.out.print(roof.table());
        System.out.print(side);
        try {
            if (json.getParent() != null) Files.createDirectories(json.getParent());
            Files.writeString(json, js.toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Path svg = json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", "") + ".svg");
        roof.writeSvg(svg);
        System.out.println("wrote " + json + " and " + svg);
    }
}
