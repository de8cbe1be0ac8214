package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Results are bit-identical from run to run, for any native thread count, and under concurrent callers. */
@ExtendWith(NoLeaks.class)
class DeterminismTest {
    @Test
    void bitIdenticalAcrossThreadCountsAndCallers() throws Exception {
        MoeConfig cfg = Cases.SUPER_SMALL;
        long seed = Cases.seed("determinism");
        int before = Cpu.threads();
        try (MoeLayer layer = MoeLayer.random(cfg, DType.BF16, seed, Backends.cpu());
             HostArena arena = HostArena.shared("det")) {
            Tensor x = Cases.input(arena, 37, cfg.hiddenSize(), seed + 3);
            float[] first = null;
            for (int threads : new int[] {1, 2, 3, 7, 1}) {
                Cpu.setThreads(threads);
                float[] y = layer.forward(x).toFloatArray();
                if (first == null) first = y;
                else assertArrayEquals(first, y, "threads=" + threads);
            }
            Cpu.setThreads(2);
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<float[]>> results = new ArrayList<>();
                for (int i = 0; i < 8; i++) results.add(pool.submit(() -> layer.forward(x).toFloatArray()));
                for (Future<float[]> f : results) assertTrue(Arrays.equals(first, f.get()), "concurrent caller differs");
            } finally {
                pool.shutdown();
            }
        } finally {
            Cpu.setThreads(before);
        }
    }
}
