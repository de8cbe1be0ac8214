package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * One (Latent)MoE layer on one backend: {@code y = forward(x)} for x [T, d] f32.
 * Inputs are validated in Java before any native call (shape, dtype, device, T ≥ 1, open
 * arenas, finite values: NaN or Inf in x raise an {@link IllegalArgumentException}). Safe to call
 * from several threads at once. Closing the layer frees what it created (its weights, workspaces,
 * the native checkpoint layer it opened), not tensors the caller passed in.
 *
 * <p><b>Closing while other threads call.</b> {@link #close()} may run while other threads are
 * inside {@code forward} (or a step of {@link #kernels()}): it <em>waits</em> for the calls in
 * flight to return, then frees; a call that starts after {@code close()} began throws
 * {@link IllegalStateException} ("layer kernels are closed"). So every call either completes with
 * its full result or throws, and nothing a running kernel reads is freed under it. Caller-owned
 * host weights ({@link #of}) are held the same way on the CPU: closing their arena while the layer
 * is open makes new calls throw, and the memory is freed when the layer closes.
 */
public final class MoeLayer implements AutoCloseable {
    private final MoeWeights weights;
    private final Backend backend;
    private final Precision precision;
    private final LayerKernels kernels;
    private final List<AutoCloseable> owned;
    private final CheckpointMemory checkpointMemory;   // null unless opened from a checkpoint

    private MoeLayer(MoeWeights weights, Backend backend, List<AutoCloseable> owned, Precision precision) {
        this(weights, backend, owned, precision, null);
    }

    private MoeLayer(MoeWeights weights, Backend backend, List<AutoCloseable> owned, Precision precision,
                     CheckpointMemory checkpointMemory) {
        this.checkpointMemory = checkpointMemory;
        this.weights = weights;
        this.backend = backend;
        this.owned = owned;
        LayerKernels k;
        try {
            if (backend == null) throw new IllegalArgumentException("backend is null");
            if (precision == null) throw new IllegalArgumentException("precision is null");
            k = backend.prepare(weights, precision);
        } catch (RuntimeException e) {
            closeAll(owned);
            throw e;
        }
        this.precision = precision;
        this.kernels = k;
    }

    private static Precision defaultOf(Backend backend) {
        if (backend == null) throw new IllegalArgumentException("backend is null");
        return backend.defaultPrecision();
    }

    /** A layer over caller-owned weights (they must stay open while the layer is used), in the backend's default precision. */
    public static MoeLayer of(MoeWeights weights, Backend backend) {
        return of(weights, backend, defaultOf(backend));
    }

    /** A layer over caller-owned weights computing in {@code precision} (see {@link Precision}). */
    public static MoeLayer of(MoeWeights weights, Backend backend, Precision precision) {
        return new MoeLayer(weights, backend, new ArrayList<>(), precision);
    }

    /**
     * Layer {@code layerIndex} of a checkpoint directory, opened by the native loader
     * (latentmoe_engine.h: config.json, hf_quant_config.json, single or sharded safetensors; F32,
     * BF16, F16, FP8 and NVFP4 ModelOpt weights per matrix). The weights stay in place in the mapped
     * files and are read-only; the layer owns them and closes the native layer on {@link #close()}.
     *
     * @throws CheckpointException (an {@link IllegalArgumentException}) naming the file, key or
     *     tensor when the checkpoint cannot be loaded
     */
    public static MoeLayer fromCheckpoint(Path dir, int layerIndex, Backend backend) {
        return fromCheckpoint(dir, layerIndex, backend, defaultOf(backend));
    }

    /** As {@link #fromCheckpoint(Path, int, Backend)}, computing in {@code precision}. */
    public static MoeLayer fromCheckpoint(Path dir, int layerIndex, Backend backend, Precision precision) {
        if (backend == null) throw new IllegalArgumentException("backend is null");
        NativeCheckpointLayer checkpoint = NativeCheckpointLayer.open(dir, layerIndex);
        try {
            return new MoeLayer(checkpoint.weights(), backend, new ArrayList<>(List.of(checkpoint)), precision,
                    checkpoint.memory());
        } catch (RuntimeException e) {
            checkpoint.close();
            throw e;
        }
    }

    /** Seeded random weights of the given dtype (see {@link MoeWeights#random}). */
    public static MoeLayer random(MoeConfig config, DType weightDType, long seed, Backend backend) {
        return random(config, weightDType, seed, backend, null);
    }

    /** As {@link #random(MoeConfig, DType, long, Backend)}, reporting progress per expert built. */
    public static MoeLayer random(MoeConfig config, DType weightDType, long seed, Backend backend, IntConsumer expertDone) {
        return random(config, weightDType, seed, backend, defaultOf(backend), expertDone);
    }

    /** As {@link #random(MoeConfig, DType, long, Backend, IntConsumer)}, computing in {@code precision}. */
    public static MoeLayer random(MoeConfig config, DType weightDType, long seed, Backend backend, Precision precision,
                                  IntConsumer expertDone) {
        HostArena arena = HostArena.shared("random-weights");
        try {
            MoeWeights w = MoeWeights.random(config, weightDType, seed, arena, expertDone);
            return new MoeLayer(w, backend, new ArrayList<>(List.of(arena)), precision);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public MoeConfig config() { return weights.config(); }

    public MoeWeights weights() { return weights; }

    public Backend backend() { return backend; }

    /** Where a checkpoint layer's weights live (mapped vs converted bytes); empty for other layers. */
    public java.util.Optional<CheckpointMemory> checkpointMemory() { return java.util.Optional.ofNullable(checkpointMemory); }

    /** The precision the layer computes in (chosen at creation). */
    public Precision precision() { return precision; }

    /** The individual kernels, for engines (and tests) that run the steps themselves. */
    public LayerKernels kernels() { return kernels; }

    /** y [T, d] in the backend's activation dtype (f32 on the CPU, bf16 on CUDA), allocated in x's arena. */
    public Tensor forward(Tensor x) {
        Tensor out = newOutput(x, x.arena());
        forward(x, out);
        return out;
    }

    /** Writes y into {@code out} [T, d] f32. */
    public void forward(Tensor x, Tensor out) {
        kernels.forward(x, null, null, out);
    }

    /** Writes y into {@code out} and the routing (expert ids and weights per token) into {@code routing}. */
    public void forward(Tensor x, Tensor out, Routing routing) {
        if (routing == null) throw new IllegalArgumentException("routing is null");
        kernels.forward(x, routing.expertIds(), routing.weights(), out);
    }

    /** The routing alone for x, in x's arena. */
    public Routing route(Tensor x) {
        if (x == null) throw new IllegalArgumentException("input x is null");
        long t = x.rank() == 2 ? x.dim(0) : 0;
        if (t == 0) throw new IllegalArgumentException("empty batch: input x has T = 0 tokens");
        Routing r = Routing.allocate(x.arena(), t, config().topK());
        kernels.routerTopK(x, r.expertIds(), r.weights());
        return r;
    }

    private Tensor newOutput(Tensor x, MemoryArena arena) {
        if (x == null) throw new IllegalArgumentException("input x is null");
        if (x.rank() != 2) throw new IllegalArgumentException("input x must be [T, " + config().hiddenSize() + "], got rank " + x.rank());
        if (x.dim(0) == 0) throw new IllegalArgumentException("empty batch: input x has T = 0 tokens");
        return arena.allocateTensor(kernels.activationDType(), x.dim(0), config().hiddenSize());
    }

    /**
     * Waits for the calls in flight (see the class comment), then frees what the layer owns;
     * idempotent, and a concurrent second close returns only once everything is freed.
     */
    @Override
    public void close() {
        synchronized (owned) {
            // Free what the layer owns even when releasing the backend's resources fails.
            try {
                kernels.close();   // waits for the calls in flight
            } finally {
                closeAll(owned);
            }
        }
    }

    private static void closeAll(List<AutoCloseable> list) {
        for (int i = list.size() - 1; i >= 0; i--) {
            try {
                list.get(i).close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + list.get(i) + ": " + e.getMessage(), e);
            }
        }
        list.clear();
    }
}
