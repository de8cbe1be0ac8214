package dev.latentmoe.bench.gpu;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.bindings.lmoe_cuda_matrix;
import dev.latentmoe.bindings.lmoe_cuda_weights;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import dev.latentmoe.kernels.cuda.CudaLayerKernels;
import dev.latentmoe.kernels.spi.NativeConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One layer's weights made on the GPU ({@code lmoe_cuda_fill_uniform}) and driven through the C ABI
 * ({@code lmoe_cuda_forward}) directly, for benchmarks whose weights are too big to build on the
 * host and upload: {@link CudaLayerKernels} only takes host weights, and several GB per variant
 * through PCIe would dominate the run. With caller-owned device weights in the library this class
 * becomes a fill plus {@code CudaLayerKernels}.
 *
 * <p>Layout and dtypes are those {@code CudaLayerKernels} uploads for {@code MoeLayer.random(.., BF16, ..)}:
 * bf16 everywhere (the gate too), f32 correction bias, experts stacked [N, rows, cols]; values uniform
 * in ±1/sqrt(fan_in) (bias ±0.1) so activations stay O(1) and the routing spreads as with host-built
 * weights. Same seed, same device: same weights (not bitwise those of {@code MoeWeights.random}).
 *
 * <p>Everything is allocated on one stream; {@link #close()} frees it in stream order and waits.
 */
final class DeviceRandomLayer implements AutoCloseable {
    private final MoeConfig config;
    private final CudaStream stream;
    private final DeviceArena weights;
    private final Arena structs;
    private final MemorySegment cfg;
    private final MemorySegment wts;

    private DeviceRandomLayer(MoeConfig config, CudaStream stream, DeviceArena weights, Arena structs,
                              MemorySegment cfg, MemorySegment wts) {
        this.config = config;
        this.stream = stream;
        this.weights = weights;
        this.structs = structs;
        this.cfg = cfg;
        this.wts = wts;
    }

    /** Fills every weight of {@code c} on the GPU (stream {@code s}) and validates the result with {@code lmoe_cuda_validate}. */
    static DeviceRandomLayer create(MoeConfig c, long seed, CudaStream s) {
        DeviceArena dev = DeviceArena.create("iso-weights", s);
        Arena structs = Arena.ofShared();
        try {
            int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
            int w = c.expertWidth(), ms = c.sharedIntermediateSize();
            boolean swiglu = c.activation() == Activation.SWIGLU;
            Filler f = new Filler(dev, s, seed);
            MemorySegment wts = structs.allocate(lmoe_cuda_weights.sizeof()); // zeroed: absent matrices
            bf16(lmoe_cuda_weights.gate(wts), f.fill(DType.BF16, d, n, d));
            lmoe_cuda_weights.gate_bias(wts, f.fill(DType.F32, 0, n));
            if (c.isLatent()) {
                bf16(lmoe_cuda_weights.latent_down(wts), f.fill(DType.BF16, d, l, d));
                bf16(lmoe_cuda_weights.latent_up(wts), f.fill(DType.BF16, l, d, l));
            }
            bf16(lmoe_cuda_weights.expert_up(wts), f.fill(DType.BF16, w, n, m, w));
            if (swiglu) bf16(lmoe_cuda_weights.expert_gate(wts), f.fill(DType.BF16, w, n, m, w));
            bf16(lmoe_cuda_weights.expert_down(wts), f.fill(DType.BF16, m, n, w, m));
            if (ms > 0) {
                bf16(lmoe_cuda_weights.shared_up(wts), f.fill(DType.BF16, d, ms, d));
                if (swiglu) bf16(lmoe_cuda_weights.shared_gate(wts), f.fill(DType.BF16, d, ms, d));
                bf16(lmoe_cuda_weights.shared_down(wts), f.fill(DType.BF16, ms, d, ms));
            }
            MemorySegment cfg = NativeConfig.write(c, structs.allocate(lmoe_config.sizeof()));
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_validate(cfg, wts), "lmoe_cuda_validate");
            s.synchronize(); // every fill done (and any launch error raised) before the first timing
            return new DeviceRandomLayer(c, s, dev, structs, cfg, wts);
        } catch (RuntimeException | Error e) {
            try {
                dev.close();
            } finally {
                structs.close();
            }
            throw e;
        }
    }

    /** Writes a BF16 matrix descriptor (a slice of the weights struct). */
    private static void bf16(MemorySegment matrix, MemorySegment data) {
        lmoe_cuda_matrix.format(matrix, latentmoe_h.LMOE_WFMT_BF16);
        lmoe_cuda_matrix.data(matrix, data);
    }

    /** Allocates and fills device tensors; each gets its own seed derived from the layer's. */
    private static final class Filler {
        private final DeviceArena dev;
        private final CudaStream s;
        private final long seed;
        private int index;

        Filler(DeviceArena dev, CudaStream s, long seed) {
            this.dev = dev;
            this.s = s;
            this.seed = seed;
        }

        /** A new device tensor of {@code shape}, uniform in ±1/sqrt(fanIn) (±0.1 when fanIn is 0). */
        MemorySegment fill(DType dt, int fanIn, long... shape) {
            Tensor t = dev.allocateTensor(dt, shape);
            float a = fanIn > 0 ? (float) (1.0 / Math.sqrt(fanIn)) : 0.1f;
            long sd = seed * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L * ++index;
            Cuda.fillUniformAsync(t, sd, -a, a, s);
            return t.segment();
        }
    }

    MoeConfig config() { return config; }

    CudaStream stream() { return stream; }

    /** Device bytes the weights hold (padded allocations). */
    long weightBytes() { return weights.bytesHeld(); }

    /** {@code lmoe_cuda_forward_workspace_bytes} for T tokens, rounded up to the workspace alignment. */
    long workspaceBytes(long tokens) {
        long need = latentmoe_cuda_h.lmoe_cuda_forward_workspace_bytes(cfg, tokens);
        if (need < 0) Cuda.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, "lmoe_cuda_forward_workspace_bytes");
        long align = latentmoe_cuda_h.LMOE_CUDA_WORKSPACE_ALIGN;
        return Math.max(align, (need + align - 1) / align * align);
    }

    /** "decode" or "sorted": the path {@code lmoe_cuda_forward} takes for x (device bf16 [T, d]) now. */
    String path(Tensor x) {
        String p = CudaLayerKernels.pathName(latentmoe_cuda_h.lmoe_cuda_forward_path(cfg, wts, x.segment(), x.dim(0)));
        if (p == null) throw new IllegalStateException("lmoe_cuda_forward_path: " + latentmoe_cuda_h.lastError());
        return p;
    }

    /**
     * Enqueues one forward pass on the layer's stream (no host synchronisation): x, out bf16 [T, d];
     * ids i32, weights f32 [T, K]; ws at least {@link #workspaceBytes}(T). All device tensors.
     */
    void forwardAsync(Tensor x, Tensor ids, Tensor topkWeights, MemorySegment ws, Tensor out) {
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_forward(cfg, wts, x.segment(), x.dim(0), ids.segment(), topkWeights.segment(),
                ws, ws.byteSize(), out.segment(), stream.handle()), "lmoe_cuda_forward");
    }

    @Override
    public void close() {
        try {
            weights.close(); // frees in stream order and waits, so the next variant has the memory
        } finally {
            structs.close();
        }
    }
}
