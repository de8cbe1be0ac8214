package dev.latentmoe.kernels;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.kernels.cuda.CudaGraphedLayer;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.io.SafeTensorsWriter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Closing while other threads are inside calls (issue #12 item 1): 3 to 8 threads call every
 * entry point of a layer (forward, forward with routing, the four step kernels) in a loop while
 * another thread closes the layer — or the checkpoint its weights live in — after a random delay,
 * for thousands of rounds. The weights are memory-mapped, so freeing them under a running kernel is
 * a SIGSEGV of the whole JVM. Every call must either complete with exactly the output of an
 * undisturbed call, or throw an {@link IllegalStateException} saying what is closed; {@code close()}
 * must return normally, and afterwards nothing is left open ({@link NoLeaks}).
 * {@code -Dlatentmoe.closeStress.rounds=N} sets the rounds of the small layer (default 2000).
 */
@ExtendWith(NoLeaks.class)
class CloseDuringCallTest {
    /** Small enough for thousands of rounds; calls last microseconds. */
    static final MoeConfig SMALL = Cases.cfg(96, 32, 16, 4, 64, 48, 2.5f, Activation.RELU2);
    /** Caller threads: one per core, at least 3, at most 8. */
    static final int CALLERS = Math.min(8, Math.max(3, Runtime.getRuntime().availableProcessors()));
    static final int TOKENS = 5;

    @TempDir static Path tmp;
    static Path smallDir, mediumDir;

    @BeforeAll
    static void writeCheckpoints() throws IOException {
        smallDir = Files.createDirectory(tmp.resolve("small"));
        mediumDir = Files.createDirectory(tmp.resolve("medium"));
        writeCheckpoint(smallDir, SMALL, 41);
        writeCheckpoint(mediumDir, Cases.SUPER_SMALL, 42);
    }

    static void writeCheckpoint(Path dir, MoeConfig cfg, long seed) throws IOException {
        try (HostArena a = HostArena.shared("close-ckpt-writer")) {
            MoeWeights w = MoeWeights.random(cfg, DType.BF16, seed, a);
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), CheckpointWeights.tensors(w, 0), Map.of("format", "pt"));
        }
        CheckpointLayerTest.writeConfig(dir, cfg, "relu2");
        assertTrue(Files.isRegularFile(dir.resolve("model.safetensors")));
    }

    @Test
    void closingTheLayerWhileThreadsCallIt() throws Exception {
        int rounds = (int) Knob.CLOSE_STRESS_ROUNDS.longValue();
        Stats s = stress(smallDir, SMALL, rounds, 150, () -> MoeLayer.fromCheckpoint(smallDir, 0, Backends.cpu()),
                MoeLayer::close);
        s.print("small layer, closing the layer");
        s.assertExercised();
    }

    @Test
    void closingAMediumLayerWhileThreadsCallIt() throws Exception {
        int rounds = Math.max(20, (int) Knob.CLOSE_STRESS_ROUNDS.longValue() / 25);
        Stats s = stress(mediumDir, Cases.SUPER_SMALL, rounds, 3000,
                () -> MoeLayer.fromCheckpoint(mediumDir, 0, Backends.cpu()), MoeLayer::close);
        s.print("medium layer, closing the layer");
        s.assertExercised();
    }

    /**
     * The caller owns the weights ({@link MoeLayer#of}, the same values as the checkpoint's) and
     * closes their arena while calls run: the layer holds the memory until it is closed itself, and
     * refuses new calls meanwhile.
     */
    @Test
    void closingCallerOwnedWeightsWhileThreadsCall() throws Exception {
        int rounds = Math.max(50, (int) Knob.CLOSE_STRESS_ROUNDS.longValue() / 4);
        record Owned(MoeLayer layer, HostArena weights) {}
        Map<MoeLayer, Owned> owners = new java.util.concurrent.ConcurrentHashMap<>();
        Stats s = stress(smallDir, SMALL, rounds, 150, () -> {
            HostArena weights = HostArena.shared("close-caller-weights");
            MoeLayer l = MoeLayer.of(MoeWeights.random(SMALL, DType.BF16, 41, weights), Backends.cpu());
            owners.put(l, new Owned(l, weights));
            return l;
        }, l -> {
            Owned o = owners.remove(l);
            o.weights().close();       // the weights go first, calls still running
            l.close();
        });
        s.print("small layer, closing the caller's weights, then the layer");
        s.assertExercised();
    }

    /** Two threads closing at once: neither returns before the layer's memory is freed. */
    @Test
    void concurrentClosesReturnOnlyOnceFreed() throws Exception {
        for (int round = 0; round < 200; round++) {
            MoeLayer layer = MoeLayer.fromCheckpoint(smallDir, 0, Backends.cpu());
            var weightsArena = layer.weights().expertUp(0).data().arena();
            CyclicBarrier go = new CyclicBarrier(2);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Runnable closer = () -> {
                try {
                    go.await();
                    layer.close();
                    if (weightsArena.isOpen()) failure.compareAndSet(null, new AssertionError("close() returned before the weights were freed"));
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            };
            Thread other = Thread.ofPlatform().start(closer);
            closer.run();
            other.join();
            assertNull(failure.get(), () -> "round: " + failure.get());
        }
    }

    /**
     * On a GPU ({@code -Dlatentmoe.test.backend=cuda}, the bundle's java-tests step): threads call
     * a CUDA layer's forward and its graphed layer's forward while another thread closes the graphs
     * and the layer (or the layer alone, which closes its graphs), for 200 rounds; completed calls
     * must equal an undisturbed call bit for bit (T = 5 has a bucket of its own: graph replay equals
     * forward exactly).
     */
    @Test
    void closingACudaLayerAndItsGraphsWhileThreadsCall() throws Exception {
        Backend cuda = TestBackend.requireCuda();
        long seed = Cases.seed("close during CUDA calls");
        int d = SMALL.hiddenSize(), rounds = 200;
        try (HostArena host = HostArena.shared("close-cuda-host");
             DeviceArena device = (DeviceArena) cuda.newActivationArena("close-cuda-dev")) {
            Tensor[] xs = new Tensor[CALLERS], outs = new Tensor[CALLERS], hostOuts = new Tensor[CALLERS], expected = new Tensor[CALLERS];
            try (MoeLayer ref = MoeLayer.random(SMALL, DType.BF16, seed, cuda)) {
                for (int i = 0; i < CALLERS; i++) {
                    xs[i] = device.upload(Cases.input(host, TOKENS, d, seed + 1 + i).convertTo(DType.BF16, host));
                    outs[i] = device.allocateTensor(DType.BF16, TOKENS, d);
                    hostOuts[i] = host.allocateTensor(DType.BF16, TOKENS, d);
                    expected[i] = host.allocateTensor(DType.BF16, TOKENS, d);
                    ref.forward(xs[i], outs[i]);
                    CudaCopies.copy(outs[i], expected[i]);
                }
            }
            long completed = 0, refused = 0;
            for (int r = 0; r < rounds; r++) {
                MoeLayer layer = MoeLayer.random(SMALL, DType.BF16, seed, cuda);
                CudaGraphedLayer graphs = CudaGraphedLayer.of(layer, 8);
                CyclicBarrier go = new CyclicBarrier(CALLERS + 1);
                long[] done = new long[CALLERS], refusedBy = new long[CALLERS];
                AtomicReference<Throwable> failure = new AtomicReference<>();
                List<Thread> threads = new ArrayList<>();
                for (int i = 0; i < CALLERS; i++) {
                    int id = i;
                    threads.add(Thread.ofPlatform().start(() -> {
                        try {
                            go.await();
                            for (int call = id; ; call++) {
                                try {
                                    if (call % 2 == 0) layer.forward(xs[id], outs[id]);
                                    else graphs.forward(xs[id], outs[id]);
                                } catch (IllegalStateException e) {
                                    if (e.getMessage() == null || !e.getMessage().contains("closed")) throw e;
                                    refusedBy[id]++;
                                    return;
                                }
                                CudaCopies.copy(outs[id], hostOuts[id]);
                                if (hostOuts[id].segment().mismatch(expected[id].segment()) != -1) {
                                    throw new AssertionError((call % 2 == 0 ? "forward" : "graph forward") + " completed with a wrong output");
                                }
                                done[id]++;
                            }
                        } catch (Throwable t) {
                            failure.compareAndSet(null, t);
                        }
                    }));
                }
                go.await(30, TimeUnit.SECONDS);
                long delay = ThreadLocalRandom.current().nextLong(TimeUnit.MICROSECONDS.toNanos(2000) + 1);
                for (long t0 = System.nanoTime(); System.nanoTime() - t0 < delay; ) Thread.onSpinWait();
                if (r % 2 == 0) graphs.close();
                layer.close();
                for (Thread t : threads) {
                    t.join(60_000);
                    assertFalse(t.isAlive(), "round " + r + ": a caller hangs after close()");
                }
                if (failure.get() != null) throw new AssertionError("round " + r + ": " + failure.get(), failure.get());
                for (int i = 0; i < CALLERS; i++) {
                    completed += done[i];
                    refused += refusedBy[i];
                }
            }
            System.out.printf("close during CUDA calls: %d rounds, %d calls completed, %d refused as closed%n", rounds, completed, refused);
            assertEquals((long) rounds * CALLERS, refused, "every caller ends refused");
        }
    }

    // ------------------------------------------------------------------------------------------

    /** What the callers saw over all rounds. */
    static final class Stats {
        long completed, refused, overlapped, rounds;
        final List<String> refusals = new ArrayList<>();

        void print(String what) {
            System.out.printf("close during calls (%s): %d rounds, %d calls completed (%d of them while close() ran), "
                    + "%d refused as closed, e.g. %s%n", what, rounds, completed, overlapped, refused, refusals);
        }

        /** The race was actually run: calls were in flight when close() began, and calls were refused. */
        void assertExercised() {
            assertTrue(refused > 0, "no call was ever refused: close() never raced a caller");
            assertTrue(overlapped > 0, "no call completed while close() ran: the race was never exercised");
        }
    }

    /** One caller thread's tensors: inputs, expected outputs (from an undisturbed layer), outputs. */
    static final class Caller {
        final HostArena arena = HostArena.shared("close-caller");
        final Tensor x, ids0, w0, off0, rows0, lat0, eo0, y0;      // inputs and expected values
        final Tensor y, ids, w, off, rows, lat, eo;                  // outputs
        long completed, refused, overlapped;
        String refusal;
        Throwable failure;

        Caller(MoeLayer ref, long seed) {
            MoeConfig c = ref.config();
            int k = c.topK();
            long slots = (long) TOKENS * k;
            x = Cases.input(arena, TOKENS, c.hiddenSize(), seed);
            ids0 = arena.allocateTensor(DType.I32, TOKENS, k);
            w0 = arena.allocateTensor(DType.F32, TOKENS, k);
            off0 = arena.allocateTensor(DType.I32, c.numExperts() + 1);
            rows0 = arena.allocateTensor(DType.I32, slots);
            lat0 = arena.allocateTensor(DType.F32, slots, c.expertWidth());
            eo0 = arena.allocateTensor(DType.F32, slots, c.expertWidth());
            y0 = arena.allocateTensor(DType.F32, TOKENS, c.hiddenSize());
            LayerKernels k0 = ref.kernels();
            k0.routerTopK(x, ids0, w0);
            k0.dispatch(x, ids0, off0, rows0, lat0);
            k0.experts(off0, lat0, eo0);
            k0.combine(x, w0, rows0, eo0, y0);
            y = arena.allocateTensor(DType.F32, TOKENS, c.hiddenSize());
            ids = arena.allocateTensor(DType.I32, TOKENS, k);
            w = arena.allocateTensor(DType.F32, TOKENS, k);
            off = arena.allocateTensor(DType.I32, c.numExperts() + 1);
            rows = arena.allocateTensor(DType.I32, slots);
            lat = arena.allocateTensor(DType.F32, slots, c.expertWidth());
            eo = arena.allocateTensor(DType.F32, slots, c.expertWidth());
        }

        /** Calls the layer in a loop until it refuses; every completed call is checked bit for bit. */
        void hammer(MoeLayer layer, int first, java.util.function.BooleanSupplier closing) {
            for (int i = first; ; i++) {
                int op = i % 6;
                try {
                    switch (op) {
                        case 0 -> layer.forward(x, y);
                        case 1 -> layer.forward(x, y, new Routing(ids, w));
                        case 2 -> layer.kernels().routerTopK(x, ids, w);
                        case 3 -> layer.kernels().dispatch(x, ids0, off, rows, lat);
                        case 4 -> layer.kernels().experts(off0, lat0, eo);
                        default -> layer.kernels().combine(x, w0, rows0, eo0, y);
                    }
                } catch (IllegalStateException e) {
                    if (e.getMessage() == null || !e.getMessage().contains("closed")) {
                        failure = new AssertionError("op " + op + " refused with an unclear message", e);
                    } else {
                        refused++;
                        if (refusal == null) refusal = e.getMessage();
                    }
                    return;
                } catch (Throwable t) {
                    failure = new AssertionError("op " + op + " threw something other than IllegalStateException", t);
                    return;
                }
                boolean during = closing.getAsBoolean();
                String bad = switch (op) {
                    case 0, 5 -> same(y, y0) ? null : "out";
                    case 1 -> same(y, y0) && same(ids, ids0) && same(w, w0) ? null : "out or routing";
                    case 2 -> same(ids, ids0) && same(w, w0) ? null : "routing";
                    case 3 -> same(off, off0) && same(rows, rows0) && same(lat, lat0) ? null : "dispatch outputs";
                    default -> same(eo, eo0) ? null : "expert outputs";
                };
                if (bad != null) {
                    failure = new AssertionError("op " + op + " completed" + (during ? " during close()" : "")
                            + " with a wrong " + bad);
                    return;
                }
                completed++;
                if (during) overlapped++;
            }
        }

        private static boolean same(Tensor a, Tensor b) { return a.segment().mismatch(b.segment()) == -1; }
    }

    /**
     * {@code rounds} times: open a layer, let {@link #CALLERS} threads call it, and after a random
     * delay of up to {@code maxDelayMicros} close it with {@code close} on this thread.
     */
    static Stats stress(Path dir, MoeConfig cfg, int rounds, int maxDelayMicros, Supplier<MoeLayer> open,
                        Consumer<MoeLayer> close) throws Exception {
        List<Caller> callers = new ArrayList<>();
        try (MoeLayer ref = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu())) {
            long seed = Cases.seed("close during calls");
            for (int i = 0; i < CALLERS; i++) callers.add(new Caller(ref, seed + i));
        }
        Stats stats = new Stats();
        AtomicReference<MoeLayer> current = new AtomicReference<>();
        java.util.concurrent.atomic.AtomicBoolean closing = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        CyclicBarrier start = new CyclicBarrier(CALLERS + 1), done = new CyclicBarrier(CALLERS + 1);
        List<Thread> threads = new ArrayList<>();
        try {
            for (int i = 0; i < CALLERS; i++) {
                Caller c = callers.get(i);
                int first = i * 2;
                threads.add(Thread.ofPlatform().name("close-caller-" + i).start(() -> {
                    try {
                        while (true) {
                            start.await();
                            if (stop.get()) return;
                            c.hammer(current.get(), first, closing::get);
                            done.await();
                        }
                    } catch (InterruptedException | BrokenBarrierException e) {
                        // the test ended (or failed) and broke the barriers
                    }
                }));
            }
            for (int r = 0; r < rounds; r++) {
                MoeLayer layer = open.get();
                current.set(layer);
                closing.set(false);
                start.await(30, TimeUnit.SECONDS);
                long delay = ThreadLocalRandom.current().nextLong(TimeUnit.MICROSECONDS.toNanos(maxDelayMicros) + 1);
                for (long t0 = System.nanoTime(); System.nanoTime() - t0 < delay; ) Thread.onSpinWait();
                closing.set(true);
                try {
                    close.accept(layer);
                } catch (Throwable t) {
                    throw new AssertionError("round " + r + ": close() threw", t);
                }
                try {
                    done.await(60, TimeUnit.SECONDS);
                } catch (TimeoutException e) {
                    fail("round " + r + ": a caller did not return within 60 s after close() (hang)");
                }
                stats.rounds++;
                for (Caller c : callers) {
                    if (c.failure != null) throw new AssertionError("round " + r + ": " + c.failure.getMessage(), c.failure);
                }
            }
        } finally {
            stop.set(true);
            if (!start.isBroken()) {
                try {
                    start.await(5, TimeUnit.SECONDS);
                } catch (Exception e) {
                    start.reset();
                }
            }
            for (Thread t : threads) {
                t.interrupt();
                t.join(10_000);
                assertFalse(t.isAlive(), "caller thread did not stop");
            }
            for (Caller c : callers) {
                stats.completed += c.completed;
                stats.refused += c.refused;
                stats.overlapped += c.overlapped;
                if (c.refusal != null && stats.refusals.size() < 2 && !stats.refusals.contains(c.refusal)) stats.refusals.add(c.refusal);
                c.arena.close();
            }
        }
        assertEquals(rounds, stats.rounds);
        return stats;
    }
}
