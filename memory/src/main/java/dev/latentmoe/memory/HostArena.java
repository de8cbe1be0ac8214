package dev.latentmoe.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** Plain host memory from a {@link java.lang.foreign.Arena}, shared or confined to its creator. */
public final class HostArena extends MemoryArena {
    private final Arena arena;

    private HostArena(String name, boolean confined) {
        super(name, Kind.HOST, Device.CPU, confined ? Thread.currentThread() : null);
        this.arena = confined ? Arena.ofConfined() : Arena.ofShared();
    }

    /** An arena any thread may use; closing it frees its memory once no native call holds it. */
    public static HostArena shared(String name) { return new HostArena(name, false); }

    /** An arena only the calling thread may use. */
    public static HostArena confined(String name) { return new HostArena(name, true); }

    @Override
    protected MemorySegment doAllocate(long paddedBytes) {
        return arena.allocate(paddedBytes, ALIGNMENT);
    }

    @Override
    protected void doClose() { arena.close(); }
}
