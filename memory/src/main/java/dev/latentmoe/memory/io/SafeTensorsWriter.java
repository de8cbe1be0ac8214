package dev.latentmoe.memory.io;

import dev.latentmoe.memory.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes host tensors as a safetensors file in the layout Hugging Face's writer produces, so the
 * reference reader accepts it: the JSON header ({@code __metadata__} first) is padded with spaces
 * so that the data region starts at a multiple of 8 bytes, and tensors are packed back to back
 * without gaps (the reference reader rejects gaps), larger element sizes first and then by name,
 * which keeps every tensor aligned to its element size.
 */
public final class SafeTensorsWriter {
    private SafeTensorsWriter() {}

    private static final int CHUNK = 1 << 24;

    /**
     * Writes {@code tensors} (host tensors; the map's names become the tensor names) and optional
     * {@code metadata} (may be null) to {@code file}, replacing it.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        List<Map.Entry<String, Tensor>> order = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, Tensor> e : order) {
            if (e.getKey() == null || e.getKey().equals("__metadata__")) {
                throw new IllegalArgumentException("invalid tensor name " + e.getKey());
            }
            Tensor t = e.getValue();
            t.checkAccessible();
            if (!t.device().isHost()) throw new IllegalArgumentException("tensor '" + e.getKey() + "' is on " + t.device() + ", not the host");
        }
        order.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().byteSize())
                .thenComparing(Map.Entry::getKey));

        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) header.put("__metadata__", new LinkedHashMap<>(metadata));
        long offset = 0;
        for (Map.Entry<String, Tensor> e : order) {
            Tensor t = e.getValue();
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("dtype", t.dtype().safetensorsName());
            entry.put("shape", t.shape());
            long end = offset + t.byteSize();
            entry.put("data_offsets", new long[] {offset, end});
            header.put(e.getKey(), entry);
            offset = end;
        }
        byte[] json = Json.write(header).getBytes(StandardCharsets.UTF_8);
        int padded = (int) ((json.length + 7L) / 8 * 8);
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        head.flip();

        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, head);
            for (Map.Entry<String, Tensor> e : order) {
                MemorySegment s = e.getValue().segment();
                for (long pos = 0; pos < s.byteSize(); pos += CHUNK) {
                    writeFully(ch, s.asSlice(pos, Math.min(CHUNK, s.byteSize() - pos)).asByteBuffer());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }
}
