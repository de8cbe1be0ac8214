package dev.latentmoe.kernels.cpu;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeKernels.Step;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.spi.LayerChecks;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CPU side of {@link dev.latentmoe.kernels.MoeKernels}: each call checks its arguments
 * ({@link LayerChecks}, the weights' liveness, the workspace), writes the descriptor block
 * ({@link CpuDescriptors}) at the start of the caller's workspace and calls the C entry point with
 * the rest of the workspace as its scratch. Public for {@code MoeKernels}; the package is not exported.
 *
 * <p>Workspace layout: descriptor block ({@link CpuDescriptors#blockBytes}) | the step's scratch
 * (64-byte aligned; forward: the native workspace, then room for routing the caller did not ask for).
 */
public final class CpuStatelessKernels {
    private CpuStatelessKernels() {}

    /** Bytes the step needs for T tokens (the static query; allocates a few bytes once per call). */
    public static long workspaceBytes(MoeConfig c, Step step, long tokens) {
        if (tokens < 0) throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
        requireLibrary();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment block = a.allocate(CpuDescriptors.WEIGHTS_OFFSET, 64);
            CpuDescriptors.writeConfig(block, c);
            return CpuDescriptors.blockBytes(c.numExperts()) + scratchBytes(block, c, step, tokens);
        }
    }

    /** The step's scratch after the block; {@code cfg} holds the written config. */
    private static long scratchBytes(MemorySegment cfg, MoeConfig c, Step step, long t) {
        return switch (step) {
            case ROUTER_TOPK, DISPATCH -> 0;
            case EXPERTS -> CpuDescriptors.align64(floats(latentmoe_h.lmoe_cpu_experts_scratch_floats(cfg, t),
                    "lmoe_cpu_experts_scratch_floats") * Float.BYTES);
            case COMBINE -> CpuDescriptors.align64(floats(latentmoe_h.lmoe_cpu_combine_scratch_floats(cfg, t),
                    "lmoe_cpu_combine_scratch_floats") * Float.BYTES);
            // The forward's own need is bounded by its token chunk; a forward-sized workspace also
            // serves every step at the same T (MoeKernels' promise), so it covers theirs too.
            case FORWARD -> Math.max(CpuDescriptors.align64(floats(latentmoe_h.lmoe_cpu_forward_workspace_bytes(cfg, t),
                    "lmoe_cpu_forward_workspace_bytes")) + routingBytes(c, t),
                    Math.max(scratchBytes(cfg, c, Step.EXPERTS, t), scratchBytes(cfg, c, Step.COMBINE, t)));
        };
    }

    private static long routingBytes(MoeConfig c, long t) {
        return CpuDescriptors.align64(t * c.topK() * 8L);
    }

    private static long floats(long n, String what) {
        if (n < 0) latentmoe_h.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, what);
        return n;
    }

    private static void requireLibrary() {
        if (!latentmoe_h.isAvailable()) {
            throw new IllegalStateException("CPU backend unavailable: " + latentmoe_h.unavailableReason().orElse("?"));
        }
    }

    /** One LayerChecks per config, so that a call allocates none (a config's checks never change). */
    private static final ConcurrentHashMap<MoeConfig, LayerChecks> CHECKS = new ConcurrentHashMap<>();

    private static LayerChecks checks(MoeWeights w) {
        if (w == null) throw new IllegalArgumentException("weights are null");
        MoeConfig c = w.config();
        LayerChecks ck = CHECKS.get(c);
        if (ck == null) {
            if (CHECKS.size() > 256) CHECKS.clear();   // bounded: an engine has a handful of layer shapes
            ck = new LayerChecks(c, Device.CPU, DType.F32, DType.F32);
            CHECKS.put(c, ck);
        }
        return ck;
    }

    /**
     * Checks the workspace (present, host, open, 64-byte aligned, large enough), writes the config
     * and the weights' descriptors into it; returns its segment.
     */
    private static MemorySegment prepare(MoeWeights w, Tensor workspace, Step step, long t, int parts) {
        if (w == null) throw new IllegalArgumentException("weights are null");
        requireLibrary();
        if (workspace == null) throw new IllegalArgumentException("workspace is null (size it with MoeKernels.workspaceBytes)");
        if (!workspace.device().isHost()) {
            throw new IllegalArgumentException("workspace is on " + workspace.device() + " but the CPU kernels need host memory");
        }
        MemorySegment ws = workspace.segment();   // open, alive, this thread
        if ((ws.address() & 63) != 0) {
            throw new IllegalArgumentException("workspace must be 64-byte aligned, its address is 0x" + Long.toHexString(ws.address()));
        }
        MoeConfig c = w.config();
        long block = CpuDescriptors.blockBytes(c.numExperts());
        if (ws.byteSize() < block) throw tooSmall(workspace, c, step, t, block);
        CpuDescriptors.writeConfig(ws, c);
        long need = block + scratchBytes(ws, c, step, t);
        if (ws.byteSize() < need) throw tooSmall(workspace, c, step, t, need);
        CpuDescriptors.writeWeights(ws, w, parts);
        return ws;
    }

    private static IllegalArgumentException tooSmall(Tensor workspace, MoeConfig c, Step step, long t, long need) {
        return new IllegalArgumentException("workspace of " + workspace.byteSize() + " bytes is too small for " + step
                + " of T = " + t + " tokens: need " + need + " (MoeKernels.workspaceBytes(config, " + step + ", " + t + "))");
    }

    // The entry points with the pointers into the workspace as raw addresses: the workspace itself
    // goes in whole as cfg (at its offset 0), which keeps it alive for the call, and no slice object
    // is made per call (C2 does not scalar-replace slices that reach a downcall).
    private static final MethodHandle ROUTER = latentmoe_h.addressDowncall("lmoe_cpu_router_topk", 1);
    private static final MethodHandle DISPATCH = latentmoe_h.addressDowncall("lmoe_cpu_dispatch", 1);
    private static final MethodHandle EXPERTS = latentmoe_h.addressDowncall("lmoe_cpu_experts", 1, 5);
    private static final MethodHandle COMBINE = latentmoe_h.addressDowncall("lmoe_cpu_combine", 1, 7);
    private static final MethodHandle FORWARD = latentmoe_h.addressDowncall("lmoe_cpu_forward", 1, 4, 5, 6);

    private static long weightsStruct(MemorySegment ws) {
        return ws.address() + CpuDescriptors.WEIGHTS_OFFSET;
    }

    private static long scratch(MemorySegment ws, MoeConfig c) {
        return ws.address() + CpuDescriptors.blockBytes(c.numExperts());
    }

    private static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException("unexpected checked exception from a downcall", t);
    }

    public static void routerTopK(MoeWeights w, Tensor x, Tensor ids, Tensor weights, Tensor workspace) {
        LayerChecks ck = checks(w);
        long t = ck.input(x);
        ck.routing(t, ids, weights);
        MemorySegment ws = prepare(w, workspace, Step.ROUTER_TOPK, t, CpuDescriptors.ROUTER);
        int status;
        try {
            status = (int) ROUTER.invokeExact(ws, weightsStruct(ws), x.segment(), t, ids.segment(), weights.segment());
        } catch (Throwable e) {
            throw unexpected(e);
        }
        latentmoe_h.check(status, "lmoe_cpu_router_topk");
    }

    public static void dispatch(MoeWeights w, Tensor x, Tensor ids, Tensor offsets, Tensor rows, Tensor latent,
                                Tensor workspace) {
        LayerChecks ck = checks(w);
        MoeConfig c = w.config();
        long t = ck.input(x);
        long slots = t * c.topK();
        ck.check("topkIds", ids, DType.I32, t, c.topK());
        ck.expertIds(ids);
        ck.check("expertOffsets", offsets, DType.I32, c.numExperts() + 1);
        ck.check("sortedRowOfSlot", rows, DType.I32, slots);
        ck.sorted("latentSorted", latent, slots);
        MemorySegment ws = prepare(w, workspace, Step.DISPATCH, t, CpuDescriptors.DISPATCH);
        int status;
        try {
            status = (int) DISPATCH.invokeExact(ws, weightsStruct(ws), x.segment(), t, ids.segment(), offsets.segment(),
                    rows.segment(), latent.segment());
        } catch (Throwable e) {
            throw unexpected(e);
        }
        latentmoe_h.check(status, "lmoe_cpu_dispatch");
    }

    public static void experts(MoeWeights w, Tensor offsets, Tensor latent, Tensor out, Tensor workspace) {
        LayerChecks ck = checks(w);
        MoeConfig c = w.config();
        ck.sorted("latentSorted", latent, -1);
        long slots = latent.dim(0);
        if (slots == 0 || slots % c.topK() != 0) {
            throw new IllegalArgumentException("latentSorted has " + slots + " rows; expected T·K rows with T >= 1, K = " + c.topK());
        }
        ck.check("expertOffsets", offsets, DType.I32, c.numExperts() + 1);
        ck.sorted("expertOutSorted", out, slots);
        ck.offsets(offsets, slots);
        long t = slots / c.topK();
        MemorySegment ws = prepare(w, workspace, Step.EXPERTS, t, CpuDescriptors.EXPERTS);
        int status;
        try {
            status = (int) EXPERTS.invokeExact(ws, weightsStruct(ws), t, offsets.segment(), latent.segment(),
                    scratch(ws, c), out.segment());
        } catch (Throwable e) {
            throw unexpected(e);
        }
        latentmoe_h.check(status, "lmoe_cpu_experts");
    }

    public static void combine(MoeWeights w, Tensor x, Tensor weights, Tensor rows, Tensor expertOut, Tensor out,
                               Tensor workspace) {
        LayerChecks ck = checks(w);
        MoeConfig c = w.config();
        long t = ck.input(x);
        long slots = t * c.topK();
        ck.check("topkWeights", weights, DType.F32, t, c.topK());
        ck.check("sortedRowOfSlot", rows, DType.I32, slots);
        ck.sorted("expertOutSorted", expertOut, slots);
        ck.output(t, out);
        ck.permutation(rows, slots);
        MemorySegment ws = prepare(w, workspace, Step.COMBINE, t, CpuDescriptors.COMBINE);
        int status;
        try {
            status = (int) COMBINE.invokeExact(ws, weightsStruct(ws), x.segment(), t, weights.segment(), rows.segment(),
                    expertOut.segment(), scratch(ws, c), out.segment());
        } catch (Throwable e) {
            throw unexpected(e);
        }
        latentmoe_h.check(status, "lmoe_cpu_combine");
    }

    public static void forward(MoeWeights w, Tensor x, Tensor ids, Tensor weights, Tensor out, Tensor workspace) {
        LayerChecks ck = checks(w);
        MoeConfig c = w.config();
        long t = ck.input(x);
        if ((ids == null) != (weights == null)) {
            throw new IllegalArgumentException("topkIds and topkWeights must both be given or both be null");
        }
        if (ids != null) ck.routing(t, ids, weights);
        ck.output(t, out);
        MemorySegment ws = prepare(w, workspace, Step.FORWARD, t, CpuDescriptors.ALL);
        long nativeBytes = CpuDescriptors.align64(latentmoe_h.lmoe_cpu_forward_workspace_bytes(ws, t));
        long scratch = scratch(ws, c);
        long idsAddr, weightsAddr;
        if (ids != null) {   // checked open above; a caller closing them during the call is its own error
            idsAddr = ids.segment().address();
            weightsAddr = weights.segment().address();
        } else {   // routing nobody asked for goes after the native workspace
            idsAddr = scratch + nativeBytes;
            weightsAddr = idsAddr + t * c.topK() * 4L;
        }
        int status;
        try {
            status = (int) FORWARD.invokeExact(ws, weightsStruct(ws), x.segment(), t, idsAddr, weightsAddr, scratch,
                    nativeBytes, out.segment());
        } catch (Throwable e) {
            throw unexpected(e);
        }
        latentmoe_h.check(status, "lmoe_cpu_forward");
    }
}
