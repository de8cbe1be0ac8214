package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.LayerTraffic;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.Progress;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Table;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.WeightFormat;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.kernels.cuda.CudaLayerKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaStream;
import dev.latentmoe.memory.io.Npy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench --backend cuda}: the layer on the GPU ({@link CudaLayerKernels#forwardAsync},
 * event-timed, {@link GpuTiming}) against the {@link GpuCeilings} of the same run; seeded random
 * bf16, FP8 or NVFP4 weights ({@code --dtype}, {@code --w8a8}), or a checkpoint's layer with given
 * inputs compared to reference outputs (how
 * bench/peers/peers_gpu.py runs our layer on the peers' weights). Options: bench/README.md.
 * Without a usable GPU it fails before building any weights, with one line naming what is missing.
 */
public final class CudaBenchCommand {
    private CudaBenchCommand() {}

    static final String DEFAULT_TOKENS = "1,4,16,64,256,4096,8192";
    static final double DEFAULT_TOLERANCE = 1e-2;
    /** Smallest T whose expert GEMM shapes are measured by default (prefill sizes). */
    static final int GEMM_SHAPE_MIN_TOKENS = 4096;

    /**
     * Parsed command line. {@code checkpoint} is null for random weights ({@code preset}/{@code config}
     * then give the shape); with a checkpoint, {@code preset} is "checkpoint", {@code config} is null (it
     * comes from the checkpoint's config.json), and {@code inputFiles} / {@code compareFiles} (possibly
     * empty; compareFiles empty or one per input) replace {@code tokens} when given.
     * {@code gemmShapeTokens}: the T whose expert GEMM shapes get a cuBLASLt ceiling (empty: none).
     */
    record Options(String preset, MoeConfig config, List<Integer> tokens, String json, long seed, int reps,
                   int warmup, int inputs, boolean ceilings, long copyBytes, int gemmSize,
                   Path checkpoint, int layer, List<Path> inputFiles, List<Path> compareFiles, double tolerance,
                   List<Integer> gemmShapeTokens, String dtype, boolean w8a8) {
        /** What the weights are, for the report and the JSON. */
        String weightsNote() {
            return checkpoint == null ? "seeded random " + dtype + (w8a8 ? " (W8A8)" : "") + " (seed " + seed + ")"
                    : "checkpoint " + checkpoint + " layer " + layer;
        }
    }

    /** One token count's result; {@code relErr} is NaN unless the output was compared with a reference. */
    record Row(int tokens, double medianMs, double minMs, int calls, long bytes, double achievedGbps,
               double rooflineGbps, double ratio, double tflops, int distinctExperts, double relErr) {
        Row(int tokens, double medianMs, double minMs, int calls, long bytes, double achievedGbps,
            double rooflineGbps, double ratio, double tflops, int distinctExperts) {
            this(tokens, medianMs, minMs, calls, bytes, achievedGbps, rooflineGbps, ratio, tflops, distinctExperts, Double.NaN);
        }

        Row withRelErr(double e) {
            return new Row(tokens, medianMs, minMs, calls, bytes, achievedGbps, rooflineGbps, ratio, tflops, distinctExperts, e);
        }
    }

    /** The default {@code --gemm-shape-tokens}: the distinct T >= {@value #GEMM_SHAPE_MIN_TOKENS} of {@code tokens}, in order. */
    static List<Integer> defaultGemmShapeTokens(List<Integer> tokens) {
        return tokens.stream().filter(t -> t >= GEMM_SHAPE_MIN_TOKENS).distinct().toList();
    }

    static Options parse(String[] argv) {
        Args a = new Args(argv, 1, Set.of("no-ceilings", "w8a8"));
        String backend = a.get("backend", "cuda");
        if (!"cuda".equals(backend)) throw new Args.UsageException("--backend must be cuda here, got '" + backend + "'");
        String ckpt = a.get("checkpoint", null);
        String presetArg = a.get("preset", null);
        String inputArg = a.get("input", null);
        String compareArg = a.get("compare", null);
        String tokensArg = a.get("tokens", null);
        String layerArg = a.get("layer", null);
        String tolArg = a.get("tolerance", null);
        if (ckpt == null) {
            for (String[] o : new String[][] {{"input", inputArg}, {"compare", compareArg}, {"layer", layerArg}, {"tolerance", tolArg}}) {
                if (o[1] != null) throw new Args.UsageException("--" + o[0] + " needs --checkpoint DIR");
            }
        } else {
            if (ckpt.isBlank()) throw new Args.UsageException("--checkpoint needs a directory");
            if (presetArg != null) throw new Args.UsageException("--preset and --checkpoint exclude each other (the checkpoint's config.json gives the shape)");
            if (inputArg != null && tokensArg != null) throw new Args.UsageException("--tokens and --input exclude each other (T comes from each input file)");
            if (compareArg != null && inputArg == null) throw new Args.UsageException("--compare needs --input");
        }
        String preset = ckpt == null ? (presetArg == null ? "nemotron3-super" : presetArg) : "checkpoint";
        MoeConfig cfg = null;
        if (ckpt == null) {
            try {
                cfg = Shapes.byName(preset);
            } catch (IllegalArgumentException e) {
                throw new Args.UsageException("--preset: " + e.getMessage());
            }
        }
        int layer = a.intValue("layer", 0);
        if (layer < 0) throw new Args.UsageException("--layer must be >= 0, got " + layer);
        List<Path> inputFiles = paths("input", inputArg);
        List<Path> compareFiles = paths("compare", compareArg);
        if (!compareFiles.isEmpty() && compareFiles.size() != inputFiles.size()) {
            throw new Args.UsageException("--compare needs one file per --input file: " + inputFiles.size() + " inputs, "
                    + compareFiles.size() + " references");
        }
        double tolerance = DEFAULT_TOLERANCE;
        if (tolArg != null) {
            try {
                tolerance = Double.parseDouble(tolArg.trim());
            } catch (NumberFormatException e) {
                throw new Args.UsageException("--tolerance must be a number, got '" + tolArg + "'");
            }
            if (!(tolerance > 0) || Double.isInfinite(tolerance)) throw new Args.UsageException("--tolerance must be > 0, got " + tolArg);
        }
        List<Integer> tokens = inputFiles.isEmpty() ? a.intList("tokens", DEFAULT_TOKENS) : List.of();
        String json = a.get("json", null);
        String dtype = a.get("dtype", "bf16").toLowerCase(Locale.ROOT);
        if (!List.of("bf16", "fp8", "nvfp4").contains(dtype)) {
            throw new Args.UsageException("--dtype must be bf16, fp8 or nvfp4, got '" + dtype + "'");
        }
        if (ckpt != null && !"bf16".equals(dtype)) {
            throw new Args.UsageException("--dtype is for random weights; a checkpoint's tensors give its formats");
        }
        boolean w8a8 = a.flag("w8a8");
        if (w8a8 && !"fp8".equals(dtype)) throw new Args.UsageException("--w8a8 needs --dtype fp8 (NVFP4 is weight-only on sm_90)");
        GpuRunOptions run = GpuRunOptions.read(a);
        String shapeArg = a.get("gemm-shape-tokens", null);
        List<Integer> shapeTokens = shapeArg == null ? defaultGemmShapeTokens(tokens)
                : shapeArg.isBlank() ? List.of() : a.intList("gemm-shape-tokens", null);
        a.finish();
        run.validate();
        return new Options(preset, cfg, tokens, json, run.seed(), run.reps(), run.warmup(), run.inputs(), run.ceilings(),
                run.copyBytes(), run.gemmSize(), ckpt == null ? null : Path.of(ckpt), layer, inputFiles, compareFiles,
                tolerance, shapeTokens, dtype, w8a8);
    }

    /** A comma-separated list of files (null: none). */
    private static List<Path> paths(String option, String value) {
        if (value == null) return List.of();
        List<Path> out = new ArrayList<>();
        for (String s : value.split(",", -1)) {
            if (s.isBlank()) throw new Args.UsageException("--" + option + " has an empty file name in '" + value + "'");
            out.add(Path.of(s.trim()));
        }
        return out;
    }

    public static void run(String[] argv) {
        Options o = parse(argv);
        Backend backend = Backends.get(CudaBackend.NAME);
        if (!backend.isAvailable()) {
            throw new IllegalStateException("CUDA backend unavailable: " + backend.unavailableReason());
        }
        if (o.w8a8()) backend = CudaBackend.w8a8();
        CudaBackend cuda = (CudaBackend) backend;
        String device = Cuda.deviceInfo(0).summary();
        if (o.checkpoint() == null) {
            System.out.printf("LatentMoE CUDA bench: preset %s (%s), %s weights%s, device %s%n",
                    o.preset(), Shapes.describe(o.config()), o.dtype(), o.w8a8() ? " (W8A8)" : "", device);
        } else {
            System.out.printf("LatentMoE CUDA bench: %s, device %s%n", o.weightsNote(), device);
        }

        CudaStream stream = cuda.stream();
        GpuCeilings ceil = o.ceilings()
                ? GpuCeilings.measure(stream, device, o.copyBytes(), o.gemmSize(), s -> expertShapeCeilings(s, o))
                : GpuCeilings.notMeasured(device);

        long t0 = System.nanoTime();
        List<Row> rows = new ArrayList<>();
        MoeLayer built;
        HostArena quantized = null;  // the host FP8 / NVFP4 weights: closed after the layer
        if (o.checkpoint() == null && !"bf16".equals(o.dtype())) {
            Progress progress = new Progress("building seeded random " + o.dtype() + " weights", o.config().numExperts());
            quantized = HostArena.shared("bench-quantized-weights");
            WeightFormat f = "fp8".equals(o.dtype()) ? WeightFormat.FP8_E4M3 : WeightFormat.NVFP4;
            try {
                MoeWeights w = QuantizedRandomWeights.random(o.config(), f, o.w8a8() ? 1f / 256 : 0f, o.seed(), quantized,
                        e -> progress.step(e + 1));
                built = MoeLayer.of(w, backend);
            } catch (RuntimeException | Error e) {
                quantized.close();
                throw e;
            }
            progress.done(String.format("%.1f s incl. upload", (System.nanoTime() - t0) / 1e9));
        } else if (o.checkpoint() == null) {
            Progress progress = new Progress("building seeded random weights", o.config().numExperts());
            built = MoeLayer.random(o.config(), DType.BF16, o.seed(), backend, e -> progress.step(e + 1));
            progress.done(String.format("%.1f s incl. upload", (System.nanoTime() - t0) / 1e9));
        } else {
            built = MoeLayer.fromCheckpoint(o.checkpoint(), o.layer(), backend);
            System.out.printf(Locale.ROOT, "loaded %s (%s) in %.1f s incl. upload%n", o.weightsNote(),
                    Shapes.describe(built.config()), (System.nanoTime() - t0) / 1e9);
        }
        try (HostArena ignored = quantized; MoeLayer layer = built) {
            CudaLayerKernels k = (CudaLayerKernels) layer.kernels();
            System.out.printf("weights on the GPU: %.2f GB%n", k.weightBytes() / 1e9);
            if (o.inputFiles().isEmpty()) {
                for (int t : o.tokens()) rows.add(measure(layer, k, t, o, ceil.d2dGbps()));
            } else {
                for (int i = 0; i < o.inputFiles().size(); i++) {
                    Path y = o.compareFiles().isEmpty() ? null : o.compareFiles().get(i);
                    rows.add(measureFile(layer, k, o.inputFiles().get(i), y, o, ceil.d2dGbps()));
                }
            }
        }
        System.out.println();
        System.out.print(table(rows));
        if (o.json() != null) {
            ReportFile.json(Path.of(o.json()), json(rows, o, ceil));
            System.out.println("wrote " + o.json());
        }
        String bad = failedComparisons(rows, o.tolerance());
        if (bad != null) throw new IllegalStateException(bad);
    }

    /**
     * The expert-shape GEMM ceilings for {@code o.gemmShapeTokens()} ({@link GpuCeilings#expertShapes});
     * with a checkpoint the shape comes from its config.json, read here (the weights are loaded later).
     */
    static List<GpuCeilings.ExpertGemm> expertShapeCeilings(CudaStream s, Options o) {
        return expertShapeCeilings(o, (m, n, k) -> GpuCeilings.gemmMillis(s, m, n, k));
    }

    /** {@link #expertShapeCeilings(CudaStream, Options)} with the GEMMs timed by {@code timer}; never throws. */
    static List<GpuCeilings.ExpertGemm> expertShapeCeilings(Options o, GpuCeilings.GemmTimer timer) {
        if (o.gemmShapeTokens().isEmpty()) return List.of();
        MoeConfig cfg = o.config();
        if (cfg == null) {
            try {
                cfg = MoeConfig.fromCheckpoint(o.checkpoint(), o.layer());
            } catch (RuntimeException e) {
                System.out.println("expert-shape GEMM ceilings unavailable: cannot read the checkpoint's config: "
                        + String.valueOf(e.getMessage()).replace('\n', ' '));
                return List.of();
            }
        }
        return GpuCeilings.expertShapes(cfg, o.gemmShapeTokens(), timer);
    }

    /** One line naming the rows whose output differs from its reference by more than {@code tolerance}, or null. */
    static String failedComparisons(List<Row> rows, double tolerance) {
        List<String> bad = new ArrayList<>();
        for (Row r : rows) {
            if (!Double.isNaN(r.relErr()) && !(r.relErr() <= tolerance)) {
                bad.add(String.format(Locale.ROOT, "T=%d: %.3e", r.tokens(), r.relErr()));
            }
        }
        return bad.isEmpty() ? null
                : String.format(Locale.ROOT, "output differs from the reference (rel. Frobenius > %.1e): %s", tolerance, String.join(", ", bad));
    }

    /** ||a - b||_F / ||b||_F over all elements (any float dtypes, same element count). */
    static double relFrobenius(Tensor a, Tensor b) {
        if (a.numel() != b.numel()) throw new IllegalArgumentException("cannot compare " + a + " with " + b);
        double num = 0, den = 0;
        for (long i = 0, n = a.numel(); i < n; i++) {
            double x = a.getFloat(i), y = b.getFloat(i);
            num += (x - y) * (x - y);
            den += y * y;
        }
        return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
    }

    /**
     * Times the layer on the x of {@code xFile} (float32 or bf16 .npy, [T, d] or [d]; uploaded as bf16),
     * after comparing its output with {@code yFile} (float32 [T, d]) when that is not null.
     */
    static Row measureFile(MoeLayer layer, CudaLayerKernels k, Path xFile, Path yFile, Options o, double roofline) {
        MoeConfig cfg = layer.config();
        long d = cfg.hiddenSize();
        CudaStream s = k.stream();
        try (DeviceArena dev = DeviceArena.create("bench-x", s); HostArena host = HostArena.shared("bench-input")) {
            Tensor xh = Npy.read(xFile, host);
            if (xh.rank() == 1) xh = xh.reshape(1, xh.dim(0));
            if (xh.rank() != 2 || xh.dim(1) != d || xh.dim(0) < 1 || xh.dim(0) > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(xFile + ": x must be [T, " + d + "] with T >= 1, got " + Arrays.toString(xh.shape()));
            }
            int tokens = (int) xh.dim(0);
            if (xh.hasNonFinite()) throw new IllegalArgumentException(xFile + ": x has NaN or Inf");
            Tensor xd = dev.upload(xh.dtype() == DType.BF16 ? xh : xh.convertTo(DType.BF16, host));
            double rel = Double.NaN;
            if (yFile != null) {
                Tensor yh = Npy.read(yFile, host);
                if (yh.numel() != (long) tokens * d) {
                    throw new IllegalArgumentException(yFile + ": reference must be [" + tokens + ", " + d + "], got " + Arrays.toString(yh.shape()));
                }
                Tensor out = dev.allocateTensor(k.activationDType(), tokens, d);
                layer.forward(xd, out);
                rel = relFrobenius(CudaCopies.toHost(out, host), yh);
                System.out.printf(Locale.ROOT, "  T=%d: rel. Frobenius error vs %s: %.3e%s%n", tokens, yFile.getFileName(), rel,
                        rel <= o.tolerance() ? "" : String.format(Locale.ROOT, " > %.1e: FAIL", o.tolerance()));
            }
            return timeInputs(layer, k, new Tensor[] {xd}, tokens, o, roofline, host).withRelErr(rel);
        }
    }

    /** Times the layer at T tokens on {@code --inputs} device-filled input sets. */
    static Row measure(MoeLayer layer, CudaLayerKernels k, int tokens, Options o, double roofline) {
        try (DeviceArena dev = DeviceArena.create("bench-x", k.stream()); HostArena host = HostArena.shared("bench-routing")) {
            Tensor[] xs = GpuTiming.randomInputs(dev, o.inputs(), tokens, layer.config().hiddenSize(), o.seed());
            return timeInputs(layer, k, xs, tokens, o, roofline, host);
        }
    }

    /** The event-timed forward loop over the input sets {@code xs} (device bf16 [tokens, d]). */
    static Row timeInputs(MoeLayer layer, CudaLayerKernels k, Tensor[] xs, int tokens, Options o, double roofline,
                          HostArena host) {
        CudaStream s = k.stream();
        int sets = xs.length;
        long d = layer.config().hiddenSize();
        DeviceArena dev = (DeviceArena) xs[0].arena();
        long[] bytes = new long[sets];
        double[] flops = new double[sets];
        int[] distinct = new int[sets];
        for (int i = 0; i < sets; i++) {
            Routing r = layer.route(xs[i]); // synchronous: the fill is done before, the routing after
            Routing hr = new Routing(CudaCopies.toHost(r.expertIds(), host), CudaCopies.toHost(r.weights(), host));
            LayerTraffic t = LayerTraffic.of(layer.weights(), hr).withActivations(tokens, (int) d, 2); // x, y bf16 here
            bytes[i] = t.bytes();
            flops[i] = t.flops();
            distinct[i] = t.distinctExperts();
        }
        Tensor out = dev.allocateTensor(k.activationDType(), tokens, d);
        int[] next = {0};
        Runnable fwd = () -> {
            int i = next[0]++ % sets;
            k.forwardAsync(xs[i], null, null, out, s);
        };
        GpuTiming.Sampled m = GpuTiming.sample(s, o.warmup(), o.reps(), sets, () -> next[0] = 0, fwd, bytes, flops, distinct);
        double gbps = m.meanBytes() / (m.medianMs() * 1e-3) / 1e9;
        double tflops = m.meanFlops() / (m.medianMs() * 1e-3) / 1e12;
        System.err.printf(Locale.ROOT, "  T=%d: %d calls, median %.4f ms, min %.4f ms%n", tokens, m.calls(),
                m.medianMs(), m.minMs());
        return new Row(tokens, m.medianMs(), m.minMs(), m.calls(), m.meanBytes(), gbps, roofline, gbps / roofline,
                tflops, m.meanDistinct());
    }

    static String table(List<Row> rows) {
        Table t = new Table().column("tokens", "%7s", "%7d").column("median_ms", "%11s", "%11.4f")
                .column("min_ms", "%11s", "%11.4f").column("bytes", "%12s", "%12d").column("experts", "%8s", "%8d")
                .column("achieved_GB/s", "%13s", "%13.1f").column("roofline_GB/s", "%14s", "%14.1f")
                .column("ratio", "%7s", "%6.1f%%").column("TFLOP/s", "%9s", "%9.2f");
        for (Row r : rows) {
            t.row(r.tokens(), r.medianMs(), r.minMs(), r.bytes(), r.distinctExperts(), r.achievedGbps(), r.rooflineGbps(),
                    100 * r.ratio(), r.tflops());
        }
        return t.toString();
    }

    /**
     * One object per T with the CPU bench's keys ({@code tokens}, {@code median_ms}, {@code bytes},
     * {@code achieved_gbps}, {@code roofline_gbps}, {@code ratio}, {@code tflops},
     * {@code distinct_experts}, {@code preset}, {@code backend}, {@code dtype}) plus {@code min_ms},
     * {@code calls}, {@code device}, the ceilings ({@code d2d_copy_gbps}, {@code d2d_copy_bytes},
     * {@code gemm_tflops}, {@code tflops_ratio}, {@code gemm_note}, {@code gemm_expert_shapes}),
     * {@code rel_err} (null when not compared) and {@code weights}; null numbers where not measured.
     */
    static List<JsonRow> json(List<Row> rows, Options o, GpuCeilings c) {
        List<JsonRow> out = new ArrayList<>();
        for (Row r : rows) {
            out.add(new JsonRow().with("tokens", r.tokens()).num("median_ms", r.medianMs(), 6).num("min_ms", r.minMs(), 6)
                    .with("calls", r.calls()).with("bytes", r.bytes()).num("achieved_gbps", r.achievedGbps(), 4)
                    .num("roofline_gbps", r.rooflineGbps(), 4).num("ratio", r.ratio(), 5).num("tflops", r.tflops(), 6)
                    .with("distinct_experts", r.distinctExperts()).with("preset", o.preset()).with("backend", "cuda")
                    .with("dtype", o.dtype()).with("w8a8", o.w8a8()).with("device", c.device()).num("d2d_copy_gbps", c.d2dGbps(), 4)
                    .with("d2d_copy_bytes", c.d2dBytes()).num("gemm_tflops", c.gemmTflops(), 4)
                    .num("tflops_ratio", r.tflops() / c.gemmTflops(), 5).with("gemm_note", c.gemmNote())
                    .with("gemm_expert_shapes", expertShapesJson(c.expertShapes())).sci("rel_err", r.relErr(), 4)
                    .with("weights", o.weightsNote()));
        }
        return out;
    }

    /**
     * The expert-shape ceilings: per T {@code tokens}, {@code top_k}, {@code m} (= T·K, the GEMMs'
     * rows), {@code fc1_n} / {@code fc1_k} (m, ℓ), {@code fc2_n} / {@code fc2_k} (ℓ, m),
     * {@code fc1_ms}, {@code fc2_ms}, {@code fc1_tflops}, {@code fc2_tflops}, {@code combined_tflops}
     * (null when not measured) and {@code note} (null when measured, else why not).
     */
    static List<JsonRow> expertShapesJson(List<GpuCeilings.ExpertGemm> shapes) {
        List<JsonRow> out = new ArrayList<>();
        for (GpuCeilings.ExpertGemm g : shapes) {
            boolean ok = g.available();
            out.add(new JsonRow().with("tokens", g.tokens()).with("top_k", g.topK()).with("m", g.rows())
                    .with("fc1_n", g.inter()).with("fc1_k", g.width()).with("fc2_n", g.width()).with("fc2_k", g.inter())
                    .num("fc1_ms", g.fc1Ms(), 6).num("fc2_ms", g.fc2Ms(), 6)
                    .num("fc1_tflops", ok ? g.fc1Tflops() : Double.NaN, 4).num("fc2_tflops", ok ? g.fc2Tflops() : Double.NaN, 4)
                    .num("combined_tflops", ok ? g.combinedTflops() : Double.NaN, 4).with("note", g.note()));
        }
        return out;
    }
}
