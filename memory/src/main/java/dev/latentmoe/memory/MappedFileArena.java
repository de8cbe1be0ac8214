package dev.latentmoe.memory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A whole file memory-mapped read-only ({@link Kind#MAPPED}, host memory). The mapping is accounted
 * to {@link MemoryAccounting#mappedBytes()} and unmapped at {@link #close()}; any thread may use it.
 * It hands out no new memory: {@link #allocate(long)} raises {@link UnsupportedOperationException}.
 * Tensors over the mapping come from {@link Tensor#wrap}; writing through them raises
 * {@link IllegalArgumentException} (the FFM API's read-only segment error).
 */
public final class MappedFileArena extends MemoryArena {
    private final Arena arena;
    private final MemorySegment mapping;
    private final Path path;

    private MappedFileArena(Path path, Arena arena, MemorySegment mapping) {
        super("mmap:" + path, Kind.MAPPED, Device.CPU, null);
        this.path = path;
        this.arena = arena;
        this.mapping = mapping;
        account(mapping.byteSize());
    }

    /** Maps all of {@code file} read-only. */
    public static MappedFileArena map(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            MemorySegment mapping = size == 0 ? arena.allocate(0, 1) : ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            return new MappedFileArena(file, arena, mapping);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot map " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** The mapped file. */
    public Path path() { return path; }

    /** The whole (read-only) mapping; checks that the arena is open. */
    public MemorySegment segment() {
        checkAccess();
        return mapping;
    }

    /** The mapped size in bytes (the file size at mapping time). */
    public long byteSize() { return mapping.byteSize(); }

    @Override
    protected MemorySegment doAllocate(long paddedBytes) {
        throw new UnsupportedOperationException("a mapped-file arena (" + path + ") cannot allocate");
    }

    @Override
    protected void doClose() { arena.close(); }
}
