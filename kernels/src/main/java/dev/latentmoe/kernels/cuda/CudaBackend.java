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
 *
 * <p>Weights: BF16 / F32 matrices run as bf16, FP8 and NVFP4 ones as they are stored
 * (weight-only: dequantized in registers, bf16 activations). {@link #w8a8()} is the same backend
 * with W8A8 chosen for the FP8 matrices whose checkpoint declares an input scale (activations
 * quantized to e4m3 with it, FP8 tensor-core GEMMs; those layers always take the sorted path).
 */
public final class CudaBackend implements Backend {
    public static final String NAME = "cuda";
    /** The name of {@link #w8a8()}. */
    public static final String NAME_W8A8 = "cuda-w8a8";
    private static final int DEVICE = 0;
    private static volatile CudaBackend instance;
    private static volatile CudaBackend w8a8Instance;

    private final boolean w8a8;
    private volatile CudaStream stream;

    private CudaBackend(boolean w8a8) { this.w8a8 = w8a8; }

    /** The process-wide CUDA backend (available or not): FP8 / NVFP4 weights run weight-only. */
    public static CudaBackend instance() {
        CudaBackend b = instance;
        if (b == null) {
            synchronized (CudaBackend.class) {
                if (instance == null) instance = new CudaBackend(false);
                b = instance;
            }
        }
        return b;
    }

    /**
     * The CUDA backend with W8A8 for FP8 matrices that carry a checkpoint input scale ({@code
     * input_scale}): their activations are quantized to e4m3 as sat(a / input_scale) and the
     * sorted path multiplies on CUTLASS's FP8 tensor-core grouped GEMM. Other matrices, and FP8
     * ones without input scales, run as with {@link #instance()}. It shares that backend's stream.
     */
    public static CudaBackend w8a8() {
        CudaBackend b = w8a8Instance;
        if (b == null) {
            synchronized (CudaBackend.class) {
                if (w8a8Instance == null) w8a8Instance = new CudaBackend(true);
                b = w8a8Instance;
            }
        }
        return b;
    }

    /** Whether this backend runs FP8 matrices with input scales W8A8. */
    public boolean isW8a8() { return w8a8; }

    @Override public String name() { return w8a8 ? NAME_W8A8 : NAME; }

    @Override public boolean isAvailable() { return Cuda.isAvailable(); }

    @Override public String unavailableReason() { return Cuda.unavailableReason(); }

    @Override public Device device() { return Device.cuda(DEVICE); }

    /** The backend's stream (created on first use; {@link #w8a8()} uses {@link #instance()}'s). */
    public CudaStream stream() {
        if (w8a8) return instance().stream();
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
     * Copies the weights to the GPU (F32 / BF16 matrices as bf16, FP8 / NVFP4 as stored with their
     * scales, expert matrices as contiguous [N, rows, cols] arrays) and returns kernels over them;
     * waits until the copies are done. The host weights are not
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

    @Override public String toString() { return name(); }
}
