package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The owner of memory that a foreign producer lent us (an imported Arrow array or DLPack tensor):
 * it allocates nothing, accounts no bytes (they are the producer's) but counts as an open arena,
 * and its {@link #close()} runs the producer's release callback (or DLPack deleter) <em>exactly
 * once</em>, on the closing thread. Any thread may use and close it. Tensors of the import are
 * owned by it, so they raise after close like those of any other arena.
 */
public final class ForeignArena extends MemoryArena {
    private final Runnable release;
    private final Arena structs;
    private final MemorySegment syncEvent;
    private final AtomicBoolean released = new AtomicBoolean();

    private ForeignArena(String name, Device device, Runnable release, Arena structs, MemorySegment syncEvent) {
        super(name, device.isHost() ? Kind.HOST : Kind.DEVICE, device, null);
        this.release = release;
        this.structs = structs;
        this.syncEvent = syncEvent == null ? MemorySegment.NULL : syncEvent;
    }

    /**
     * An arena for memory owned elsewhere: {@code release} (may be null) runs once at close;
     * {@code structs} (may be null), where the importer keeps its copies of the foreign structs, is
     * closed after it.
     */
    static ForeignArena of(String name, Device device, Runnable release, Arena structs, MemorySegment syncEvent) {
        return new ForeignArena(name, device, release, structs, syncEvent);
    }

    /**
     * A view arena over memory whose lifetime someone else manages (no release action), e.g. an
     * Arrow Java buffer viewed as a tensor for the length of a call.
     */
    public static ForeignArena view(String name, Device device) {
        return new ForeignArena(name, device, null, null, null);
    }

    /**
     * The producer's synchronisation event of an imported Arrow device array (for CUDA a pointer to
     * a {@code cudaEvent_t}; wait on it before reading the data from another stream), or
     * {@link MemorySegment#NULL} when none was given.
     */
    public MemorySegment syncEvent() { return syncEvent; }

    /** True once the producer's release callback has run. */
    public boolean isReleased() { return released.get(); }

    @Override
    protected MemorySegment doAllocate(long paddedBytes) {
        throw new UnsupportedOperationException("foreign arena '" + name() + "' holds imported memory and cannot allocate");
    }

    @Override
    protected void doClose() {
        try {
            if (release != null && released.compareAndSet(false, true)) release.run();
        } finally {
            if (structs != null) structs.close();
        }
    }
}
