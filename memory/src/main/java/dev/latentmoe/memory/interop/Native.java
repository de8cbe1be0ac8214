package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.MemoryArena;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Shared plumbing of the importers and exporters: the registry of live exports (a struct's
 * {@code private_data} / {@code manager_ctx} is a registry id, never a Java address), upcall stubs,
 * the downcall that invokes a foreign release callback, and bounded readers of foreign memory.
 */
final class Native {
    private Native() {}

    static final Linker LINKER = Linker.nativeLinker();
    /** {@code void (*)(void*)}: every release callback and deleter has this shape. */
    static final FunctionDescriptor VOID_PTR = FunctionDescriptor.ofVoid(ValueLayout.ADDRESS);
    private static final MethodHandle CALL_VOID_PTR = LINKER.downcallHandle(VOID_PTR);

    /** One live export: its private memory, the arena hold it keeps, and the child structs it owns. */
    static final class Node {
        final Arena memory;
        final MemoryArena hold;
        final List<MemorySegment> children;

        Node(Arena memory, MemoryArena hold, List<MemorySegment> children) {
            this.memory = memory;
            this.hold = hold;
            this.children = children;
        }

        /** Frees the node's memory, then drops its hold (which may free a deferred-closed arena). */
        void free() {
            try {
                memory.close();
            } finally {
                if (hold != null) hold.release();
            }
        }
    }

    private static final Map<Long, Node> LIVE = new ConcurrentHashMap<>();
    private static final AtomicLong NEXT_ID = new AtomicLong(1);
    private static final AtomicLong RELEASED = new AtomicLong();

    static long register(Node node) {
        long id = NEXT_ID.getAndIncrement();
        LIVE.put(id, node);
        return id;
    }

    /** Removes and returns the node, or null when unknown (released already, or not ours). */
    static Node take(long id) {
        Node n = LIVE.remove(id);
        if (n != null) RELEASED.incrementAndGet();
        return n;
    }

    /** Exports (struct nodes: Arrow schemas, arrays and their children; DLPack tensors) not yet released. */
    static int liveExports() { return LIVE.size(); }

    /** Struct nodes released so far (process-wide). */
    static long releasedExports() { return RELEASED.get(); }

    static MemorySegment upcall(MethodHandles.Lookup owner, String method) {
        try {
            MethodHandle h = owner.findStatic(owner.lookupClass(), method,
                    MethodType.methodType(void.class, MemorySegment.class));
            return LINKER.upcallStub(h, VOID_PTR, Arena.global());
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Calls the foreign {@code void fn(void* arg)}. */
    static void callVoidPtr(MemorySegment fn, MemorySegment arg) {
        try {
            CALL_VOID_PTR.invokeExact(MemorySegment.ofAddress(fn.address()), MemorySegment.ofAddress(arg.address()));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("foreign callback failed", t);
        }
    }

    /** An upcall must never throw (the JVM would crash): report and swallow. */
    static void reportUpcallFailure(String what, Throwable t) {
        System.err.println("latentmoe interop: " + what + " failed: " + t);
        t.printStackTrace(System.err);
    }

    /**
     * A view of {@code size} bytes at a foreign address (non-null), in the global scope: never tied
     * to the scope of the segment it came from, so a callback may free that memory while we hold
     * the view (a downcall would otherwise keep the source arena acquired).
     */
    @SuppressWarnings("restricted")
    static MemorySegment at(MemorySegment pointer, long size) {
        return MemorySegment.ofAddress(pointer.address()).reinterpret(size);
    }

    /** A view of {@code size} bytes at a raw address. */
    @SuppressWarnings("restricted")
    static MemorySegment at(long address, long size) {
        return MemorySegment.ofAddress(address).reinterpret(size);
    }

    /**
     * The NUL-terminated UTF-8 string at {@code pointer} (null for a NULL pointer), read byte by
     * byte so that nothing past the terminator is touched, at most {@code max} bytes.
     */
    static String cString(MemorySegment pointer, int max, String what) {
        if (pointer.equals(MemorySegment.NULL)) return null;
        MemorySegment s = at(pointer, max + 1L);
        for (int i = 0; i <= max; i++) {
            if (s.get(ValueLayout.JAVA_BYTE, i) == 0) {
                return new String(s.asSlice(0, i).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            }
        }
        throw new InteropException(what + " is longer than " + max + " bytes (no NUL terminator found)");
    }

    /** A NUL-terminated copy of {@code s} in {@code arena}. */
    static MemorySegment cString(Arena arena, String s) {
        return arena.allocateFrom(s, StandardCharsets.UTF_8);
    }
}
