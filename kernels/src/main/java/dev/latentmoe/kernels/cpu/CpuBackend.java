package dev.latentmoe.kernels.cpu;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;

/** The native CPU backend over {@code liblatentmoe.so}; its process-wide settings are {@link dev.latentmoe.kernels.Cpu}'s. */
public final class CpuBackend implements Backend {
    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    @Override public String name() { return "cpu"; }

    @Override public boolean isAvailable() { return latentmoe_h.isAvailable(); }

    @Override public String unavailableReason() { return latentmoe_h.unavailableReason().orElse(null); }

    @Override public Device device() { return Device.CPU; }

    @Override
    public LayerKernels prepare(MoeWeights weights) { return prepare(weights, Precision.EXACT); }

    /** Both precisions; the kernel each one runs on this CPU: {@link dev.latentmoe.kernels.Cpu#gemmKernel}. */
    @Override
    public LayerKernels prepare(MoeWeights weights, Precision precision) {
        if (precision == null) throw new IllegalArgumentException("precision is null");
        if (!isAvailable()) throw new IllegalStateException("CPU backend unavailable: " + unavailableReason());
        return new CpuLayerKernels(weights, precision);
    }

    @Override
    public MemoryArena newActivationArena(String name) { return HostArena.shared(name); }

    @Override public String toString() { return "cpu"; }
}
