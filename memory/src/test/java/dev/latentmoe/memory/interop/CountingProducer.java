package dev.latentmoe.memory.interop;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A test-side foreign producer: hand-built Arrow/DLPack structs whose release callbacks (upcall
 * stubs) count their calls per struct, keyed by {@code private_data}/{@code manager_ctx}, so that
 * tests can assert "released exactly once".
 */
final class CountingProducer {
    private CountingProducer() {}

    static final Map<Long, AtomicInteger> CALLS = new ConcurrentHashMap<>();
    private static final java.util.concurrent.atomic.AtomicLong NEXT = new java.util.concurrent.atomic.AtomicLong(1_000_000);

    static final MemorySegment SCHEMA_RELEASE = stub("schemaRelease");
    static final MemorySegment ARRAY_RELEASE = stub("arrayRelease");
    static final MemorySegment DELETER = stub("deleter");

    private static MemorySegment stub(String name) {
        try {
            var h = MethodHandles.lookup().findStatic(CountingProducer.class, name, MethodType.methodType(void.class, MemorySegment.class));
            return Linker.nativeLinker().upcallStub(h, FunctionDescriptor.ofVoid(ADDRESS), Arena.global());
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    static long newId() {
        long id = NEXT.getAndIncrement();
        CALLS.put(id, new AtomicInteger());
        return id;
    }

    static int calls(long id) { return CALLS.get(id).get(); }

    private static void count(MemorySegment p, long releaseOffset, long privateOffset, long size, boolean clear) {
        MemorySegment s = p.reinterpret(size);
        long id = s.get(ADDRESS, privateOffset).address();
        AtomicInteger c = CALLS.get(id);
        if (c != null) c.incrementAndGet();
        if (clear) s.set(ADDRESS, releaseOffset, MemorySegment.NULL);
    }

    @SuppressWarnings("unused")
    private static void schemaRelease(MemorySegment p) {
        count(p, ArrowCData.S_RELEASE, ArrowCData.S_PRIVATE, ArrowCData.ARROW_SCHEMA.byteSize(), true);
    }

    @SuppressWarnings("unused")
    private static void arrayRelease(MemorySegment p) {
        count(p, ArrowCData.A_RELEASE, ArrowCData.A_PRIVATE, ArrowCData.ARROW_ARRAY.byteSize(), true);
    }

    @SuppressWarnings("unused")
    private static void deleter(MemorySegment p) {
        count(p, DLPack.M_DELETER, DLPack.M_CTX, DLPack.DL_MANAGED_TENSOR_VERSIONED.byteSize(), false);
    }

    static MemorySegment str(Arena a, String s) { return a.allocateFrom(s, StandardCharsets.UTF_8); }

    /** A schema node with a counting release; returns its id. */
    static long schema(Arena a, MemorySegment s, String format, MemorySegment metadata, MemorySegment... children) {
        long id = newId();
        s.set(ADDRESS, ArrowCData.S_FORMAT, format == null ? MemorySegment.NULL : str(a, format));
        s.set(ADDRESS, ArrowCData.S_NAME, str(a, "x"));
        s.set(ADDRESS, ArrowCData.S_METADATA, metadata == null ? MemorySegment.NULL : metadata);
        s.set(JAVA_LONG, ArrowCData.S_FLAGS, 0L);
        s.set(JAVA_LONG, ArrowCData.S_N_CHILDREN, children.length);
        MemorySegment ptrs = children.length == 0 ? MemorySegment.NULL : a.allocate(ADDRESS, children.length);
        for (int i = 0; i < children.length; i++) ptrs.setAtIndex(ADDRESS, i, children[i]);
        s.set(ADDRESS, ArrowCData.S_CHILDREN, ptrs);
        s.set(ADDRESS, ArrowCData.S_DICTIONARY, MemorySegment.NULL);
        s.set(ADDRESS, ArrowCData.S_RELEASE, SCHEMA_RELEASE);
        s.set(ADDRESS, ArrowCData.S_PRIVATE, MemorySegment.ofAddress(id));
        return id;
    }

    /** An array node with a counting release; returns its id. */
    static long array(Arena a, MemorySegment s, long length, long nullCount, long offset, MemorySegment[] buffers,
                      MemorySegment... children) {
        long id = newId();
        s.set(JAVA_LONG, ArrowCData.A_LENGTH, length);
        s.set(JAVA_LONG, ArrowCData.A_NULL_COUNT, nullCount);
        s.set(JAVA_LONG, ArrowCData.A_OFFSET, offset);
        s.set(JAVA_LONG, ArrowCData.A_N_BUFFERS, buffers.length);
        s.set(JAVA_LONG, ArrowCData.A_N_CHILDREN, children.length);
        MemorySegment b = buffers.length == 0 ? MemorySegment.NULL : a.allocate(ADDRESS, buffers.length);
        for (int i = 0; i < buffers.length; i++) b.setAtIndex(ADDRESS, i, buffers[i]);
        s.set(ADDRESS, ArrowCData.A_BUFFERS, b);
        MemorySegment ptrs = children.length == 0 ? MemorySegment.NULL : a.allocate(ADDRESS, children.length);
        for (int i = 0; i < children.length; i++) ptrs.setAtIndex(ADDRESS, i, children[i]);
        s.set(ADDRESS, ArrowCData.A_CHILDREN, ptrs);
        s.set(ADDRESS, ArrowCData.A_DICTIONARY, MemorySegment.NULL);
        s.set(ADDRESS, ArrowCData.A_RELEASE, ARRAY_RELEASE);
        s.set(ADDRESS, ArrowCData.A_PRIVATE, MemorySegment.ofAddress(id));
        return id;
    }

    static MemorySegment metadata(Arena a, Map<String, String> kv) { return CDataFormat.encodeMetadata(a, kv); }

    static final ValueLayout.OfLong I64 = JAVA_LONG;
}
