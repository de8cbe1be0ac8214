package dev.latentmoe.memory;

import dev.latentmoe.bindings.latentmoe_cuda_h;

import dev.latentmoe.memory.cuda.Cuda;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Page-locked host memory ({@link Kind#PINNED}, {@link Device#CPU}) from {@code
 * lmoe_cuda_host_alloc}: ordinary host memory for Java (element access works, zeroed on
 * allocation) that the GPU can copy to and from truly asynchronously. Freed with {@code
 * lmoe_cuda_host_free} at {@link #close()}; the caller must make sure no copy still in flight uses
 * it then (synchronise the stream first). Any thread may use the arena.
 */
public final class PinnedHostArena extends MemoryArena {
    private final List<MemorySegment> blocks = new ArrayList<>();

    private PinnedHostArena(String name) { super(name, Kind.PINNED, Device.CPU, null); }

    /** @throws IllegalStateException naming what is missing when CUDA is unavailable */
    public static PinnedHostArena create(String name) {
        Cuda.requireAvailable("cannot create pinned host arena '" + name + "'");
        return new PinnedHostArena(name);
    }

    @Override
    @SuppressWarnings("restricted") // host memory of exactly paddedBytes from cudaMallocHost
    protected MemorySegment doAllocate(long paddedBytes) {
        MemorySegment ptr;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            Cuda.check(latentmoe_cuda_h.lmoe_cuda_host_alloc(out, paddedBytes),
                    "lmoe_cuda_host_alloc(" + paddedBytes + " bytes) in arena '" + name() + "'");
            ptr = out.get(ValueLayout.ADDRESS, 0);
        }
        synchronized (blocks) {
            blocks.add(ptr);
        }
        MemorySegment s = ptr.reinterpret(paddedBytes);
        s.fill((byte) 0);
        return s;
    }

    @Override
    protected void doClose() {
        List<MemorySegment> all;
        synchronized (blocks) {
            all = new ArrayList<>(blocks);
            blocks.clear();
        }
        RuntimeException first = null;
        for (MemorySegment p : all) {
            int st = latentmoe_cuda_h.lmoe_cuda_host_free(p);
            if (st != 0 && first == null) {
                first = new IllegalStateException("lmoe_cuda_host_free in arena '" + name() + "' failed: "
                        + latentmoe_cuda_h.lastError());
            }
        }
        if (first != null) throw first;
    }
}
