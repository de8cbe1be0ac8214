package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.IsoVariants;
import dev.latentmoe.bench.LayerTraffic;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Table;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaStream;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench --iso --backend cuda}: the {@link IsoVariants} on the GPU, one after the other, side by
 * side for T = 1 … 4096, against the {@link GpuCeilings} of the same run. Default shapes are Super's
 * d, ℓ, m and shared width with a standard base of N 128, K 8 (so the acc variant has K 32, the
 * library's limit); the weights are made on the GPU ({@link DeviceRandomLayer}: uploading 3 × 5.7 GB
 * would take longer than the measurements), one variant at a time. Timing as {@code bench --backend
 * cuda} ({@link GpuTiming}). Without a usable GPU it fails before allocating anything.
 */
public final class CudaIsoCommand {
    private CudaIsoCommand() {}

    static final String DEFAULT_TOKENS = "1,4,16,64,256,1024,4096";
    static final String DEFAULT_JSON = "bench/out/iso-cuda.json";
    static final String DEFAULT_PRESET = "gpu-default";
    static final IsoVariants.Base DEFAULT_BASE = new IsoVariants.Base(
            new MoeConfig(4096, 0, 128, 8, 2688, 5376, 5.0f, true, Activation.RELU2, Scoring.SIGMOID), 1024);

    record Options(String preset, IsoVariants.Base base, List<IsoVariants.Variant> variants, List<Integer> tokens,
                   String json, long seed, int reps, int warmup, int inputs, boolean ceilings, long copyBytes, int gemmSize) {
        int alpha() { return base.alpha(); }

        String weightsNote() { return "seeded random bf16 generated on the GPU (seed " + seed + ")"; }
    }

    /** One variant at one T; {@code bytes} and {@code flops} are per call, averaged over the input sets. */
    record Row(String variant, int tokens, String path, double medianMs, double minMs, int calls, long bytes,
               double flops, int distinctExperts) {
        double achievedGbps() { return bytes / (medianMs * 1e-3) / 1e9; }

        double tflops() { return flops / (medianMs * 1e-3) / 1e12; }
    }

    /** A variant's measured rows and the device bytes its weights took. */
    record Measured(IsoVariants.Variant variant, long deviceWeightBytes, List<Row> rows) {}

    static Options parse(String[] argv) {
        Args a = new Args(argv, 1, Set.of("iso", "no-ceilings"));
        a.flag("iso");
        String backend = a.get("backend", "cuda");
        if (!"cuda".equals(backend)) throw new Args.UsageException("--backend must be cuda here, got '" + backend + "'");
        String presetArg = a.get("preset", null);
        List<Integer> tokens = a.intList("tokens", DEFAULT_TOKENS);
        String json = a.get("json", DEFAULT_JSON);
        GpuRunOptions run = GpuRunOptions.read(a);
        a.finish();
        if (json.isBlank()) throw new Args.UsageException("--json needs a file name");
        run.validate();
        IsoVariants.Base base;
        List<IsoVariants.Variant> vs;
        try {
            base = presetArg == null ? DEFAULT_BASE : IsoVariants.Base.of(Shapes.byName(presetArg));
            vs = IsoVariants.checked(base);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--preset " + (presetArg == null ? "(default)" : presetArg) + ": " + e.getMessage());
        }
        return new Options(presetArg == null ? DEFAULT_PRESET : presetArg, base, vs, tokens, json, run.seed(), run.reps(),
                run.warmup(), run.inputs(), run.ceilings(), run.copyBytes(), run.gemmSize());
    }

    public static void run(String[] argv) {
        Options o = parse(argv);
        Backend backend = Backends.get(CudaBackend.NAME);
        if (!backend.isAvailable()) {
            throw new IllegalStateException("bench --iso --backend cuda needs a GPU: CUDA backend unavailable: "
                    + backend.unavailableReason());
        }
        long start = System.nanoTime();
        CudaStream s = ((CudaBackend) backend).stream();
        String device = Cuda.deviceInfo(0).summary();
        System.out.printf(Locale.ROOT, "LatentMoE iso-cost comparison on the GPU: device %s, %s%n", device, o.weightsNote());
        System.out.print(header(o));

        GpuCeilings ceil = o.ceilings() ? GpuCeilings.measure(s, device, o.copyBytes(), o.gemmSize(), stream -> List.of())
                : GpuCeilings.notMeasured(device);
        List<Measured> all = new ArrayList<>();
        for (IsoVariants.Variant v : o.variants()) {
            long t0 = System.nanoTime();
            try (DeviceRandomLayer layer = DeviceRandomLayer.create(v.config(), o.seed(), s)) {
                System.err.printf(Locale.ROOT, "%s: %.2f GB of weights filled on the GPU in %.2f s%n", v.name(),
                        layer.weightBytes() / 1e9, (System.nanoTime() - t0) / 1e9);
                List<Row> rows = new ArrayList<>();
                for (int t : o.tokens()) rows.add(measure(v.name(), layer, t, o));
                all.add(new Measured(v, layer.weightBytes(), rows));
            } // freed (and waited for) here: the next variant needs the memory
        }
        System.out.println();
        System.out.print(table(all, ceil));
        System.out.println();
        System.out.print(sideBySide(all));
        ReportFile.json(Path.of(o.json()), json(all, o, ceil));
        System.out.printf(Locale.ROOT, "wrote %s (%.1f s in all)%n", o.json(), (System.nanoTime() - start) / 1e9);
    }

    /** The shapes, α and the byte equality, as printed before any measurement. */
    static String header(Options o) {
        StringBuilder sb = new StringBuilder();
        MoeConfig b = o.base().config();
        sb.append(String.format(Locale.ROOT, "shapes (%s): α = d/ℓ = %d/%d = %d; %s experts, %s scoring, bf16 weights%n",
                o.preset(), b.hiddenSize(), o.base().latent(), o.alpha(), b.activation() == Activation.RELU2 ? "relu²" : "SwiGLU",
                b.scoring().name().toLowerCase(Locale.ROOT)));
        for (IsoVariants.Variant v : o.variants()) {
            MoeConfig c = v.config();
            sb.append(String.format(Locale.ROOT, "  %-10s %s: routed weights %d B (%.1f MB; all weights %.1f MB), "
                            + "routed bytes per token %.1f MB%n",
                    v.name(), Shapes.describe(c), v.routedWeightBytes(2), v.routedWeightBytes(2) / 1e6,
                    allWeightBytes(c) / 1e6, c.topK() * c.expertWeightBytes(2) / 1e6));
        }
        sb.append(String.format(Locale.ROOT, "routed weight bytes equal: %d B per variant%n", o.variants().get(0).routedWeightBytes(2)));
        return sb.toString();
    }

    /** Every weight of {@code c} in bf16 (router, bias, latent projections, all experts, shared expert): LayerTraffic at T = 0 with all N used. */
    static long allWeightBytes(MoeConfig c) {
        return LayerTraffic.of(c, 2, 2, c.numExperts(), 0).bytes();
    }

    /** One variant at T tokens: routing-derived bytes per input set, then the event-timed forward loop. */
    static Row measure(String name, DeviceRandomLayer layer, int tokens, Options o) {
        MoeConfig cfg = layer.config();
        CudaStream s = layer.stream();
        int sets = o.inputs(), k = cfg.topK();
        long d = cfg.hiddenSize();
        try (DeviceArena dev = DeviceArena.create("iso-x", s); HostArena host = HostArena.shared("iso-routing")) {
            Tensor[] xs = GpuTiming.randomInputs(dev, sets, tokens, d, o.seed());
            Tensor out = dev.allocateTensor(DType.BF16, tokens, d);
            Tensor ids = dev.allocateTensor(DType.I32, tokens, k);
            Tensor tw = dev.allocateTensor(DType.F32, tokens, k);
            MemorySegment ws = dev.allocate(layer.workspaceBytes(tokens));
            String path = layer.path(xs[0]);
            long[] bytes = new long[sets];
            double[] flops = new double[sets];
            int[] distinct = new int[sets];
            for (int i = 0; i < sets; i++) {
                layer.forwardAsync(xs[i], ids, tw, ws, out);
                // same stream: the copies wait for the forward; the bytes count the experts it really read
                Routing r = new Routing(CudaCopies.toHost(ids, host), CudaCopies.toHost(tw, host));
                distinct[i] = LayerTraffic.distinctExperts(cfg.numExperts(), r);
                LayerTraffic t = LayerTraffic.of(cfg, 2, 2, distinct[i], tokens).withActivations(tokens, (int) d, 2); // x, y bf16
                bytes[i] = t.bytes();
                flops[i] = t.flops();
            }
            int[] next = {0};
            Runnable fwd = () -> layer.forwardAsync(xs[next[0]++ % sets], ids, tw, ws, out);
            GpuTiming.Sampled m = GpuTiming.sample(s, o.warmup(), o.reps(), sets, () -> next[0] = 0, fwd, bytes, flops, distinct);
            System.err.printf(Locale.ROOT, "  %s T=%d (%s): %d calls, median %.4f ms, min %.4f ms%n", name, tokens,
                    path, m.calls(), m.medianMs(), m.minMs());
            return new Row(name, tokens, path, m.medianMs(), m.minMs(), m.calls(), m.meanBytes(), m.meanFlops(),
                    m.meanDistinct());
        }
    }

    /** Every row with its bytes, rates and fractions of the ceilings. */
    static String table(List<Measured> all, GpuCeilings c) {
        Table t = new Table().column("variant", "%-10s", "%-10s").column("tokens", "%6s", "%6d").column("path", "%7s", "%7s")
                .column("median_ms", "%10s", "%10.4f").column("min_ms", "%10s", "%10.4f").column("bytes", "%12s", "%12d")
                .column("experts", "%8s", "%8d").column("GB/s", "%9s", "%9.1f").column("%copy", "%6s", "%6s")
                .column("TFLOP/s", "%8s", "%8.2f").column("%gemm", "%6s", "%6s");
        for (Measured m : all) {
            for (Row r : m.rows()) {
                t.row(r.variant(), r.tokens(), r.path(), r.medianMs(), r.minMs(), r.bytes(), r.distinctExperts(),
                        r.achievedGbps(), percent(r.achievedGbps(), c.d2dGbps()), r.tflops(), percent(r.tflops(), c.gemmTflops()));
            }
        }
        return t.toString();
    }

    private static String percent(double v, double ceiling) {
        return Double.isFinite(ceiling) && ceiling > 0 ? String.format(Locale.ROOT, "%.1f%%", 100 * v / ceiling) : "-";
    }

    /** Median ms per variant side by side for each T, with the ℓ-MoE variants' times over the standard's. */
    static String sideBySide(List<Measured> all) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%7s", "tokens"));
        for (Measured m : all) sb.append(String.format(Locale.ROOT, " %14s", m.variant().name() + "_ms"));
        for (int j = 1; j < all.size(); j++) sb.append(String.format(Locale.ROOT, " %9s", shortName(all.get(j)) + "/std"));
        sb.append('\n');
        List<Row> std = all.get(0).rows();
        for (int i = 0; i < std.size(); i++) {
            sb.append(String.format(Locale.ROOT, "%7d", std.get(i).tokens()));
            for (Measured m : all) sb.append(String.format(Locale.ROOT, " %14.4f", m.rows().get(i).medianMs()));
            for (int j = 1; j < all.size(); j++) {
                sb.append(String.format(Locale.ROOT, " %8.2fx", all.get(j).rows().get(i).medianMs() / std.get(i).medianMs()));
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** "eff" for "l-MoE_eff", "acc" for "l-MoE_acc". */
    private static String shortName(Measured m) {
        String n = m.variant().name();
        return n.substring(n.lastIndexOf('_') + 1);
    }

    /**
     * One object per variant and T: {@code variant}, {@code tokens}, {@code path} (decode / sorted),
     * {@code median_ms}, {@code min_ms}, {@code calls}, {@code bytes}, {@code flops},
     * {@code achieved_gbps}, {@code tflops}, {@code distinct_experts}, {@code ratio_to_standard}
     * (median over the standard's at that T), the variant's shape ({@code d}, {@code l}, {@code N},
     * {@code K}, {@code m}, {@code shared}, {@code alpha}), {@code routed_weight_bytes} (equal across
     * variants), {@code weight_bytes} (all of the variant's weights, {@link #allWeightBytes}),
     * {@code device_weight_bytes} (what they took on the GPU, allocations padded), and the run's
     * {@code preset}, {@code backend}, {@code dtype}, {@code device}, {@code weights} and ceilings:
     * {@code roofline_gbps} = {@code d2d_copy_gbps}, {@code ratio} (achieved over it),
     * {@code d2d_copy_bytes}, {@code gemm_tflops}, {@code tflops_ratio}, {@code gemm_note} (null
     * numbers where a ceiling was not measured).
     */
    static List<JsonRow> json(List<Measured> all, Options o, GpuCeilings c) {
        List<Row> std = all.get(0).rows();
        List<JsonRow> out = new ArrayList<>();
        for (Measured m : all) {
            MoeConfig v = m.variant().config();
            for (int i = 0; i < m.rows().size(); i++) {
                Row r = m.rows().get(i);
                out.add(new JsonRow().with("variant", m.variant().name()).with("tokens", r.tokens()).with("path", r.path())
                        .num("median_ms", r.medianMs(), 6).num("min_ms", r.minMs(), 6).with("calls", r.calls())
                        .with("bytes", r.bytes()).num("flops", r.flops(), 0).num("achieved_gbps", r.achievedGbps(), 4)
                        .num("tflops", r.tflops(), 6).with("distinct_experts", r.distinctExperts())
                        .num("ratio_to_standard", r.medianMs() / std.get(i).medianMs(), 5)
                        .with("d", v.hiddenSize()).with("l", v.latentSize()).with("N", v.numExperts()).with("K", v.topK())
                        .with("m", v.intermediateSize()).with("shared", v.sharedIntermediateSize()).with("alpha", o.alpha())
                        .with("routed_weight_bytes", m.variant().routedWeightBytes(2)).with("weight_bytes", allWeightBytes(v))
                        .with("device_weight_bytes", m.deviceWeightBytes()).with("preset", o.preset()).with("backend", "cuda")
                        .with("dtype", "bf16").with("device", c.device()).with("weights", o.weightsNote())
                        .num("roofline_gbps", c.d2dGbps(), 4).num("ratio", r.achievedGbps() / c.d2dGbps(), 5)
                        .num("d2d_copy_gbps", c.d2dGbps(), 4).with("d2d_copy_bytes", c.d2dBytes())
                        .num("gemm_tflops", c.gemmTflops(), 4).num("tflops_ratio", r.tflops() / c.gemmTflops(), 5)
                        .with("gemm_note", c.gemmNote()));
            }
        }
        return out;
    }
}
