package dev.latentmoe.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;

import org.junit.jupiter.api.Test;

/**
 * #12 item 4: the CPU workspace no longer grows with T. A forward runs T in chunks over a workspace
 * sized for one chunk (results identical to one chunk), and idle prefill-sized workspaces are
 * trimmed to one after a burst of concurrent callers.
 */
class WorkspaceBoundTest {
    private static final MoeConfig CFG = Cases.SUPER_SMALL;

    @Test
    void forwardWorkspaceIsBoundedByTheChunkAndResultsDoNotDependOnIt() {
        long saved = Cpu.chunkTokens();
        long seed = Cases.seed("workspace-bound");
        try (MoeLayer layer = MoeLayer.random(CFG, DType.BF16, seed, Backends.cpu());
             HostArena a = HostArena.shared("ws-bound")) {
            int t = 1500, d = CFG.hiddenSize();
            Tensor x = Cases.input(a, t, d, seed + 1);
            Tensor yOneChunk = a.allocateTensor(DType.F32, t, d).fill(Float.NaN);
            Cpu.setChunkTokens(1L << 24);
            layer.forward(x, yOneChunk);
            try (MoeLayer chunked = MoeLayer.random(CFG, DType.BF16, seed, Backends.cpu())) {
                Cpu.setChunkTokens(40);
                Tensor y = a.allocateTensor(DType.F32, t, d).fill(Float.NaN);
                chunked.forward(x, y);
                assertArrayEquals(yOneChunk.toFloatArray(), y.toFloatArray(), "chunked forward differs from one chunk");
                // one chunk of 40 tokens plus the routing of all T (kept for the caller's call only)
                long oneChunk = Math.max(64, workspace40(chunked)) + 64 + ((long) t * CFG.topK() * 8 + 63) / 64 * 64;
                long peak = chunked.kernels().workspacePeakBytes();
                System.out.printf("workspace: T=%d in chunks of 40: peak %d bytes (one chunk + routing: %d); one chunk of %d: peak %d%n",
                        t, peak, oneChunk, t, layer.kernels().workspacePeakBytes());
                assertTrue(peak <= oneChunk, "peak workspace " + peak + " > one chunk's " + oneChunk);
                assertTrue(layer.kernels().workspacePeakBytes() > 10 * peak, "the unchunked run should need far more");
            }
        } finally {
            Cpu.setChunkTokens(saved);
        }
    }

    private static long workspace40(MoeLayer layer) {
        // the native forward's need for one 40-token chunk, through the stateless entry point's query
        return MoeKernels.workspaceBytes(layer.config(), MoeKernels.Step.FORWARD, 40);
    }

    @Test
    void idlePrefillWorkspacesAreTrimmedToOne() throws Exception {
        long seed = Cases.seed("workspace-trim");
        try (MoeLayer layer = MoeLayer.random(CFG, DType.BF16, seed, Backends.cpu());
             HostArena a = HostArena.shared("ws-trim")) {
            int threads = 4, t = 600, d = CFG.hiddenSize();
            List<Tensor> xs = new ArrayList<>(), ys = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                xs.add(Cases.input(a, t, d, seed + i));
                ys.add(a.allocateTensor(DType.F32, t, d));
            }
            CyclicBarrier go = new CyclicBarrier(threads);
            List<Thread> ts = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                int k = i;
                Thread th = new Thread(() -> {
                    try {
                        go.await();
                        for (int r = 0; r < 3; r++) layer.forward(xs.get(k), ys.get(k));
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                ts.add(th);
                th.start();
            }
            for (Thread th : ts) th.join();
            long peak = layer.kernels().workspacePeakBytes(), now = layer.kernels().workspaceBytes();
            System.out.printf("workspace after %d concurrent prefills: %d bytes kept, peak %d%n", threads, now, peak);
            assertTrue(peak > 0 && now > 0);
            assertTrue(now <= peak / 2, "idle workspaces not trimmed: " + now + " of peak " + peak);
            for (int r = 0; r < 20; r++) layer.forward(Cases.input(a, 1, d, seed + 100 + r));
            assertEquals(now, layer.kernels().workspaceBytes(), "decode calls reuse the kept workspace");
        }
    }
}
