package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.spi.CallGuard;
import dev.latentmoe.kernels.spi.LayerChecks;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaGraph;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/**
 * A CUDA layer's whole forward pass captured as one CUDA graph per token-count bucket and replayed
 * from Java with a few native calls and no Java allocation: T tokens run, zero-padded, in the
 * smallest bucket of at least T, over static device buffers shared by the buckets. The argument
 * checks are the layer's own ({@link LayerChecks}). How buckets, padding, exactness, cost and
 * lifetime work: the package documentation.
 */
public final class CudaGraphedLayer implements AutoCloseable {
    private final CudaLayerKernels kernels;
    private final LayerChecks checks;
    private final MoeConfig config;
    private final Device device;
    private final int deviceId;
    private final CudaStream stream;
    /** Captures happen here, never on {@link #stream}: work other threads enqueue there must not join a capture. */
    private final CudaStream captureStream;
    private final DeviceArena arena;
    private final int maxTokens;
    private final long rowBytes;
    private final long routingRowBytes;
    private final MemorySegment inputBytes;
    private final MemorySegment outputBytes;
    private final MemorySegment topkIdsBytes;
    private final MemorySegment topkWeightsBytes;
    private final MemorySegment workspace;
    private final Bucket[] buckets;
    private final List<Bucket> bucketList;
    private final Object lock = new Object();
    /** Every row of the static input at or after this one is zero. Guarded by {@link #lock}. */
    private long dirtyRows;
    /** close() waits for the calls in flight before it frees the graphs and buffers they use. */
    private final CallGuard guard = new CallGuard("graphed layer is closed");

    /** Largest token count that gets a bucket of its own in {@link #defaultBuckets}. */
    public static final int EXACT_BUCKETS_UP_TO = 16;

    /**
     * Graphs of {@code layer} (on the CUDA backend) for 1..{@code maxTokens} tokens in the buckets of
     * {@link #defaultBuckets}, replayed on the backend's stream.
     */
    public static CudaGraphedLayer of(MoeLayer layer, int maxTokens) {
        return of(cudaKernels(layer), defaultBuckets(maxTokens), null);
    }

    /** Graphs of {@code layer} for the given bucket sizes, replayed on {@code stream} (null: the backend's stream). */
    public static CudaGraphedLayer of(MoeLayer layer, int[] buckets, CudaStream stream) {
        return of(cudaKernels(layer), buckets, stream);
    }

    /**
     * Graphs over {@code kernels} for the given bucket sizes (any order, duplicates ignored, each
     * &ge; 1), replayed on {@code stream} (null: the backend's stream). Allocates the static buffers;
     * captures nothing yet.
     *
     * @throws IllegalArgumentException for a bad bucket list, a stream of another device, or a bucket
     *         the layer cannot run (T·K over the library's limit)
     * @throws IllegalStateException when the kernels or the stream are closed
     */
    public static CudaGraphedLayer of(CudaLayerKernels kernels, int[] buckets, CudaStream stream) {
        if (kernels == null) throw new IllegalArgumentException("layer kernels are null");
        int[] sizes = normalise(buckets);
        kernels.enterUse();   // the kernels' structs are read here: their close waits
        try {
            kernels.checkOpen();
            return new CudaGraphedLayer(kernels, sizes, stream == null ? kernels.stream() : stream);
        } finally {
            kernels.exitUse();
        }
    }

    /**
     * Every T from 1 to {@value #EXACT_BUCKETS_UP_TO} (the kernels for few tokens round differently
     * for different T, see the class comment), then the powers of two below {@code maxTokens}, then
     * {@code maxTokens}: e.g. 100 gives 1, 2, …, 16, 32, 64, 100.
     */
    public static int[] defaultBuckets(int maxTokens) {
        if (maxTokens < 1) throw new IllegalArgumentException("maxTokens must be >= 1, got " + maxTokens);
        IntStream exact = IntStream.rangeClosed(1, Math.min(maxTokens, EXACT_BUCKETS_UP_TO));
        IntStream powers = IntStream.iterate(2 * EXACT_BUCKETS_UP_TO, p -> p > 0 && p < maxTokens, p -> p << 1);
        return IntStream.concat(IntStream.concat(exact, powers), IntStream.of(maxTokens)).distinct().toArray();
    }

    private static CudaLayerKernels cudaKernels(MoeLayer layer) {
        if (layer == null) throw new IllegalArgumentException("layer is null");
        if (!(layer.kernels() instanceof CudaLayerKernels k)) {
            throw new IllegalArgumentException("CUDA graphs need a layer on the CUDA backend; this layer runs on '"
                    + layer.backend().name() + "'");
        }
        return k;
    }

    private static int[] normalise(int[] buckets) {
        if (buckets == null || buckets.length == 0) throw new IllegalArgumentException("no bucket sizes given");
        int[] s = buckets.clone();
        Arrays.sort(s);
        if (s[0] < 1) throw new IllegalArgumentException("bucket sizes must be >= 1, got " + s[0]);
        return Arrays.stream(s).distinct().toArray();
    }

    private CudaGraphedLayer(CudaLayerKernels kernels, int[] sizes, CudaStream stream) {
        this.kernels = kernels;
        this.checks = kernels.checks();
        this.config = kernels.config();
        this.device = kernels.device();
        this.deviceId = device.id();
        stream.handle(); // open check
        if (stream.device() != deviceId) {
            throw new IllegalArgumentException("stream is on cuda:" + stream.device() + " but the layer runs on " + device);
        }
        this.stream = stream;
        this.maxTokens = sizes[sizes.length - 1];
        int d = config.hiddenSize(), k = config.topK();
        this.rowBytes = (long) d * DType.BF16.byteSize();
        this.routingRowBytes = (long) k * 4; // i32 ids and f32 weights alike

        Cuda.setDevice(deviceId); // the workspace size depends on the current device's SM count
        long ws = 0;
        for (int b : sizes) {
            long need = latentmoe_cuda_h.lmoe_cuda_forward_workspace_bytes(kernels.configStruct(), b);
            if (need < 0) {
                throw new IllegalArgumentException("bucket of " + b + " tokens: the layer cannot run it: "
                        + latentmoe_cuda_h.lastError());
            }
            ws = Math.max(ws, need);
        }
        ws = CudaSteps.workspaceBytes(ws, "lmoe_cuda_forward_workspace_bytes");

        DeviceArena a = DeviceArena.create("cuda-graph-buffers", stream);
        CudaStream cs = null;
        try {
            // New device memory is zeroed: the padding rows start as zeros.
            Tensor input = a.allocateTensor(DType.BF16, maxTokens, d);
            Tensor output = a.allocateTensor(DType.BF16, maxTokens, d);
            Tensor ids = a.allocateTensor(DType.I32, maxTokens, k);
            Tensor weights = a.allocateTensor(DType.F32, maxTokens, k);
            this.workspace = a.allocate(ws); // cudaMallocAsync: 256-byte aligned, as the ABI asks
            this.inputBytes = input.segment();
            this.outputBytes = output.segment();
            this.topkIdsBytes = ids.segment();
            this.topkWeightsBytes = weights.segment();
            this.buckets = new Bucket[sizes.length];
            for (int i = 0; i < sizes.length; i++) {
                int b = sizes[i], below = i == 0 ? 0 : sizes[i - 1];
                buckets[i] = new Bucket(b, below, input.rows(0, b), output.rows(0, b), ids.rows(0, b), weights.rows(0, b),
                        inputBytes.asSlice(below * rowBytes));
            }
            this.bucketList = List.of(buckets);
            cs = CudaStream.create(deviceId);
            this.captureStream = cs;
            stream.synchronize(); // allocation errors surface here, not at the first call
            this.arena = a;
            kernels.attach(this);
        } catch (RuntimeException | Error e) {
            try {
                if (cs != null) cs.close();
            } finally {
                a.close();
            }
            throw e;
        }
    }

    /** The layer's shape. */
    public MoeConfig config() { return config; }

    /** The stream every copy and replay of this object is enqueued on. */
    public CudaStream stream() { return stream; }

    /** The largest token count: the last bucket. */
    public int maxTokens() { return maxTokens; }

    /** The buckets, ascending. */
    public List<Bucket> buckets() { return bucketList; }

    /** The smallest bucket holding {@code tokens} (1 ≤ tokens ≤ {@link #maxTokens()}). */
    public Bucket bucket(long tokens) {
        if (tokens < 1 || tokens > maxTokens) {
            throw new IllegalArgumentException("T = " + tokens + " is outside the buckets of this graphed layer [1, " + maxTokens + "]");
        }
        for (Bucket b : buckets) { // array: no iterator
            if (b.tokens >= tokens) return b;
        }
        throw new AssertionError("the last bucket is maxTokens");
    }

    /** Device bytes of the static buffers and workspace. */
    public long deviceBytes() { return arena.bytesHeld(); }

    public boolean isOpen() { return !guard.isClosed(); }

    /** Captures every bucket not captured yet (host work; nothing runs on the GPU). */
    public void captureAll() {
        guard.enter();
        try {
            synchronized (lock) {
                ensureOpen();
                for (Bucket b : buckets) {
                    if (b.graph == null) captureLocked(b);
                }
            }
        } finally {
            guard.exit();
        }
    }

    /**
     * Enqueues the layer for x [T, d] bf16 into out [T, d] bf16 on {@link #stream()}: T rows of x into
     * the static input, the graph of T's bucket, T rows of the output into {@code out}. No host
     * synchronisation; x must hold its values when the stream reaches the copy, and out is complete
     * once the stream has run past it (synchronise, or order other streams after an event).
     */
    public void forwardAsync(Tensor x, Tensor out) { enqueue(x, out, null, null); }

    /** {@link #forwardAsync(Tensor, Tensor)} that also copies T rows of the routing (ids [T, K] i32, weights [T, K] f32). */
    public void forwardAsync(Tensor x, Tensor out, Routing routing) {
        if (routing == null) throw new IllegalArgumentException("routing is null");
        enqueue(x, out, routing.expertIds(), routing.weights());
    }

    /** {@link #forwardAsync(Tensor, Tensor)}, then waits for {@link #stream()} (raising any asynchronous CUDA error). */
    public void forward(Tensor x, Tensor out) {
        forwardAsync(x, out);
        stream.synchronize();
    }

    private void enqueue(Tensor x, Tensor out, Tensor ids, Tensor weights) {
        guard.enter();
        try {
            enqueueChecked(x, out, ids, weights);
        } finally {
            guard.exit();
        }
    }

    private void enqueueChecked(Tensor x, Tensor out, Tensor ids, Tensor weights) {
        ensureOpen();
        long t = checks.input(x);
        if (t > maxTokens) {
            throw new IllegalArgumentException("x has T = " + t + " tokens; the largest bucket of this graphed layer is " + maxTokens);
        }
        checks.output(t, out);
        // The copies must not land in (or read from) what they overwrite: the static input, or the output being copied.
        checkNotStatic("x", x, inputBytes, "input");
        checkNotStatic("out", out, inputBytes, "input");
        checkNotStatic("out", out, outputBytes, "output");
        if (ids != null) checks.routing(t, ids, weights);
        Bucket b = bucket(t);
        long self = stream.handle().address();
        CudaSteps.orderAfter(stream, x, self);
        CudaSteps.orderAfter(stream, out, self);
        CudaSteps.orderAfter(stream, ids, self);
        CudaSteps.orderAfter(stream, weights, self);
        synchronized (lock) {
            ensureOpen();
            if (b.graph == null) captureLocked(b);
            setDevice();
            MemorySegment s = stream.handle();
            if (dirtyRows > t) {
                // Rows [below, dirtyRows) still hold an earlier, larger call's rows; [below, t) is overwritten next.
                CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_memset_async(b.padding, 0, (dirtyRows - b.below) * rowBytes, s),
                        "lmoe_cuda_memset_async (zeroing padding rows)");
                dirtyRows = b.below;
            }
            dirtyRows = Math.max(dirtyRows, t);
            CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(inputBytes, x.segment(), t * rowBytes, s),
                    "lmoe_cuda_memcpy_d2d_async (x into the graph's input)");
            b.graph.launch(stream);
            CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(out.segment(), outputBytes, t * rowBytes, s),
                    "lmoe_cuda_memcpy_d2d_async (the graph's output into out)");
            if (ids != null) {
                CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(ids.segment(), topkIdsBytes, t * routingRowBytes, s),
                        "lmoe_cuda_memcpy_d2d_async (topk ids)");
                CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(weights.segment(), topkWeightsBytes, t * routingRowBytes, s),
                        "lmoe_cuda_memcpy_d2d_async (topk weights)");
            }
        }
    }

    /** Records bucket {@code b}'s graph on the capture stream. Called with {@link #lock} held. */
    private void captureLocked(Bucket b) {
        setDevice();
        MemorySegment cfg = kernels.configStruct(), wts = kernels.weightsStruct();
        long tokens = b.tokens;
        MemorySegment cs = captureStream.handle();
        int path = latentmoe_cuda_h.lmoe_cuda_forward_path(cfg, wts, inputBytes, tokens);
        b.graph = CudaGraph.capture(captureStream, () -> Cuda.check(
                latentmoe_cuda_h.lmoe_cuda_forward(cfg, wts, inputBytes, tokens, topkIdsBytes, topkWeightsBytes,
                        workspace, workspace.byteSize(), outputBytes, cs),
                "lmoe_cuda_forward (capturing the graph of " + tokens + " tokens)"));
        b.path = path;
    }

    private void ensureOpen() {
        guard.ensureOpen();
        kernels.checkOpen();
    }

    private void setDevice() {
        // Not Cuda.setDevice: its message is built per call.
        CudaSteps.check(latentmoe_cuda_h.lmoe_cuda_set_device(deviceId), "lmoe_cuda_set_device");
    }

    /** Refuses a caller tensor that overlaps a static buffer the call writes or copies from. */
    private void checkNotStatic(String name, Tensor t, MemorySegment staticBytes, String which) {
        long a = t.segment().address(), s = staticBytes.address();
        if (a < s + staticBytes.byteSize() && s < a + t.byteSize()) {
            throw new IllegalArgumentException(name + " overlaps the graph's static " + which
                    + "; to use the static buffers directly, write Bucket.input() and call Bucket.replay()");
        }
    }

    /**
     * Waits for the calls in flight on other threads (their enqueues), then frees the graphs, the
     * static buffers (after the replays already enqueued on {@link #stream()}) and the capture
     * stream; idempotent. Calls that start after close() began throw {@link IllegalStateException}.
     * Tensors from {@link Bucket#input()} etc. are unusable after.
     */
    @Override
    public void close() {
        guard.close(this::release);
    }

    private void release() {
        synchronized (lock) {
            RuntimeException first = null;
            for (Bucket b : buckets) {
                try {
                    if (b.graph != null) b.graph.close(); // in-flight launches complete; CUDA frees it afterwards
                } catch (RuntimeException e) {
                    if (first == null) first = e;
                }
            }
            try {
                arena.close(); // frees on the replay stream and waits for it
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
            try {
                captureStream.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
            kernels.detach(this);
            if (first != null) throw first;
        }
    }

    @Override
    public String toString() {
        return "CudaGraphedLayer[buckets " + Arrays.toString(bucketList.stream().mapToInt(Bucket::tokens).toArray())
                + " on " + device + (guard.isClosed() ? ", closed" : "") + "]";
    }

    /**
     * One token count's graph and its views of the static buffers: rows [0, tokens) of the input,
     * output and routing. The views live in a {@link DeviceArena} on {@link CudaGraphedLayer#stream()}.
     */
    public final class Bucket {
        private final int tokens;
        /** The next smaller bucket's size (0 for the first): rows below it are always overwritten by a call in this bucket. */
        private final long below;
        /** The static input from row {@link #below} on: the start of this bucket's padding. */
        private final MemorySegment padding;
        private final Tensor input;
        private final Tensor output;
        private final Tensor topkIds;
        private final Tensor topkWeights;
        private CudaGraph graph; // guarded by lock; null until captured
        private int path = -1;

        private Bucket(int tokens, int below, Tensor input, Tensor output, Tensor topkIds, Tensor topkWeights,
                       MemorySegment padding) {
            this.tokens = tokens;
            this.below = below;
            this.input = input;
            this.output = output;
            this.topkIds = topkIds;
            this.topkWeights = topkWeights;
            this.padding = padding;
        }

        /** The bucket's token count B: its graph runs the layer on B rows. */
        public int tokens() { return tokens; }

        /** The static input x [B, d] bf16 the graph reads (shared with the other buckets' first rows). */
        public Tensor input() { return input; }

        /** The static output [B, d] bf16 the graph writes. */
        public Tensor output() { return output; }

        /** The static routing the graph writes: expert ids [B, K] i32. */
        public Tensor topkIds() { return topkIds; }

        /** The static routing the graph writes: weights [B, K] f32. */
        public Tensor topkWeights() { return topkWeights; }

        public boolean isCaptured() {
            synchronized (lock) {
                return graph != null;
            }
        }

        /** "decode" or "sorted": the path {@code lmoe_cuda_forward} took for B tokens when captured; null before. */
        public String path() {
            synchronized (lock) {
                return CudaLayerKernels.pathName(path);
            }
        }

        /** Captures this bucket's graph now if it is not yet. */
        public void capture() {
            guard.enter();
            try {
                synchronized (lock) {
                    ensureOpen();
                    if (graph == null) captureLocked(this);
                }
            } finally {
                guard.exit();
            }
        }

        /**
         * Enqueues the graph on {@link CudaGraphedLayer#stream()}: the layer on {@link #input()} into
         * {@link #output()}, {@link #topkIds()} and {@link #topkWeights()}. Captures first when needed.
         * Write the input on that stream (or order the writes before it) and read the outputs after it.
         */
        public void replay() {
            guard.enter();
            try {
                synchronized (lock) {
                    ensureOpen();
                    if (graph == null) captureLocked(this);
                    setDevice();
                    // The caller may have written any of this bucket's rows: later calls zero them as padding.
                    if (dirtyRows < tokens) dirtyRows = tokens;
                    graph.launch(stream);
                }
            } finally {
                guard.exit();
            }
        }

        /**
         * The {@code cudaGraphExec_t} (capturing first when needed), for native code that launches it
         * itself on {@link CudaGraphedLayer#stream()} (and for measuring the launch alone). Valid until
         * the graphed layer is closed; such launches bypass the padding bookkeeping.
         */
        public MemorySegment graphHandle() {
            guard.enter();
            try {
                synchronized (lock) {
                    ensureOpen();
                    if (graph == null) captureLocked(this);
                    return graph.handle();
                }
            } finally {
                guard.exit();
            }
        }

        @Override
        public String toString() { return "Bucket[" + tokens + " tokens" + (graph != null ? ", " + path() : "") + "]"; }
    }
}
