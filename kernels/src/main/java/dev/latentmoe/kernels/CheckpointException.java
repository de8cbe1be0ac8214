package dev.latentmoe.kernels;

/**
 * A checkpoint the library cannot load: a missing, corrupt or inconsistent file, tensor or key
 * ({@link #isUnsupported()} false), or a valid checkpoint using something this library does not
 * run, e.g. {@code mlp_bias}, a quantization other than ModelOpt FP8 / NVFP4, group-limited routing
 * ({@link #isUnsupported()} true). The message is the native loader's (latentmoe_engine.h), naming
 * the file, key or tensor at fault.
 */
public class CheckpointException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final int status;

    public CheckpointException(String message, int status) {
        super(message);
        this.status = status;
    }

    /** The native status ({@code lmoe_status}) the loader returned. */
    public int status() { return status; }

    /** True for a valid checkpoint that uses a feature this library does not run. */
    public boolean isUnsupported() { return status == dev.latentmoe.bindings.latentmoe_h.LMOE_ERR_UNSUPPORTED; }
}
