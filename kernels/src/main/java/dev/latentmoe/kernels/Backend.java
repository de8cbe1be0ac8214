package dev.latentmoe.kernels;

import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;

/**
 * A compute backend (CPU, CUDA). An unavailable backend still exists and says why; its
 * {@link #prepare} raises with that reason.
 */
public interface Backend {
    /** Short name: "cpu", "cuda". */
    String name();

    boolean isAvailable();

    /** Why the backend cannot run here, or null when it can. */
    String unavailableReason();

    /** Where activations must live for this backend. */
    Device device();

    /** Binds a layer's weights to this backend (may copy them to the device). */
    LayerKernels prepare(MoeWeights weights);

    /** An arena for activations on this backend's device (host memory for the CPU). */
    MemoryArena newActivationArena(String name);
}
