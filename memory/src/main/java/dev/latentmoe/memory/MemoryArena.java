package dev.latentmoe.memory;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An arena hands out 64-byte-aligned segments whose reservations are padded to a multiple of 64
 * bytes (Arrow's buffer rules), keeps a count of the bytes it holds, and frees them all at
 * {@link #close()}. Any use after close, or from another thread when the arena is confined, raises
 * a Java exception before memory is touched.
 *
 * <p><b>Holds (zero-copy exports, layers).</b> Code that hands this arena's memory to a foreign
 * consumer (an Arrow C Data array, a DLPack tensor: see {@code dev.latentmoe.memory.interop}) or
 * keeps reading it from native code beyond one call (a layer using it as weights in place) takes a
 * hold with {@link #retain()} and drops it with {@link #release()}, possibly on another thread (the
 * consumer's release callback). While holds are outstanding:
 * <ul>
 *   <li>a <em>shared</em> arena's {@link #close()} ends Java access at once ({@link #isOpen()} is
 *       false, allocation and tensor access raise) but <em>defers the free</em>: the memory, its
 *       byte accounting and its open-arena count stay until the last {@link #release()}, which
 *       frees on the releasing thread;</li>
 *   <li>a <em>confined</em> arena can only be freed by its owner thread, so its {@link #close()}
 *       <em>refuses</em> with an {@link IllegalStateException} naming the outstanding holds and
 *       leaves the arena open; release the exports and close again.</li>
 * </ul>
 * Either way the accounting is back to zero once the arena is closed and every hold released.
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
    /** Guards holds / closeDeferred / freed. */
    private final Object holdLock = new Object();
    private int holds;
    private boolean closeDeferred;
    private boolean freed;

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

    /**
     * Takes a hold on this arena's memory for a zero-copy export: the memory is not freed before a
     * matching {@link #release()}, even when {@link #close()} comes first (see the class comment).
     * Any thread may call it.
     *
     * @throws IllegalStateException when the arena is closed (or its close is deferred)
     */
    public final void retain() {
        synchronized (holdLock) {
            if (closed || freed) throw new IllegalStateException("arena '" + name + "' is closed; cannot hold its memory");
            if (holds == Integer.MAX_VALUE) throw new IllegalStateException("arena '" + name + "' has too many holds");
            holds++;
        }
    }

    /**
     * Drops a hold taken by {@link #retain()}; any thread may call it. The last release after a
     * deferred {@link #close()} frees the memory on the calling thread.
     *
     * @throws IllegalStateException when no hold is outstanding
     */
    public final void release() {
        boolean freeNow;
        synchronized (holdLock) {
            if (holds == 0) throw new IllegalStateException("arena '" + name + "': release() without a matching retain()");
            holds--;
            freeNow = holds == 0 && closeDeferred && !freed;
            if (freeNow) freed = true;
        }
        if (freeNow) free();
    }

    /** Holds currently outstanding (exports not yet released by their consumers). */
    public final int holds() {
        synchronized (holdLock) {
            return holds;
        }
    }

    /**
     * Ends Java access and frees everything; idempotent. Must be called from the owner thread when
     * confined. With holds outstanding, a shared arena defers the free to the last
     * {@link #release()}; a confined one refuses (see the class comment).
     *
     * @throws IllegalStateException when this is a confined arena with holds outstanding
     */
    @Override
    public final void close() {
        if (closed) return;
        if (owner != null && owner != Thread.currentThread()) {
            throw new WrongThreadException("arena '" + name + "' must be closed by thread '" + owner.getName() + "'");
        }
        synchronized (holdLock) {
            if (closed) return;
            if (holds > 0) {
                if (owner != null) {
                    throw new IllegalStateException("arena '" + name + "' is confined and has " + holds
                            + " outstanding export hold(s) (Arrow/DLPack consumers that have not released, "
                            + "or open layers using it as weights); release them (close the layers) before "
                            + "closing, or use a shared arena");
                }
                closed = true;
                closeDeferred = true;
                return;
            }
            closed = true;
            freed = true;
        }
        free();
    }

    private void free() {
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
