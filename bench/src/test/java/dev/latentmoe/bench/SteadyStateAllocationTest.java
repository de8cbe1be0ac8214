package dev.latentmoe.bench;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The Java call path of every kernel and of forward allocates nothing once warm (what JMH's
 * gc.alloc.rate.norm shows, without JMH's own per-iteration allocation spread over slow calls).
 */
class SteadyStateAllocationTest {

    @Test
    void kernelsAndForwardAllocateNothing() {
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        MoeConfig c = new MoeConfig(64, 16, 8, 2, 32, 32, 1f, true, Activation.RELU2, Scoring.SIGMOID);
        int threadsBefore = Cpu.threads();
        Cpu.setThreads(1);   // tiny calls: no hand-off to pool workers, so the test stays fast on a busy machine
        try (MoeLayer layer = MoeLayer.random(c, DType.BF16, 1, Backends.cpu());
             HostArena ar = HostArena.shared("alloc-test")) {
            int t = 3, k = c.topK();
            LayerKernels kr = layer.kernels();
            Tensor x = ar.allocateTensor(DType.F32, t, c.hiddenSize()).fill(0.5f);
            Tensor ids = ar.allocateTensor(DType.I32, t, k), w = ar.allocateTensor(DType.F32, t, k);
            Tensor off = ar.allocateTensor(DType.I32, c.numExperts() + 1), rows = ar.allocateTensor(DType.I32, (long) t * k);
            Tensor lat = ar.allocateTensor(DType.F32, (long) t * k, c.expertWidth());
            Tensor eo = ar.allocateTensor(DType.F32, (long) t * k, c.expertWidth());
            Tensor out = ar.allocateTensor(DType.F32, t, c.hiddenSize());
            String[] names = {"routerTopK", "dispatch", "experts", "combine", "forward", "forward+routing"};
            for (int b = 0; b < names.length; b++) {
                long best = Long.MAX_VALUE;
                for (int round = 0; round < 12 && best > 0; round++) {
                    long before = mx.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 2000; i++) {
                        switch (b) {
                            case 0 -> kr.routerTopK(x, ids, w);
                            case 1 -> kr.dispatch(x, ids, off, rows, lat);
                            case 2 -> kr.experts(off, lat, eo);
                            case 3 -> kr.combine(x, w, rows, eo, out);
                            case 4 -> layer.forward(x, out);
                            default -> kr.forward(x, ids, w, out);
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
