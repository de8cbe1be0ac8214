package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.bindings.lmoe_cuda_weights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.spi.CheckedLayerKernels;
import dev.latentmoe.kernels.spi.NativeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * CUDA kernels bound to one layer: its weights copied to the GPU in the layout of
 * {@code latentmoe_cuda.h} ({@link CudaWeightUpload}), the {@code lmoe_config} /
 * {@code lmoe_cuda_weights} structs, and a device workspace per stream. The {@code LayerKernels}
 * methods enqueue and then wait for the backend's stream (the CPU backend's contract);
 * {@link #forwardAsync} only enqueues. Validation, streams and threads: the package documentation.
 * Closing waits for the calls (enqueues) in flight, as on the CPU ({@link CheckedLayerKernels}), then
 * closes the graphed layers over these weights and frees the weights in stream order.
 */
public final class CudaLayerKernels extends CheckedLayerKernels {
    private static final long ALIGN = CudaSteps.ALIGN;

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
            cfg = NativeConfig.allocate(c, structs);

            wts = CudaWeightUpload.upload(w, dev, stream, structs, backend.isW8a8());
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

    /** The backend's stream, on which the synchronous methods run. */
    public CudaStream stream() { return backend.stream(); }

    /** Device bytes held by the uploaded weights. */
    public long weightBytes() { return weightArena.bytesHeld(); }

    /** "decode" or "sorted": the name of an {@code LMOE_CUDA_PATH_*} value; null for any other. */
    public static String pathName(int lmoeCudaPath) {
        return switch (lmoeCudaPath) {
            case latentmoe_cuda_h.LMOE_CUDA_PATH_DECODE -> "decode";
            case latentmoe_cuda_h.LMOE_CUDA_PATH_SORTED -> "sorted";
            default -> null;
        };
    }

    /** The {@code lmoe_config} struct (host memory), for {@link CudaGraphedLayer}'s captures. */
    MemorySegment configStruct() { return cfg; }

    /** The {@code lmoe_cuda_weights} struct (host memory holding device pointers). */
    MemorySegment weightsStruct() { return wts; }

    /** Throws unless these kernels and the weights' host arenas are open. */
    void checkOpen() { ensureOpen(); }

    /** A use of these kernels from {@link CudaGraphedLayer} that close() must wait for (pair with {@link #exitUse()}). */
    void enterUse() { enterCall(); }

    void exitUse() { exitCall(); }

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
        long bytes = CudaSteps.workspaceBytes(need, what);
        Workspace ws = workspaces.computeIfAbsent(stream.handle().address(), k -> new Workspace(stream));
        return ws.ensure(bytes);
    }

    private void waitFor(CudaStream s) { s.synchronize(); }

    /** Waits for the allocation streams of tensors whose arena runs on a stream other than {@code s}. */
    private static void orderAfterForeignStreams(CudaStream s, Tensor... ts) {
        long waited = s.handle().address();
        for (Tensor t : ts) waited = CudaSteps.orderAfter(s, t, waited);
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
        enterCall();   // close() waits for the enqueue; the GPU work is ordered before the stream-ordered free
        try {
            long t = checkForward(x, topkIds, topkWeights, out);
            enqueueForward(t, x, topkIds, topkWeights, out, stream);
        } finally {
            exitCall();
        }
    }

    private void enqueueForward(long t, Tensor x, Tensor ids, Tensor w, Tensor out, CudaStream s) {
        orderAfterForeignStreams(s, x, ids, w, out);
        synchronized (lock) {
            ensureOpen();
            Cuda.setDevice(backend.deviceId());
            long nativeBytes = CudaSteps.workspaceBytes(latentmoe_cuda_h.lmoe_cuda_forward_workspace_bytes(cfg, t),
                    "lmoe_cuda_forward_workspace_bytes");
            long k = config.topK();
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
