package dev.latentmoe.kernels.cpu;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_matrix;
import dev.latentmoe.bindings.lmoe_weights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.kernels.spi.CheckedLayerKernels;
import dev.latentmoe.kernels.spi.NativeConfig;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * CPU kernels bound to one layer: the native {@code lmoe_config}/{@code lmoe_weights} structs
 * (weights referenced in place, no copy: their arenas are held until the kernels close) and a pool
 * of workspaces so concurrent callers never share scratch memory and a steady-state call allocates
 * nothing. {@link #release()} runs only once no call is in flight (the base class's guard).
 */
final class CpuLayerKernels extends CheckedLayerKernels {
    private final HostArena structArena;
    private final MemorySegment cfg;
    private final MemorySegment wts;
    /** Idle workspaces in fixed slots (taking and returning one allocates nothing, unlike a deque's nodes). */
    private final AtomicReferenceArray<Workspace> pool = new AtomicReferenceArray<>(POOL_SLOTS);
    private static final int POOL_SLOTS = 64;
    /** A forward of up to this many tokens is a decode-sized call; its workspace is kept freely. */
    private static final int SMALL_CALL_TOKENS = 64;
    /**
     * Idle workspaces above a decode-sized call's are not kept beyond one: a prefill's workspace
     * (bounded by the forward's token chunk, hundreds of MiB at Super shapes) is reused by the next
     * prefill, but a burst of concurrent prefills does not leave one such buffer per caller behind.
     */
    private final long largeIdleBytes;
    /** Bytes of every workspace of this layer now, and the most there ever were at once. */
    private final AtomicLong workspaceBytes = new AtomicLong();
    private final AtomicLong workspacePeakBytes = new AtomicLong();

    /** Scratch for one caller: grown to the largest T seen (forward: at most one chunk). */
    private final class Workspace {
        HostArena arena;
        long capacityBytes;
        MemorySegment bytes = MemorySegment.NULL;

        // Routing slices of forward() when the caller does not want the routing, cached per (offset, T·K).
        long sliceOffset = -1, sliceSlots = -1;
        MemorySegment idsSlice, weightsSlice;

        MemorySegment ensure(long need) {
            if (need > capacityBytes) {
                close();
                arena = HostArena.shared("cpu-workspace");
                bytes = arena.allocate(need);
                capacityBytes = need;
                workspacePeakBytes.accumulateAndGet(workspaceBytes.addAndGet(need), Math::max);
                sliceOffset = -1;
            }
            return bytes;
        }

        /** ids then weights, each slots·4 bytes, at {@code offset} of the current buffer; no allocation when unchanged. */
        void routingSlices(long offset, long slots) {
            if (offset != sliceOffset || slots != sliceSlots) {
                idsSlice = bytes.asSlice(offset, slots * 4L);
                weightsSlice = bytes.asSlice(offset + slots * 4L, slots * 4L);
                sliceOffset = offset;
                sliceSlots = slots;
            }
        }

        void close() {
            if (arena != null) {
                arena.close();
                arena = null;
                workspaceBytes.addAndGet(-capacityBytes);
                capacityBytes = 0;
            }
        }
    }

    CpuLayerKernels(MoeWeights w, Precision precision) {
        super(w, Device.CPU);
        MoeConfig c = w.config();
        structArena = HostArena.shared("cpu-layer-structs");
        try {
            cfg = NativeConfig.allocate(c, precision, structArena);

            int n = c.numExperts();
            MemorySegment ups = structArena.allocate(lmoe_matrix.sizeof() * n);
            MemorySegment downs = structArena.allocate(lmoe_matrix.sizeof() * n);
            MemorySegment gates = w.expertGate(0) == null ? MemorySegment.NULL : structArena.allocate(lmoe_matrix.sizeof() * n);
            for (int e = 0; e < n; e++) {
                describe(w.expertUp(e), lmoe_matrix.asSlice(ups, e));
                describe(w.expertDown(e), lmoe_matrix.asSlice(downs, e));
                if (gates != MemorySegment.NULL) describe(w.expertGate(e), lmoe_matrix.asSlice(gates, e));
            }
            wts = structArena.allocate(lmoe_weights.sizeof());
            describe(w.gate(), lmoe_weights.gate(wts));
            lmoe_weights.gate_bias(wts, w.gateBias() == null ? MemorySegment.NULL : w.gateBias().segment());
            describe(w.latentDown(), lmoe_weights.latent_down(wts));
            describe(w.latentUp(), lmoe_weights.latent_up(wts));
            lmoe_weights.expert_up(wts, ups);
            lmoe_weights.expert_gate(wts, gates);
            lmoe_weights.expert_down(wts, downs);
            describe(w.sharedUp(), lmoe_weights.shared_up(wts));
            describe(w.sharedGate(), lmoe_weights.shared_gate(wts));
            describe(w.sharedDown(), lmoe_weights.shared_down(wts));
            latentmoe_h.check(latentmoe_h.lmoe_validate(cfg, wts), "lmoe_validate");
            largeIdleBytes = Math.max(1L << 20, latentmoe_h.lmoe_cpu_forward_workspace_bytes(cfg, SMALL_CALL_TOKENS)
                    + ((SMALL_CALL_TOKENS * c.topK() * 8L + 63) & ~63L) + 64);
            // The native calls read the weights in place: their arenas must outlive these kernels.
            holdWeightArenas();
        } catch (RuntimeException e) {
            structArena.close();
            throw e;
        }
    }

    /** Writes {@code m} into the {@code lmoe_matrix} at {@code out} (the stateless path's writer); absent: data NULL. */
    private static void describe(WeightMatrix m, MemorySegment out) {
        CpuDescriptors.describe(out, 0, m);
    }

    private Workspace acquire() {
        for (int i = 0; i < POOL_SLOTS; i++) {
            if (pool.getPlain(i) != null) {
                Workspace ws = pool.getAndSet(i, null);
                if (ws != null) return ws;
            }
        }
        return new Workspace();
    }

    private void giveBack(Workspace ws) {
        if (structArena.isOpen() && (ws.capacityBytes < largeIdleBytes || !hasLargeIdle())) {
            for (int i = 0; i < POOL_SLOTS; i++) {
                if (pool.getPlain(i) == null && pool.compareAndSet(i, null, ws)) {
                    if (!structArena.isOpen()) drain();   // closed meanwhile: release() may have missed it
                    return;
                }
            }
        }
        ws.close();   // trimmed, more concurrent callers than slots, or closed
    }

    private boolean hasLargeIdle() {
        for (int i = 0; i < POOL_SLOTS; i++) {
            Workspace w = pool.getPlain(i);
            if (w != null && w.capacityBytes >= largeIdleBytes) return true;
        }
        return false;
    }

    @Override
    public long workspaceBytes() { return workspaceBytes.get(); }

    @Override
    public long workspacePeakBytes() { return workspacePeakBytes.get(); }

    private void drain() {
        for (int i = 0; i < POOL_SLOTS; i++) {
            Workspace ws = pool.getAndSet(i, null);
            if (ws != null) ws.close();
        }
    }

    @Override
    protected void runRouterTopK(long t, Tensor x, Tensor ids, Tensor w) {
        latentmoe_h.check(latentmoe_h.lmoe_cpu_router_topk(cfg, wts, x.segment(), t, ids.segment(), w.segment()),
                "lmoe_cpu_router_topk");
    }

    @Override
    protected void runDispatch(long t, Tensor x, Tensor ids, Tensor offsets, Tensor rows, Tensor latent) {
        latentmoe_h.check(latentmoe_h.lmoe_cpu_dispatch(cfg, wts, x.segment(), t, ids.segment(), offsets.segment(),
                rows.segment(), latent.segment()), "lmoe_cpu_dispatch");
    }

    @Override
    protected void runExperts(long t, Tensor offsets, Tensor latent, Tensor out) {
        Workspace ws = acquire();
        try {
            long hiddenBytes = t * config.topK() * (long) config.intermediateSize() * Float.BYTES;
            MemorySegment hidden = ws.ensure(hiddenBytes);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_experts(cfg, wts, t, offsets.segment(), latent.segment(), hidden,
                    out.segment()), "lmoe_cpu_experts");
        } finally {
            giveBack(ws);
        }
    }

    @Override
    protected void runCombine(long t, Tensor x, Tensor w, Tensor rows, Tensor expertOut, Tensor out) {
        Workspace ws = acquire();
        try {
            long floats = latentmoe_h.lmoe_cpu_combine_scratch_floats(cfg, t);
            MemorySegment scratch = ws.ensure(Math.max(1, floats) * Float.BYTES);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_combine(cfg, wts, x.segment(), t, w.segment(), rows.segment(),
                    expertOut.segment(), scratch, out.segment()), "lmoe_cpu_combine");
        } finally {
            giveBack(ws);
        }
    }

    @Override
    protected void runForward(long t, Tensor x, Tensor ids, Tensor w, Tensor out) {
        Workspace ws = acquire();
        try {
            long need = latentmoe_h.lmoe_cpu_forward_workspace_bytes(cfg, t);
            if (need < 0) latentmoe_h.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, "lmoe_cpu_forward_workspace_bytes");
            // Routing the caller does not want goes to the end of the workspace.
            long routingBytes = ids == null ? ((t * config.topK() * 8 + 63) & ~63L) : 0;
            long nativeBytes = (Math.max(64, need) + 63) & ~63L;
            MemorySegment scratch = ws.ensure(nativeBytes + routingBytes);
            if (ids == null) ws.routingSlices(nativeBytes, t * config.topK());
            MemorySegment idsSeg = ids != null ? ids.segment() : ws.idsSlice;
            MemorySegment wSeg = w != null ? w.segment() : ws.weightsSlice;
            latentmoe_h.check(latentmoe_h.lmoe_cpu_forward(cfg, wts, x.segment(), t, idsSeg, wSeg,
                    scratch, nativeBytes, out.segment()), "lmoe_cpu_forward");
        } finally {
            giveBack(ws);
        }
    }

    @Override
    protected void release() {
        structArena.close();
        drain();
    }
}
