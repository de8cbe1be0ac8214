package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A CUDA event with timing ({@code lmoe_cuda_event_create}). Time a stretch of stream work with
 * two events: {@code start.record(s); ...enqueue...; end.record(s); end.synchronize();
 * float ms = start.elapsedMillisTo(end);}. Closing destroys it; idempotent.
 */
public final class CudaEvent implements AutoCloseable {
    private final MemorySegment handle;
    private volatile boolean closed;

    private CudaEvent(MemorySegment handle) { this.handle = handle; }

    /** A new event on the calling thread's current device. */
    public static CudaEvent create() {
        Cuda.requireAvailable("CudaEvent.create");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_event_create(out), "lmoe_cuda_event_create");
            return new CudaEvent(out.get(ValueLayout.ADDRESS, 0));
        }
    }

    /** The {@code cudaEvent_t}. Throws once closed. */
    public MemorySegment handle() {
        if (closed) throw new IllegalStateException("CUDA event is closed");
        return handle;
    }

    /** Records the event at the current end of {@code stream}'s work. */
    public CudaEvent record(CudaStream stream) {
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_event_record(handle(), stream.handle()), "lmoe_cuda_event_record");
        return this;
    }

    /** Blocks until the recorded work has finished. */
    public void synchronize() {
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_event_synchronize(handle()), "lmoe_cuda_event_synchronize");
    }

    /** Milliseconds from this event to {@code end} (both recorded and complete). */
    public float elapsedMillisTo(CudaEvent end) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ms = a.allocate(ValueLayout.JAVA_FLOAT);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_event_elapsed_ms(handle(), end.handle(), ms), "lmoe_cuda_event_elapsed_ms");
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_event_destroy(handle), "lmoe_cuda_event_destroy");
    }
}
