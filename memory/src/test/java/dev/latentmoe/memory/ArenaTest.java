package dev.latentmoe.memory;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

@ExtendWith(ArenaLeakCheck.class)
class ArenaTest {
    @TempDir Path tmp;

    @Test
    void everyAllocationIs64ByteAligned() {
        try (HostArena a = HostArena.shared("align")) {
            for (int size = 0; size <= 300; size += 7) {
                MemorySegment s = a.allocate(size);
                assertEquals(0, s.address() % 64, "size " + size);
                assertEquals(size, s.byteSize());
            }
            for (DType t : DType.values()) {
                Tensor x = a.allocateTensor(t, 3, 5);
                assertEquals(0, x.segment().address() % 64);
            }
        }
    }

    @Test
    void paddingIsAccounted() {
        try (HostArena a = HostArena.confined("pad")) {
            a.allocate(1);
            assertEquals(64, a.bytesHeld());
            assertEquals(64, MemoryAccounting.hostBytes());
            a.allocate(64);
            assertEquals(128, a.bytesHeld());
            a.allocate(65);
            assertEquals(256, a.bytesHeld());
            a.allocate(0);
            assertEquals(320, a.bytesHeld());
            assertEquals(1, MemoryAccounting.openArenas());
        }
        assertEquals(0, MemoryAccounting.totalBytes());
        assertEquals(0, MemoryAccounting.openArenas());
    }

    @Test
    void allocationIsZeroed() {
        try (HostArena a = HostArena.confined("zero")) {
            Tensor t = a.allocateTensor(DType.F32, 100);
            for (float v : t.toFloatArray()) assertEquals(0f, v);
        }
    }

    @Test
    void useAfterCloseThrows() {
        HostArena a = HostArena.shared("closed");
        Tensor t = a.allocateTensor(DType.F32, 4);
        a.close();
        assertFalse(a.isOpen());
        assertFalse(t.isAlive());
        assertThrows(IllegalStateException.class, () -> a.allocate(8));
        assertThrows(IllegalStateException.class, () -> a.allocateTensor(DType.F32, 2));
        assertThrows(IllegalStateException.class, () -> t.getFloat(0));
        assertThrows(IllegalStateException.class, () -> t.setFloat(0, 1f));
        assertThrows(IllegalStateException.class, t::segment);
        assertThrows(IllegalStateException.class, () -> t.reshape(2, 2));
        assertThrows(IllegalStateException.class, () -> t.rows(0, 1));
        a.close(); // idempotent
        assertEquals(0, a.bytesHeld());
    }

    @Test
    @SuppressWarnings("try") // closes the try-with-resources arena from another thread on purpose
    void confinedArenaRejectsOtherThreads() throws Exception {
        try (HostArena a = HostArena.confined("confined")) {
            Tensor t = a.allocateTensor(DType.F32, 4);
            t.setFloat(0, 3f);
            AtomicReference<Throwable> seen = new AtomicReference<>();
            Thread th = new Thread(() -> {
                try {
                    t.getFloat(0);
                } catch (Throwable e) {
                    seen.set(e);
                }
            }, "intruder");
            th.start();
            th.join();
            assertInstanceOf(WrongThreadException.class, seen.get());
            assertTrue(seen.get().getMessage().contains("intruder"));

            Thread closer = new Thread(() -> {
                try {
                    a.close();
                } catch (Throwable e) {
                    seen.set(e);
                }
            });
            seen.set(null);
            closer.start();
            closer.join();
            assertInstanceOf(WrongThreadException.class, seen.get());
            assertTrue(a.isOpen());
            assertEquals(3f, t.getFloat(0));
        }
    }

    @Test
    void sharedArenaAllowsOtherThreads() throws Exception {
        try (HostArena a = HostArena.shared("shared")) {
            Tensor t = a.allocateTensor(DType.I32, 4);
            Thread th = new Thread(() -> t.setInt(2, 42));
            th.start();
            th.join();
            assertEquals(42, t.getInt(2));
        }
    }

    @Test
    void mappedArenaAccountsAndUnmaps() throws Exception {
        Path f = tmp.resolve("blob.bin");
        byte[] bytes = new byte[1000];
        for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) i;
        Files.write(f, bytes);
        MappedFileArena m = MappedFileArena.map(f);
        try {
            assertEquals(MemoryArena.Kind.MAPPED, m.kind());
            assertEquals(1000, m.bytesHeld());
            assertEquals(1000, MemoryAccounting.mappedBytes());
            assertEquals(1000, m.segment().byteSize());
            assertEquals((byte) 7, m.segment().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 7));
            assertThrows(UnsupportedOperationException.class, () -> m.allocate(8));
            Tensor t = Tensor.wrap(m, m.segment().asSlice(0, 8), DType.I32, 2);
            assertEquals(0x03020100, t.getInt(0));
            // read-only mapping (the FFM API raises IllegalArgumentException)
            assertThrows(IllegalArgumentException.class, () -> t.setInt(0, 1));
        } finally {
            m.close();
        }
        assertEquals(0, MemoryAccounting.mappedBytes());
        assertThrows(IllegalStateException.class, m::segment);
        m.close();
    }

    @Test
    void mappedEmptyFileAndMissingFile() throws Exception {
        Path f = tmp.resolve("empty.bin");
        Files.write(f, new byte[0]);
        try (MappedFileArena m = MappedFileArena.map(f)) {
            assertEquals(0, m.byteSize());
        }
        assertThrows(java.io.UncheckedIOException.class, () -> MappedFileArena.map(tmp.resolve("missing")));
        assertEquals(0, MemoryAccounting.openArenas());
    }
}
