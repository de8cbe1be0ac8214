package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each kernel of the forward pass on its own against the float64 reference, on the backend named
 * by {@code -Dlatentmoe.test.backend} (see {@link TestBackend}; device tensors are staged from and
 * back to host twins, poison included).
 */
@ExtendWith(NoLeaks.class)
class KernelStepsTest {
    static Stream<Arguments> cases() {
        Stream<Arguments> large = TestBackend.isCuda()
                ? Stream.of(Arguments.of("super/8 large T", Cases.SUPER_SMALL, DType.BF16, 2048))
                : Stream.empty();
        return Stream.concat(large, Stream.of(
                Arguments.of("super/8", Cases.SUPER_SMALL, DType.BF16, 1),
                Arguments.of("super/8", Cases.SUPER_SMALL, DType.BF16, 61),
                Arguments.of("nano/8 standard", Cases.NANO_SMALL, DType.F32, 23),
                Arguments.of("N=512 K=32", Cases.WIDE_N, DType.BF16, 45),
                Arguments.of("odd swiglu", Cases.ODD_SWIGLU, DType.F32, 7),
                Arguments.of("odd swiglu softmax", Cases.ODD_SWIGLU.withScoring(Scoring.SOFTMAX), DType.BF16, 200)));
    }

    @ParameterizedTest(name = "{0} {2} T={3}")
    @MethodSource("cases")
    void eachKernelMatchesReference(String name, MoeConfig cfg, DType dtype, int tokens) {
        Backend backend = TestBackend.require();
        long seed = Cases.seed("steps " + name + " T=" + tokens + " on " + backend.name());
        double tol = TestBackend.tolerance();
        double routeTol = TestBackend.routeTolerance();
        int k = cfg.topK(), n = cfg.numExperts(), w = cfg.expertWidth();
        int slots = tokens * k;
        try (MoeLayer layer = MoeLayer.random(cfg, dtype, seed, backend);
             HostArena arena = HostArena.shared("steps");
             TestBackend.Dev dev = TestBackend.dev(backend)) {
            LayerKernels kern = layer.kernels();
            DType act = kern.activationDType(), sorted = kern.sortedDType();
            ReferenceMoe ref = new ReferenceMoe(layer.weights());
            Tensor x = Cases.input(arena, tokens, cfg.hiddenSize(), seed + 1);
            if (act != DType.F32) x = x.convertTo(act, arena); // the reference reads the rounded input
            Tensor dx = dev.in(x);

            // 1. router + top-K
            Tensor ids = arena.allocateTensor(DType.I32, tokens, k).fill(-7);
            Tensor wts = arena.allocateTensor(DType.F32, tokens, k).fill(Float.NaN);
            Tensor dIds = dev.in(ids), dWts = dev.in(wts);
            kern.routerTopK(dx, dIds, dWts);
            dev.back(dIds, ids);
            dev.back(dWts, wts);
            int[][] chosen = new int[tokens][];
            for (int t = 0; t < tokens; t++) {
                double[] s = ref.scores(Cases.row(x, t));
                int[] got = new int[k];
                for (int j = 0; j < k; j++) got[j] = ids.getInt((long) t * k + j);
                chosen[t] = ref.reconcile(s, got, routeTol);
                assertNotNull(chosen[t], "token " + t + " chose " + Arrays.toString(got) + ", reference " + Arrays.toString(ref.select(s)));
                double[] rw = ref.routeWeights(s, chosen[t]);
                for (int j = 0; j < k; j++) {
                    float g = wts.getFloat((long) t * k + j);
                    assertTrue(Math.abs(g - rw[j]) <= routeTol * Math.max(1, Math.abs(rw[j])), "weight " + g + " vs " + rw[j]);
                }
            }

            // 2. down-projection + dispatch: counting sort, stable in slot order.
            Tensor offsets = arena.allocateTensor(DType.I32, n + 1).fill(-1);
            Tensor rowOfSlot = arena.allocateTensor(DType.I32, slots).fill(-1);
            Tensor latent = arena.allocateTensor(sorted, slots, w).fill(Float.NaN);
            Tensor dOffsets = dev.in(offsets), dRowOfSlot = dev.in(rowOfSlot), dLatent = dev.in(latent);
            kern.dispatch(dx, dIds, dOffsets, dRowOfSlot, dLatent);
            dev.back(dOffsets, offsets);
            dev.back(dRowOfSlot, rowOfSlot);
            dev.back(dLatent, latent);
            int[] count = new int[n];
            for (int s = 0; s < slots; s++) count[ids.getInt(s)]++;
            int[] wantOffsets = new int[n + 1];
            for (int e = 0; e < n; e++) wantOffsets[e + 1] = wantOffsets[e] + count[e];
            int[] next = Arrays.copyOf(wantOffsets, n);
            int[] wantRow = new int[slots];
            for (int s = 0; s < slots; s++) wantRow[s] = next[ids.getInt(s)]++;
            int[] gotOffsets = new int[n + 1];
            for (int e = 0; e <= n; e++) gotOffsets[e] = offsets.getInt(e);
            int[] gotRow = new int[slots];
            for (int s = 0; s < slots; s++) gotRow[s] = rowOfSlot.getInt(s);
            assertArrayEquals(wantOffsets, gotOffsets, "expert offsets");
            assertArrayEquals(wantRow, gotRow, "sorted row of each slot");
            double num = 0, den = 0;
            for (int t = 0; t < tokens; t++) {
                double[] z = ref.latent(Cases.row(x, t));
                for (int j = 0; j < k; j++) {
                    int r = wantRow[t * k + j];
                    for (int i = 0; i < w; i++) {
                        double dlt = z[i] - latent.getFloat((long) r * w + i);
                        num += dlt * dlt;
                        den += z[i] * z[i];
                    }
                }
            }
            assertRel("latent_sorted", num, den, tol);

            // 3. grouped expert GEMMs, on the kernel's own latent rows.
            Tensor expertOut = arena.allocateTensor(sorted, slots, w).fill(Float.NaN);
            Tensor dExpertOut = dev.in(expertOut);
            kern.experts(dOffsets, dLatent, dExpertOut);
            dev.back(dExpertOut, expertOut);
            num = 0;
            den = 0;
            for (int e = 0; e < n; e++) {
                for (int r = wantOffsets[e]; r < wantOffsets[e + 1]; r++) {
                    double[] z = new double[w];
                    for (int i = 0; i < w; i++) z[i] = latent.getFloat((long) r * w + i);
                    double[] y = ref.expert(e, z);
                    for (int i = 0; i < w; i++) {
                        double dlt = y[i] - expertOut.getFloat((long) r * w + i);
                        num += dlt * dlt;
                        den += y[i] * y[i];
                    }
                }
            }
            assertRel("expert_out_sorted", num, den, tol);

            // 4. combine + up-projection + shared expert, on the kernel's own expert rows.
            Tensor out = arena.allocateTensor(act, tokens, cfg.hiddenSize()).fill(Float.NaN);
            Tensor dOut = dev.in(out);
            kern.combine(dx, dWts, dRowOfSlot, dExpertOut, dOut);
            dev.back(dOut, out);
            num = 0;
            den = 0;
            for (int t = 0; t < tokens; t++) {
                double[] acc = new double[w];
                for (int j = 0; j < k; j++) {
                    int r = wantRow[t * k + j];
                    double g = wts.getFloat((long) t * k + j);
                    for (int i = 0; i < w; i++) acc[i] += g * expertOut.getFloat((long) r * w + i);
                }
                double[] o = cfg.isLatent() ? ReferenceMoe.matvec(ref.latentUp, acc) : acc;
                if (cfg.hasSharedExpert()) {
                    double[] sh = ref.shared(Cases.row(x, t));
                    for (int i = 0; i < o.length; i++) o[i] += sh[i];
                }
                for (int i = 0; i < o.length; i++) {
                    double dlt = o[i] - out.getFloat((long) t * cfg.hiddenSize() + i);
                    num += dlt * dlt;
                    den += o[i] * o[i];
                }
            }
            assertRel("combine", num, den, tol);

            // The fused forward equals the four steps run one by one.
            Tensor fused = arena.allocateTensor(act, tokens, cfg.hiddenSize()).fill(Float.NaN);
            Tensor dFused = dev.in(fused);
            layer.forward(dx, dFused);
            dev.back(dFused, fused);
            // bf16 outputs (CUDA) may differ by rounding if the fused pass keeps more precision.
            double fusedTol = act == DType.F32 ? 1e-5 : 1e-2;
            assertEquals(0.0, maxAbsDiff(out, fused) / Math.max(1e-30, maxAbs(out)), fusedTol, "forward vs steps");
        }
    }

    private static void assertRel(String what, double num, double den, double tol) {
        double rel = Math.sqrt(num / den);
        System.out.printf("%s relative error %.3e%n", what, rel);
        assertTrue(rel <= tol, what + ": relative Frobenius error " + rel + " > " + tol);
    }

    private static double maxAbsDiff(Tensor a, Tensor b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        double m = 0;
        for (int i = 0; i < x.length; i++) m = Math.max(m, Double.isNaN(y[i]) ? Double.POSITIVE_INFINITY : Math.abs(x[i] - y[i]));
        return m;
    }

    private static double maxAbs(Tensor a) {
        double m = 0;
        for (float v : a.toFloatArray()) m = Math.max(m, Math.abs(v));
        return m;
    }
}
