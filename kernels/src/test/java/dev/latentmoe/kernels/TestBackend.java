package dev.latentmoe.kernels;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.CudaCopies;
import org.junit.jupiter.api.Assumptions;

/**
 * Which backend the correctness tests run on: {@code -Dlatentmoe.test.backend=cpu} (default) or
 * {@code cuda}. An unavailable backend skips the test (JUnit assumption) with the reason printed,
 * never a silent pass ({@code -Dlatentmoe.test.require=true} turns the skip into a failure). {@link Dev} moves host tensors to the backend's device and back (identity
 * on the CPU), so one test body serves both.
 */
final class TestBackend {
    private TestBackend() {}

    static final String PROPERTY = Knob.TEST_BACKEND.key();

    static String name() { return Knob.TEST_BACKEND.get(); }

    static boolean isCuda() { return "cuda".equals(name()); }

    /** The selected backend; skips the calling test when it is unavailable here. */
    static Backend require() {
        Backend b = "cpu".equals(name()) ? Backends.cpu() : Backends.get(name());
        skipUnless(b);
        return b;
    }

    /** The CUDA backend, when {@code -Dlatentmoe.test.backend=cuda} and it is available; else skips. */
    static Backend requireCuda() {
        if (!isCuda()) {
            String msg = "CUDA test skipped: run with -D" + PROPERTY + "=cuda (now '" + name() + "')";
            System.out.println(msg);
            Assumptions.abort(msg);
        }
        return require();
    }

    /**
     * Skips (JUnit abort, reason printed) when {@code b} is unavailable; with
     * {@code -Dlatentmoe.test.require=true} (the GPU bundle) fails instead, so a GPU run can never
     * pass by skipping everything.
     */
    static void skipUnless(Backend b) {
        if (!b.isAvailable()) {
            String msg = "backend '" + b.name() + "' unavailable, test skipped: " + b.unavailableReason();
            System.out.println(msg);
            if (Knob.TEST_REQUIRE.flag()) {
                throw new AssertionError(msg.replace("test skipped", "but -Dlatentmoe.test.require=true"));
            }
            Assumptions.abort(msg);
        }
    }

    /**
     * Relative Frobenius tolerance of the layer output. CPU: 1e-5 for every weight dtype (f32
     * accumulation on the stored weights, which the float64 reference uses exactly; measured
     * ~2e-7); a bf16 rounding of an intermediate is ~1e-3 and must fail. CUDA: 1e-2 (bf16 activations).
     */
    static double tolerance() { return isCuda() ? 1e-2 : 1e-5; }

    /** Tolerance of router scores/weights against float64 (f32 arithmetic either way). */
    static double routeTolerance() { return isCuda() ? 1e-4 : 1e-5; }

    static Dev dev(Backend b) { return new Dev(b); }

    /** Stages tensors on the backend's device: identity for host backends. */
    static final class Dev implements AutoCloseable {
        private final MemoryArena arena;

        private Dev(Backend b) { this.arena = b.device().isHost() ? null : b.newActivationArena("test-device"); }

        /** A device copy of {@code host} (its contents included: poison survives), or host itself. */
        Tensor in(Tensor host) {
            if (arena == null) return host;
            return ((DeviceArena) arena).upload(host);
        }

        /** Copies a device tensor back into its host twin (nothing when they are the same). */
        void back(Tensor device, Tensor host) {
            if (device != host) CudaCopies.copy(device, host);
        }

        /** A host copy of {@code t} in {@code hostArena}, or t itself when it is on the host. */
        Tensor host(Tensor t, MemoryArena hostArena) {
            return t.device().isHost() ? t : CudaCopies.toHost(t, hostArena);
        }

        Routing in(Routing r) { return new Routing(in(r.expertIds()), in(r.weights())); }

        void back(Routing device, Routing host) {
            back(device.expertIds(), host.expertIds());
            back(device.weights(), host.weights());
        }

        @Override public void close() { if (arena != null) arena.close(); }
    }
}
