package dev.latentmoe.memory.io;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MappedFileArena;
import dev.latentmoe.memory.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A memory-mapped <a href="https://github.com/huggingface/safetensors">safetensors</a> file: an
 * 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data region. Tensors are
 * zero-copy, read-only views of the mapping and stay valid until {@link #close()}.
 *
 * <p>The whole header is validated at {@link #open}: N fits the file and is at most
 * {@value #MAX_HEADER_BYTES} bytes; the JSON is an object; {@code __metadata__}, when present, maps
 * strings to strings; every other entry has a string {@code dtype}, a {@code shape} of non-negative
 * integers and {@code data_offsets [begin, end]} with {@code begin <= end <= data size} and
 * {@code end - begin == numel * element size} (for every dtype safetensors knows, supported or not).
 * Tensors may overlap or leave gaps (both harmless for a read-only view). A dtype other than
 * F32/BF16/F16/I32 is listed by {@link #names()}/{@link #info} but raises when {@link #tensor}
 * asks for it. A rank-0 (scalar) tensor is returned with shape {@code [1]}; {@link #info} keeps
 * {@code []}. Every problem raises {@link SafeTensorsException} naming the file.
 */
public final class SafeTensorsFile implements AutoCloseable {
    /** Largest accepted JSON header (the reference implementation's limit). */
    public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    private static final ValueLayout.OfLong U64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Bits per element of every safetensors dtype, to validate sizes of unsupported ones too. */
    private static final Map<String, Integer> DTYPE_BITS = Map.ofEntries(
            Map.entry("BOOL", 8), Map.entry("U8", 8), Map.entry("I8", 8),
            Map.entry("F8_E5M2", 8), Map.entry("F8_E4M3", 8), Map.entry("F8_E8M0", 8),
            Map.entry("F4", 4), Map.entry("F6_E2M3", 6), Map.entry("F6_E3M2", 6),
            Map.entry("I16", 16), Map.entry("U16", 16), Map.entry("F16", 16), Map.entry("BF16", 16),
            Map.entry("I32", 32), Map.entry("U32", 32), Map.entry("F32", 32),
            Map.entry("I64", 64), Map.entry("U64", 64), Map.entry("F64", 64),
            Map.entry("C64", 64));

    /**
     * One header entry: the dtype as written, the shape, and {@code [begin, end)} relative to the
     * start of the data region.
     */
    public record TensorInfo(String name, String dtype, long[] shape, long begin, long end) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override public long[] shape() { return shape.clone(); }

        public long byteSize() { return end - begin; }

        public long numel() {
            long n = 1;
            for (long d : shape) n *= d; // validated not to overflow
            return n;
        }

        /** True when {@link SafeTensorsFile#tensor} can return it (F32, BF16, F16, I32). */
        public boolean isSupported() {
            for (DType t : DType.values()) if (t.safetensorsName().equals(dtype)) return true;
            return false;
        }

        @Override public boolean equals(Object o) {
            return o instanceof TensorInfo t && name.equals(t.name) && dtype.equals(t.dtype)
                    && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
        }

        @Override public int hashCode() { return name.hashCode() * 31 + Arrays.hashCode(shape); }

        @Override public String toString() {
            return name + ": " + dtype + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
        }
    }

    private final Path path;
    private final MappedFileArena arena;
    private final long dataOffset;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafeTensorsFile(Path path, MappedFileArena arena, long dataOffset, Map<String, TensorInfo> tensors,
                            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.dataOffset = dataOffset;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /** Maps and validates {@code file}. */
    public static SafeTensorsFile open(Path file) {
        MappedFileArena arena;
        try {
            arena = MappedFileArena.map(file);
        } catch (RuntimeException e) {
            throw new SafeTensorsException(file, "cannot map file: " + e.getMessage(), e);
        }
        try {
            MemorySegment m = arena.segment();
            long size = m.byteSize();
            if (size < 8) {
                throw new SafeTensorsException(file, "truncated: " + size + " bytes, too short for the 8-byte header length");
            }
            long n = m.get(U64_LE, 0);
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw new SafeTensorsException(file, "header length " + Long.toUnsignedString(n) + " exceeds the limit of "
                        + MAX_HEADER_BYTES + " bytes");
            }
            if (n > size - 8) {
                throw new SafeTensorsException(file, "truncated or corrupt: header length " + n + " exceeds the "
                        + (size - 8) + " bytes after the length field");
            }
            byte[] headerBytes = m.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            String header;
            try {
                header = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(headerBytes)).toString();
            } catch (CharacterCodingException e) {
                throw new SafeTensorsException(file, "corrupt header: not valid UTF-8");
            }
            Object parsed;
            try {
                parsed = Json.parse(header);
            } catch (IllegalArgumentException e) {
                throw new SafeTensorsException(file, "corrupt header: " + e.getMessage());
            }
            if (!(parsed instanceof Map<?, ?> root)) {
                throw new SafeTensorsException(file, "corrupt header: expected a JSON object, got " + Json.typeName(parsed));
            }
            long dataSize = size - 8 - n;
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : root.entrySet()) {
                String key = (String) e.getKey();
                if (key.equals("__metadata__")) {
                    metadata = parseMetadata(file, e.getValue());
                } else {
                    tensors.put(key, parseEntry(file, key, e.getValue(), dataSize));
                }
            }
            return new SafeTensorsFile(file, arena, 8 + n, tensors, metadata);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, String> parseMetadata(Path file, Object value) {
        if (!(value instanceof Map<?, ?> m)) {
            throw new SafeTensorsException(file, "corrupt header: __metadata__ must be an object, got " + Json.typeName(value));
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw new SafeTensorsException(file, "corrupt header: __metadata__ value of '" + e.getKey()
                        + "' must be a string, got " + Json.typeName(e.getValue()));
            }
            out.put((String) e.getKey(), s);
        }
        return out;
    }

    private static TensorInfo parseEntry(Path file, String name, Object value, long dataSize) {
        String where = "corrupt header: tensor '" + name + "': ";
        if (!(value instanceof Map<?, ?> m)) throw new SafeTensorsException(file, where + "entry must be an object, got " + Json.typeName(value));
        if (!(m.get("dtype") instanceof String dtype)) {
            throw new SafeTensorsException(file, where + "dtype must be a string, got " + Json.typeName(m.get("dtype")));
        }
        if (!(m.get("shape") instanceof List<?> shapeList)) {
            throw new SafeTensorsException(file, where + "shape must be an array, got " + Json.typeName(m.get("shape")));
        }
        long[] shape = new long[shapeList.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            if (!(shapeList.get(i) instanceof Long d) || d < 0) {
                throw new SafeTensorsException(file, where + "shape must hold non-negative integers, got " + shapeList);
            }
            shape[i] = d;
            try {
                numel = Math.multiplyExact(numel, d);
            } catch (ArithmeticException overflow) {
                throw new SafeTensorsException(file, where + "shape " + shapeList + " overflows");
            }
        }
        if (!(m.get("data_offsets") instanceof List<?> offs) || offs.size() != 2
                || !(offs.get(0) instanceof Long begin) || !(offs.get(1) instanceof Long end)) {
            throw new SafeTensorsException(file, where + "data_offsets must be [begin, end] integers, got " + m.get("data_offsets"));
        }
        if (begin < 0 || begin > end) {
            throw new SafeTensorsException(file, where + "data_offsets " + offs + " are not 0 <= begin <= end");
        }
        if (end > dataSize) {
            throw new SafeTensorsException(file, where + "data_offsets " + offs + " run past the " + dataSize
                    + "-byte data region (truncated file?)");
        }
        Integer bits = DTYPE_BITS.get(dtype);
        if (bits != null) {
            long expectedBits;
            try {
                expectedBits = Math.multiplyExact(numel, (long) bits);
            } catch (ArithmeticException overflow) {
                throw new SafeTensorsException(file, where + "shape " + shapeList + " overflows");
            }
            if (expectedBits % 8 != 0 || expectedBits / 8 != end - begin) {
                throw new SafeTensorsException(file, where + dtype + Arrays.toString(shape) + " needs "
                        + (expectedBits % 8 == 0 ? expectedBits / 8 + " bytes" : expectedBits + " bits")
                        + " but data_offsets " + offs + " span " + (end - begin));
            }
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    public Path path() { return path; }

    /** Tensor names in header order ({@code __metadata__} excluded). */
    public Set<String> names() { return tensors.keySet(); }

    public boolean has(String name) { return tensors.containsKey(name); }

    /** The header entry of {@code name}; raises when absent. */
    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) throw new SafeTensorsException(path, "no tensor '" + name + "'");
        return info;
    }

    /** The {@code __metadata__} map (empty when absent). */
    public Map<String, String> metadata() { return metadata; }

    /** The arena holding the mapping; every tensor of this file is owned by it. */
    public MappedFileArena arena() { return arena; }

    /** File offset of the data region (8 + header length). */
    public long dataOffset() { return dataOffset; }

    /**
     * A zero-copy, read-only view of tensor {@code name} (F32, BF16, F16 or I32): setters raise
     * {@link IllegalArgumentException}; copy it into a host arena to modify it. The data may be only
     * element-size aligned. Valid until this file is closed.
     */
    public Tensor tensor(String name) {
        TensorInfo info = info(name);
        DType dtype = null;
        for (DType t : DType.values()) if (t.safetensorsName().equals(info.dtype())) dtype = t;
        if (dtype == null) {
            throw new SafeTensorsException(path, "tensor '" + name + "' has unsupported dtype " + info.dtype()
                    + " (supported: F32, BF16, F16, I32)");
        }
        if (!arena.isOpen()) throw new IllegalStateException(path + " is closed");
        MemorySegment slice = arena.segment().asSlice(dataOffset + info.begin(), info.byteSize());
        long[] shape = info.shape.length == 0 ? new long[] {1} : info.shape;
        return Tensor.wrap(arena, slice, dtype, shape);
    }

    /** Unmaps the file; tensors obtained from it then raise {@link IllegalStateException}. Idempotent. */
    @Override
    public void close() { arena.close(); }

    @Override
    public String toString() { return "SafeTensorsFile[" + path + ", " + tensors.size() + " tensors]"; }
}
