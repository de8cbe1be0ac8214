package dev.latentmoe.kernels.spi;

import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

/**
 * The base of every backend's {@link LayerKernels}: each public step runs the {@link LayerChecks}
 * and checks that the kernels and the weights' arenas are open, then calls the backend's
 * {@code run*} method with checked arguments and T.
 *
 * <p>Close safety: every step runs inside a {@link CallGuard} call, so {@link #close()} waits for
 * the calls in flight before {@link #release()} frees anything, and calls that start after
 * {@code close()} began throw {@link IllegalStateException}. A backend that reads the caller's host
 * weights in place during a call also takes a hold on their arenas ({@link #holdWeightArenas()}),
 * so that closing those arenas while the kernels are open ends Java access at once but frees the
 * memory only when the kernels are closed.
 */
public abstract class CheckedLayerKernels implements LayerKernels {
    protected final MoeConfig config;
    protected final MoeWeights weights;
    private final LayerChecks checks;
    private final MemoryArena[] weightOwners;
    private final CallGuard guard = new CallGuard("layer kernels are closed");
    private boolean weightsHeld;   // written in the constructor, read in close

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
        this.checks = new LayerChecks(config, device, activationDType, sortedDType);
        this.weightOwners = weights.owners().toArray(new MemoryArena[0]);
    }

    @Override public final MoeConfig config() { return config; }

    @Override public final DType activationDType() { return checks.activationDType(); }

    @Override public final DType sortedDType() { return checks.sortedDType(); }

    @Override public final Device device() { return checks.device(); }

    /** The checks these kernels run, for other entry points to the same layer. */
    public final LayerChecks checks() { return checks; }

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
        guard.enter();
        try {
            ensureOpen();
            long t = checks.input(x);
            checks.routing(t, topkIds, topkWeights);
            runRouterTopK(t, x, topkIds, topkWeights);
        } finally {
            guard.exit();
        }
    }

    @Override
    public final void dispatch(Tensor x, Tensor topkIds, Tensor expertOffsets, Tensor sortedRowOfSlot, Tensor latentSorted) {
        guard.enter();
        try {
            ensureOpen();
            long t = checks.input(x);
            long slots = t * config.topK();
            checks.check("topkIds", topkIds, DType.I32, t, config.topK());
            checks.expertIds(topkIds);
            checks.check("expertOffsets", expertOffsets, DType.I32, config.numExperts() + 1);
            checks.check("sortedRowOfSlot", sortedRowOfSlot, DType.I32, slots);
            checks.sorted("latentSorted", latentSorted, slots);
            runDispatch(t, x, topkIds, expertOffsets, sortedRowOfSlot, latentSorted);
        } finally {
            guard.exit();
        }
    }

    @Override
    public final void experts(Tensor expertOffsets, Tensor latentSorted, Tensor expertOutSorted) {
        guard.enter();
        try {
            ensureOpen();
            checks.sorted("latentSorted", latentSorted, -1);
            long slots = latentSorted.dim(0);
            if (slots == 0 || slots % config.topK() != 0) {
                throw new IllegalArgumentException("latentSorted has " + slots + " rows; expected T·K rows with T >= 1, K = " + config.topK());
            }
            checks.check("expertOffsets", expertOffsets, DType.I32, config.numExperts() + 1);
            checks.sorted("expertOutSorted", expertOutSorted, slots);
            checks.offsets(expertOffsets, slots);
            runExperts(slots / config.topK(), expertOffsets, latentSorted, expertOutSorted);
        } finally {
            guard.exit();
        }
    }

    @Override
    public final void combine(Tensor x, Tensor topkWeights, Tensor sortedRowOfSlot, Tensor expertOutSorted, Tensor out) {
        guard.enter();
        try {
            ensureOpen();
            long t = checks.input(x);
            long slots = t * config.topK();
            checks.check("topkWeights", topkWeights, DType.F32, t, config.topK());
            checks.check("sortedRowOfSlot", sortedRowOfSlot, DType.I32, slots);
            checks.sorted("expertOutSorted", expertOutSorted, slots);
            checks.output(t, out);
            checks.permutation(sortedRowOfSlot, slots);
            runCombine(t, x, topkWeights, sortedRowOfSlot, expertOutSorted, out);
        } finally {
            guard.exit();
        }
    }

    @Override
    public final void forward(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out) {
        guard.enter();
        try {
            runForward(checkForward(x, topkIds, topkWeights, out), x, topkIds, topkWeights, out);
        } finally {
            guard.exit();
        }
    }

    /**
     * The checks of {@link #forward}, for backends that offer more entry points to the whole layer
     * (e.g. an asynchronous one on a caller's stream); returns T. Call it, and the native call,
     * between {@link #enterCall()} and {@link #exitCall()}.
     */
    protected final long checkForward(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out) {
        ensureOpen();
        long t = checks.input(x);
        if (topkIds != null || topkWeights != null) checks.routing(t, topkIds, topkWeights);
        checks.output(t, out);
        return t;
    }

    /**
     * Starts a call of another entry point of the subclass: {@link #close()} waits for it. Pair it
     * with {@link #exitCall()} in a {@code finally}.
     *
     * @throws IllegalStateException when the kernels are closed (or closing)
     */
    protected final void enterCall() { guard.enter(); }

    /** Ends a call started by {@link #enterCall()}. */
    protected final void exitCall() { guard.exit(); }

    /**
     * Takes a hold ({@link MemoryArena#retain()}) on every arena holding the weights, released when
     * the kernels are closed: for backends whose native calls read the host weights in place. Call it
     * last in the subclass constructor (a failed constructor must not leave holds behind).
     *
     * @throws IllegalStateException when a weights' arena is already closed
     */
    protected final void holdWeightArenas() {
        if (weightsHeld) return;
        int held = 0;
        try {
            for (; held < weightOwners.length; held++) weightOwners[held].retain();
        } catch (RuntimeException e) {
            for (int i = 0; i < held; i++) weightOwners[i].release();
            throw e;
        }
        weightsHeld = true;
    }

    /**
     * Refuses new calls, waits for the calls in flight to return, then frees the backend's
     * resources ({@link #release()}) and drops the holds on the weights' arenas; idempotent, and a
     * concurrent second close returns only once the first has freed everything.
     */
    @Override
    public final void close() {
        guard.close(() -> {
            try {
                release();
            } finally {
                if (weightsHeld) {
                    weightsHeld = false;
                    for (MemoryArena a : weightOwners) a.release();
                }
            }
        });
    }

    /** True once {@link #close()} has begun. */
    public final boolean isClosed() { return guard.isClosed(); }

    /** Throws unless these kernels and every arena holding their weights are open. */
    protected final void ensureOpen() {
        guard.ensureOpen();
        for (int i = 0; i < weightOwners.length; i++) {   // indexed: no iterator on the call path
            MemoryArena a = weightOwners[i];
            if (!a.isOpen()) throw new IllegalStateException("the weights' arena '" + a.name() + "' is closed");
        }
    }
}
