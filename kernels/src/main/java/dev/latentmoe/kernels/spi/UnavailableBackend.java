package dev.latentmoe.kernels.spi;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;

/** A backend that cannot run here, carrying the reason. */
public record UnavailableBackend(String name, Device device, String unavailableReason) implements Backend {
    @Override public boolean isAvailable() { return false; }

    @Override
    public LayerKernels prepare(MoeWeights weights) {
        throw new IllegalStateException("backend '" + name + "' is unavailable: " + unavailableReason);
    }

    @Override
    public MemoryArena newActivationArena(String arenaName) {
        throw new IllegalStateException("backend '" + name + "' is unavailable: " + unavailableReason);
    }
}
