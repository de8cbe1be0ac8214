package dev.latentmoe.kernels;

import dev.latentmoe.kernels.MoeKernels.Step;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.interop.ForeignArena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stateless entry points over caller-owned weights ({@link MoeKernels}): every step and the
 * whole layer against the float64 reference on weights held as fused 3D expert tensors, bit for
 * bit against the bound {@link MoeLayer}, zero-copy views, the caller's workspace, and no Java heap
 * allocation once warm. The bad inputs of caller-owned weights are in {@link CallerWeightsBadInputTest}.
 */
@ExtendWith(NoLeaks.class)
class MoeKernelsTest {
    /** CPU, f32 accumulation on the stored weight values: the same bound for f32 and bf16 weights. */
    static final double TOL = 1e-5;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of("super/8", Cases.SUPER_SMALL, DType.BF16, 1),
                Arguments.of("super/8", Cases.SUPER_SMALL, DType.BF16, 37),
                Arguments.of("nano/8 standard", Cases.NANO_SMALL, DType.F32, 19),
                Arguments.of("N=512 K=32", Cases.WIDE_N, DType.BF16, 9),
                Arguments.of("odd swiglu softmax", Cases.ODD_SWIGLU.withScoring(Scoring.SOFTMAX), DType.F32, 130));
    }

    /** Random weights whose routed experts live in fused [N, m, w] / [N, w, m] tensors, as transformers keeps them. */
    static MoeWeights fusedWeights(MoeConfig c, DType dt, long seed, MemoryArena arena) {
        SplittableRandom r = new SplittableRandom(seed);
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean swiglu = c.activation() == Activation.SWIGLU;
        Tensor upFused = rand(arena, dt, r, w, n, m, w);
        Tensor downFused = rand(arena, dt, r, m, n, w, m);
        Tensor gateFused = swiglu ? rand(arena, dt, r, w, n, m, w) : null;
        return new MoeWeights(c, WeightMatrix.of(rand(arena, dt, r, d, n, d)), rand(arena, DType.F32, r, 0, n),
                c.isLatent() ? WeightMatrix.of(rand(arena, dt, r, d, l, d)) : null,
                c.isLatent() ? WeightMatrix.of(rand(arena, dt, r, l, d, l)) : null,
                WeightMatrix.experts(upFused), swiglu ? WeightMatrix.experts(gateFused) : null,
                WeightMatrix.experts(downFused),
                ms > 0 ? WeightMatrix.of(rand(arena, dt, r, d, ms, d)) : null,
                ms > 0 && swiglu ? WeightMatrix.of(rand(arena, dt, r, d, ms, d)) : null,
                ms > 0 ? WeightMatrix.of(rand(arena, dt, r, ms, d, ms)) : null);
    }

    /** Uniform in ±1/sqrt(fanIn) (±0.1 for fanIn 0), never exactly zero. */
    static Tensor rand(MemoryArena arena, DType dt, SplittableRandom r, int fanIn, long... shape) {
        Tensor t = arena.allocateTensor(dt, shape);
        double a = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0.1;
        float[] v = new float[(int) t.numel()];
        for (int i = 0; i < v.length; i++) {
            double u = r.nextDouble() * 2 - 1;
            v[i] = (float) ((u == 0 ? 0.5 : u) * a);
        }
        return t.copyFrom(v);
    }

    @ParameterizedTest(name = "{0} {2} T={3}")
    @MethodSource("cases")
    void stepsAndForwardMatchTheReferenceAndTheBoundLayer(String name, MoeConfig c, DType dt, int tokens) {
        long seed = Cases.seed("stateless " + name + " T=" + tokens);
        int k = c.topK(), n = c.numExperts(), w = c.expertWidth(), d = c.hiddenSize();
        int slots = tokens * k;
        try (HostArena weightsArena = HostArena.shared("caller-weights"); HostArena a = HostArena.shared("caller-activations")) {
            MoeWeights weights = fusedWeights(c, dt, seed, weightsArena);
            ReferenceMoe ref = new ReferenceMoe(weights);
            Tensor x = Cases.input(a, tokens, d, seed + 1);
            // One workspace sized for the whole layer serves every step; exact sizes are tested below.
            Tensor ws = MoeKernels.allocateWorkspace(a, c, Step.FORWARD, tokens);

            Tensor ids = a.allocateTensor(DType.I32, tokens, k).fill(-7);
            Tensor wts = a.allocateTensor(DType.F32, tokens, k).fill(Float.NaN);
            MoeKernels.routerTopK(weights, x, ids, wts, exact(a, c, Step.ROUTER_TOPK, tokens));
            for (int t = 0; t < tokens; t++) {
                double[] s = ref.scores(Cases.row(x, t));
                int[] got = new int[k];
                for (int j = 0; j < k; j++) got[j] = ids.getInt((long) t * k + j);
                int[] chosen = ref.reconcile(s, got, 1e-5);
                assertNotNull(chosen, "token " + t + " chose " + Arrays.toString(got) + ", reference " + Arrays.toString(ref.select(s)));
                double[] rw = ref.routeWeights(s, chosen);
                for (int j = 0; j < k; j++) {
                    float g = wts.getFloat((long) t * k + j);
                    assertTrue(Math.abs(g - rw[j]) <= 1e-5 * Math.max(1, Math.abs(rw[j])), "weight " + g + " vs " + rw[j]);
                }
            }

            Tensor offsets = a.allocateTensor(DType.I32, n + 1).fill(-1);
            Tensor rows = a.allocateTensor(DType.I32, slots).fill(-1);
            Tensor latent = a.allocateTensor(DType.F32, slots, w).fill(Float.NaN);
            MoeKernels.dispatch(weights, x, ids, offsets, rows, latent, exact(a, c, Step.DISPATCH, tokens));
            double num = 0, den = 0;
            for (int t = 0; t < tokens; t++) {
                double[] z = ref.latent(Cases.row(x, t));
                for (int j = 0; j < k; j++) {
                    int row = rows.getInt((long) t * k + j);
                    assertEquals(ids.getInt((long) t * k + j), expertOfRow(offsets, n, row), "slot's expert");
                    for (int i = 0; i < w; i++) {
                        double dlt = z[i] - latent.getFloat((long) row * w + i);
                        num += dlt * dlt;
                        den += z[i] * z[i];
                    }
                }
            }
            assertRel("latent_sorted", num, den);

            Tensor expertOut = a.allocateTensor(DType.F32, slots, w).fill(Float.NaN);
            MoeKernels.experts(weights, offsets, latent, expertOut, exact(a, c, Step.EXPERTS, tokens));
            num = 0;
            den = 0;
            for (int e = 0; e < n; e++) {
                for (int row = offsets.getInt(e); row < offsets.getInt(e + 1); row++) {
                    double[] z = new double[w];
                    for (int i = 0; i < w; i++) z[i] = latent.getFloat((long) row * w + i);
                    double[] y = ref.expert(e, z);
                    for (int i = 0; i < w; i++) {
                        double dlt = y[i] - expertOut.getFloat((long) row * w + i);
                        num += dlt * dlt;
                        den += y[i] * y[i];
                    }
                }
            }
            assertRel("expert_out_sorted", num, den);

            Tensor stepsOut = a.allocateTensor(DType.F32, tokens, d).fill(Float.NaN);
            MoeKernels.combine(weights, x, wts, rows, expertOut, stepsOut, exact(a, c, Step.COMBINE, tokens));
            num = 0;
            den = 0;
            for (int t = 0; t < tokens; t++) {
                int[] chosen = new int[k];
                for (int j = 0; j < k; j++) chosen[j] = ids.getInt((long) t * k + j);
                double[] o = ref.forwardToken(Cases.row(x, t), chosen);
                for (int i = 0; i < d; i++) {
                    double dlt = o[i] - stepsOut.getFloat((long) t * d + i);
                    num += dlt * dlt;
                    den += o[i] * o[i];
                }
            }
            assertRel("layer (four steps)", num, den);

            // The whole layer: bit-identical with the steps, with routing or without, and with the bound layer.
            Tensor out = a.allocateTensor(DType.F32, tokens, d).fill(Float.NaN);
            Tensor ids2 = a.allocateTensor(DType.I32, tokens, k).fill(-7);
            Tensor wts2 = a.allocateTensor(DType.F32, tokens, k).fill(Float.NaN);
            MoeKernels.forward(weights, x, ids2, wts2, out, ws);
            assertArrayEquals(stepsOut.toFloatArray(), out.toFloatArray(), "forward vs the four steps");
            assertArrayEquals(ids.toFloatArray(), ids2.toFloatArray(), "forward's routing");
            assertArrayEquals(wts.toFloatArray(), wts2.toFloatArray(), "forward's routing weights");
            Tensor noRouting = a.allocateTensor(DType.F32, tokens, d).fill(Float.NaN);
            MoeKernels.forward(weights, x, null, null, noRouting, exact(a, c, Step.FORWARD, tokens));
            assertArrayEquals(out.toFloatArray(), noRouting.toFloatArray(), "forward without routing");
            try (MoeLayer bound = MoeLayer.of(weights, Backends.cpu())) {
                Tensor boundOut = a.allocateTensor(DType.F32, tokens, d).fill(Float.NaN);
                bound.forward(x, boundOut);
                assertArrayEquals(out.toFloatArray(), boundOut.toFloatArray(), "stateless vs MoeLayer");
            }
        }
    }

    /** A workspace of exactly the queried size (the call must fit in it). */
    private static Tensor exact(MemoryArena a, MoeConfig c, Step step, long tokens) {
        long bytes = MoeKernels.workspaceBytes(c, step, tokens);
        assertEquals(0, bytes % 64, step + " workspace is a multiple of 64 bytes");
        return a.allocateTensor(DType.U8, bytes).fill(255);   // garbage: the call must write what it reads
    }

    private static int expertOfRow(Tensor offsets, int n, int row) {
        for (int e = 0; e < n; e++) if (row >= offsets.getInt(e) && row < offsets.getInt(e + 1)) return e;
        return -1;
    }

    private static void assertRel(String what, double num, double den) {
        double rel = Math.sqrt(num / den);
        System.out.printf("stateless %s relative error %.3e%n", what, rel);
        assertTrue(rel <= TOL, what + ": relative Frobenius error " + rel + " > " + TOL);
    }

    @Test
    void workspaceQueriesGrowWithTAndTheForwardOneServesEveryStep() {
        for (MoeConfig c : new MoeConfig[] {Cases.SUPER_SMALL, Cases.NANO_SMALL, Cases.WIDE_N, Cases.ODD_SWIGLU,
                MoeConfig.NEMOTRON3_SUPER, MoeConfig.NEMOTRON3_NANO}) {
            long block = MoeKernels.workspaceBytes(c, Step.ROUTER_TOPK, 1);
            assertTrue(block >= 3L * c.numExperts() * 32, "descriptors fit: " + block);
            assertEquals(block, MoeKernels.workspaceBytes(c, Step.DISPATCH, 4096), "dispatch needs only the descriptors");
            for (long t : new long[] {1, 7, 64, 4096}) {
                long fwd = MoeKernels.workspaceBytes(c, Step.FORWARD, t);
                for (Step s : Step.values()) {
                    long b = MoeKernels.workspaceBytes(c, s, t);
                    assertTrue(b <= fwd, s + " needs " + b + " > forward's " + fwd + " at T=" + t);
                    assertTrue(b <= MoeKernels.workspaceBytes(c, s, t + 1), s + " shrinks with T");
                }
            }
            assertEquals(block + 64L * ((1L * c.topK() * c.intermediateSize() * 4 + 63) / 64),
                    MoeKernels.workspaceBytes(c, Step.EXPERTS, 1), "experts: T·K·m floats after the descriptors");
        }
    }

    @Test
    void fusedViewsShareTheCallersMemory() {
        MoeConfig c = Cases.cfg(40, 12, 6, 2, 20, 0, 1f, Activation.RELU2);
        try (HostArena wa = HostArena.shared("w"); HostArena a = HostArena.shared("a")) {
            MoeWeights weights = fusedWeights(c, DType.BF16, 5, wa);
            Tensor x = Cases.input(a, 3, c.hiddenSize(), 6);
            Tensor ws = MoeKernels.allocateWorkspace(a, c, Step.FORWARD, 3);
            Tensor before = a.allocateTensor(DType.F32, 3, c.hiddenSize());
            Tensor ids = a.allocateTensor(DType.I32, 3, 2), wts = a.allocateTensor(DType.F32, 3, 2);
            MoeKernels.forward(weights, x, ids, wts, before, ws);
            // Write through the fused tensor behind expert ids[0]'s view: the next call sees it (no copy).
            int e = ids.getInt(0);
            Tensor view = weights.expertDown(e).data();
            assertEquals(c.expertWidth(), view.dim(0));
            float old = view.getFloat(0);
            view.setFloat(0, old + 0.5f);
            Tensor after = a.allocateTensor(DType.F32, 3, c.hiddenSize());
            MoeKernels.forward(weights, x, ids, wts, after, ws);
            assertTrue(!Arrays.equals(before.toFloatArray(), after.toFloatArray()), "a weight written in place changes the result");
        }
    }

    @Test
    void stridedFusedExpertsWithPaddingBetweenExperts() {
        MoeConfig c = Cases.cfg(48, 16, 7, 3, 24, 20, 2f, Activation.RELU2);
        int n = c.numExperts(), m = c.intermediateSize(), w = c.expertWidth();
        long seed = Cases.seed("strided experts");
        try (HostArena wa = HostArena.shared("w"); HostArena a = HostArena.shared("a");
             Arena callers = Arena.ofShared()) {
            MoeWeights dense = fusedWeights(c, DType.F32, seed, wa);
            // The caller's own memory: up_proj [N, m, w] with 5 floats of NaN padding after every expert.
            long stride = (long) m * w + 5;
            MemorySegment up = callers.allocate(n * stride * 4, 64).fill((byte) 0xFF);
            for (int e = 0; e < n; e++) {
                MemorySegment.copy(dense.expertUp(e).data().segment(), 0, up, e * stride * 4, (long) m * w * 4);
            }
            ForeignArena view = ForeignArena.view("caller up_proj", dev.latentmoe.memory.Device.CPU);
            try {
                WeightMatrix[] ups = WeightMatrix.experts("experts.up_proj", view, up, DType.F32,
                        new long[] {n, m, w}, new long[] {stride, w, 1});
                WeightMatrix[] downs = new WeightMatrix[n];
                for (int e = 0; e < n; e++) downs[e] = dense.expertDown(e);
                MoeWeights strided = new MoeWeights(c, dense.gate(), dense.gateBias(), dense.latentDown(), dense.latentUp(),
                        ups, null, downs, dense.sharedUp(), null, dense.sharedDown());
                Tensor x = Cases.input(a, 11, c.hiddenSize(), seed + 1);
                Tensor ws = MoeKernels.allocateWorkspace(a, c, Step.FORWARD, 11);
                Tensor want = a.allocateTensor(DType.F32, 11, c.hiddenSize()), got = a.allocateTensor(DType.F32, 11, c.hiddenSize());
                MoeKernels.forward(dense, x, null, null, want, ws);
                MoeKernels.forward(strided, x, null, null, got, ws);
                assertArrayEquals(want.toFloatArray(), got.toFloatArray(), "padded fused experts read exactly the dense values");
            } finally {
                view.close();
            }
        }
    }

    @Test
    void warmCallsAllocateNothingOnTheJavaHeap() {
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        MoeConfig c = new MoeConfig(64, 16, 8, 2, 32, 32, 1f, true, Activation.RELU2, Scoring.SIGMOID);
        int threadsBefore = Cpu.threads();
        Cpu.setThreads(1);   // tiny calls: no hand-off to pool workers
        try (HostArena wa = HostArena.shared("w"); HostArena a = HostArena.shared("a")) {
            MoeWeights weights = fusedWeights(c, DType.BF16, 3, wa);
            int t = 3, k = c.topK();
            Tensor x = Cases.input(a, t, c.hiddenSize(), 4);
            Tensor ws = MoeKernels.allocateWorkspace(a, c, Step.FORWARD, t);
            Tensor ids = a.allocateTensor(DType.I32, t, k), w = a.allocateTensor(DType.F32, t, k);
            Tensor off = a.allocateTensor(DType.I32, c.numExperts() + 1), rows = a.allocateTensor(DType.I32, (long) t * k);
            Tensor lat = a.allocateTensor(DType.F32, (long) t * k, c.expertWidth());
            Tensor eo = a.allocateTensor(DType.F32, (long) t * k, c.expertWidth());
            Tensor out = a.allocateTensor(DType.F32, t, c.hiddenSize());
            String[] names = {"routerTopK", "dispatch", "experts", "combine", "forward+routing", "forward"};
            for (int b = 0; b < names.length; b++) {
                long best = Long.MAX_VALUE;
                for (int round = 0; round < 12 && best > 0; round++) {
                    long before = mx.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 2000; i++) {
                        switch (b) {
                            case 0 -> MoeKernels.routerTopK(weights, x, ids, w, ws);
                            case 1 -> MoeKernels.dispatch(weights, x, ids, off, rows, lat, ws);
                            case 2 -> MoeKernels.experts(weights, off, lat, eo, ws);
                            case 3 -> MoeKernels.combine(weights, x, w, rows, eo, out, ws);
                            case 4 -> MoeKernels.forward(weights, x, ids, w, out, ws);
                            default -> MoeKernels.forward(weights, x, null, null, out, ws);
                        }
                    }
                    best = Math.min(best, mx.getCurrentThreadAllocatedBytes() - before);
                }
                assertEquals(0, best, names[b] + " allocated " + best + " bytes over 2000 warm calls");
            }
        } finally {
            Cpu.setThreads(threadsBefore);
        }
    }
}
