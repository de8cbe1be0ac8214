package dev.latentmoe.kernels.spi;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.LockSupport;

/**
 * Keeps what a native call uses alive until the call returns: every call runs between
 * {@link #enter()} and {@link #exit()}, and {@link #close(Runnable)} frees only once no call is in
 * flight. Closing <em>waits</em> for the calls already inside (they are bounded: one layer pass)
 * and makes every later {@link #enter()} throw an {@link IllegalStateException}; it never refuses
 * and never frees under a running kernel.
 *
 * <p>One {@code long} holds the calls in flight and a closed bit, changed by compare-and-set: a
 * call allocates nothing and takes no lock (a read-write lock would allocate per contended
 * acquire and serialise callers on its queue).
 */
public final class CallGuard {
    private static final long CLOSED = 1L << 62;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(CallGuard.class, "state", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final String closedMessage;
    /** Calls in flight, plus {@link #CLOSED} once closing has begun. */
    @SuppressWarnings("unused") // through STATE
    private volatile long state;
    /** The thread waiting in {@link #close} for the calls in flight, woken by the last {@link #exit()}. */
    private volatile Thread closer;
    /** Serialises closers: a second {@link #close} returns only after the first has freed. */
    private final Object closeLock = new Object();
    private boolean released;   // guarded by closeLock

    /** @param closedMessage the message of the exception a call raises after close, e.g. "the layer is closed" */
    public CallGuard(String closedMessage) {
        this.closedMessage = closedMessage;
    }

    /**
     * Registers a call; pair it with {@link #exit()} in a {@code finally}.
     *
     * @throws IllegalStateException once {@link #close} has begun
     */
    public void enter() {
        for (;;) {
            long s = (long) STATE.getVolatile(this);
            if ((s & CLOSED) != 0) throw new IllegalStateException(closedMessage);
            if (STATE.weakCompareAndSet(this, s, s + 1)) return;
        }
    }

    /** Ends a call registered by {@link #enter()}; the last call out wakes a waiting close. */
    public void exit() {
        long s = (long) STATE.getAndAdd(this, -1L) - 1;
        if (s == CLOSED) {
            Thread t = closer;
            if (t != null) LockSupport.unpark(t);
        }
    }

    /** Throws the closed exception once {@link #close} has begun (for checks outside a call). */
    public void ensureOpen() {
        if (isClosed()) throw new IllegalStateException(closedMessage);
    }

    /** True once {@link #close} has begun. */
    public boolean isClosed() { return ((long) STATE.getVolatile(this) & CLOSED) != 0; }

    /** Calls in flight now (for tests and diagnostics). */
    public long callsInFlight() { return (long) STATE.getVolatile(this) & ~CLOSED; }

    /**
     * Refuses new calls, waits until the calls in flight have returned, then runs {@code release}
     * once; idempotent. A concurrent second close waits for the first to finish and then returns.
     * An interrupt does not cut the wait short (freeing under a call would crash the JVM); the
     * thread's interrupt status is kept. Never call it from inside a call on this guard: it would
     * wait for itself.
     */
    public void close(Runnable release) {
        synchronized (closeLock) {
            if (released) return;
            STATE.getAndBitwiseOr(this, CLOSED);
            awaitNoCalls();
            released = true;   // even when release throws: it never runs twice
            release.run();
        }
    }

    private void awaitNoCalls() {
        if (callsInFlight() == 0) return;
        boolean interrupted = false;
        closer = Thread.currentThread();
        try {
            while (callsInFlight() != 0) {
                // Woken by the last exit(); the timeout only bounds the cost of a lost race with it.
                LockSupport.parkNanos(this, 1_000_000L);
                if (Thread.interrupted()) interrupted = true;
            }
        } finally {
            closer = null;
            if (interrupted) Thread.currentThread().interrupt();
        }
    }
}
