package dev.latentmoe.memory;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.memory.cuda.Cuda;
import org.junit.jupiter.api.Assumptions;

/** The memory module's GPU tests: skip (reason printed) without CUDA, or fail with -Dlatentmoe.test.require=true. */
public final class CudaTests {
    private CudaTests() {}

    public static void skipUnlessCuda() {
        if (!Cuda.isAvailable()) {
            String msg = "CUDA unavailable, test skipped: " + Cuda.unavailableReason();
            System.out.println(msg);
            if (Knob.TEST_REQUIRE.flag()) throw new AssertionError(msg);
            Assumptions.abort(msg);
        }
    }
}
