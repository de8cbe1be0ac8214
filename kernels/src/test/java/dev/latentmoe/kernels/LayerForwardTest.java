package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The whole layer against the float64 reference, on the backend named by
 * {@code -Dlatentmoe.test.backend} (default cpu, tolerance 1e-5 for every weight dtype; cuda: bf16 activations, tolerance 1e-2, T up to
 * 4096, skipped with the reason when CUDA is unavailable).
 */
@ExtendWith(NoLeaks.class)
class LayerForwardTest {
    static Stream<Arguments> cases() {
        List<Arguments> a = new ArrayList<>();
        a.add(Arguments.of("super/8 latent relu2 K22", Cases.SUPER_SMALL, DType.BF16, 1));
        a.add(Arguments.of("super/8 latent relu2 K22", Cases.SUPER_SMALL, DType.BF16, 77));
        a.add(Arguments.of("super/8 latent K32 f32", Cases.SUPER_SMALL.withTopK(32), DType.F32, 9));
        a.add(Arguments.of("super/8 no shared", Cases.SUPER_SMALL.withSharedIntermediateSize(0), DType.BF16, 300));
        a.add(Arguments.of("nano/8 standard", Cases.NANO_SMALL, DType.BF16, 129));
        a.add(Arguments.of("nano/8 standard f32", Cases.NANO_SMALL, DType.F32, 3));
        a.add(Arguments.of("nano/8 standard swiglu no shared", Cases.NANO_SMALL.withActivation(Activation.SWIGLU)
                .withSharedIntermediateSize(0), DType.BF16, 40));
        a.add(Arguments.of("N=512 K=32 odd sizes", Cases.WIDE_N, DType.BF16, 33));
        a.add(Arguments.of("N=512 K=32 odd sizes f32", Cases.WIDE_N, DType.F32, 2));
        a.add(Arguments.of("odd N=37 swiglu shared", Cases.ODD_SWIGLU, DType.BF16, 101));
        a.add(Arguments.of("odd N=37 swiglu softmax f32", Cases.ODD_SWIGLU.withScoring(Scoring.SOFTMAX), DType.F32, 17));
        if (TestBackend.isCuda()) {
            // Large batches exercise the GPU's grouped GEMM tiling (CUTLASS path) and the sort.
            a.add(Arguments.of("super/8 latent relu2 K22", Cases.SUPER_SMALL, DType.BF16, 4096));
            a.add(Arguments.of("nano/8 standard", Cases.NANO_SMALL, DType.BF16, 1024));
            a.add(Arguments.of("odd N=37 swiglu shared", Cases.ODD_SWIGLU, DType.BF16, 513));
        }
        return a.stream();
    }

    @ParameterizedTest(name = "{0} {2} T={3}")
    @MethodSource("cases")
    void matchesFloat64Reference(String name, MoeConfig cfg, DType dtype, int tokens) {
        Backend backend = TestBackend.require();
        long seed = Cases.seed(name + " T=" + tokens + " on " + backend.name());
        try (MoeLayer layer = MoeLayer.random(cfg, dtype, seed, backend);
             HostArena arena = HostArena.shared("test");
             TestBackend.Dev dev = TestBackend.dev(backend)) {
            DType act = layer.kernels().activationDType();
            Tensor x = Cases.input(arena, tokens, cfg.hiddenSize(), seed ^ 0x5DEECE66DL);
            if (act != DType.F32) x = x.convertTo(act, arena); // the reference then sees the rounded input
            Tensor y = arena.allocateTensor(act, tokens, cfg.hiddenSize()).fill(Float.NaN);
            Routing routing = Routing.allocate(arena, tokens, cfg.topK());
            routing.expertIds().fill(-1);
            routing.weights().fill(Float.NaN);
            Tensor dx = dev.in(x);
            Tensor dy = dev.in(y);
            Routing dr = dev.in(routing);
            layer.forward(dx, dy, dr);
            dev.back(dy, y);
            dev.back(dr, routing);
            assertMatches(layer, x, y, routing, TestBackend.tolerance(), TestBackend.routeTolerance());

            // The convenience overloads compute the same thing, bit for bit.
            Tensor y2 = dev.host(layer.forward(dx), arena);
            assertTrue(Arrays.equals(y.toFloatArray(), y2.toFloatArray()), "forward(x) differs from forward(x, out, routing)");
        }
    }

    static void assertMatches(MoeLayer layer, Tensor x, Tensor y, Routing routing, double tol) {
        assertMatches(layer, x, y, routing, tol, 1e-5);
    }

    /** Checks routing (ids up to near-ties within routeTol, weights) and output against the reference. */
    static void assertMatches(MoeLayer layer, Tensor x, Tensor y, Routing routing, double tol, double routeTol) {
        assertMatches(layer.weights(), x, y, routing, tol, routeTol);
    }

    /** The same against the reference of {@code referenceWeights} (e.g. a checkpoint's values as its writer meant them). */
    static void assertMatches(MoeWeights referenceWeights, Tensor x, Tensor y, Routing routing, double tol, double routeTol) {
        ReferenceMoe ref = new ReferenceMoe(referenceWeights);
        MoeConfig cfg = referenceWeights.config();
        long tokens = x.dim(0);
        double errNum = 0, errDen = 0;
        for (long t = 0; t < tokens; t++) {
            double[] xt = Cases.row(x, t);
            double[] s = ref.scores(xt);
            int[] got = new int[cfg.topK()];
            for (int k = 0; k < got.length; k++) got[k] = routing.expertId(t, k);
            int[] ids = ref.reconcile(s, got, routeTol);
            if (ids == null) fail("token " + t + ": kernel chose experts " + Arrays.toString(got) + ", reference " + Arrays.toString(ref.select(s)));
            double[] w = ref.routeWeights(s, ids);
            for (int k = 0; k < w.length; k++) {
                double gw = routing.weight(t, k);
                if (!(Math.abs(gw - w[k]) <= routeTol * Math.max(1, Math.abs(w[k])))) {
                    fail("token " + t + " k " + k + ": weight " + gw + " vs reference " + w[k]);
                }
            }
            double[] want = ref.forwardToken(xt, ids);
            float[] have = Cases.floatRow(y, t);
            for (int i = 0; i < want.length; i++) {
                if (Float.isNaN(have[i])) fail("output [" + t + ", " + i + "] was not written (NaN poison left)");
                double dlt = want[i] - have[i];
                errNum += dlt * dlt;
                errDen += want[i] * want[i];
            }
        }
        double rel = Math.sqrt(errNum / errDen);
        System.out.printf("relative Frobenius error %.3e (tolerance %.0e)%n", rel, tol);
        assertNotNull(routing);
        assertTrue(rel <= tol, "relative Frobenius error " + rel + " > " + tol);
    }
}
