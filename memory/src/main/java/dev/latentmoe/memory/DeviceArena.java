package dev.latentmoe.memory;

import dev.latentmoe.bindings.latentmoe_cuda_h;

import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaCopies;
import dev.latentmoe.memory.cuda.CudaStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * GPU memory ({@link Kind#DEVICE}, {@link Device#cuda(int)}) from the device's stream-ordered pool
 * ({@code lmoe_cuda_malloc_async} on the arena's {@link #stream()}). Allocation only enqueues: the
 * memory is usable by later work on the same stream at once, by other streams or the host after
 * that stream is synchronised. New memory is zeroed (a stream-ordered memset), like host arenas.
 *
 * <p>Segments handed out are {@code MemorySegment.ofAddress(devicePtr).reinterpret(bytes)}: device
 * addresses with the right size for slicing and for passing to native code, which must never be
 * dereferenced from Java ({@link Tensor} refuses element access to non-host tensors; copy with
 * {@link CudaCopies} first). {@link #close()} frees everything with {@code lmoe_cuda_free_async}
 * on the stream, synchronises the stream (so no enqueued kernel still uses the memory when the
 * call returns) and destroys the stream when the arena created it. Any thread may use the arena.
 */
public final class DeviceArena extends MemoryArena {
    private final CudaStream stream;
    private final boolean ownsStream;
    private final boolean syncOnClose;
    private final List<MemorySegment> blocks = new ArrayList<>();

    private DeviceArena(String name, CudaStream stream, boolean ownsStream, boolean syncOnClose) {
        super(name, Kind.DEVICE, Device.cuda(stream.device()), null);
        this.stream = stream;
        this.ownsStream = ownsStream;
        this.syncOnClose = syncOnClose;
    }

    /**
     * An arena on {@code device} with a stream of its own.
     *
     * @throws IllegalStateException naming what is missing (library, driver, GPU) when CUDA is unavailable
     */
    public static DeviceArena create(String name, int device) {
        Cuda.requireAvailable("cannot create device arena '" + name + "'");
        CudaStream s = CudaStream.create(device);
        try {
            return new DeviceArena(name, s, true, true);
        } catch (RuntimeException | Error e) {
            s.close();
            throw e;
        }
    }

    /** An arena allocating on {@code stream} (not closed with the arena), on the stream's device. */
    public static DeviceArena create(String name, CudaStream stream) { return create(name, stream, true); }

    /**
     * As {@link #create(String, CudaStream)}; with {@code syncOnClose == false}, {@link #close()}
     * only enqueues the frees on the stream and returns without waiting: correct for memory that
     * only work on that same stream uses (a per-stream workspace), since the pool reuses it only
     * after the stream reaches the free.
     */
    public static DeviceArena create(String name, CudaStream stream, boolean syncOnClose) {
        Cuda.requireAvailable("cannot create device arena '" + name + "'");
        stream.handle(); // open check
        return new DeviceArena(name, stream, false, syncOnClose);
    }

    /** The stream allocations, frees and this arena's copies are ordered on. */
    public CudaStream stream() { return stream; }

    /** The CUDA device id. */
    public int deviceId() { return stream.device(); }

    @Override
    @SuppressWarnings("restricted") // a device address sized for slicing; never dereferenced from Java
    protected MemorySegment doAllocate(long paddedBytes) {
        Cuda.setDevice(stream.device());
        MemorySegment ptr;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_malloc_async(out, paddedBytes, stream.handle()),
                    "lmoe_cuda_malloc_async(" + paddedBytes + " bytes) in arena '" + name() + "'");
            ptr = out.get(ValueLayout.ADDRESS, 0);
        }
        synchronized (blocks) {
            blocks.add(ptr);
        }
        int st = latentmoe_cuda_h.lmoe_cuda_memset_async(ptr, 0, paddedBytes, stream.handle());
        if (st != 0) {
            synchronized (blocks) {
                blocks.remove(blocks.size() - 1);
            }
            latentmoe_cuda_h.lmoe_cuda_free_async(ptr, stream.handle());
            Cuda.check(st, "lmoe_cuda_memset_async");
        }
        return ptr.reinterpret(paddedBytes);
    }

    /** Copies {@code host} into {@code device} (same dtype and size) on this arena's stream and waits. */
    public void copyFromHost(Tensor host, Tensor device) { CudaCopies.copyAndWait(host, device, stream); }

    /** Copies {@code device} into {@code host} on this arena's stream and waits. */
    public void copyToHost(Tensor device, Tensor host) { CudaCopies.copyAndWait(device, host, stream); }

    /** A device copy of a host tensor in this arena (waits for the copy). */
    public Tensor upload(Tensor host) {
        Tensor d = allocateTensor(host.dtype(), host.shape());
        copyFromHost(host, d);
        return d;
    }

    @Override
    protected void doClose() {
        RuntimeException first = null;
        try {
            Cuda.setDevice(stream.device());
        } catch (RuntimeException e) {
            first = e;
        }
        List<MemorySegment> all;
        synchronized (blocks) {
            all = new ArrayList<>(blocks);
            blocks.clear();
        }
        // A caller may destroy the stream before the arena: free on the legacy default stream then,
        // which orders after all work already submitted to the device.
        boolean streamAlive = stream.isOpen();
        MemorySegment freeStream = streamAlive ? stream.handle() : MemorySegment.NULL;
        for (MemorySegment p : all) {
            int st = latentmoe_cuda_h.lmoe_cuda_free_async(p, freeStream);
            if (st != 0 && first == null) {
                first = new IllegalStateException("lmoe_cuda_free_async in arena '" + name() + "' failed: "
                        + latentmoe_cuda_h.lastError());
            }
        }
        try {
            if (!streamAlive) Cuda.deviceSynchronize();
            else if (ownsStream) stream.close();
            else if (syncOnClose) stream.synchronize();
        } catch (RuntimeException e) {
            if (first == null) first = e;
        }
        if (first != null) throw first;
    }
}
