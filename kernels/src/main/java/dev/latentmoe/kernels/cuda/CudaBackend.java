package dev.latentmoe.kernels.cuda;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

/**
 * The CUDA backend over {@code liblatentmoe_cuda.so}, device {@code cuda:0}: available when a
 * usable GPU is there (else it says what is missing), one stream for its work, device arenas on
 * that stream for activations. See the package documentation.
 */
public final class CudaBackend implements Backend {
    public static final String NAME = "cuda";
    private static final int DEVICE = 0;
    private static volatile CudaBackend instance;

    private volatile CudaStream stream;

    private CudaBackend() {}

    /** The process-wide CUDA backend (available or not). */
    public static CudaBackend instance() {
        CudaBackend b = instance;
        if (b == null) {
            synchronized (CudaBackend.class) {
                if (instance == null) instance = new CudaBackend();
                b = instance;
            }
        }
        return b;
    }

    @Override public String name() { return NAME; }

    @Override public boolean isAvailable() { return Cuda.isAvailable(); }

    @Override public String unavailableReason() { return Cuda.unavailableReason(); }

    @Override public Device device() { return Device.cuda(DEVICE); }

    /** The backend's stream (created on first use). */
    public CudaStream stream() {
        CudaStream s = stream;
        if (s == null) {
            synchronized (this) {
                if (stream == null) {
                    requireAvailable();
                    stream = CudaStream.create(DEVICE);
                }
                s = stream;
            }
        }
        return s;
    }

    /**
     * Copies the weights to the GPU (bf16, expert matrices as contiguous [N, rows, cols] arrays)
     * and returns kernels over them; waits until the copies are done. The host weights are not
     * used again by the kernels, but must stay open while the kernels are used (the shared checks
     * ask for their arenas).
     */
    @Override
    public CudaLayerKernels prepare(MoeWeights weights) {
        requireAvailable();
        return new CudaLayerKernels(weights, this);
    }

    /** The GPU kernels compute with bf16 activations (f32 router); {@link Precision#EXACT} is refused. */
    @Override
    public Precision defaultPrecision() { return Precision.BF16; }

    /** A {@link DeviceArena} on {@link #stream()}. */
    @Override
    public MemoryArena newActivationArena(String name) {
        requireAvailable();
        return DeviceArena.create(name, stream());
    }

    private void requireAvailable() {
        String r = unavailableReason();
        if (r != null) throw new IllegalStateException("CUDA backend unavailable: " + r);
    }

    int deviceId() { return DEVICE; }

    @Override public String toString() { return NAME; }
}
