package dev.latentmoe.kernels.spi;

import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Argument checks shared by every backend, run in Java before any native call: open arenas usable
 * from this thread, devices, dtypes, shapes, a non-empty batch, finite inputs and expert ids in
 * range. Backends implement the {@code run*} methods on already-checked arguments.
 *
 * <p>Value checks (finite x, expert ids in range, expert offsets, the slot permutation) read the
 * tensors and therefore run only on host tensors; device tensors (the CUDA backend) cannot be read
 * from Java, so for them the backend's native code is responsible for rejecting bad values.
 * Structural checks (open arenas, device, dtype, shape, T >= 1) run for every backend.
 */
public abstract class CheckedLayerKernels implements LayerKernels {
    protected final MoeConfig config;
    protected final MoeWeights weights;
    private final MemoryArena[] weightOwners;
    private final Device device;
    private final DType activationDType;
    private final DType sortedDType;
    private volatile boolean closed;

    /** F32 activations and sorted rows (the CPU backend). */
    protected CheckedLayerKernels(MoeWeights weights, Device device) {
        this(weights, device, DType.F32, DType.F32);
    }

    /**
     * @param activationDType dtype of x and out
     * @param sortedDType dtype of latentSorted and expertOutSorted
     */
    protected CheckedLayerKernels(MoeWeights weights, Device device, DType activationDType, DType sortedDType) {
        this.config = weights.config();
        this.weights = weights;
        this.weightOwners = weights.owners().toArray(new MemoryArena[0]);
        this.device = device;
        this.activationDType = activationDType;
        this.sortedDType = sortedDType;
    }

    @Override public final MoeConfig config() { return config; }

    /** A {@code lmoe_config} struct holding {@code c}, allocated in {@code arena}. */
    protected static MemorySegment configStruct(MoeConfig c, MemoryArena arena) {
        MemorySegment cfg = arena.allocate(lmoe_config.sizeof());
        lmoe_config.hidden_size(cfg, c.hiddenSize());
        lmoe_config.latent_size(cfg, c.latentSize());
        lmoe_config.num_experts(cfg, c.numExperts());
        lmoe_config.top_k(cfg, c.topK());
        lmoe_config.expert_intermediate_size(cfg, c.intermediateSize());
        lmoe_config.shared_intermediate_size(cfg, c.sharedIntermediateSize());
        lmoe_config.activation(cfg, c.activation().code());
        lmoe_config.scoring(cfg, c.scoring().code());
        lmoe_config.norm_topk_prob(cfg, c.normTopkProb() ? 1 : 0);
        lmoe_config.routed_scaling_factor(cfg, c.routedScalingFactor());
        return cfg;
    }

    @Override public final DType activationDType() { return activationDType; }

    @Override public final DType sortedDType() { return sortedDType; }

    @Override public final Device device() { return device; }

    protected abstract void runRouterTopK(long tokens, Tensor x, Tensor topkIds, Tensor topkWeights);

    protected abstract void runDispatch(long tokens, Tensor x, Tensor topkIds, Tensor expertOffsets,
                                        Tensor sortedRowOfSlot, Tensor latentSorted);

    protected abstract void runExperts(long tokens, Tensor expertOffsets, Tensor latentSorted, Tensor expertOutSorted);

    protected abstract void runCombine(long tokens, Tensor x, Tensor topkWeights, Tensor sortedRowOfSlot,
                                       Tensor expertOutSorted, Tensor out);

    /** topkIds and topkWeights are both null when the caller does not want the routing. */
    protected abstract void runForward(long tokens, Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out);

    protected abstract void release();

    @Override
    public final void routerTopK(Tensor x, Tensor topkIds, Tensor topkWeights) {
        long t = checkInput(x);
        checkRouting(t, topkIds, topkWeights);
        runRouterTopK(t, x, topkIds, topkWeights);
    }

    @Override
    public final void dispatch(Tensor x, Tensor topkIds, Tensor expertOffsets, Tensor sortedRowOfSlot, Tensor latentSorted) {
        long t = checkInput(x);
        long slots = t * config.topK();
        check("topkIds", topkIds, DType.I32, t, config.topK());
        checkExpertIds(topkIds);
        check("expertOffsets", expertOffsets, DType.I32, config.numExperts() + 1);
        check("sortedRowOfSlot", sortedRowOfSlot, DType.I32, slots);
        check("latentSorted", latentSorted, sortedDType, slots, config.expertWidth());
        runDispatch(t, x, topkIds, expertOffsets, sortedRowOfSlot, latentSorted);
    }

    @Override
    public final void experts(Tensor expertOffsets, Tensor latentSorted, Tensor expertOutSorted) {
        ensureOpen();
        check("latentSorted", latentSorted, sortedDType, -1, config.expertWidth());
        long slots = latentSorted.dim(0);
        if (slots == 0 || slots % config.topK() != 0) {
            throw new IllegalArgumentException("latentSorted has " + slots + " rows; expected T·K rows with T >= 1, K = " + config.topK());
        }
        check("expertOffsets", expertOffsets, DType.I32, config.numExperts() + 1);
        check("expertOutSorted", expertOutSorted, sortedDType, slots, config.expertWidth());
        checkOffsets(expertOffsets, slots);
        runExperts(slots / config.topK(), expertOffsets, latentSorted, expertOutSorted);
    }

    @Override
    public final void combine(Tensor x, Tensor topkWeights, Tensor sortedRowOfSlot, Tensor expertOutSorted, Tensor out) {
        long t = checkInput(x);
        long slots = t * config.topK();
        check("topkWeights", topkWeights, DType.F32, t, config.topK());
        check("sortedRowOfSlot", sortedRowOfSlot, DType.I32, slots);
        check("expertOutSorted", expertOutSorted, sortedDType, slots, config.expertWidth());
        checkOutput(t, out);
        checkPermutation(sortedRowOfSlot, slots);
        runCombine(t, x, topkWeights, sortedRowOfSlot, expertOutSorted, out);
    }

    @Override
    public final void forward(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out) {
        runForward(checkForward(x, topkIds, topkWeights, out), x, topkIds, topkWeights, out);
    }

    /**
     * The checks of {@link #forward}, for backends that offer more entry points to the whole layer
     * (e.g. an asynchronous one on a caller's stream); returns T.
     */
    protected final long checkForward(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out) {
        long t = checkInput(x);
        if (topkIds != null || topkWeights != null) checkRouting(t, topkIds, topkWeights);
        checkOutput(t, out);
        return t;
    }

    @Override
    public final void close() {
        if (closed) return;
        closed = true;
        release();
    }

    protected final void ensureOpen() {
        if (closed) throw new IllegalStateException("layer kernels are closed");
        for (int i = 0; i < weightOwners.length; i++) {   // indexed: no iterator on the call path
            MemoryArena a = weightOwners[i];
            if (!a.isOpen()) throw new IllegalStateException("the weights' arena '" + a.name() + "' is closed");
        }
    }

    private long checkInput(Tensor x) {
        ensureOpen();
        if (x == null) throw new IllegalArgumentException("input x is null");
        x.checkAccessible();
        if (x.rank() != 2) throw new IllegalArgumentException("input x must be [T, " + config.hiddenSize() + "], got shape " + Arrays.toString(x.shape()));
        long t = x.dim(0);
        if (t == 0) throw new IllegalArgumentException("empty batch: input x has T = 0 tokens");
        check("x", x, activationDType, t, config.hiddenSize());
        if (x.device().isHost() && x.hasNonFinite()) {
            throw new IllegalArgumentException("input x contains NaN or Inf; the layer rejects non-finite inputs");
        }
        return t;
    }

    private void checkRouting(long t, Tensor ids, Tensor w) {
        check("topkIds", ids, DType.I32, t, config.topK());
        check("topkWeights", w, DType.F32, t, config.topK());
    }

    private void checkOutput(long t, Tensor out) {
        check("out", out, activationDType, t, config.hiddenSize());
    }

    /** {@link #check(String, Tensor, DType, long...)} for rank 1, without a varargs array per call. */
    protected final void check(String name, Tensor t, DType dtype, long d0) {
        checkCommon(name, t, dtype);
        if (t.rank() != 1 || (d0 >= 0 && t.dim(0) != d0)) shapeMismatch(name, t, new long[] {d0});
    }

    /** {@link #check(String, Tensor, DType, long...)} for rank 2, without a varargs array per call. */
    protected final void check(String name, Tensor t, DType dtype, long d0, long d1) {
        checkCommon(name, t, dtype);
        if (t.rank() != 2 || (d0 >= 0 && t.dim(0) != d0) || (d1 >= 0 && t.dim(1) != d1)) {
            shapeMismatch(name, t, new long[] {d0, d1});
        }
    }

    private void checkCommon(String name, Tensor t, DType dtype) {
        if (t == null) throw new IllegalArgumentException(name + " is null");
        t.checkAccessible();
        if (t.dtype() != dtype) throw new IllegalArgumentException(name + " must be " + dtype + ", got " + t.dtype());
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(name + " is on " + t.device() + " but this backend runs on " + device);
        }
    }

    private static void shapeMismatch(String name, Tensor t, long[] shape) {
        throw new IllegalArgumentException(name + " must have shape " + Arrays.toString(shape).replace("-1", "*")
                + ", got " + Arrays.toString(t.shape()));
    }

    /** dtype, device and exact shape; a -1 dimension matches anything. */
    protected final void check(String name, Tensor t, DType dtype, long... shape) {
        if (t == null) throw new IllegalArgumentException(name + " is null");
        t.checkAccessible();
        if (t.dtype() != dtype) throw new IllegalArgumentException(name + " must be " + dtype + ", got " + t.dtype());
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(name + " is on " + t.device() + " but this backend runs on " + device);
        }
        boolean ok = t.rank() == shape.length;
        for (int i = 0; ok && i < shape.length; i++) ok = shape[i] < 0 || t.dim(i) == shape[i];
        if (!ok) {
            throw new IllegalArgumentException(name + " must have shape " + Arrays.toString(shape).replace("-1", "*")
                    + ", got " + Arrays.toString(t.shape()));
        }
    }

    private void checkExpertIds(Tensor ids) {
        if (!ids.device().isHost()) return;
        int n = config.numExperts();
        int k = config.topK();
        for (long i = 0; i < ids.numel(); i++) {
            int e = ids.getInt(i);
            if (e < 0 || e >= n) {
                throw new IllegalArgumentException("expert id " + e + " at token " + (i / k) + ", k " + (i % k)
                        + " is out of range [0, " + n + ")");
            }
        }
    }

    private void checkOffsets(Tensor offsets, long slots) {
        if (!offsets.device().isHost()) return;
        int prev = 0;
        if (offsets.getInt(0) != 0) throw new IllegalArgumentException("expertOffsets[0] must be 0");
        for (int e = 1; e <= config.numExperts(); e++) {
            int o = offsets.getInt(e);
            if (o < prev) throw new IllegalArgumentException("expertOffsets must be non-decreasing (at expert " + e + ")");
            prev = o;
        }
        if (prev != slots) throw new IllegalArgumentException("expertOffsets[N] = " + prev + " but there are " + slots + " rows");
    }

    private void checkPermutation(Tensor rows, long slots) {
        if (!rows.device().isHost()) return;
        for (long i = 0; i < slots; i++) {
            int r = rows.getInt(i);
            if (r < 0 || r >= slots) throw new IllegalArgumentException("sortedRowOfSlot[" + i + "] = " + r + " is out of range [0, " + slots + ")");
        }
    }
}
