package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;

import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * Copies between host tensors (any host arena; pinned ones for truly asynchronous copies) and
 * device tensors ({@link DeviceArena}), and between device tensors. Both tensors must have the
 * same dtype and element count; the direction follows their devices. The {@code *Async} forms
 * only enqueue on the stream: the host tensor must stay open and unmodified (and, when it is the
 * destination, unread) until the stream is synchronised. The other forms wait.
 */
public final class CudaCopies {
    private CudaCopies() {}

    /** Enqueues the copy {@code src -> dst} on {@code stream}. */
    public static void copyAsync(Tensor src, Tensor dst, CudaStream stream) {
        if (src == null || dst == null) throw new IllegalArgumentException("copy source or destination is null");
        if (src.dtype() != dst.dtype() || src.numel() != dst.numel()) {
            throw new IllegalArgumentException("copy " + src + " to " + dst + ": dtype or size differs");
        }
        MemorySegment s = src.segment(); // checks the arenas are open and usable from this thread
        MemorySegment d = dst.segment();
        long bytes = src.byteSize();
        boolean sh = src.device().isHost(), dh = dst.device().isHost();
        if (sh && dh) {
            src.copyTo(dst);
            return;
        }
        int device = (dh ? src : dst).device().id();
        if (!sh && !dh && src.device().id() != dst.device().id()) {
            throw new IllegalArgumentException("copy between devices " + src.device() + " and " + dst.device() + " is not supported");
        }
        Cuda.setDevice(device);
        if (bytes == 0) return;
        if (sh) {
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_h2d_async(d, s, bytes, stream.handle()), "lmoe_cuda_memcpy_h2d_async");
        } else if (dh) {
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2h_async(d, s, bytes, stream.handle()), "lmoe_cuda_memcpy_d2h_async");
        } else {
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(d, s, bytes, stream.handle()), "lmoe_cuda_memcpy_d2d_async");
        }
    }

    /** {@link #copyAsync} then waits for {@code stream}. */
    public static void copyAndWait(Tensor src, Tensor dst, CudaStream stream) {
        copyAsync(src, dst, stream);
        if (!(src.device().isHost() && dst.device().isHost())) stream.synchronize();
    }

    /** Copies and waits on the device tensor's arena stream (the source's for device to device). */
    public static void copy(Tensor src, Tensor dst) {
        copyAndWait(src, dst, streamOf(src.device().isHost() ? dst : src));
    }

    /** A new device tensor in {@code arena} holding {@code host}'s bytes (waits). */
    public static Tensor toDevice(Tensor host, DeviceArena arena) { return arena.upload(host); }

    /** A new tensor in {@code hostArena} holding {@code device}'s bytes (waits). */
    public static Tensor toHost(Tensor device, MemoryArena hostArena) {
        if (!hostArena.device().isHost()) throw new IllegalArgumentException("arena '" + hostArena.name() + "' is not host memory");
        Tensor h = hostArena.allocateTensor(device.dtype(), device.shape());
        copy(device, h);
        return h;
    }

    private static CudaStream streamOf(Tensor t) {
        if (t.arena() instanceof DeviceArena d) return d.stream();
        throw new IllegalArgumentException(t + " is not in a DeviceArena; pass a stream");
    }
}
