package dev.latentmoe.memory;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Process-wide byte accounting of every open arena, per device kind. Tests assert it returns to
 * zero; benchmarks report it.
 */
public final class MemoryAccounting {
    private static final AtomicLong HOST = new AtomicLong();
    private static final AtomicLong DEVICE = new AtomicLong();
    private static final AtomicLong MAPPED = new AtomicLong();
    private static final AtomicLong OPEN_ARENAS = new AtomicLong();

    private MemoryAccounting() {}

    /** Bytes allocated in host arenas (plain and pinned) not yet freed. */
    public static long hostBytes() { return HOST.get(); }

    /** Bytes allocated in device arenas not yet freed. */
    public static long deviceBytes() { return DEVICE.get(); }

    /** Bytes of memory-mapped files not yet unmapped. */
    public static long mappedBytes() { return MAPPED.get(); }

    /** Arenas created and not yet closed. */
    public static long openArenas() { return OPEN_ARENAS.get(); }

    /** All three byte counters together. */
    public static long totalBytes() { return HOST.get() + DEVICE.get() + MAPPED.get(); }

    static void add(MemoryArena.Kind kind, long bytes) { counter(kind).addAndGet(bytes); }

    static void arenaOpened() { OPEN_ARENAS.incrementAndGet(); }

    static void arenaClosed() { OPEN_ARENAS.decrementAndGet(); }

    private static AtomicLong counter(MemoryArena.Kind kind) {
        return switch (kind) {
            case HOST, PINNED -> HOST;
            case DEVICE -> DEVICE;
            case MAPPED -> MAPPED;
        };
    }
}
