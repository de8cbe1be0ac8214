package dev.latentmoe.kernels;

import dev.latentmoe.kernels.MoeKernels.Step;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.interop.ForeignArena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input to the caller-owned-weights API, each raising a clear Java exception before any native
 * call (and the JVM living on to run the next case): wrong strides, non-contiguous expert weights,
 * dtype or device mismatch between weights and activations, top-K ids out of range, weights freed
 * by the caller before the call, and a bad workspace.
 */
@ExtendWith(NoLeaks.class)
class CallerWeightsBadInputTest {
    static final MoeConfig C = Cases.cfg(32, 8, 5, 2, 12, 10, 1f, Activation.RELU2);

    private static <T extends Throwable> T raises(Class<T> type, String fragment, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(fragment),
                "expected a message containing '" + fragment + "', got: " + e.getMessage());
        return e;
    }

    @Test
    void wrongStridesAndNonContiguousExpertWeights() {
        int n = C.numExperts(), m = C.intermediateSize(), w = C.expertWidth();
        try (Arena callers = Arena.ofConfined(); ForeignArena owner = ForeignArena.view("caller", Device.CPU)) {
            MemorySegment seg = callers.allocate((long) n * m * w * 2 + 64, 64);
            long[] shape = {n, m, w};
            // transformers can hand out the transposed view of up_proj: strides [m·w, 1, m]
            raises(IllegalArgumentException.class, "non-contiguous expert weights", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {(long) m * w, 1, m}));
            raises(IllegalArgumentException.class, "looks transposed", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {(long) m * w, 1, m}));
            // a column slice of a wider tensor: rows are not contiguous
            raises(IllegalArgumentException.class, "strides [*, " + w + ", 1]", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {(long) m * (w + 3), w + 3, 1}));
            // experts overlapping, or walking backwards
            raises(IllegalArgumentException.class, "wrong strides", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {(long) m * w - 1, w, 1}));
            raises(IllegalArgumentException.class, "wrong strides", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {-(long) m * w, w, 1}));
            // strides that run past the memory
            raises(IllegalArgumentException.class, "too small", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, shape, new long[] {(long) m * w * 2, w, 1}));
            raises(IllegalArgumentException.class, "need a shape [N, rows, cols]", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg, DType.BF16, new long[] {n, m * w}, new long[] {(long) m * w, 1}));
            raises(IllegalArgumentException.class, "not aligned", () -> WeightMatrix.experts(
                    "experts.up_proj", owner, seg.asSlice(1), DType.BF16, shape, new long[] {(long) m * w, w, 1}));
            // a Tensor that is not [N, rows, cols]
            try (HostArena a = HostArena.confined("a")) {
                raises(IllegalArgumentException.class, "must be [N, rows, cols]",
                        () -> WeightMatrix.experts(a.allocateTensor(DType.BF16, n, m * w)));
                raises(IllegalArgumentException.class, "must be F32 or BF16",
                        () -> WeightMatrix.experts(a.allocateTensor(DType.F16, n, m, w)));
                // fused views of the wrong per-expert shape are caught when the layer's weights are built
                MoeWeights good = MoeKernelsTest.fusedWeights(C, DType.BF16, 1, a);
                WeightMatrix[] swapped = WeightMatrix.experts(a.allocateTensor(DType.BF16, n, w, m));
                raises(IllegalArgumentException.class, "experts.0.up_proj.weight has shape [" + w + ", " + m + "]",
                        () -> withUp(good, swapped));
            }
        }
    }

    private static MoeWeights withUp(MoeWeights g, WeightMatrix[] up) {
        WeightMatrix[] down = new WeightMatrix[g.config().numExperts()];
        for (int e = 0; e < down.length; e++) down[e] = g.expertDown(e);
        return new MoeWeights(g.config(), g.gate(), g.gateBias(), g.latentDown(), g.latentUp(), up, null, down,
                g.sharedUp(), null, g.sharedDown());
    }

    @Test
    void dtypeAndDeviceMismatchBetweenWeightsAndActivations() {
        try (HostArena a = HostArena.confined("a"); ForeignArena gpuTagged = ForeignArena.view("device view", Device.cuda(0))) {
            MoeWeights weights = MoeKernelsTest.fusedWeights(C, DType.BF16, 2, a);
            Tensor ws = MoeKernels.allocateWorkspace(a, C, Step.FORWARD, 4);
            Tensor out = a.allocateTensor(DType.F32, 4, C.hiddenSize());
            // bf16 activations with bf16 weights: the CPU path takes f32 activations
            Tensor xb = a.allocateTensor(DType.BF16, 4, C.hiddenSize()).fill(0.25f);
            raises(IllegalArgumentException.class, "x must be F32", () -> MoeKernels.forward(weights, xb, null, null, out, ws));
            Tensor x = Cases.input(a, 4, C.hiddenSize(), 3);
            Tensor outB = a.allocateTensor(DType.BF16, 4, C.hiddenSize());
            raises(IllegalArgumentException.class, "out must be F32", () -> MoeKernels.forward(weights, x, null, null, outB, ws));
            // f16 weights are no weight format
            raises(IllegalArgumentException.class, "must be BF16 or F32", () -> new MoeWeights(C,
                    a.allocateTensor(DType.F16, C.numExperts(), C.hiddenSize()), null, null, null, null, null, null, null, null, null));
            // activations that claim to live on a GPU
            Tensor xDev = Tensor.wrap(gpuTagged, x.segment(), DType.F32, 4, C.hiddenSize());
            raises(IllegalArgumentException.class, "x is on cuda:0 but this backend runs on cpu",
                    () -> MoeKernels.forward(weights, xDev, null, null, out, ws));
            // weights on a GPU with activations on the host
            Tensor upDev = Tensor.wrap(gpuTagged, a.allocateTensor(DType.BF16, C.numExperts(), C.intermediateSize(),
                    C.expertWidth()).segment(), DType.BF16, C.numExperts(), C.intermediateSize(), C.expertWidth());
            raises(IllegalArgumentException.class, "is not in host memory", () -> withUp(weights, WeightMatrix.experts(upDev)));
            // a workspace that claims to live on a GPU
            Tensor wsDev = Tensor.wrap(gpuTagged, ws.segment(), DType.U8, ws.numel());
            raises(IllegalArgumentException.class, "workspace is on cuda:0", () -> MoeKernels.forward(weights, x, null, null, out, wsDev));
        }
    }

    @Test
    void topKIdsOutOfRange() {
        int t = 3, k = C.topK(), n = C.numExperts();
        try (HostArena a = HostArena.confined("a")) {
            MoeWeights weights = MoeKernelsTest.fusedWeights(C, DType.F32, 4, a);
            Tensor ws = MoeKernels.allocateWorkspace(a, C, Step.FORWARD, t);
            Tensor x = Cases.input(a, t, C.hiddenSize(), 5);
            Tensor ids = a.allocateTensor(DType.I32, t, k);
            for (int i = 0; i < t * k; i++) ids.setInt(i, i % n);
            Tensor offsets = a.allocateTensor(DType.I32, n + 1), rows = a.allocateTensor(DType.I32, (long) t * k);
            Tensor latent = a.allocateTensor(DType.F32, (long) t * k, C.expertWidth());
            ids.setInt(3, n);
            raises(IllegalArgumentException.class, "expert id " + n + " at token 1, k 1 is out of range [0, " + n + ")",
                    () -> MoeKernels.dispatch(weights, x, ids, offsets, rows, latent, ws));
            ids.setInt(3, -1);
            raises(IllegalArgumentException.class, "expert id -1", () -> MoeKernels.dispatch(weights, x, ids, offsets, rows, latent, ws));
            // offsets and slot rows that would index out of range downstream
            ids.setInt(3, 1);
            MoeKernels.dispatch(weights, x, ids, offsets, rows, latent, ws);
            Tensor eo = a.allocateTensor(DType.F32, (long) t * k, C.expertWidth());
            offsets.setInt(n, t * k + 1);
            raises(IllegalArgumentException.class, "expertOffsets[N]", () -> MoeKernels.experts(weights, offsets, latent, eo, ws));
            Tensor w = a.allocateTensor(DType.F32, t, k).fill(0.5f), out = a.allocateTensor(DType.F32, t, C.hiddenSize());
            rows.setInt(2, t * k);
            raises(IllegalArgumentException.class, "sortedRowOfSlot[2]", () -> MoeKernels.combine(weights, x, w, rows, eo, out, ws));
        }
    }

    @Test
    void weightsFreedByTheCallerBeforeTheCall() {
        int t = 2;
        try (HostArena a = HostArena.confined("activations")) {
            Tensor x = Cases.input(a, t, C.hiddenSize(), 6);
            Tensor out = a.allocateTensor(DType.F32, t, C.hiddenSize());
            Tensor ws = MoeKernels.allocateWorkspace(a, C, Step.FORWARD, t);

            // 1. weights in the caller's own java.lang.foreign.Arena, wrapped without copy, then freed
            ForeignArena view = ForeignArena.view("engine weights", Device.CPU);
            Arena engine = Arena.ofShared();
            MoeWeights fromSegments;
            try (HostArena tmp = HostArena.shared("source")) {
                fromSegments = copyInto(MoeKernelsTest.fusedWeights(C, DType.F32, 7, tmp), engine, view);
            }
            MoeKernels.forward(fromSegments, x, null, null, out, ws);   // alive: fine
            engine.close();
            raises(IllegalStateException.class, "was freed by its owner", () -> MoeKernels.forward(fromSegments, x, null, null, out, ws));
            raises(IllegalStateException.class, "was freed by its owner", () -> MoeKernels.routerTopK(fromSegments, x,
                    a.allocateTensor(DType.I32, t, C.topK()), a.allocateTensor(DType.F32, t, C.topK()), ws));
            view.close();

            // 2. weights in one of the library's arenas, closed
            HostArena weightsArena = HostArena.shared("weights");
            MoeWeights inArena = MoeKernelsTest.fusedWeights(C, DType.BF16, 8, weightsArena);
            weightsArena.close();
            raises(IllegalStateException.class, "arena 'weights' is closed", () -> MoeKernels.forward(inArena, x, null, null, out, ws));

            // 3. weights confined to another thread
            MoeWeights[] confined = new MoeWeights[1];
            HostArena[] other = new HostArena[1];
            ExecutorService thread = Executors.newSingleThreadExecutor();
            try {
                CompletableFuture.runAsync(() -> {
                    other[0] = HostArena.confined("other thread's weights");
                    confined[0] = MoeKernelsTest.fusedWeights(C, DType.BF16, 9, other[0]);
                }, thread).join();
                raises(WrongThreadException.class, "is confined to thread", () -> MoeKernels.forward(confined[0], x, null, null, out, ws));
                CompletableFuture.runAsync(() -> other[0].close(), thread).join();
            } finally {
                thread.shutdown();
            }

            // still alive and well: a good call after all of that
            try (HostArena wa = HostArena.shared("fine")) {
                MoeKernels.forward(MoeKernelsTest.fusedWeights(C, DType.BF16, 10, wa), x, null, null, out, ws);
            }
        }
    }

    /** The same weights copied into segments of {@code engine}, each matrix wrapped as the caller's memory. */
    private static MoeWeights copyInto(MoeWeights src, Arena engine, ForeignArena view) {
        int n = src.config().numExperts();
        WeightMatrix[] up = new WeightMatrix[n], down = new WeightMatrix[n];
        for (int e = 0; e < n; e++) {
            up[e] = copy(src.expertUp(e), engine, view);
            down[e] = copy(src.expertDown(e), engine, view);
        }
        Tensor bias = src.gateBias();
        MemorySegment b = engine.allocate(bias.byteSize(), 64).copyFrom(bias.segment());
        return new MoeWeights(src.config(), copy(src.gate(), engine, view), Tensor.wrap(view, b, DType.F32, bias.shape()),
                copy(src.latentDown(), engine, view), copy(src.latentUp(), engine, view), up, null, down,
                copy(src.sharedUp(), engine, view), null, copy(src.sharedDown(), engine, view));
    }

    private static WeightMatrix copy(WeightMatrix m, Arena engine, ForeignArena view) {
        Tensor d = m.data();
        MemorySegment s = engine.allocate(d.byteSize(), 64).copyFrom(d.segment());
        return WeightMatrix.of(Tensor.wrap(view, s, d.dtype(), d.shape()));
    }

    @Test
    void badWorkspace() {
        int t = 5;
        try (HostArena a = HostArena.confined("a")) {
            MoeWeights weights = MoeKernelsTest.fusedWeights(C, DType.F32, 11, a);
            Tensor x = Cases.input(a, t, C.hiddenSize(), 12);
            Tensor out = a.allocateTensor(DType.F32, t, C.hiddenSize());
            raises(IllegalArgumentException.class, "workspace is null", () -> MoeKernels.forward(weights, x, null, null, out, null));
            long need = MoeKernels.workspaceBytes(C, Step.FORWARD, t);
            Tensor small = a.allocateTensor(DType.U8, need - 64);
            raises(IllegalArgumentException.class, "too small for FORWARD of T = 5 tokens: need " + need,
                    () -> MoeKernels.forward(weights, x, null, null, out, small));
            Tensor tiny = a.allocateTensor(DType.U8, 16);
            raises(IllegalArgumentException.class, "too small", () -> MoeKernels.routerTopK(weights, x,
                    a.allocateTensor(DType.I32, t, C.topK()), a.allocateTensor(DType.F32, t, C.topK()), tiny));
            // sized for fewer tokens than this call has
            Tensor forTwo = MoeKernels.allocateWorkspace(a, C, Step.FORWARD, 2);
            raises(IllegalArgumentException.class, "too small", () -> MoeKernels.forward(weights, x, null, null, out, forTwo));
            Tensor big = a.allocateTensor(DType.U8, need + 64);
            Tensor misaligned = Tensor.wrap(a, big.segment().asSlice(8, need), DType.U8, need);
            raises(IllegalArgumentException.class, "64-byte aligned", () -> MoeKernels.forward(weights, x, null, null, out, misaligned));
            raises(IllegalArgumentException.class, "both be given or both be null",
                    () -> MoeKernels.forward(weights, x, a.allocateTensor(DType.I32, t, C.topK()), null, out, big));
            raises(IllegalArgumentException.class, "tokens must be >= 0", () -> MoeKernels.workspaceBytes(C, Step.FORWARD, -1));
            HostArena gone = HostArena.confined("gone");
            Tensor closedWs = MoeKernels.allocateWorkspace(gone, C, Step.FORWARD, t);
            gone.close();
            raises(IllegalStateException.class, "arena 'gone' is closed", () -> MoeKernels.forward(weights, x, null, null, out, closedWs));
            // a workspace larger than needed is fine, and the result does not depend on it
            Tensor o1 = a.allocateTensor(DType.F32, t, C.hiddenSize()), o2 = a.allocateTensor(DType.F32, t, C.hiddenSize());
            MoeKernels.forward(weights, x, null, null, o1, big);
            MoeKernels.forward(weights, x, null, null, o2, MoeKernels.allocateWorkspace(a, C, Step.FORWARD, 4096));
            assertEquals(java.util.Arrays.toString(o1.toFloatArray()), java.util.Arrays.toString(o2.toFloatArray()));
        }
    }
}
