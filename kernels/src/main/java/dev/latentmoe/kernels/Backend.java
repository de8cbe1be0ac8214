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

    /** Binds a layer's weights to this backend (may copy them to the device), in {@link #defaultPrecision()}. */
    LayerKernels prepare(MoeWeights weights);

    /**
     * Binds a layer's weights computing in {@code precision}. A backend that has one precision only
     * raises an {@link UnsupportedOperationException} for the other.
     */
    default LayerKernels prepare(MoeWeights weights, Precision precision) {
        if (precision == null) throw new IllegalArgumentException("precision is null");
        if (precision != defaultPrecision())
            throw new UnsupportedOperationException("the " + name() + " backend computes with "
                    + defaultPrecision() + " activations only, not " + precision);
        return prepare(weights);
    }

    /** The precision {@link #prepare(MoeWeights)} uses: {@link Precision#EXACT} unless the backend says otherwise. */
    default Precision defaultPrecision() { return Precision.EXACT; }

    /** An arena for activations on this backend's device (host memory for the CPU). */
    MemoryArena newActivationArena(String name);
}
