package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.bindings.lmoe_cuda_weights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.spi.CheckedLayerKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * CUDA kernels bound to one layer: the weights copied to the GPU in the layout of
 * {@code latentmoe_cuda.h} (bf16; expert matrices one contiguous [N, rows, cols] array per kind),
 * the {@code lmoe_config} / {@code lmoe_cuda_weights} structs (host memory holding device pointers)
 * and a device workspace per stream, grown to the largest T seen.
 *
 * <p><b>Synchronous API.</b> The {@link dev.latentmoe.kernels.LayerKernels} methods enqueue their
 * native call(s) on the backend's stream without any host synchronisation in between, then wait
 * for that stream once at the end, so on return the outputs are complete and any asynchronous CUDA
 * error has been raised as a Java exception — the same contract as the CPU backend.
 * {@link #forwardAsync} only enqueues, on a stream of the caller's choice.
 *
 * <p><b>Validation.</b> Shapes, dtypes (bf16 x/out/latentSorted/expertOutSorted, i32 ids, f32
 * weights), devices (every tensor on cuda:0), open arenas and T &ge; 1 are checked in Java before
 * any native call. Values (finite x, expert ids in range, expert offsets, the slot permutation)
 * live in device memory that Java cannot read, so they are not checked in Java; the native side
 * validates what it can without a host sync: config and weight pointers ({@code lmoe_cuda_validate},
 * once, at prepare) and the arguments of each call. Per latentmoe_cuda.h, {@code dispatch} treats
 * expert ids outside [0, N) as expert 0 (memory-safe, no error); a non-finite x propagates to the
 * output; expert offsets / slot permutations not produced by this backend are the caller's
 * responsibility. Tensors produced by this backend's own router and dispatch are always valid.
 *
 * <p>Streams: tensors from {@link CudaBackend#newActivationArena} share the backend's stream, so
 * their allocations and copies are ordered before the kernels for free. A tensor whose
 * {@link DeviceArena} allocates on another stream is made safe by synchronising that stream
 * first (one host wait per such stream and call).
 *
 * <p>Thread safety: calls may come from several threads; enqueues are serialised per layer, and
 * work on one stream runs in order, so a shared workspace per stream is safe.
 */
public final class CudaLayerKernels extends CheckedLayerKernels {
    private static final long ALIGN = latentmoe_cuda_h.LMOE_CUDA_WORKSPACE_ALIGN;

    private final CudaBackend backend;
    private final HostArena structArena;
    private final DeviceArena weightArena;
    private final MemorySegment cfg;
    private final MemorySegment wts;
    private final Map<Long, Workspace> workspaces = new LinkedHashMap<>();
    /** Graphs captured over these weights: closed (and their launches waited for) before the weights are freed. */
    private final List<CudaGraphedLayer> graphs = new ArrayList<>();
    private final Object lock = new Object();

    /** Device scratch for one stream: grown (never shrunk) to the largest request. */
    private static final class Workspace {
        final CudaStream stream;
        DeviceArena arena;
        long capacity;
        MemorySegment bytes = MemorySegment.NULL;

        Workspace(CudaStream stream) { this.stream = stream; }

        MemorySegment ensure(long need) {
            if (need > capacity) {
                // The old block is freed in stream order: work already enqueued keeps using it.
                if (arena != null) arena.close();
                arena = null;
                capacity = 0;
                DeviceArena a = DeviceArena.create("cuda-workspace", stream, false);
                try {
                    bytes = a.allocate(need);
                } catch (RuntimeException e) {
                    a.close();
                    throw e;
                }
                arena = a;
                capacity = need;
            }
            return bytes;
        }

        void close() { if (arena != null) arena.close(); }
    }

    CudaLayerKernels(MoeWeights w, CudaBackend backend) {
        super(w, backend.device(), DType.BF16, DType.BF16);
        this.backend = backend;
        Cuda.setDevice(backend.deviceId());
        CudaStream stream = backend.stream();
        HostArena structs = HostArena.shared("cuda-layer-structs");
        DeviceArena dev = null;
        try {
            dev = DeviceArena.create("cuda-layer-weights", stream);
            MoeConfig c = w.config();
            cfg = configStruct(c, structs);

            Uploader up = new Uploader(dev, stream);
            try {
                wts = structs.allocate(lmoe_cuda_weights.sizeof());
                lmoe_cuda_weights.weight_dtype(wts, latentmoe_h.LMOE_DTYPE_BF16);
                // The ABI takes a bf16 or f32 router gate: keep an F32 gate F32 (routing precision).
                DType gateType = w.gate().dtype() == DType.F32 ? DType.F32 : DType.BF16;
                lmoe_cuda_weights.gate_dtype(wts, gateType.code());
                lmoe_cuda_weights.gate(wts, up.matrix(w.gate(), gateType));
                lmoe_cuda_weights.gate_bias(wts, w.gateBias() == null ? MemorySegment.NULL : up.matrix(w.gateBias(), DType.F32));
                lmoe_cuda_weights.latent_down(wts, up.bf16(w.latentDown()));
                lmoe_cuda_weights.latent_up(wts, up.bf16(w.latentUp()));
                int n = c.numExperts();
                Tensor[] eu = new Tensor[n], ed = new Tensor[n], eg = w.expertGate(0) == null ? null : new Tensor[n];
                for (int e = 0; e < n; e++) {
                    eu[e] = w.expertUp(e);
                    ed[e] = w.expertDown(e);
                    if (eg != null) eg[e] = w.expertGate(e);
                }
                lmoe_cuda_weights.expert_up(wts, up.stacked(eu));
                lmoe_cuda_weights.expert_gate(wts, eg == null ? MemorySegment.NULL : up.stacked(eg));
                lmoe_cuda_weights.expert_down(wts, up.stacked(ed));
                lmoe_cuda_weights.shared_up(wts, up.bf16(w.sharedUp()));
                lmoe_cuda_weights.shared_gate(wts, up.bf16(w.sharedGate()));
                lmoe_cuda_weights.shared_down(wts, up.bf16(w.sharedDown()));
                stream.synchronize(); // every upload done (and any copy error raised) before staging is freed
            } finally {
                up.close();
            }
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_validate(cfg, wts), "lmoe_cuda_validate");
        } catch (RuntimeException | Error e) {
            try {
                if (dev != null) dev.close();
            } finally {
                structs.close();
            }
            throw e;
        }
        this.structArena = structs;
        this.weightArena = dev;
    }

    /** Copies host weights into the weight arena as the ABI wants them. */
    private static final class Uploader implements AutoCloseable {
        private final DeviceArena dev;
        private final CudaStream stream;
        private HostArena staging;
        private MemorySegment stagingBytes;
        private long stagingCapacity;

        Uploader(DeviceArena dev, CudaStream stream) {
            this.dev = dev;
            this.stream = stream;
        }

        MemorySegment bf16(Tensor host) { return host == null ? MemorySegment.NULL : matrix(host, DType.BF16); }

        /** One device buffer holding {@code host} as {@code target}. */
        MemorySegment matrix(Tensor host, DType target) {
            Tensor d = dev.allocateTensor(target, host.shape());
            copyInto(host, target, d.segment());
            return d.segment();
        }

        /** The tensors (same shape) stacked as one contiguous [N, rows, cols] bf16 device array. */
        MemorySegment stacked(Tensor[] hosts) {
            long[] s = hosts[0].shape();
            Tensor d = dev.allocateTensor(DType.BF16, hosts.length, s[0], s[1]);
            long each = hosts[0].numel() * DType.BF16.byteSize();
            MemorySegment all = d.segment();
            for (int e = 0; e < hosts.length; e++) {
                copyInto(hosts[e], DType.BF16, all.asSlice(e * each, each));
            }
            return all;
        }

        private void copyInto(Tensor host, DType target, MemorySegment devDst) {
            MemorySegment src;
            if (host.dtype() == target) {
                src = host.segment();
            } else {
                // Convert on the host into a reused staging buffer; wait before reusing it.
                long bytes = host.numel() * target.byteSize();
                if (bytes > stagingCapacity) {
                    if (staging != null) staging.close();
                    staging = HostArena.shared("cuda-weight-staging");
                    stagingBytes = staging.allocate(bytes);
                    stagingCapacity = bytes;
                } else {
                    stream.synchronize();
                }
                src = stagingBytes.asSlice(0, bytes);
                convert(host, target, src);
            }
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_h2d_async(devDst, src, src.byteSize(), stream.handle()),
                    "lmoe_cuda_memcpy_h2d_async (weights)");
            if (host.dtype() != target) stream.synchronize();
        }

        private static void convert(Tensor host, DType target, MemorySegment dst) {
            long n = host.numel();
            if (target == DType.BF16) {
                for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, DType.floatToBf16(host.getFloat(i)));
            } else if (target == DType.F32) {
                for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, host.getFloat(i));
            } else {
                throw new IllegalArgumentException("cannot convert weights to " + target);
            }
        }

        @Override
        public void close() {
            if (staging != null) staging.close();
        }
    }

    /** The backend's stream, on which the synchronous methods run. */
    public CudaStream stream() { return backend.stream(); }

    /** Device bytes held by the uploaded weights. */
    public long weightBytes() { return weightArena.bytesHeld(); }

    /** The {@code lmoe_config} struct (host memory), for {@link CudaGraphedLayer}'s captures. */
    MemorySegment configStruct() { return cfg; }

    /** The {@code lmoe_cuda_weights} struct (host memory holding device pointers). */
    MemorySegment weightsStruct() { return wts; }

    /** Throws unless these kernels and the weights' host arenas are open. */
    void checkOpen() { ensureOpen(); }

    /** Registers a graph set over these weights; it is closed before the weights are freed. */
    void attach(CudaGraphedLayer g) {
        synchronized (lock) {
            ensureOpen();
            graphs.add(g);
        }
    }

    void detach(CudaGraphedLayer g) {
        synchronized (lock) {
            graphs.remove(g);
        }
    }

    private MemorySegment workspace(CudaStream stream, long need, String what) {
        if (need < 0) Cuda.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, what);
        long bytes = Math.max(ALIGN, (need + ALIGN - 1) / ALIGN * ALIGN);
        Workspace ws = workspaces.computeIfAbsent(stream.handle().address(), k -> new Workspace(stream));
        return ws.ensure(bytes);
    }

    private void waitFor(CudaStream s) { s.synchronize(); }

    /** Waits for the allocation streams of tensors whose arena runs on a stream other than {@code s}. */
    private static void orderAfterForeignStreams(CudaStream s, Tensor... ts) {
        long self = s.handle().address();
        long done = self;
        for (Tensor t : ts) {
            if (t != null && t.arena() instanceof DeviceArena d) {
                long a = d.stream().handle().address();
                if (a != self && a != done) {
                    d.stream().synchronize();
                    done = a;
                }
            }
        }
    }

    /** A native step: the status of one call with its workspace and the stream handle. */
    private interface StepCall {
        int run(MemorySegment ws, MemorySegment stream);
    }

    /**
     * One step on the backend stream: waits for tensors of other streams, sizes the workspace
     * ({@code need} is asked only after the structs are known to be open), calls, waits for the stream.
     */
    private void runStep(String needWhat, LongSupplier need, String what, StepCall call, Tensor... ts) {
        CudaStream s = stream();
        orderAfterForeignStreams(s, ts);
        synchronized (lock) {
            ensureOpen();
            Cuda.setDevice(backend.deviceId());
            MemorySegment ws = workspace(s, need.getAsLong(), needWhat);
            Cuda.check(call.run(ws, s.handle()), what);
        }
        waitFor(s);
    }

    @Override
    protected void runRouterTopK(long t, Tensor x, Tensor ids, Tensor w) {
        runStep("lmoe_cuda_router_workspace_bytes", () -> latentmoe_cuda_h.lmoe_cuda_router_workspace_bytes(cfg, t),
                "lmoe_cuda_router_topk", (ws, st) -> latentmoe_cuda_h.lmoe_cuda_router_topk(cfg, wts, x.segment(), t,
                        ids.segment(), w.segment(), ws, ws.byteSize(), st), x, ids, w);
    }

    @Override
    protected void runDispatch(long t, Tensor x, Tensor ids, Tensor offsets, Tensor rows, Tensor latent) {
        runStep("lmoe_cuda_dispatch_workspace_bytes", () -> latentmoe_cuda_h.lmoe_cuda_dispatch_workspace_bytes(cfg, t),
                "lmoe_cuda_dispatch", (ws, st) -> latentmoe_cuda_h.lmoe_cuda_dispatch(cfg, wts, x.segment(), t,
                        ids.segment(), offsets.segment(), rows.segment(), latent.segment(), ws, ws.byteSize(), st),
                x, ids, offsets, rows, latent);
    }

    @Override
    protected void runExperts(long t, Tensor offsets, Tensor latent, Tensor out) {
        runStep("lmoe_cuda_experts_workspace_bytes", () -> latentmoe_cuda_h.lmoe_cuda_experts_workspace_bytes(cfg, t),
                "lmoe_cuda_experts", (ws, st) -> latentmoe_cuda_h.lmoe_cuda_experts(cfg, wts, t, offsets.segment(),
                        latent.segment(), out.segment(), ws, ws.byteSize(), st), offsets, latent, out);
    }

    @Override
    protected void runCombine(long t, Tensor x, Tensor w, Tensor rows, Tensor expertOut, Tensor out) {
        runStep("lmoe_cuda_combine_workspace_bytes", () -> latentmoe_cuda_h.lmoe_cuda_combine_workspace_bytes(cfg, t),
                "lmoe_cuda_combine", (ws, st) -> latentmoe_cuda_h.lmoe_cuda_combine(cfg, wts, x.segment(), t,
                        w.segment(), rows.segment(), expertOut.segment(), ws, ws.byteSize(), out.segment(), st),
                x, w, rows, expertOut, out);
    }

    @Override
    protected void runForward(long t, Tensor x, Tensor ids, Tensor w, Tensor out) {
        CudaStream s = stream();
        enqueueForward(t, x, ids, w, out, s);
        waitFor(s);
    }

    /**
     * The whole layer, only enqueued on {@code stream} (no host synchronisation): same checks and
     * arguments as {@link #forward}. Tensors in arenas of other streams are waited for (see the
     * class comment); data written to them by other work must be complete. They must stay open
     * until {@code stream} has run the pass. Each stream gets its own
     * workspace, freed when the kernels are closed — close them before destroying such a stream.
     */
    public void forwardAsync(Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out, CudaStream stream) {
        if (stream == null) throw new IllegalArgumentException("stream is null");
        long t = checkForward(x, topkIds, topkWeights, out);
        enqueueForward(t, x, topkIds, topkWeights, out, stream);
    }

    private void enqueueForward(long t, Tensor x, Tensor ids, Tensor w, Tensor out, CudaStream s) {
        orderAfterForeignStreams(s, x, ids, w, out);
        synchronized (lock) {
            ensureOpen();
            Cuda.setDevice(backend.deviceId());
            long need = latentmoe_cuda_h.lmoe_cuda_forward_workspace_bytes(cfg, t);
            if (need < 0) Cuda.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, "lmoe_cuda_forward_workspace_bytes");
            long k = config.topK();
            long nativeBytes = Math.max(ALIGN, (need + ALIGN - 1) / ALIGN * ALIGN);
            // Routing the caller does not want goes to the end of the workspace.
            long routingBytes = ids == null ? (t * k * 8 + ALIGN - 1) / ALIGN * ALIGN + ALIGN : 0;
            MemorySegment ws = workspace(s, nativeBytes + routingBytes, "lmoe_cuda_forward_workspace_bytes");
            MemorySegment idsSeg = ids != null ? ids.segment() : ws.asSlice(nativeBytes, t * k * 4);
            long wOff = nativeBytes + (t * k * 4 + ALIGN - 1) / ALIGN * ALIGN;
            MemorySegment wSeg = w != null ? w.segment() : ws.asSlice(wOff, t * k * 4);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_forward(cfg, wts, x.segment(), t, idsSeg, wSeg,
                    ws, nativeBytes, out.segment(), s.handle()), "lmoe_cuda_forward");
        }
    }

    @Override
    protected void release() {
        RuntimeException first = null;
        List<CudaGraphedLayer> attached;
        synchronized (lock) {
            attached = new ArrayList<>(graphs);
        }
        // Outside the lock: a graph's close() holds its own lock and then takes ours (detach).
        for (CudaGraphedLayer g : attached) {
            try {
                g.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
        }
        synchronized (lock) {
            for (Workspace ws : workspaces.values()) {
                try {
                    ws.close();
                } catch (RuntimeException e) {
                    if (first == null) first = e;
                }
            }
            workspaces.clear();
        }
        try {
            weightArena.close(); // frees in stream order and waits for the backend stream
        } catch (RuntimeException e) {
            if (first == null) first = e;
        }
        structArena.close();
        if (first != null) throw first;
    }
}
