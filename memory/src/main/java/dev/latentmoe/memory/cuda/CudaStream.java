package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A CUDA stream ({@code lmoe_cuda_stream_create}: non-blocking with respect to the legacy default
 * stream), on the device current when it was made. Work enqueued on it runs in order; {@link
 * #synchronize()} waits for all of it. {@link #close()} synchronises and destroys the stream;
 * idempotent. {@link #legacyDefault()} is the NULL stream and is never destroyed.
 */
public final class CudaStream implements AutoCloseable {
    private final MemorySegment handle;
    private final int device;
    private final boolean owned;
    private volatile boolean closed;

    private CudaStream(MemorySegment handle, int device, boolean owned) {
        this.handle = handle;
        this.device = device;
        this.owned = owned;
    }

    /** A new stream on {@code device} (made current for the calling thread). */
    public static CudaStream create(int device) {
        Cuda.requireAvailable("CudaStream.create");
        Cuda.setDevice(device);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_stream_create(out), "lmoe_cuda_stream_create");
            return new CudaStream(out.get(ValueLayout.ADDRESS, 0), device, true);
        }
    }

    /** The legacy default (NULL) stream of device 0; closing it does nothing. */
    public static CudaStream legacyDefault() { return new CudaStream(MemorySegment.NULL, 0, false); }

    /** The {@code cudaStream_t}, for native calls. Throws once closed. */
    public MemorySegment handle() {
        if (closed) throw new IllegalStateException("CUDA stream is closed");
        return handle;
    }

    public int device() { return device; }

    public boolean isOpen() { return !closed; }

    /** Blocks until all work enqueued so far has finished; raises the first asynchronous error. */
    public void synchronize() {
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_stream_synchronize(handle()), "lmoe_cuda_stream_synchronize");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (!owned) return;
        int sync = latentmoe_cuda_h.lmoe_cuda_stream_synchronize(handle);
        int destroy = latentmoe_cuda_h.lmoe_cuda_stream_destroy(handle);
        Cuda.check(sync, "lmoe_cuda_stream_synchronize (closing the stream)");
        Cuda.check(destroy, "lmoe_cuda_stream_destroy");
    }

    @Override
    public String toString() { return "CudaStream[cuda:" + device + ", " + handle.address() + (closed ? ", closed" : "") + "]"; }
}
