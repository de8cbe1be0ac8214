package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * An instantiated CUDA graph ({@code cudaGraphExec_t}, {@code lmoe_cuda_graph_*}): the work one
 * stretch of code enqueued on a stream, recorded once by {@link #capture} and replayed by
 * {@link #launch} on any stream of the same device with one native call. The graph keeps the device
 * pointers it was captured with: the memory they point to must outlive every launch.
 *
 * <p>{@link #launch} allocates nothing on the Java heap. {@link #close()} destroys the graph
 * (launches already enqueued still run to completion, CUDA frees it afterwards); idempotent. Do not
 * close it while another thread may be launching it.
 */
public final class CudaGraph implements AutoCloseable {
    private final MemorySegment exec;
    private volatile boolean closed;

    private CudaGraph(MemorySegment exec) { this.exec = exec; }

    /**
     * Records the work {@code enqueue} puts on {@code stream} (thread-local capture: nothing runs)
     * and instantiates it. {@code stream} must be a created stream (not the legacy default one) on
     * which no other thread enqueues meanwhile. When {@code enqueue} throws, the capture is ended
     * and discarded and the exception rethrown, so the stream is usable again.
     *
     * @throws dev.latentmoe.bindings.runtime.LatentMoeNativeException when CUDA refuses the capture
     */
    public static CudaGraph capture(CudaStream stream, Runnable enqueue) {
        Cuda.requireAvailable("CudaGraph.capture");
        if (stream == null || enqueue == null) throw new IllegalArgumentException("stream or enqueue is null");
        MemorySegment s = stream.handle();
        if (s.equals(MemorySegment.NULL)) throw new IllegalArgumentException("cannot capture the legacy default stream");
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_graph_begin_capture(s), "lmoe_cuda_graph_begin_capture");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            try {
                enqueue.run();
            } catch (RuntimeException | Error e) {
                // End the capture whatever happened, so that the stream leaves capture mode.
                int st = latentmoe_cuda_h.lmoe_cuda_graph_end_capture(s, out);
                if (st == latentmoe_h.LMOE_OK) latentmoe_cuda_h.lmoe_cuda_graph_destroy(out.get(ValueLayout.ADDRESS, 0));
                throw e;
            }
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_graph_end_capture(s, out), "lmoe_cuda_graph_end_capture");
            return new CudaGraph(out.get(ValueLayout.ADDRESS, 0));
        }
    }

    /** The {@code cudaGraphExec_t}, for native calls. Throws once closed. */
    public MemorySegment handle() {
        if (closed) throw new IllegalStateException("CUDA graph is closed");
        return exec;
    }

    public boolean isOpen() { return !closed; }

    /** Enqueues one replay of the graph on {@code stream}; no host synchronisation, no Java allocation. */
    public void launch(CudaStream stream) {
        int st = latentmoe_cuda_h.lmoe_cuda_graph_launch(handle(), stream.handle());
        if (st != latentmoe_h.LMOE_OK) Cuda.check(st, "lmoe_cuda_graph_launch");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_graph_destroy(exec), "lmoe_cuda_graph_destroy");
    }

    @Override
    public String toString() { return "CudaGraph[" + exec.address() + (closed ? ", closed" : "") + "]"; }
}
