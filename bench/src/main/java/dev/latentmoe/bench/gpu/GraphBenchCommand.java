package dev.latentmoe.bench.gpu;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.kernels.cuda.CudaGraphedLayer;
import dev.latentmoe.kernels.cuda.CudaLayerKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaEvent;
import dev.latentmoe.memory.cuda.CudaGraph;
import dev.latentmoe.memory.cuda.CudaStream;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.Progress;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.bench.report.Table;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * {@code bench --backend cuda --graph-overhead}: what a CUDA graph replay of the whole layer
 * ({@link CudaGraphedLayer}) costs the calling Java thread (host time and bytes allocated per call,
 * against a bare downcall and a raw graph launch, {@link GpuCeilings}) and what it saves on the GPU
 * (event-timed, graphed against plain, outputs compared bit for bit). Fails, after the tables and
 * the JSON, when a graph path allocates or a graphed output differs; the ≤ 2 µs target is reported,
 * not enforced. How each variant is timed: bench/README.md.
 */
public final class GraphBenchCommand {
    private GraphBenchCommand() {}

    static final String FLAG = "graph-overhead";
    static final double TARGET_US = 2.0;
    private static final int MIN_WARMUP_CALLS = 5000;
    private static final int GPU_BATCHES = 5;

    record Options(String preset, MoeConfig config, List<Integer> tokens, int calls, int burst, int reps, long seed,
                   String json) {
        /** The graph buckets: every measured T, and T = 1 for the host-time measurement. */
        int[] buckets() {
            TreeSet<Integer> b = new TreeSet<>(tokens);
            b.add(1);
            return b.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    /** One call variant's host time: per-call microseconds over the bursts, and bytes allocated per call. */
    record HostRow(String key, String what, double medianUs, double meanUs, double minUs, long calls,
                   double allocatedBytesPerCall, boolean mustNotAllocate) {}

    /** One T's GPU time per call (ms) without a graph, with the graphed forward, and with the replay alone. */
    record GpuRow(int tokens, int bucket, String path, double plainMs, double graphedMs, double replayMs,
                  boolean bitwiseEqual) {}

    static Options parse(String[] argv) {
        Args a = new Args(argv, 1, Set.of(FLAG));
        a.flag(FLAG);
        String backend = a.get("backend", "cuda");
        if (!"cuda".equals(backend)) throw new Args.UsageException("--graph-overhead measures the cuda backend, got --backend " + backend);
        String preset = a.get("preset", "nemotron3-super");
        MoeConfig cfg;
        try {
            cfg = Shapes.byName(preset);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--preset: " + e.getMessage());
        }
        List<Integer> tokens = a.intList("tokens", "1,4,16,64");
        int calls = a.intValue("calls", 20000);
        int burst = a.intValue("burst", 32);
        int reps = a.intValue("reps", 20);
        long seed = a.longValue("seed", 42);
        String json = a.get("json", null);
        a.finish();
        if (calls < 1) throw new Args.UsageException("--calls must be >= 1, got " + calls);
        if (burst < 1 || burst > 256) throw new Args.UsageException("--burst must be in [1, 256] (the launch queue must not fill), got " + burst);
        if (reps < 1) throw new Args.UsageException("--reps must be >= 1, got " + reps);
        return new Options(preset, cfg, tokens, calls, burst, reps, seed, json);
    }

    public static void run(String[] argv) {
        Options o = parse(argv);
        Backend backend = Backends.get(CudaBackend.NAME);
        if (!backend.isAvailable()) throw new IllegalStateException("CUDA backend unavailable: " + backend.unavailableReason());
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        if (!mx.isThreadAllocatedMemorySupported() || !mx.isThreadAllocatedMemoryEnabled()) {
            throw new IllegalStateException("this JVM does not count allocated bytes per thread (ThreadMXBean)");
        }
        String device = Cuda.deviceInfo(0).summary();
        System.out.printf("LatentMoE CUDA graph replay: preset %s (%s), bf16 weights, device %s%n",
                o.preset(), Shapes.describe(o.config()), device);

        long t0 = System.nanoTime();
        Progress progress = new Progress("building seeded random weights", o.config().numExperts());
        MoeLayer built = MoeLayer.random(o.config(), DType.BF16, o.seed(), backend, e -> progress.step(e + 1));
        progress.done(String.format(Locale.ROOT, "%.1f s incl. upload", (System.nanoTime() - t0) / 1e9));

        List<HostRow> host = new ArrayList<>();
        List<GpuRow> gpu = new ArrayList<>();
        double captureMs;
        try (MoeLayer layer = built;
             CudaGraphedLayer graphs = CudaGraphedLayer.of(layer, o.buckets(), null);
             DeviceArena dev = DeviceArena.create("graph-bench", graphs.stream());
             HostArena hostArena = HostArena.shared("graph-bench-host");
             CudaStream captureStream = CudaStream.create(0)) {
            CudaLayerKernels k = (CudaLayerKernels) layer.kernels();
            CudaStream s = graphs.stream();
            long c0 = System.nanoTime();
            graphs.captureAll();
            captureMs = (System.nanoTime() - c0) / 1e6;
            System.out.printf(Locale.ROOT, "captured %d graphs (buckets %s) in %.1f ms; static buffers %.1f MB%n",
                    graphs.buckets().size(), Arrays.toString(o.buckets()), captureMs, graphs.deviceBytes() / 1e6);

            int d = o.config().hiddenSize();
            Tensor[] xs = new Tensor[o.tokens().size()];
            for (int i = 0; i < xs.length; i++) {
                int t = o.tokens().get(i);
                xs[i] = dev.allocateTensor(DType.BF16, t, d);
                Cuda.fillUniformAsync(xs[i], o.seed() * 1_000_003L + t, -1f, 1f, s);
            }
            host.addAll(hostTimes(o, graphs, k, dev, captureStream, mx));
            for (int i = 0; i < xs.length; i++) gpu.add(gpuTimes(o, graphs, k, xs[i], dev, hostArena));
        }

        System.out.println();
        System.out.print(hostTable(host, o));
        System.out.println();
        System.out.print(gpuTable(gpu, o));
        if (o.json() != null) {
            ReportFile.json(Path.of(o.json()), json(host, gpu, o, device, captureMs));
            System.out.println("wrote " + o.json());
        }
        String bad = failures(host, gpu);
        if (bad != null) throw new IllegalStateException(bad);
    }

    /** The host-time variants (see the class comment). */
    private static List<HostRow> hostTimes(Options o, CudaGraphedLayer graphs, CudaLayerKernels k, DeviceArena dev,
                                           CudaStream captureStream, com.sun.management.ThreadMXBean mx) {
        CudaStream s = graphs.stream();
        MemorySegment streamHandle = s.handle();
        int d = o.config().hiddenSize();
        List<HostRow> rows = new ArrayList<>();
        rows.add(hostTime("ffm_downcall", "FFM downcall floor (lmoe_cuda_abi_version)", false, o, s, mx,
                GpuCeilings::bareDowncall));

        MemorySegment tiny = dev.allocate(256);
        s.synchronize();
        try (CudaGraph trivial = CudaGraph.capture(captureStream, () -> Cuda.memsetAsync(tiny, 0, 256, captureStream))) {
            MemorySegment exec = trivial.handle();
            rows.add(hostTime("trivial_raw_launch", "trivial graph: raw lmoe_cuda_graph_launch downcall", false, o, s, mx,
                    () -> GpuCeilings.rawGraphLaunch(exec, streamHandle)));
            rows.add(hostTime("trivial_graph_launch", "trivial graph: CudaGraph.launch", true, o, s, mx,
                    () -> trivial.launch(s)));
        }

        CudaGraphedLayer.Bucket b1 = graphs.bucket(1);
        MemorySegment exec1 = b1.graphHandle();
        Tensor x1 = dev.allocateTensor(DType.BF16, 1, d), out1 = dev.allocateTensor(DType.BF16, 1, d);
        Cuda.fillUniformAsync(x1, o.seed(), -1f, 1f, s);
        rows.add(hostTime("layer_raw_launch", "layer T=1: raw lmoe_cuda_graph_launch downcall", false, o, s, mx,
                () -> GpuCeilings.rawGraphLaunch(exec1, streamHandle)));
        rows.add(hostTime("layer_replay", "layer T=1: Bucket.replay()", true, o, s, mx, b1::replay));
        rows.add(hostTime("layer_graphed_forward", "layer T=1: CudaGraphedLayer.forwardAsync (copy in, replay, copy out)", true,
                o, s, mx, () -> graphs.forwardAsync(x1, out1)));
        rows.add(hostTime("layer_plain_forward", "layer T=1: CudaLayerKernels.forwardAsync, no graph", false, o, s, mx,
                () -> k.forwardAsync(x1, null, null, out1, s)));
        return rows;
    }

    static final int ALLOC_ROUNDS = 4;

    /** Per-call host time of {@code call} in bursts, the stream synchronised (untimed) between bursts. */
    static HostRow hostTime(String key, String what, boolean mustNotAllocate, Options o, CudaStream s,
                            com.sun.management.ThreadMXBean mx, Runnable call) {
        int burst = o.burst();
        int warmBursts = (Math.max(MIN_WARMUP_CALLS, o.calls() / 4) + burst - 1) / burst;
        for (int b = 0; b < warmBursts; b++) {
            for (int i = 0; i < burst; i++) call.run();
            s.synchronize();
        }
        int bursts = (o.calls() + burst - 1) / burst;
        long[] ns = new long[bursts];
        // Steady-state allocation: the fewest bytes over ALLOC_ROUNDS equal rounds of the timed
        // bursts (a one-off allocation of the JVM itself, e.g. while JIT-compiling, lands in one
        // round only; a per-call allocation shows in every round).
        long allocated = Long.MAX_VALUE;
        int perRound = Math.max(1, bursts / ALLOC_ROUNDS);
        long roundStart = mx.getCurrentThreadAllocatedBytes();
        for (int b = 0; b < bursts; b++) {
            long t = System.nanoTime();
            for (int i = 0; i < burst; i++) call.run();
            ns[b] = System.nanoTime() - t;
            s.synchronize();
            if ((b + 1) % perRound == 0 || b + 1 == bursts) {
                long now = mx.getCurrentThreadAllocatedBytes();
                int inRound = (b + 1) % perRound == 0 ? perRound : (b + 1) % perRound;
                if (inRound == perRound) allocated = Math.min(allocated, (now - roundStart) * bursts / perRound);
                roundStart = now;
            }
        }
        if (allocated == Long.MAX_VALUE) allocated = 0;
        long calls = (long) bursts * burst;
        double[] perCallUs = new double[bursts];
        long total = 0;
        for (int b = 0; b < bursts; b++) {
            perCallUs[b] = ns[b] / 1e3 / burst;
            total += ns[b];
        }
        HostRow r = new HostRow(key, what, Stats.median(perCallUs), total / 1e3 / calls,
                Arrays.stream(perCallUs).min().orElse(Double.NaN), calls, (double) allocated / calls, mustNotAllocate);
        System.err.printf(Locale.ROOT, "  %-70s median %.3f us/call, %.2f bytes/call%n", what, r.medianUs(), r.allocatedBytesPerCall());
        return r;
    }

    /** GPU time per call for x's T: plain forward, graphed forward, replay alone; and the outputs compared. */
    static GpuRow gpuTimes(Options o, CudaGraphedLayer graphs, CudaLayerKernels k, Tensor x, DeviceArena dev, HostArena host) {
        CudaStream s = graphs.stream();
        int t = (int) x.dim(0), d = o.config().hiddenSize();
        CudaGraphedLayer.Bucket b = graphs.bucket(t);
        Tensor plainOut = dev.allocateTensor(DType.BF16, t, d), graphOut = dev.allocateTensor(DType.BF16, t, d);
        k.forwardAsync(x, null, null, plainOut, s);
        graphs.forwardAsync(x, graphOut);
        long bytes = plainOut.byteSize();
        boolean equal = MemorySegment.mismatch(CudaCopies.toHost(plainOut, host).segment(), 0, bytes,
                CudaCopies.toHost(graphOut, host).segment(), 0, bytes) == -1;
        try (CudaEvent start = CudaEvent.create(); CudaEvent end = CudaEvent.create()) {
            double plain = gpuMsPerCall(s, o.reps(), start, end, () -> k.forwardAsync(x, null, null, plainOut, s));
            double graphed = gpuMsPerCall(s, o.reps(), start, end, () -> graphs.forwardAsync(x, graphOut));
            double replay = gpuMsPerCall(s, o.reps(), start, end, b::replay);
            GpuRow r = new GpuRow(t, b.tokens(), b.path(), plain, graphed, replay, equal);
            System.err.printf(Locale.ROOT, "  T=%d: no graph %.4f ms, graphed %.4f ms, replay %.4f ms, %s%n", t, plain, graphed,
                    replay, equal ? "bitwise equal" : "OUTPUTS DIFFER");
            return r;
        }
    }

    /** Median over batches of ms per call, {@code reps} calls back to back between two events. */
    private static double gpuMsPerCall(CudaStream s, int reps, CudaEvent start, CudaEvent end, Runnable call) {
        for (int i = 0; i < 3; i++) call.run();
        double[] ms = new double[GPU_BATCHES];
        for (int b = 0; b < GPU_BATCHES; b++) {
            start.record(s);
            for (int i = 0; i < reps; i++) call.run();
            end.record(s);
            end.synchronize();
            ms[b] = start.elapsedMillisTo(end) / reps;
        }
        return Stats.median(ms);
    }

    private static HostRow row(List<HostRow> rows, String key) {
        for (HostRow r : rows) if (r.key().equals(key)) return r;
        return null;
    }

    static String hostTable(List<HostRow> rows, Options o) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "host time per call: bursts of %d, %d calls each after warm-up; the stream is "
                + "synchronised between bursts, untimed%n", o.burst(), rows.isEmpty() ? 0 : rows.get(0).calls()));
        Table t = new Table().column("call", "%-72s", "%-72s").column("median_us", "%10s", "%10.3f")
                .column("mean_us", "%10s", "%10.3f").column("min_us", "%10s", "%10.3f").column("bytes/call", "%11s", "%11.2f");
        for (HostRow r : rows) t.row(r.what(), r.medianUs(), r.meanUs(), r.minUs(), r.allocatedBytesPerCall());
        sb.append(t);
        HostRow trivialRaw = row(rows, "trivial_raw_launch"), trivial = row(rows, "trivial_graph_launch");
        HostRow raw = row(rows, "layer_raw_launch"), replay = row(rows, "layer_replay"), fwd = row(rows, "layer_graphed_forward");
        if (trivialRaw != null && trivial != null && raw != null && replay != null && fwd != null) {
            sb.append(String.format(Locale.ROOT, "Java overhead over the raw launch (medians): CudaGraph.launch %+.3f us, "
                            + "Bucket.replay %+.3f us, forwardAsync (2 copies more) %+.3f us%n",
                    trivial.medianUs() - trivialRaw.medianUs(), replay.medianUs() - raw.medianUs(), fwd.medianUs() - raw.medianUs()));
            sb.append(String.format(Locale.ROOT, "target <= %.1f us per replay call: Bucket.replay %.3f us (%s); raw launch alone %.3f us%n",
                    TARGET_US, replay.medianUs(), replay.medianUs() <= TARGET_US ? "met" : "NOT met", raw.medianUs()));
        }
        boolean clean = rows.stream().filter(HostRow::mustNotAllocate).allMatch(r -> r.allocatedBytesPerCall() == 0);
        sb.append(clean ? "allocation: 0 bytes per call on every graph path\n"
                : "allocation: a graph path ALLOCATES (see bytes/call)\n");
        return sb.toString();
    }

    static String gpuTable(List<GpuRow> rows, Options o) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "GPU time per layer call: CUDA events around %d calls back to back, median of %d batches%n",
                o.reps(), GPU_BATCHES));
        Table t = new Table().column("tokens", "%7s", "%7d").column("bucket", "%7s", "%7d").column("path", "%7s", "%7s")
                .column("no_graph_ms", "%12s", "%12.4f").column("graphed_ms", "%12s", "%12.4f").column("replay_ms", "%12s", "%12.4f")
                .column("saved", "%10s", "%9.1f%%").column("bitwise", "%8s", "%8s");
        for (GpuRow r : rows) {
            t.row(r.tokens(), r.bucket(), r.path(), r.plainMs(), r.graphedMs(), r.replayMs(), 100 * (1 - r.graphedMs() / r.plainMs()),
                    r.bitwiseEqual() ? "equal" : "DIFFER");
        }
        return sb.append(t).toString();
    }

    /** One line naming what failed (a graph path allocating, outputs differing), or null. */
    static String failures(List<HostRow> host, List<GpuRow> gpu) {
        List<String> bad = new ArrayList<>();
        for (HostRow r : host) {
            if (r.mustNotAllocate() && r.allocatedBytesPerCall() != 0) {
                bad.add(String.format(Locale.ROOT, "%s allocates %.2f bytes per call", r.key(), r.allocatedBytesPerCall()));
            }
        }
        for (GpuRow r : gpu) {
            if (!r.bitwiseEqual()) bad.add("T=" + r.tokens() + ": graphed output differs from the plain forward");
        }
        return bad.isEmpty() ? null : String.join("; ", bad);
    }

    /**
     * One JSON object: {@code device}, {@code preset}, {@code shape}, {@code weights}, {@code burst},
     * {@code capture_ms}, {@code target_us}; {@code host}: per variant {@code key}, {@code what},
     * {@code median_us}, {@code mean_us}, {@code min_us}, {@code calls}, {@code allocated_bytes_per_call},
     * {@code must_not_allocate}; {@code java_overhead_us} (over the raw launch: {@code graph_launch},
     * {@code replay}, {@code graphed_forward}); {@code replay_target_met}; {@code gpu}: per T
     * {@code tokens}, {@code bucket}, {@code path}, {@code no_graph_ms}, {@code graphed_ms},
     * {@code replay_ms}, {@code bitwise_equal}.
     */
    static JsonRow json(List<HostRow> host, List<GpuRow> gpu, Options o, String device, double captureMs) {
        List<JsonRow> hostRows = new ArrayList<>();
        for (HostRow r : host) {
            hostRows.add(new JsonRow().with("key", r.key()).with("what", r.what()).num("median_us", r.medianUs(), 6)
                    .num("mean_us", r.meanUs(), 6).num("min_us", r.minUs(), 6).with("calls", r.calls())
                    .num("allocated_bytes_per_call", r.allocatedBytesPerCall(), 6).with("must_not_allocate", r.mustNotAllocate()));
        }
        HostRow trivialRaw = row(host, "trivial_raw_launch"), trivial = row(host, "trivial_graph_launch");
        HostRow raw = row(host, "layer_raw_launch"), replay = row(host, "layer_replay"), fwd = row(host, "layer_graphed_forward");
        JsonRow overhead = new JsonRow()
                .num("graph_launch", trivial == null || trivialRaw == null ? Double.NaN : trivial.medianUs() - trivialRaw.medianUs(), 6)
                .num("replay", replay == null || raw == null ? Double.NaN : replay.medianUs() - raw.medianUs(), 6)
                .num("graphed_forward", fwd == null || raw == null ? Double.NaN : fwd.medianUs() - raw.medianUs(), 6);
        List<JsonRow> gpuRows = new ArrayList<>();
        for (GpuRow r : gpu) {
            gpuRows.add(new JsonRow().with("tokens", r.tokens()).with("bucket", r.bucket()).with("path", r.path())
                    .num("no_graph_ms", r.plainMs(), 6).num("graphed_ms", r.graphedMs(), 6).num("replay_ms", r.replayMs(), 6)
                    .with("bitwise_equal", r.bitwiseEqual()));
        }
        return new JsonRow().with("device", device).with("preset", o.preset()).with("shape", Shapes.describe(o.config()))
                .with("weights", "seeded random bf16 (seed " + o.seed() + ")").with("burst", o.burst())
                .num("capture_ms", captureMs, 6).num("target_us", TARGET_US, 6).with("host", hostRows)
                .with("java_overhead_us", overhead).with("replay_target_met", replay == null ? null : replay.medianUs() <= TARGET_US)
                .with("gpu", gpuRows);
    }
}
