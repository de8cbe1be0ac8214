package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

/** What every enqueue of the CUDA backend does around its native call; allocation-free. */
final class CudaSteps {
    private CudaSteps() {}

    static final long ALIGN = latentmoe_cuda_h.LMOE_CUDA_WORKSPACE_ALIGN;

    /**
     * Orders work about to go on {@code s} after a tensor's allocation and copies: waits for the
     * stream of {@code t}'s {@link DeviceArena} unless that is {@code s} or the stream whose address
     * is {@code waited} (already waited for in this call). Returns the address now waited for.
     */
    static long orderAfter(CudaStream s, Tensor t, long waited) {
        if (t != null && t.arena() instanceof DeviceArena d && d.stream() != s) {
            long a = d.stream().handle().address();
            if (a != s.handle().address() && a != waited) {
                d.stream().synchronize();
                return a;
            }
        }
        return waited;
    }

    /**
     * A workspace size the ABI accepts for {@code need} bytes ({@code *_workspace_bytes}; negative:
     * the call {@code what} refuses the shape): rounded up to {@link #ALIGN}, at least one unit.
     */
    static long workspaceBytes(long need, String what) {
        if (need < 0) Cuda.check(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, what);
        return Math.max(ALIGN, (need + ALIGN - 1) / ALIGN * ALIGN);
    }

    /** {@link Cuda#check} without building anything on success (its callers run per replay). */
    static void check(int status, String what) {
        if (status != latentmoe_h.LMOE_OK) Cuda.check(status, what);
    }
}
