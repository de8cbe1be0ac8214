package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cuda.CudaLayerKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A full Nemotron 3 Super layer (d 4096, l 1024, N 512, K 22, random bf16 weights) on CUDA against
 * the CPU backend, T = 1 and T = 64, within 1e-2 relative Frobenius error. Both get the same bf16
 * input (f32 on the CPU). Tokens whose expert sets differ (float near-ties between the K-th and
 * K+1-th score) are left out of the error, and at most T/8 (at least 1) may differ. Runs only with
 * {@code -Dlatentmoe.test.backend=cuda} on a machine where CUDA is available; skipped otherwise.
 */
@ExtendWith(NoLeaks.class)
class CudaSuperLayerTest {
    @Test
    void superLayerMatchesCpu() {
        Backend cuda = TestBackend.requireCuda();
        TestBackend.skipUnless(Backends.cpu());
        MoeConfig cfg = MoeConfig.NEMOTRON3_SUPER;
        long seed = Cases.seed("super layer cpu vs cuda");
        long t0 = System.nanoTime();
        try (MoeLayer cpu = MoeLayer.random(cfg, DType.BF16, seed, Backends.cpu());
             CudaLayerKernels gpu = (CudaLayerKernels) cuda.prepare(cpu.weights());
             HostArena arena = HostArena.shared("super-test");
             TestBackend.Dev dev = TestBackend.dev(cuda)) {
            System.out.printf("super weights built and uploaded in %.1f s (%d device bytes)%n",
                    (System.nanoTime() - t0) / 1e9, gpu.weightBytes());
            for (int tokens : new int[] {1, 64}) {
                Tensor xb = Cases.input(arena, tokens, cfg.hiddenSize(), seed + tokens).convertTo(DType.BF16, arena);
                Tensor xf = xb.convertTo(DType.F32, arena);
                Tensor yc = arena.allocateTensor(DType.F32, tokens, cfg.hiddenSize()).fill(Float.NaN);
                Routing rc = Routing.allocate(arena, tokens, cfg.topK());
                cpu.forward(xf, yc, rc);

                Tensor yg = arena.allocateTensor(DType.BF16, tokens, cfg.hiddenSize()).fill(Float.NaN);
                Routing rg = Routing.allocate(arena, tokens, cfg.topK());
                Tensor dy = dev.in(yg);
                Routing dr = dev.in(rg);
                gpu.forward(dev.in(xb), dr.expertIds(), dr.weights(), dy);
                dev.back(dy, yg);
                dev.back(dr, rg);

                double num = 0, den = 0;
                int differing = 0;
                for (int t = 0; t < tokens; t++) {
                    int[] a = new int[cfg.topK()], b = new int[cfg.topK()];
                    for (int k = 0; k < a.length; k++) {
                        a[k] = rc.expertId(t, k);
                        b[k] = rg.expertId(t, k);
                    }
                    Arrays.sort(a);
                    Arrays.sort(b);
                    if (!Arrays.equals(a, b)) {
                        differing++;
                        continue;
                    }
                    float[] c = Cases.floatRow(yc, t), g = Cases.floatRow(yg, t);
                    for (int i = 0; i < c.length; i++) {
                        assertFalse(Float.isNaN(g[i]), "CUDA output [" + t + ", " + i + "] not written");
                        double d = (double) c[i] - g[i];
                        num += d * d;
                        den += (double) c[i] * c[i];
                    }
                }
                assertTrue(differing <= Math.max(1, tokens / 8), differing + " of " + tokens + " tokens were routed differently");
                assertTrue(den > 0, "no token to compare");
                double rel = Math.sqrt(num / den);
                System.out.printf("super T=%d: cpu vs cuda relative Frobenius error %.3e, %d token(s) routed differently%n",
                        tokens, rel, differing);
                assertTrue(rel <= 1e-2, "T=" + tokens + ": relative error " + rel + " > 1e-2");
            }
        }
    }
}
