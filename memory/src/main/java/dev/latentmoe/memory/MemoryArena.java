package dev.latentmoe.memory;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An arena hands out 64-byte-aligned segments whose reservations are padded to a multiple of 64
 * bytes (Arrow's buffer rules), keeps a count of the bytes it holds, and frees them all at
 * {@link #close()}. Any use after close, or from another thread when the arena is confined, raises
 * a Java exception before memory is touched.
 */
public abstract class MemoryArena implements AutoCloseable {
    /** What kind of memory an arena holds; decides which global counter it is accounted to. */
    public enum Kind { HOST, PINNED, DEVICE, MAPPED }

    public static final long ALIGNMENT = 64;

    private final String name;
    private final Kind kind;
    private final Device device;
    private final Thread owner;
    private final AtomicLong bytesHeld = new AtomicLong();
    private volatile boolean closed;

    /** @param owner the only thread allowed to use the arena, or null when any thread may */
    protected MemoryArena(String name, Kind kind, Device device, Thread owner) {
        this.name = name;
        this.kind = kind;
        this.device = device;
        this.owner = owner;
        MemoryAccounting.arenaOpened();
    }

    public final String name() { return name; }

    public final Kind kind() { return kind; }

    public final Device device() { return device; }

    public final boolean isOpen() { return !closed; }

    /** True when only the creating thread may use this arena. */
    public final boolean isConfined() { return owner != null; }

    /** Bytes currently reserved (padded sizes). */
    public final long bytesHeld() { return bytesHeld.get(); }

    /** Throws unless the arena is open and the calling thread may use it. */
    public final void checkAccess() {
        if (closed) throw new IllegalStateException("arena '" + name + "' is closed");
        if (owner != null && owner != Thread.currentThread()) {
            throw new WrongThreadException("arena '" + name + "' is confined to thread '" + owner.getName()
                    + "' but was used from thread '" + Thread.currentThread().getName() + "'");
        }
    }

    /** Rounds a size up to the 64-byte padding unit (at least one unit). */
    public static long paddedSize(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative size " + bytes);
        long units = Math.max(1, (bytes + ALIGNMENT - 1) / ALIGNMENT);
        return Math.multiplyExact(units, ALIGNMENT);
    }

    /**
     * A 64-byte-aligned segment of exactly {@code bytes} bytes (the reservation behind it is padded
     * to 64). Host memory is zeroed.
     */
    public final MemorySegment allocate(long bytes) {
        checkAccess();
        long padded = paddedSize(bytes);
        MemorySegment segment = doAllocate(padded);
        account(padded);
        return segment.asSlice(0, bytes);
    }

    /** A new row-major tensor of the given shape owned by this arena. */
    public final Tensor allocateTensor(DType dtype, long... shape) {
        long bytes = Math.multiplyExact(Tensor.checkedNumel(shape), dtype.byteSize());
        return new Tensor(this, allocate(bytes), dtype, shape);
    }

    /** Adds (or with a negative value removes) bytes from this arena's and the global count. */
    protected final void account(long bytes) {
        bytesHeld.addAndGet(bytes);
        MemoryAccounting.add(kind, bytes);
    }

    /** Reserves {@code paddedBytes}, 64-byte aligned. Called with access already checked. */
    protected abstract MemorySegment doAllocate(long paddedBytes);

    /** Frees everything this arena handed out. */
    protected abstract void doClose();

    /** Frees everything; idempotent. Must be called from the owner thread when confined. */
    @Override
    public final void close() {
        if (closed) return;
        if (owner != null && owner != Thread.currentThread()) {
            throw new WrongThreadException("arena '" + name + "' must be closed by thread '" + owner.getName() + "'");
        }
        closed = true;
        try {
            doClose();
        } finally {
            account(-bytesHeld.get());
            MemoryAccounting.arenaClosed();
        }
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "[" + name + ", " + device + ", " + bytesHeld() + " bytes"
                + (closed ? ", closed" : "") + "]";
    }
}
