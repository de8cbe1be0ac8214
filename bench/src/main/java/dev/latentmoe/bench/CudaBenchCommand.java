package dev.latentmoe.bench;

import dev.latentmoe.bench.nvidia.cublasLtMatmulHeuristicResult_t;
import dev.latentmoe.bench.nvidia.cublasLt_h;
import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.kernels.cuda.CudaLayerKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaEvent;
import dev.latentmoe.memory.cuda.CudaStream;
import dev.latentmoe.memory.io.Checkpoint;
import dev.latentmoe.memory.io.Npy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code bench --backend cuda}: the layer on the GPU against ceilings measured in the same run.
 *
 * <p>Seeded random bf16 weights are built on the host ({@link MoeLayer#random}) and prepared on the
 * CUDA backend (copied to the GPU); inputs x are filled on the device (bf16, uniform [-1, 1),
 * {@code lmoe_cuda_fill_uniform}). Per token count T: the median time of
 * {@link CudaLayerKernels#forwardAsync} on the backend stream, between CUDA events enqueued back to
 * back (warm-up first, at least {@code --reps} calls, inputs rotating among {@code --inputs} sets);
 * the bytes the call had to move ({@link LayerTraffic} with the routing {@code layer.route(x)}
 * gives, copied to the host; x and y counted as bf16); achieved GB/s and TFLOP/s.
 *
 * <p>Ceilings, same run: device-to-device copy bandwidth ({@code lmoe_cuda_memcpy_d2d_async} of
 * 1 GiB, read + write counted; this is {@code roofline_gbps}), and the dense bf16 GEMM rate of
 * cuBLASLt (8192³, fp32 compute, heuristic algorithm, 32 MiB workspace) when
 * {@code libcublasLt.so.13} is found — else reported unavailable with the reason. Then, shape-matched,
 * the same cuBLASLt GEMM at the routed experts' prefill shapes for each T of {@code --gemm-shape-tokens}
 * (default: the T >= 4096 of {@code --tokens}; empty: none): M = T·K, FC1 M x m x ℓ and FC2 M x ℓ x m
 * (ℓ = d for a standard MoE), each rate and the combined one, (FLOPs FC1 + FC2) / (time FC1 + FC2)
 * ({@link #expertShapeCeilings}), so the experts' GEMMs can be set against a dense GEMM of the same M, N, K.
 *
 * <p><b>Checkpoint mode</b> ({@code --checkpoint DIR [--layer I]}): the weights of layer I of a
 * Nemotron-H checkpoint (config.json + safetensors, {@link MoeLayer#fromCheckpoint}) instead of random
 * ones; with {@code --input x.npy[,x2.npy...]} (float32 or bf16 [T, d] or [d]) the timed inputs are
 * those files (T from each file, one input set) instead of device-filled x for {@code --tokens}; with
 * {@code --compare y.npy[,...]} (one per input, float32 [T, d]) the layer's output for each x is first
 * compared with y (relative Frobenius error, printed and written as {@code rel_err}); after all rows
 * are measured and the JSON written the command fails when any error exceeds {@code --tolerance}
 * (default 1e-2). This is how bench/peers/peers_gpu.py runs our layer on the peers' weights.
 *
 * <p>Without a usable GPU it fails before building any weights, with one line naming what is missing.
 */
final class CudaBenchCommand {
    private CudaBenchCommand() {}

    static final String DEFAULT_TOKENS = "1,4,16,64,256,4096,8192";

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
                   List<Integer> gemmShapeTokens) {
        Options(String preset, MoeConfig config, List<Integer> tokens, String json, long seed, int reps,
                int warmup, int inputs, boolean ceilings, long copyBytes, int gemmSize) {
            this(preset, config, tokens, json, seed, reps, warmup, inputs, ceilings, copyBytes, gemmSize,
                    null, 0, List.of(), List.of(), DEFAULT_TOLERANCE, defaultGemmShapeTokens(tokens));
        }

        /** What the weights are, for the report and the JSON. */
        String weightsNote() {
            return checkpoint == null ? "seeded random bf16 (seed " + seed + ")" : "checkpoint " + checkpoint + " layer " + layer;
        }
    }

    static final double DEFAULT_TOLERANCE = 1e-2;

    /** Smallest T whose expert GEMM shapes are measured by default (prefill sizes). */
    static final int GEMM_SHAPE_MIN_TOKENS = 4096;

    /** The default {@code --gemm-shape-tokens}: the distinct T >= {@value #GEMM_SHAPE_MIN_TOKENS} of {@code tokens}, in order. */
    static List<Integer> defaultGemmShapeTokens(List<Integer> tokens) {
        return tokens.stream().filter(t -> t >= GEMM_SHAPE_MIN_TOKENS).distinct().toList();
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

    /**
     * Ceilings measured in the run. {@code gemmTflops} is NaN when cuBLASLt was unavailable, with
     * {@code gemmNote} saying why; otherwise {@code gemmNote} describes the GEMM.
     */
    record GpuCeilings(String device, double d2dGbps, long d2dBytes, double gemmTflops, String gemmNote,
                       List<ExpertGemm> expertShapes) {
        GpuCeilings(String device, double d2dGbps, long d2dBytes, double gemmTflops, String gemmNote) {
            this(device, d2dGbps, d2dBytes, gemmTflops, gemmNote, List.of());
        }

        boolean gemmAvailable() { return !Double.isNaN(gemmTflops); }
    }

    /**
     * The dense cuBLASLt rate at the routed experts' prefill GEMM shapes for T tokens: M = T·K rows,
     * FC1 = [M x width] x [width x inter] and FC2 = [M x inter] x [inter x width] (width = ℓ, or d for a
     * standard MoE; inter = m, the expert intermediate size). {@code combinedTflops} is
     * (FLOPs FC1 + FLOPs FC2) / (time FC1 + time FC2). Times and rates are NaN when not measured, with
     * {@code note} saying why (null when measured).
     */
    record ExpertGemm(int tokens, int topK, long rows, int width, int inter, double fc1Ms, double fc2Ms, String note) {
        static ExpertGemm of(int tokens, MoeConfig c, double fc1Ms, double fc2Ms, String note) {
            return new ExpertGemm(tokens, c.topK(), (long) tokens * c.topK(), c.expertWidth(), c.intermediateSize(),
                    fc1Ms, fc2Ms, note);
        }

        /** FLOPs of one of FC1 and FC2 (both are 2 M ℓ m). */
        double flopsEach() { return 2.0 * rows * (double) width * inter; }

        double fc1Tflops() { return flopsEach() / (fc1Ms * 1e-3) / 1e12; }

        double fc2Tflops() { return flopsEach() / (fc2Ms * 1e-3) / 1e12; }

        double combinedTflops() { return 2 * flopsEach() / ((fc1Ms + fc2Ms) * 1e-3) / 1e12; }

        boolean available() { return !Double.isNaN(fc1Ms) && !Double.isNaN(fc2Ms); }
    }

    /** True when {@code argv} asks for the CUDA backend ({@code --backend cuda} or {@code --backend=cuda}). */
    static boolean wants(String[] argv) {
        for (int i = 1; i < argv.length; i++) {
            if (argv[i].equals("--backend=cuda")) return true;
            if (argv[i].equals("--backend") && i + 1 < argv.length && argv[i + 1].equals("cuda")) return true;
        }
        return false;
    }

    static Options parse(String[] argv) {
        Args a = new Args(argv, 1, Set.of("no-ceilings"));
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
        if (!"bf16".equals(dtype)) throw new Args.UsageException("--dtype: the CUDA backend runs bf16 weights only, got '" + dtype + "'");
        long seed = a.longValue("seed", 42);
        int reps = a.intValue("reps", 20);
        int warmup = a.intValue("warmup", 3);
        int inputs = a.intValue("inputs", 4);
        boolean ceilings = !a.flag("no-ceilings");
        long copyMiB = a.longValue("copy-mib", 1024);
        int gemm = a.intValue("gemm-size", 8192);
        String shapeArg = a.get("gemm-shape-tokens", null);
        List<Integer> shapeTokens = shapeArg == null ? defaultGemmShapeTokens(tokens)
                : shapeArg.isBlank() ? List.of() : a.intList("gemm-shape-tokens", null);
        a.finish();
        if (reps < 1) throw new Args.UsageException("--reps must be >= 1, got " + reps);
        if (warmup < 0) throw new Args.UsageException("--warmup must be >= 0, got " + warmup);
        if (inputs < 1) throw new Args.UsageException("--inputs must be >= 1, got " + inputs);
        if (copyMiB < 1) throw new Args.UsageException("--copy-mib must be >= 1, got " + copyMiB);
        if (gemm < 16 || gemm % 16 != 0) throw new Args.UsageException("--gemm-size must be a multiple of 16, got " + gemm);
        return new Options(preset, cfg, tokens, json, seed, reps, warmup, inputs, ceilings, copyMiB << 20, gemm,
                ckpt == null ? null : Path.of(ckpt), layer, inputFiles, compareFiles, tolerance, shapeTokens);
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

    static void run(String[] argv) {
        Options o = parse(argv);
        Backend backend = Backends.get(CudaBackend.NAME);
        if (!backend.isAvailable()) {
            throw new IllegalStateException("CUDA backend unavailable: " + backend.unavailableReason());
        }
        CudaBackend cuda = (CudaBackend) backend;
        String device = deviceName();
        if (o.checkpoint() == null) {
            System.out.printf("LatentMoE CUDA bench: preset %s (%s), bf16 weights, device %s%n",
                    o.preset(), Shapes.describe(o.config()), device);
        } else {
            System.out.printf("LatentMoE CUDA bench: %s, device %s%n", o.weightsNote(), device);
        }

        CudaStream stream = cuda.stream();
        GpuCeilings ceil;
        if (o.ceilings()) {
            double d2d = copyBandwidth(stream, o.copyBytes());
            double gemm = Double.NaN;
            String note;
            try {
                gemm = gemmTflops(stream, o.gemmSize());
                note = String.format(Locale.ROOT, "cuBLASLt %s bf16 GEMM %dx%dx%d, fp32 compute, TN, heuristic algo, 32 MiB workspace",
                        cublasLt_h.libraryPath(), o.gemmSize(), o.gemmSize(), o.gemmSize());
            } catch (RuntimeException | LinkageError e) {
                note = unavailable(e);
            }
            System.out.println(gemmLine(gemm, note));
            ceil = new GpuCeilings(device, d2d, o.copyBytes(), gemm, note, expertShapeCeilings(stream, o));
        } else {
            ceil = new GpuCeilings(device, Double.NaN, 0, Double.NaN, "not measured (--no-ceilings)");
        }

        long t0 = System.nanoTime();
        List<Row> rows = new ArrayList<>();
        MoeLayer built;
        if (o.checkpoint() == null) {
            BenchCommand.Progress progress = new BenchCommand.Progress("building seeded random weights", o.config().numExperts());
            built = MoeLayer.random(o.config(), DType.BF16, o.seed(), backend, e -> progress.step(e + 1));
            progress.done(String.format("%.1f s incl. upload", (System.nanoTime() - t0) / 1e9));
        } else {
            built = MoeLayer.fromCheckpoint(o.checkpoint(), o.layer(), backend);
            System.out.printf(Locale.ROOT, "loaded %s (%s) in %.1f s incl. upload%n", o.weightsNote(),
                    Shapes.describe(built.config()), (System.nanoTime() - t0) / 1e9);
        }
        try (MoeLayer layer = built) {
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
            writeJson(Path.of(o.json()), json(rows, o, ceil));
            System.out.println("wrote " + o.json());
        }
        String bad = failedComparisons(rows, o.tolerance());
        if (bad != null) throw new IllegalStateException(bad);
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

    static String deviceName() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(256);
            MemorySegment sms = a.allocate(ValueLayout.JAVA_INT);
            MemorySegment mem = a.allocate(ValueLayout.JAVA_LONG);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_device_info(0, MemorySegment.NULL, MemorySegment.NULL, sms, mem, name, 256),
                    "lmoe_cuda_device_info");
            return String.format(Locale.ROOT, "%s (%d SMs, %.1f GiB)", name.getString(0, StandardCharsets.UTF_8),
                    sms.get(ValueLayout.JAVA_INT, 0), mem.get(ValueLayout.JAVA_LONG, 0) / (double) (1L << 30));
        }
    }

    private static String unavailable(Throwable e) {
        return "unavailable: " + String.valueOf(e.getMessage()).replace('\n', ' ');
    }

    /**
     * The expert-shape GEMM ceilings for {@code o.gemmShapeTokens()}, each printed as it is measured;
     * never throws (a failure is reported in the entry's note). With a checkpoint the shape comes from
     * its config.json, read here (the weights are loaded later).
     */
    static List<ExpertGemm> expertShapeCeilings(CudaStream s, Options o) {
        return expertShapeCeilings(o, (m, n, k) -> gemmMillis(s, m, n, k));
    }

    /** Times one m x n x k GEMM in ms ({@link #gemmMillis}); throws with the reason when it cannot. */
    interface GemmTimer {
        double millis(long m, long n, long k);
    }

    /** {@link #expertShapeCeilings(CudaStream, Options)} with the GEMMs timed by {@code timer}. */
    static List<ExpertGemm> expertShapeCeilings(Options o, GemmTimer timer) {
        if (o.gemmShapeTokens().isEmpty()) return List.of();
        MoeConfig cfg = o.config();
        if (cfg == null) {
            try (Checkpoint ck = Checkpoint.open(o.checkpoint())) {
                cfg = MoeConfig.fromConfigJson(ck.config());
            } catch (RuntimeException e) {
                System.out.println("expert-shape GEMM ceilings unavailable: cannot read the checkpoint's config: "
                        + String.valueOf(e.getMessage()).replace('\n', ' '));
                return List.of();
            }
        }
        List<ExpertGemm> out = new ArrayList<>();
        for (int t : o.gemmShapeTokens()) {
            ExpertGemm g;
            long rows = (long) t * cfg.topK();
            try {
                double fc1 = timer.millis(rows, cfg.intermediateSize(), cfg.expertWidth());
                double fc2 = timer.millis(rows, cfg.expertWidth(), cfg.intermediateSize());
                g = ExpertGemm.of(t, cfg, fc1, fc2, null);
            } catch (RuntimeException | LinkageError e) {
                g = ExpertGemm.of(t, cfg, Double.NaN, Double.NaN, unavailable(e));
            }
            System.out.println(expertGemmLine(g));
            out.add(g);
        }
        return out;
    }

    static String expertGemmLine(ExpertGemm g) {
        String head = String.format(Locale.ROOT, "expert-shape GEMM ceiling T=%d (M = T*K = %d, MxNxK): ", g.tokens(), g.rows());
        if (!g.available()) return head + "cuBLASLt GEMM " + g.note();
        return head + String.format(Locale.ROOT,
                "FC1 %dx%dx%d %.1f TFLOP/s (%.3f ms), FC2 %dx%dx%d %.1f TFLOP/s (%.3f ms), combined %.1f TFLOP/s",
                g.rows(), g.inter(), g.width(), g.fc1Tflops(), g.fc1Ms(), g.rows(), g.width(), g.inter(), g.fc2Tflops(),
                g.fc2Ms(), g.combinedTflops());
    }

    static String gemmLine(double tflops, String note) {
        return Double.isNaN(tflops) ? "compute ceiling: cuBLASLt GEMM " + note
                : String.format(Locale.ROOT, "compute ceiling: %.1f TFLOP/s (%s)", tflops, note);
    }

    /** Runs {@code reps} copies of the work {@code enqueue} puts on {@code s}, timed back to back with events; returns ms per call. */
    static double[] timeBackToBack(CudaStream s, int reps, Runnable enqueue) {
        CudaEvent[] ev = new CudaEvent[reps + 1];
        try {
            for (int i = 0; i <= reps; i++) ev[i] = CudaEvent.create();
            ev[0].record(s);
            for (int i = 0; i < reps; i++) {
                enqueue.run();
                ev[i + 1].record(s);
            }
            ev[reps].synchronize();
            double[] ms = new double[reps];
            for (int i = 0; i < reps; i++) ms[i] = ev[i].elapsedMillisTo(ev[i + 1]);
            return ms;
        } finally {
            for (CudaEvent e : ev) if (e != null) e.close();
        }
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /** D2D copy bandwidth (read + write) of {@code bytes}, median of 10 after 2 warm-ups. */
    static double copyBandwidth(CudaStream s, long bytes) {
        try (DeviceArena a = DeviceArena.create("bench-copy", s)) {
            MemorySegment src = a.allocate(bytes), dst = a.allocate(bytes);
            Runnable copy = () -> Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(dst, src, bytes, s.handle()),
                    "lmoe_cuda_memcpy_d2d_async");
            timeBackToBack(s, 2, copy);
            double ms = median(timeBackToBack(s, 10, copy));
            double gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
            System.out.printf(Locale.ROOT, "memory ceiling: device-to-device copy of %d MiB: %.3f ms, %.1f GB/s (read + write)%n",
                    bytes >> 20, ms, gbps);
            return gbps;
        }
    }

    /** cuBLASLt bf16 GEMM rate, n x n x n, fp32 compute, D = A^T B (TN). Throws with the reason when unavailable. */
    static double gemmTflops(CudaStream s, int n) {
        double ms = gemmMillis(s, n, n, n);
        return 2.0 * n * (double) n * n / (ms * 1e-3) / 1e12;
    }

    /**
     * Median ms of one cuBLASLt bf16 GEMM of m x n x k (D [m x n] = A [m x k] · B [k x n], 2 m n k FLOPs),
     * fp32 compute, TN (A stored k x m column-major, i.e. row-major [m, k], and transposed by the op; B
     * k x n column-major; D m x n column-major), heuristic algorithm, 32 MiB workspace; operands filled
     * on the device with uniform [-1, 1), 2 warm-ups then 10 timed calls, all freed before returning.
     * Throws with the reason when cuBLASLt is unavailable.
     */
    static double gemmMillis(CudaStream s, long m, long n, long k) {
        if (!cublasLt_h.isAvailable()) {
            throw new IllegalStateException(cublasLt_h.unavailableReason().orElse("libcublasLt.so.13 not loaded"));
        }
        if (m < 1 || n < 1 || k < 1) throw new IllegalArgumentException("GEMM dimensions must be >= 1, got " + m + "x" + n + "x" + k);
        long ws = 32L << 20;
        long aElems = m * k, bElems = k * n, dElems = m * n;
        try (DeviceArena dev = DeviceArena.create("bench-gemm", s); Arena h = Arena.ofConfined()) {
            MemorySegment a = dev.allocate(aElems * 2), b = dev.allocate(bElems * 2), d = dev.allocate(dElems * 2);
            MemorySegment work = dev.allocate(ws);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_fill_uniform(a, DType.BF16.code(), aElems, 1, -1f, 1f, s.handle()), "fill A");
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_fill_uniform(b, DType.BF16.code(), bElems, 2, -1f, 1f, s.handle()), "fill B");
            s.synchronize();
            MemorySegment p = h.allocate(ValueLayout.ADDRESS);
            cublasLt_h.check(cublasLt_h.cublasLtCreate(p), "cublasLtCreate");
            MemorySegment handle = p.get(ValueLayout.ADDRESS, 0);
            List<Runnable> cleanup = new ArrayList<>();
            cleanup.add(() -> cublasLt_h.cublasLtDestroy(handle));
            try {
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescCreate(p, cublasLt_h.CUBLAS_COMPUTE_32F, cublasLt_h.CUDA_R_32F),
                        "cublasLtMatmulDescCreate");
                MemorySegment op = p.get(ValueLayout.ADDRESS, 0);
                cleanup.add(() -> cublasLt_h.cublasLtMatmulDescDestroy(op));
                MemorySegment trans = h.allocate(ValueLayout.JAVA_INT);
                trans.set(ValueLayout.JAVA_INT, 0, cublasLt_h.CUBLAS_OP_T);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescSetAttribute(op, cublasLt_h.CUBLASLT_MATMUL_DESC_TRANSA, trans, 4),
                        "cublasLtMatmulDescSetAttribute(TRANSA)");
                trans.set(ValueLayout.JAVA_INT, 0, cublasLt_h.CUBLAS_OP_N);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescSetAttribute(op, cublasLt_h.CUBLASLT_MATMUL_DESC_TRANSB, trans, 4),
                        "cublasLtMatmulDescSetAttribute(TRANSB)");
                // Column-major: A stored k x m (transposed by the op), B k x n, C = D m x n.
                long[][] dims = {{k, m}, {k, n}, {m, n}};
                MemorySegment[] lay = new MemorySegment[3];
                for (int i = 0; i < 3; i++) {
                    cublasLt_h.check(cublasLt_h.cublasLtMatrixLayoutCreate(p, cublasLt_h.CUDA_R_16BF, dims[i][0], dims[i][1],
                            dims[i][0]), "cublasLtMatrixLayoutCreate");
                    MemorySegment l = p.get(ValueLayout.ADDRESS, 0);
                    lay[i] = l;
                    cleanup.add(() -> cublasLt_h.cublasLtMatrixLayoutDestroy(l));
                }
                cublasLt_h.check(cublasLt_h.cublasLtMatmulPreferenceCreate(p), "cublasLtMatmulPreferenceCreate");
                MemorySegment pref = p.get(ValueLayout.ADDRESS, 0);
                cleanup.add(() -> cublasLt_h.cublasLtMatmulPreferenceDestroy(pref));
                MemorySegment wsBytes = h.allocate(ValueLayout.JAVA_LONG);
                wsBytes.set(ValueLayout.JAVA_LONG, 0, ws);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulPreferenceSetAttribute(pref,
                        cublasLt_h.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, wsBytes, 8), "cublasLtMatmulPreferenceSetAttribute");
                MemorySegment heur = cublasLtMatmulHeuristicResult_t.allocate(h);
                MemorySegment count = h.allocate(ValueLayout.JAVA_INT);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulAlgoGetHeuristic(handle, op, lay[0], lay[1], lay[2], lay[2], pref, 1,
                        heur, count), "cublasLtMatmulAlgoGetHeuristic");
                if (count.get(ValueLayout.JAVA_INT, 0) < 1) throw new IllegalStateException("cuBLASLt heuristic returned no algorithm");
                MemorySegment algo = cublasLtMatmulHeuristicResult_t.algo(heur);
                MemorySegment alpha = h.allocate(ValueLayout.JAVA_FLOAT), beta = h.allocate(ValueLayout.JAVA_FLOAT);
                alpha.set(ValueLayout.JAVA_FLOAT, 0, 1f);
                beta.set(ValueLayout.JAVA_FLOAT, 0, 0f);
                Runnable gemm = () -> cublasLt_h.check(cublasLt_h.cublasLtMatmul(handle, op, alpha, a, lay[0], b, lay[1], beta,
                        d, lay[2], d, lay[2], algo, work, ws, s.handle()), "cublasLtMatmul");
                timeBackToBack(s, 2, gemm);
                return median(timeBackToBack(s, 10, gemm));
            } finally {
                s.synchronize();
                for (int i = cleanup.size() - 1; i >= 0; i--) cleanup.get(i).run();
            }
        }
    }

    static Row measure(MoeLayer layer, CudaLayerKernels k, int tokens, Options o, double roofline) {
        MoeConfig cfg = layer.config();
        CudaStream s = k.stream();
        int sets = o.inputs();
        long d = cfg.hiddenSize();
        try (DeviceArena dev = DeviceArena.create("bench-x", s); HostArena host = HostArena.shared("bench-routing")) {
            Tensor[] xs = new Tensor[sets];
            for (int i = 0; i < sets; i++) {
                xs[i] = dev.allocateTensor(DType.BF16, tokens, d);
                Cuda.check(latentmoe_cuda_h.lmoe_cuda_fill_uniform(xs[i].segment(), DType.BF16.code(), xs[i].numel(),
                        o.seed() * 1_000_003L + tokens * 31L + i, -1f, 1f, s.handle()), "lmoe_cuda_fill_uniform(x)");
            }
            return timeInputs(layer, k, xs, tokens, o, roofline, host);
        }
    }

    /** The event-timed forward loop over the input sets {@code xs} (device bf16 [tokens, d]). */
    static Row timeInputs(MoeLayer layer, CudaLayerKernels k, Tensor[] xs, int tokens, Options o, double roofline,
                          HostArena host) {
        MoeConfig cfg = layer.config();
        CudaStream s = k.stream();
        int sets = xs.length;
        long d = cfg.hiddenSize();
        DeviceArena dev = (DeviceArena) xs[0].arena();
        long[] bytes = new long[sets];
        double[] flops = new double[sets];
        int[] distinct = new int[sets];
        for (int i = 0; i < sets; i++) {
            Routing r = layer.route(xs[i]); // synchronous: the fill is done before, the routing after
            Routing hr = new Routing(CudaCopies.toHost(r.expertIds(), host), CudaCopies.toHost(r.weights(), host));
            LayerTraffic t = LayerTraffic.of(layer.weights(), hr);
            // LayerTraffic counts x and y as f32; on the GPU both are bf16.
            bytes[i] = t.bytes() - 2L * tokens * d * (4 - 2);
            flops[i] = t.flops();
            distinct[i] = t.distinctExperts();
        }
        Tensor out = dev.allocateTensor(k.activationDType(), tokens, d);
        int[] next = {0};
        Runnable fwd = () -> {
            int i = next[0]++ % sets;
            k.forwardAsync(xs[i], null, null, out, s);
        };
        Sampled m = sample(s, o.warmup(), o.reps(), sets, () -> next[0] = 0, fwd, bytes, flops, distinct);
        double gbps = m.meanBytes() / (m.medianMs() * 1e-3) / 1e9;
        double tflops = m.meanFlops() / (m.medianMs() * 1e-3) / 1e12;
        System.err.printf(Locale.ROOT, "  T=%d: %d calls, median %.4f ms, min %.4f ms%n", tokens, m.calls(),
                m.medianMs(), m.minMs());
        return new Row(tokens, m.medianMs(), m.minMs(), m.calls(), m.meanBytes(), gbps, roofline, gbps / roofline,
                tflops, m.meanDistinct());
    }

    /** Medians of a sampled forward loop, and the per-call means of what its input sets need. */
    record Sampled(double medianMs, double minMs, int calls, long meanBytes, double meanFlops, int meanDistinct) {}

    /**
     * Warms up, then times {@code fwd} (which cycles through {@code sets} input sets; {@code rewind}
     * restarts the cycle) in batches of --reps calls until 0.25 s of GPU time or 10 batches; bytes,
     * flops and distinct experts are averaged over the calls actually made.
     */
    static Sampled sample(CudaStream s, int warmup, int reps, int sets, Runnable rewind, Runnable fwd, long[] bytes,
                          double[] flops, int[] distinct) {
        if (warmup > 0) timeBackToBack(s, Math.max(warmup, Math.min(sets, 8)), fwd);
        rewind.run();
        List<Double> all = new ArrayList<>();
        double total = 0;
        for (int batch = 0; batch < 10 && (batch == 0 || total < 250); batch++) {
            for (double ms : timeBackToBack(s, reps, fwd)) {
                all.add(ms);
                total += ms;
            }
        }
        double[] ms = all.stream().mapToDouble(Double::doubleValue).toArray();
        int n = ms.length;
        double bytesSum = 0, flopsSum = 0, distinctSum = 0;
        for (int i = 0; i < n; i++) {
            bytesSum += bytes[i % sets];
            flopsSum += flops[i % sets];
            distinctSum += distinct[i % sets];
        }
        double med = median(ms), min = Arrays.stream(ms).min().orElse(med);
        return new Sampled(med, min, n, Math.round(bytesSum / n), flopsSum / n, (int) Math.round(distinctSum / n));
    }

    static String table(List<Row> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%7s %11s %11s %12s %8s %13s %14s %7s %9s%n",
                "tokens", "median_ms", "min_ms", "bytes", "experts", "achieved_GB/s", "roofline_GB/s", "ratio", "TFLOP/s"));
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%7d %11.4f %11.4f %12d %8d %13.1f %14.1f %6.1f%% %9.2f%n", r.tokens(),
                    r.medianMs(), r.minMs(), r.bytes(), r.distinctExperts(), r.achievedGbps(), r.rooflineGbps(),
                    100 * r.ratio(), r.tflops()));
        }
        return sb.toString();
    }

    /** A JSON number, or null for NaN / infinity. */
    static String num(double v, int decimals) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%." + decimals + "f", v) : "null";
    }

    /** A JSON number in scientific notation (4 significant decimals), or null for NaN / infinity. */
    private static String sci(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.4e", v) : "null";
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        return sb.append('"').toString();
    }

    /**
     * The rows as a JSON array, one object per T with the CPU bench's keys ({@code tokens},
     * {@code median_ms}, {@code bytes}, {@code achieved_gbps}, {@code roofline_gbps}, {@code ratio},
     * {@code tflops}, {@code distinct_experts}, {@code preset}, {@code backend}, {@code dtype}) plus
     * {@code min_ms}, {@code calls}, {@code device}, and the ceilings: {@code d2d_copy_gbps},
     * {@code d2d_copy_bytes}, {@code gemm_tflops} (null when unavailable), {@code gemm_note},
     * {@code gemm_expert_shapes} (the expert-shape ceilings, {@link #expertShapesJson}; [] when none),
     * {@code tflops_ratio} (null without a GEMM ceiling), {@code rel_err} (the output's relative Frobenius
     * error against {@code --compare}, null when not compared) and {@code weights} (random with its seed,
     * or the checkpoint and layer).
     */
    static String json(List<Row> rows, Options o, GpuCeilings c) {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            sb.append(String.format(Locale.ROOT,
                    "  {\"tokens\": %d, \"median_ms\": %s, \"min_ms\": %s, \"calls\": %d, \"bytes\": %d, \"achieved_gbps\": %s, "
                            + "\"roofline_gbps\": %s, \"ratio\": %s, \"tflops\": %s, \"distinct_experts\": %d, "
                            + "\"preset\": %s, \"backend\": \"cuda\", \"dtype\": \"bf16\", \"device\": %s, "
                            + "\"d2d_copy_gbps\": %s, \"d2d_copy_bytes\": %d, \"gemm_tflops\": %s, \"tflops_ratio\": %s, "
                            + "\"gemm_note\": %s, \"gemm_expert_shapes\": %s, \"rel_err\": %s, \"weights\": %s}%s%n",
                    r.tokens(), num(r.medianMs(), 6), num(r.minMs(), 6), r.calls(), r.bytes(), num(r.achievedGbps(), 4),
                    num(r.rooflineGbps(), 4), num(r.ratio(), 5), num(r.tflops(), 6), r.distinctExperts(),
                    quote(o.preset()), quote(c.device()), num(c.d2dGbps(), 4), c.d2dBytes(), num(c.gemmTflops(), 4),
                    c.gemmAvailable() ? num(r.tflops() / c.gemmTflops(), 5) : "null", quote(c.gemmNote()),
                    expertShapesJson(c.expertShapes()), sci(r.relErr()), quote(o.weightsNote()), i + 1 < rows.size() ? "," : ""));
        }
        return sb.append("]\n").toString();
    }

    /**
     * The expert-shape ceilings as a JSON array (one line): per T {@code tokens}, {@code top_k}, {@code m}
     * (= T·K, the GEMMs' rows), {@code fc1_n} / {@code fc1_k} (m, ℓ), {@code fc2_n} / {@code fc2_k} (ℓ, m),
     * {@code fc1_ms}, {@code fc2_ms}, {@code fc1_tflops}, {@code fc2_tflops}, {@code combined_tflops} (null
     * when not measured) and {@code note} (null when measured, else why not).
     */
    static String expertShapesJson(List<ExpertGemm> shapes) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < shapes.size(); i++) {
            ExpertGemm g = shapes.get(i);
            boolean ok = g.available();
            sb.append(String.format(Locale.ROOT,
                    "{\"tokens\": %d, \"top_k\": %d, \"m\": %d, \"fc1_n\": %d, \"fc1_k\": %d, \"fc2_n\": %d, \"fc2_k\": %d, "
                            + "\"fc1_ms\": %s, \"fc2_ms\": %s, \"fc1_tflops\": %s, \"fc2_tflops\": %s, \"combined_tflops\": %s, "
                            + "\"note\": %s}%s",
                    g.tokens(), g.topK(), g.rows(), g.inter(), g.width(), g.width(), g.inter(), num(g.fc1Ms(), 6),
                    num(g.fc2Ms(), 6), ok ? num(g.fc1Tflops(), 4) : "null", ok ? num(g.fc2Tflops(), 4) : "null",
                    ok ? num(g.combinedTflops(), 4) : "null", g.note() == null ? "null" : quote(g.note()),
                    i + 1 < shapes.size() ? ", " : ""));
        }
        return sb.append(']').toString();
    }

    static void writeJson(Path path, String text) {
        try {
            if (path.toAbsolutePath().getParent() != null) Files.createDirectories(path.toAbsolutePath().getParent());
            Files.writeString(path, text);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + path + ": " + e.getMessage(), e);
        }
    }
}
