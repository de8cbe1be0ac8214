package dev.latentmoe.bench;

import dev.latentmoe.bindings.latentmoe_cuda_h;
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
 * {@code bench --iso --backend cuda}: the paper's iso-cost comparison on the GPU. A standard MoE,
 * ℓ-MoE_eff (N′ = αN, K) and ℓ-MoE_acc (N′ = αN, K′ = αK), α = d/ℓ, at equal routed weight bytes
 * ({@link IsoCommand#variants}), one after the other on the GPU, side by side for T = 1 … 4096.
 *
 * <p>Default shapes: Super's d 4096, ℓ 1024, m 2688 and shared 5376 with a standard base of N 128,
 * K 8, so that α = 4 gives eff N 512 K 8 and acc N 512 K 32, all within the library's limits
 * (K ≤ 32, N ≤ 2048), 5.6 GB of routed weights each. {@code --preset P} derives the base from a
 * preset as the CPU command does ({@link IsoCommand.Base#of}); shapes whose acc variant would need
 * K′ > 32 or N′ > 2048 are refused rather than clamped, since they would not be iso-cost.
 *
 * <p>Weights are generated on the GPU ({@link DeviceRandomLayer}: uploading 3 × 5.7 GB from the host
 * would take longer than the measurements), one variant at a time, freed before the next. Timing,
 * inputs, bytes and ceilings as in {@link CudaBenchCommand}: device-filled bf16 x rotating among
 * {@code --inputs} sets, the median of back-to-back CUDA-event intervals of {@code lmoe_cuda_forward}
 * (warm-up first, batches of {@code --reps} until 0.25 s of GPU time or 10 batches, which bounds
 * the big-T rows), bytes from {@link LayerTraffic} with the routing the layer actually chose (x and y
 * as bf16), FLOPs from the same model, against the device-to-device copy bandwidth and the cuBLASLt
 * dense bf16 GEMM rate measured in the same run.
 *
 * <p>Without a usable GPU it fails before allocating anything, with one line naming what is missing.
 */
final class CudaIsoCommand {
    private CudaIsoCommand() {}

    static final String DEFAULT_TOKENS = "1,4,16,64,256,1024,4096";
    static final String DEFAULT_JSON = "bench/out/iso-cuda.json";
    static final String DEFAULT_PRESET = "gpu-default";
    static final IsoCommand.Base DEFAULT_BASE = new IsoCommand.Base(
            new MoeConfig(4096, 0, 128, 8, 2688, 5376, 5.0f, true, Activation.RELU2, Scoring.SIGMOID), 1024);

    record Options(String preset, IsoCommand.Base base, List<IsoCommand.Variant> variants, List<Integer> tokens,
                   String json, long seed, int reps, int warmup, int inputs, boolean ceilings, long copyBytes, int gemmSize) {
        int alpha() { return base.config().hiddenSize() / base.latent(); }

        String weightsNote() { return "seeded random bf16 generated on the GPU (seed " + seed + ")"; }
    }

    /** One variant at one T; {@code bytes} and {@code flops} are per call, averaged over the input sets. */
    record Row(String variant, int tokens, String path, double medianMs, double minMs, int calls, long bytes,
               double flops, int distinctExperts) {
        double achievedGbps() { return bytes / (medianMs * 1e-3) / 1e9; }

        double tflops() { return flops / (medianMs * 1e-3) / 1e12; }
    }

    /** A variant's measured rows and the device bytes its weights took. */
    record Measured(IsoCommand.Variant variant, long deviceWeightBytes, List<Row> rows) {}

    /**
     * The three variants of {@code base}, checked to be the paper's iso-cost set within the library's
     * limits: ℓ divides d with α ≥ 2, αN ≤ 2048, αK ≤ 32 (not clamped), equal routed weight bytes.
     *
     * @throws IllegalArgumentException saying which condition fails
     */
    static List<IsoCommand.Variant> isoVariants(IsoCommand.Base base) {
        MoeConfig b = base.config();
        int d = b.hiddenSize(), l = base.latent();
        if (b.isLatent()) throw new IllegalArgumentException("the base must be a standard MoE (latent size 0)");
        if (l <= 0 || l >= d || d % l != 0) {
            throw new IllegalArgumentException("ℓ must divide d with α = d/ℓ ≥ 2, got d " + d + ", ℓ " + l);
        }
        int alpha = d / l;
        if ((long) alpha * b.numExperts() > MoeConfig.MAX_EXPERTS) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "the ℓ-MoE variants need N′ = αN = %d·%d = %d experts, above the library's limit of %d",
                    alpha, b.numExperts(), alpha * b.numExperts(), MoeConfig.MAX_EXPERTS));
        }
        if ((long) alpha * b.topK() > MoeConfig.MAX_TOP_K) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "ℓ-MoE_acc needs K′ = αK = %d·%d = %d, above the library's limit of %d",
                    alpha, b.topK(), alpha * b.topK(), MoeConfig.MAX_TOP_K));
        }
        List<IsoCommand.Variant> vs = IsoCommand.variants(b, l);
        long routed = vs.get(0).routedWeightBytes(2);
        for (IsoCommand.Variant v : vs) {
            if (v.routedWeightBytes(2) != routed) {
                throw new IllegalStateException("routed weight bytes differ: " + v.name() + " " + v.routedWeightBytes(2)
                        + " vs standard " + routed);
            }
        }
        return vs;
    }

    static Options parse(String[] argv) {
        Args a = new Args(argv, 1, Set.of("iso", "no-ceilings"));
        a.flag("iso");
        String backend = a.get("backend", "cuda");
        if (!"cuda".equals(backend)) throw new Args.UsageException("--backend must be cuda here, got '" + backend + "'");
        String presetArg = a.get("preset", null);
        List<Integer> tokens = a.intList("tokens", DEFAULT_TOKENS);
        String json = a.get("json", DEFAULT_JSON);
        long seed = a.longValue("seed", 42);
        int reps = a.intValue("reps", 20);
        int warmup = a.intValue("warmup", 3);
        int inputs = a.intValue("inputs", 4);
        boolean ceilings = !a.flag("no-ceilings");
        long copyMiB = a.longValue("copy-mib", 1024);
        int gemm = a.intValue("gemm-size", 8192);
        a.finish();
        if (json.isBlank()) throw new Args.UsageException("--json needs a file name");
        if (reps < 1) throw new Args.UsageException("--reps must be >= 1, got " + reps);
        if (warmup < 0) throw new Args.UsageException("--warmup must be >= 0, got " + warmup);
        if (inputs < 1) throw new Args.UsageException("--inputs must be >= 1, got " + inputs);
        if (copyMiB < 1) throw new Args.UsageException("--copy-mib must be >= 1, got " + copyMiB);
        if (gemm < 16 || gemm % 16 != 0) throw new Args.UsageException("--gemm-size must be a multiple of 16, got " + gemm);
        IsoCommand.Base base;
        List<IsoCommand.Variant> vs;
        try {
            base = presetArg == null ? DEFAULT_BASE : IsoCommand.Base.of(Shapes.byName(presetArg));
            vs = isoVariants(base);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--preset " + (presetArg == null ? "(default)" : presetArg) + ": " + e.getMessage());
        }
        return new Options(presetArg == null ? DEFAULT_PRESET : presetArg, base, vs, tokens, json, seed, reps, warmup,
                inputs, ceilings, copyMiB << 20, gemm);
    }

    static void run(String[] argv) {
        Options o = parse(argv);
        Backend backend = Backends.get(CudaBackend.NAME);
        if (!backend.isAvailable()) {
            throw new IllegalStateException("bench --iso --backend cuda needs a GPU: CUDA backend unavailable: "
                    + backend.unavailableReason());
        }
        long start = System.nanoTime();
        CudaStream s = ((CudaBackend) backend).stream();
        String device = CudaBenchCommand.deviceName();
        System.out.printf(Locale.ROOT, "LatentMoE iso-cost comparison on the GPU: device %s, %s%n", device, o.weightsNote());
        System.out.print(header(o));

        CudaBenchCommand.GpuCeilings ceil = ceilings(s, o, device);
        List<Measured> all = new ArrayList<>();
        for (IsoCommand.Variant v : o.variants()) {
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
        CudaBenchCommand.writeJson(Path.of(o.json()), json(all, o, ceil));
        System.out.printf(Locale.ROOT, "wrote %s (%.1f s in all)%n", o.json(), (System.nanoTime() - start) / 1e9);
    }

    /** The shapes, α and the byte equality, as printed before any measurement. */
    static String header(Options o) {
        StringBuilder sb = new StringBuilder();
        MoeConfig b = o.base().config();
        sb.append(String.format(Locale.ROOT, "shapes (%s): α = d/ℓ = %d/%d = %d; %s experts, %s scoring, bf16 weights%n",
                o.preset(), b.hiddenSize(), o.base().latent(), o.alpha(), b.activation() == Activation.RELU2 ? "relu²" : "SwiGLU",
                b.scoring().name().toLowerCase(Locale.ROOT)));
        for (IsoCommand.Variant v : o.variants()) {
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

    /** The copy and GEMM ceilings of {@link CudaBenchCommand}, or NaN with the reason. */
    private static CudaBenchCommand.GpuCeilings ceilings(CudaStream s, Options o, String device) {
        if (!o.ceilings()) return new CudaBenchCommand.GpuCeilings(device, Double.NaN, 0, Double.NaN, "not measured (--no-ceilings)");
        double d2d = CudaBenchCommand.copyBandwidth(s, o.copyBytes());
        double gemm = Double.NaN;
        String note;
        try {
            gemm = CudaBenchCommand.gemmTflops(s, o.gemmSize());
            note = String.format(Locale.ROOT, "cuBLASLt bf16 GEMM %dx%dx%d, fp32 compute, TN, heuristic algo, 32 MiB workspace",
                    o.gemmSize(), o.gemmSize(), o.gemmSize());
        } catch (RuntimeException | LinkageError e) {
            note = "unavailable: " + String.valueOf(e.getMessage()).replace('\n', ' ');
        }
        System.out.println(CudaBenchCommand.gemmLine(gemm, note));
        return new CudaBenchCommand.GpuCeilings(device, d2d, o.copyBytes(), gemm, note);
    }

    /** One variant at T tokens: routing-derived bytes per input set, then the event-timed forward loop. */
    static Row measure(String name, DeviceRandomLayer layer, int tokens, Options o) {
        MoeConfig cfg = layer.config();
        CudaStream s = layer.stream();
        int sets = o.inputs(), k = cfg.topK();
        long d = cfg.hiddenSize();
        try (DeviceArena dev = DeviceArena.create("iso-x", s); HostArena host = HostArena.shared("iso-routing")) {
            Tensor[] xs = new Tensor[sets];
            for (int i = 0; i < sets; i++) {
                xs[i] = dev.allocateTensor(DType.BF16, tokens, d);
                Cuda.check(latentmoe_cuda_h.lmoe_cuda_fill_uniform(xs[i].segment(), DType.BF16.code(), xs[i].numel(),
                        o.seed() * 1_000_003L + tokens * 31L + i, -1f, 1f, s.handle()), "lmoe_cuda_fill_uniform(x)");
            }
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
                LayerTraffic t = LayerTraffic.of(cfg, 2, 2, distinct[i], tokens);
                bytes[i] = t.bytes() - 2L * tokens * d * (4 - 2); // LayerTraffic counts x and y as f32; here bf16
                flops[i] = t.flops();
            }
            int[] next = {0};
            Runnable fwd = () -> layer.forwardAsync(xs[next[0]++ % sets], ids, tw, ws, out);
            CudaBenchCommand.Sampled m = CudaBenchCommand.sample(s, o.warmup(), o.reps(), sets, () -> next[0] = 0,
                    fwd, bytes, flops, distinct);
            System.err.printf(Locale.ROOT, "  %s T=%d (%s): %d calls, median %.4f ms, min %.4f ms%n", name, tokens,
                    path, m.calls(), m.medianMs(), m.minMs());
            return new Row(name, tokens, path, m.medianMs(), m.minMs(), m.calls(), m.meanBytes(), m.meanFlops(),
                    m.meanDistinct());
        }
    }

    /** Every row with its bytes, rates and fractions of the ceilings. */
    static String table(List<Measured> all, CudaBenchCommand.GpuCeilings c) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-10s %6s %7s %10s %10s %12s %8s %9s %6s %8s %6s%n",
                "variant", "tokens", "path", "median_ms", "min_ms", "bytes", "experts", "GB/s", "%copy", "TFLOP/s", "%gemm"));
        for (Measured m : all) {
            for (Row r : m.rows()) {
                sb.append(String.format(Locale.ROOT, "%-10s %6d %7s %10.4f %10.4f %12d %8d %9.1f %6s %8.2f %6s%n", r.variant(),
                        r.tokens(), r.path(), r.medianMs(), r.minMs(), r.bytes(), r.distinctExperts(), r.achievedGbps(),
                        percent(r.achievedGbps(), c.d2dGbps()), r.tflops(), percent(r.tflops(), c.gemmTflops())));
            }
        }
        return sb.toString();
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
    static String json(List<Measured> all, Options o, CudaBenchCommand.GpuCeilings c) {
        StringBuilder sb = new StringBuilder("[\n");
        List<Row> std = all.get(0).rows();
        List<String> objs = new ArrayList<>();
        for (Measured m : all) {
            MoeConfig v = m.variant().config();
            for (int i = 0; i < m.rows().size(); i++) {
                Row r = m.rows().get(i);
                objs.add(String.format(Locale.ROOT,
                        "  {\"variant\": %s, \"tokens\": %d, \"path\": %s, \"median_ms\": %s, \"min_ms\": %s, \"calls\": %d, "
                                + "\"bytes\": %d, \"flops\": %s, \"achieved_gbps\": %s, \"tflops\": %s, \"distinct_experts\": %d, "
                                + "\"ratio_to_standard\": %s, \"d\": %d, \"l\": %d, \"N\": %d, \"K\": %d, \"m\": %d, \"shared\": %d, "
                                + "\"alpha\": %d, \"routed_weight_bytes\": %d, \"weight_bytes\": %d, \"device_weight_bytes\": %d, "
                                + "\"preset\": %s, \"backend\": \"cuda\", \"dtype\": \"bf16\", \"device\": %s, \"weights\": %s, "
                                + "\"roofline_gbps\": %s, \"ratio\": %s, \"d2d_copy_gbps\": %s, \"d2d_copy_bytes\": %d, "
                                + "\"gemm_tflops\": %s, \"tflops_ratio\": %s, \"gemm_note\": %s}",
                        CudaBenchCommand.quote(m.variant().name()), r.tokens(), CudaBenchCommand.quote(r.path()),
                        CudaBenchCommand.num(r.medianMs(), 6), CudaBenchCommand.num(r.minMs(), 6), r.calls(), r.bytes(),
                        CudaBenchCommand.num(r.flops(), 0), CudaBenchCommand.num(r.achievedGbps(), 4),
                        CudaBenchCommand.num(r.tflops(), 6), r.distinctExperts(),
                        CudaBenchCommand.num(r.medianMs() / std.get(i).medianMs(), 5),
                        v.hiddenSize(), v.latentSize(), v.numExperts(), v.topK(), v.intermediateSize(), v.sharedIntermediateSize(),
                        o.alpha(), m.variant().routedWeightBytes(2), allWeightBytes(v), m.deviceWeightBytes(),
                        CudaBenchCommand.quote(o.preset()), CudaBenchCommand.quote(c.device()), CudaBenchCommand.quote(o.weightsNote()),
                        CudaBenchCommand.num(c.d2dGbps(), 4), CudaBenchCommand.num(r.achievedGbps() / c.d2dGbps(), 5),
                        CudaBenchCommand.num(c.d2dGbps(), 4), c.d2dBytes(), CudaBenchCommand.num(c.gemmTflops(), 4),
                        CudaBenchCommand.num(r.tflops() / c.gemmTflops(), 5), CudaBenchCommand.quote(c.gemmNote())));
            }
        }
        sb.append(String.join(",\n", objs));
        return sb.append("\n]\n").toString();
    }
}
