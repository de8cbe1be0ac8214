package dev.latentmoe.kernels.internal;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;

/** The native CPU backend over {@code liblatentmoe.so}. */
public final class CpuBackend implements Backend {
    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    @Override public String name() { return "cpu"; }

    @Override public boolean isAvailable() { return latentmoe_h.isAvailable(); }

    @Override public String unavailableReason() { return latentmoe_h.unavailableReason().orElse(null); }

    @Override public Device device() { return Device.CPU; }

    @Override
    public LayerKernels prepare(MoeWeights weights) {
        if (!isAvailable()) throw new IllegalStateException("CPU backend unavailable: " + unavailableReason());
        return new CpuLayerKernels(weights);
    }

    @Override
    public MemoryArena newActivationArena(String name) { return HostArena.shared(name); }

    /** Native worker threads; results do not depend on it. */
    public static void setThreads(int threads) {
        if (threads < 1 || threads > 1024) throw new IllegalArgumentException("threads must be in 1..1024, got " + threads);
        latentmoe_h.check(latentmoe_h.lmoe_cpu_set_num_threads(threads), "lmoe_cpu_set_num_threads");
    }

    public static int threads() { return latentmoe_h.lmoe_cpu_num_threads(); }

    /** Names of the instruction-set paths: the one in use and the best this CPU has. */
    public static String isaName(int isa) {
        return switch (isa) {
            case latentmoe_h.LMOE_ISA_SCALAR -> "scalar";
            case latentmoe_h.LMOE_ISA_AVX2 -> "avx2";
            case latentmoe_h.LMOE_ISA_AVX512 -> "avx512";
            default -> "isa" + isa;
        };
    }

    @Override public String toString() { return "cpu"; }
}
