package dev.latentmoe.kernels;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Soak: many forward calls on a tiny layer leave resident memory (VmRSS) and the arena accounting
 * flat and the output unchanged. {@code -Dlatentmoe.soak.calls=N} sets the number of calls
 * (default 100000), {@code -Dlatentmoe.soak.maxSeconds=S} stops earlier once S seconds have passed
 * (default 15, so the default test run stays short on a loaded machine; 0 = no limit), and
 * {@code -Dlatentmoe.soak.rssSlackMiB} the allowed RSS growth (default 24). Full size:
 * {@code -Dlatentmoe.soak.calls=1000000 -Dlatentmoe.soak.maxSeconds=0}.
 * Threads: 16 threads calling one layer at once give results bit-identical to one thread.
 */
@ExtendWith(NoLeaks.class)
class SoakTest {
    static final MoeConfig TINY = Cases.cfg(64, 16, 8, 2, 32, 16, 2.5f, Activation.RELU2);

    /** Resident set size of this process in KiB, from /proc/self/status (-1 when unavailable). */
    static long rssKiB() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    @Test
    void manyCallsKeepMemoryFlat() {
        TestBackend.skipUnless(Backends.cpu());
        long calls = Knob.SOAK_CALLS.longValue();
        long slackKiB = Knob.SOAK_RSS_SLACK_MIB.longValue() * 1024;
        long maxNanos = Knob.SOAK_MAX_SECONDS.longValue() * 1_000_000_000L;
        try (MoeLayer layer = MoeLayer.random(TINY, DType.BF16, 7, Backends.cpu());
             HostArena arena = HostArena.shared("soak")) {
            Tensor x = Cases.input(arena, 2, TINY.hiddenSize(), 11);
            Tensor out = arena.allocateTensor(DType.F32, 2, TINY.hiddenSize());
            Routing routing = Routing.allocate(arena, 2, TINY.topK());
            layer.forward(x, out, routing);
            float[] first = out.toFloatArray();
            // warm up (JIT, native thread pool, workspaces), then take the baseline
            for (int i = 0; i < 2_000; i++) layer.forward(x, out);
            System.gc();
            long rss0 = rssKiB();
            long bytes0 = MemoryAccounting.totalBytes();
            long arenas0 = MemoryAccounting.openArenas();
            long t0 = System.nanoTime();
            long done = 0;
            for (long i = 0; i < calls; i++, done++) {
                if (i % 1000 == 0) {
                    if (maxNanos > 0 && i > 0 && System.nanoTime() - t0 > maxNanos) break;
                    // arena churn: an allocating call in a short-lived arena
                    try (HostArena scratch = HostArena.confined("scratch")) {
                        Tensor xs = scratch.allocateTensor(DType.F32, 2, TINY.hiddenSize());
                        x.copyTo(xs);
                        layer.forward(xs);
                    }
                } else {
                    layer.forward(x, out, routing);
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            System.gc();
            long rss1 = rssKiB();
            assertArrayEquals(first, out.toFloatArray(), "output drifted over the soak");
            assertEquals(bytes0, MemoryAccounting.totalBytes(), "arena accounting grew");
            assertEquals(arenas0, MemoryAccounting.openArenas(), "arenas leaked");
            System.out.printf("soak: %d of %d calls in %.2f s (%.1f us/call), VmRSS %d -> %d KiB (%+d KiB), accounted bytes %d -> %d%n",
                    done, calls, seconds, seconds * 1e6 / done, rss0, rss1, rss1 - rss0, bytes0, MemoryAccounting.totalBytes());
            if (rss0 > 0 && rss1 > 0) {
                assertTrue(rss1 - rss0 <= slackKiB, "VmRSS grew by " + (rss1 - rss0) + " KiB over " + done + " calls (slack "
                        + slackKiB + " KiB)");
            }
        }
    }

    @Test
    void sixteenThreadsOnOneLayerAreBitIdenticalToOne() throws Exception {
        TestBackend.skipUnless(Backends.cpu());
        int threads = 16, repeats = 25;
        try (MoeLayer layer = MoeLayer.random(Cases.ODD_SWIGLU, DType.BF16, 5, Backends.cpu());
             HostArena arena = HostArena.shared("threads")) {
            List<Tensor> inputs = new ArrayList<>();
            List<float[]> expect = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                Tensor x = Cases.input(arena, 1 + i % 5, Cases.ODD_SWIGLU.hiddenSize(), 100 + i);
                inputs.add(x);
                expect.add(layer.forward(x).toFloatArray()); // one thread
            }
            CyclicBarrier start = new CyclicBarrier(threads);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<Integer>> results = new ArrayList<>();
                for (int i = 0; i < threads; i++) {
                    int id = i;
                    results.add(pool.submit(() -> {
                        Tensor x = inputs.get(id);
                        try (HostArena own = HostArena.confined("t" + id)) {
                            Tensor out = own.allocateTensor(DType.F32, x.dim(0), x.dim(1));
                            start.await();
                            int mismatches = 0;
                            for (int r = 0; r < repeats; r++) {
                                out.fill(Float.NaN);
                                layer.forward(x, out);
                                if (!Arrays.equals(expect.get(id), out.toFloatArray())) mismatches++;
                            }
                            return mismatches;
                        }
                    }));
                }
                for (int i = 0; i < threads; i++) assertEquals(0, results.get(i).get(), "thread " + i + " differs from one thread");
            } finally {
                pool.shutdown();
            }
        }
    }
}
