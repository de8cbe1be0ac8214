package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_engine_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.bindings.lmoe_layer_memory;
import dev.latentmoe.bindings.lmoe_matrix;
import dev.latentmoe.bindings.lmoe_weights;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

/**
 * A layer opened by the native loader ({@code lmoe_layer_open} of latentmoe_engine.h), the
 * library's one definition of the checkpoint rules (files, config keys, layer kinds, quantization,
 * tensor names, shapes, scales, finiteness). As an arena it owns the layer's weights: each
 * {@link Tensor} of {@link #weights()} is a read-only view of the loader's memory (the mapped
 * files, or the few matrices it converted), exactly the pointers its {@code lmoe_weights} hands
 * the kernels; {@link #close()} ends Java access to them and then closes the native layer.
 * Accounted as {@link Kind#MAPPED}: the mapped files plus the converted bytes.
 */
final class NativeCheckpointLayer extends MemoryArena {
    private final MemorySegment handle;
    private final Arena scope;           // the weight views' lifetime: closed before the layer
    private MoeConfig config;
    private MoeWeights weights;
    private CheckpointMemory memory;

    private NativeCheckpointLayer(Path dir, int layer, MemorySegment handle, Arena scope) {
        super("checkpoint:" + dir + "#" + layer, Kind.MAPPED, Device.CPU, null);
        this.handle = handle;
        this.scope = scope;
    }

    /** Reads the layer's config, footprint and weight descriptors from the native layer. */
    private void load() {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment cfg = lmoe_config.allocate(tmp);
            check(latentmoe_engine_h.lmoe_layer_config(handle, cfg));
            config = config(cfg);
            MemorySegment mem = lmoe_layer_memory.allocate(tmp);
            check(latentmoe_engine_h.lmoe_layer_memory_info(handle, mem));
            memory = new CheckpointMemory(lmoe_layer_memory.weight_bytes(mem), lmoe_layer_memory.in_place_bytes(mem),
                    lmoe_layer_memory.converted_bytes(mem), lmoe_layer_memory.mapped_bytes(mem));
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            check(latentmoe_engine_h.lmoe_layer_weights(handle, out));
            weights = weights(out.get(ValueLayout.ADDRESS, 0));
        }
        account(memory.mappedBytes() + memory.convertedBytes());
    }

    /** Opens layer {@code layer} of the checkpoint in {@code dir}; raises {@link CheckpointException}. */
    static NativeCheckpointLayer open(Path dir, int layer) {
        if (dir == null) throw new IllegalArgumentException("checkpoint directory is null");
        if (!latentmoe_engine_h.isAvailable()) {
            throw new IllegalStateException("liblatentmoe.so is not available: " + latentmoe_engine_h.unavailableReason().orElse("?"));
        }
        MemorySegment handle;
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            int status = latentmoe_engine_h.lmoe_layer_open(tmp.allocateFrom(dir.toString()), layer, out);
            if (status != latentmoe_h.LMOE_OK) throw failure(status);
            handle = out.get(ValueLayout.ADDRESS, 0);
        }
        NativeCheckpointLayer opened = new NativeCheckpointLayer(dir, layer, handle, Arena.ofShared());
        try {
            opened.load();
            return opened;
        } catch (RuntimeException | Error e) {
            opened.close();
            throw e;
        }
    }

    /** {@link MoeConfig#fromCheckpoint}: lmoe_checkpoint_config, no weight read. */
    static MoeConfig readConfig(Path dir, int layer) {
        if (dir == null) throw new IllegalArgumentException("checkpoint directory is null");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment cfg = lmoe_config.allocate(tmp);
            check(latentmoe_engine_h.lmoe_checkpoint_config(tmp.allocateFrom(dir.toString()), layer, cfg));
            return config(cfg);
        }
    }

    /** The exception for a failed loader call: CheckpointException for bad or unsupported checkpoints. */
    private static RuntimeException failure(int status) {
        String message = latentmoe_h.lastError();
        if (status == latentmoe_h.LMOE_ERR_INVALID_ARGUMENT || status == latentmoe_h.LMOE_ERR_UNSUPPORTED) {
            return new CheckpointException(message, status);
        }
        if (status == latentmoe_h.LMOE_ERR_OUT_OF_MEMORY) throw new OutOfMemoryError("lmoe_layer_open: " + message);
        return new dev.latentmoe.bindings.runtime.LatentMoeNativeException("lmoe_layer_open", status,
                latentmoe_h.statusName(status), message);
    }

    private static void check(int status) {
        if (status != latentmoe_h.LMOE_OK) throw failure(status);
    }

    /** The native handle ({@code lmoe_layer*}); valid until {@link #close()}. */
    MemorySegment handle() { return handle; }

    MoeConfig config() { return config; }

    MoeWeights weights() { return weights; }

    CheckpointMemory memory() { return memory; }

    private static MoeConfig config(MemorySegment c) {
        return new MoeConfig(lmoe_config.hidden_size(c), lmoe_config.latent_size(c), lmoe_config.num_experts(c),
                lmoe_config.top_k(c), lmoe_config.expert_intermediate_size(c), lmoe_config.shared_intermediate_size(c),
                lmoe_config.routed_scaling_factor(c), lmoe_config.norm_topk_prob(c) != 0,
                Activation.fromCode(lmoe_config.activation(c)), Scoring.fromCode(lmoe_config.scoring(c)));
    }

    private MoeWeights weights(MemorySegment wAddress) {
        MoeConfig c = config;
        int n = c.numExperts(), d = c.hiddenSize(), l = c.latentSize(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        MemorySegment ws = view(wAddress, lmoe_weights.sizeof());
        WeightMatrix gate = matrix(lmoe_weights.gate(ws), n, d);
        MemorySegment biasAddr = lmoe_weights.gate_bias(ws);
        Tensor bias = biasAddr.equals(MemorySegment.NULL) ? null : tensor(biasAddr, DType.F32, n);
        WeightMatrix down = c.isLatent() ? matrix(lmoe_weights.latent_down(ws), l, d) : null;
        WeightMatrix up = c.isLatent() ? matrix(lmoe_weights.latent_up(ws), d, l) : null;
        MemorySegment upArr = view(lmoe_weights.expert_up(ws), lmoe_matrix.sizeof() * n);
        MemorySegment downArr = view(lmoe_weights.expert_down(ws), lmoe_matrix.sizeof() * n);
        boolean gated = c.activation() == Activation.SWIGLU;
        MemorySegment gateArr = gated ? view(lmoe_weights.expert_gate(ws), lmoe_matrix.sizeof() * n) : null;
        WeightMatrix[] eu = new WeightMatrix[n], ed = new WeightMatrix[n], eg = gated ? new WeightMatrix[n] : null;
        for (int e = 0; e < n; e++) {
            eu[e] = matrix(lmoe_matrix.asSlice(upArr, e), m, w);
            ed[e] = matrix(lmoe_matrix.asSlice(downArr, e), w, m);
            if (gated) eg[e] = matrix(lmoe_matrix.asSlice(gateArr, e), m, w);
        }
        WeightMatrix su = null, sg = null, sd = null;
        if (c.hasSharedExpert()) {
            su = matrix(lmoe_weights.shared_up(ws), ms, d);
            sd = matrix(lmoe_weights.shared_down(ws), d, ms);
            if (gated) sg = matrix(lmoe_weights.shared_gate(ws), ms, d);
        }
        return new MoeWeights(c, gate, bias, down, up, eu, eg, ed, su, sg, sd);
    }

    /** A descriptor of a matrix [rows, cols] as a WeightMatrix over the loader's memory. */
    private WeightMatrix matrix(MemorySegment desc, long rows, long cols) {
        WeightFormat f = WeightFormat.fromCode(lmoe_matrix.format(desc));
        Tensor data = tensor(lmoe_matrix.data(desc), f.dataDType(), rows, f.dataCols(cols));
        Tensor blocks = f == WeightFormat.NVFP4 ? tensor(lmoe_matrix.block_scales(desc), DType.F8_E4M3, rows, cols / 16) : null;
        return new WeightMatrix(f, data, blocks, lmoe_matrix.scale(desc), lmoe_matrix.input_scale(desc));
    }

    private Tensor tensor(MemorySegment address, DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long s : shape) bytes = Math.multiplyExact(bytes, s);
        return Tensor.wrap(this, view(address, bytes).asReadOnly(), dtype, shape);
    }

    @SuppressWarnings("restricted") // the loader's memory, sized by the layer's shapes, alive until close
    private MemorySegment view(MemorySegment address, long bytes) {
        if (address.equals(MemorySegment.NULL)) throw new IllegalStateException("native loader returned a NULL weight pointer");
        return address.reinterpret(bytes, scope, null);
    }

    @Override
    protected MemorySegment doAllocate(long paddedBytes) {
        throw new UnsupportedOperationException("checkpoint layer '" + name() + "' holds the loader's memory and cannot allocate");
    }

    /** Ends Java access to the weight views, then closes the native layer (it waits for its calls in flight). */
    @Override
    protected void doClose() {
        scope.close();
        int status = latentmoe_engine_h.lmoe_layer_close(handle);
        if (status != latentmoe_h.LMOE_OK) latentmoe_h.check(status, "lmoe_layer_close");
    }
}
