package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The C Data Interface's type side for tensors: element format strings, the binary metadata
 * encoding, and what a parsed schema says the tensor is (the fixed-shape-tensor metadata itself is
 * {@link FixedShapeTensor}'s).
 */
final class CDataFormat {
    private CDataFormat() {}

    /** A parsed schema node. */
    record SchemaInfo(String format, String name, Map<String, String> metadata, long flags, List<SchemaInfo> children) {}

    /** What the schema says the tensor is. */
    record TensorType(DType dtype, boolean list, long listSize, long[] rowShape) {}

    /** The C Data format string of one element of {@code dtype}. */
    static String elementFormat(DType dtype) {
        return switch (dtype) {
            case F32 -> "f";
            case I32 -> "i";
            case F16 -> "e";
            case BF16 -> "w:2";
            case U8 -> "C";
            case F8_E4M3 -> throw new InteropException("Arrow C Data has no FP8 E4M3 type");
        };
    }

    /** The tensor type a schema describes, or an {@link InteropException} saying why it is none. */
    static TensorType tensorType(SchemaInfo s) {
        if (s.format().startsWith("+w:")) {
            long listSize = parseSize(s.format().substring(3), "ArrowSchema.format '" + s.format() + "'");
            if (s.children().size() != 1) {
                throw new InteropException("fixed-size list '" + s.format() + "' must have exactly 1 child, has " + s.children().size());
            }
            DType dtype = elementDType(s.children().getFirst(), "ArrowSchema child");
            long[] row = FixedShapeTensor.rowShape(s.metadata(), listSize, "ArrowSchema '" + s.format() + "'");
            return new TensorType(dtype, true, listSize, row);
        }
        if (!s.children().isEmpty()) throw new InteropException("ArrowSchema '" + s.format() + "' has children; expected a primitive array");
        return new TensorType(elementDType(s, "ArrowSchema"), false, 1, new long[0]);
    }

    private static long parseSize(String digits, String where) {
        if (digits.isEmpty() || digits.length() > 10) throw new InteropException(where + ": bad list size");
        long v = 0;
        for (int i = 0; i < digits.length(); i++) {
            char c = digits.charAt(i);
            if (c < '0' || c > '9') throw new InteropException(where + ": bad list size");
            v = v * 10 + (c - '0');
        }
        if (v > Integer.MAX_VALUE) throw new InteropException(where + ": list size exceeds int32");
        return v;
    }

    private static DType elementDType(SchemaInfo s, String where) {
        return switch (s.format()) {
            case "f" -> DType.F32;
            case "i" -> DType.I32;
            case "e" -> DType.F16;
            case "w:2" -> {
                String ext = s.metadata().get(FixedShapeTensor.EXTENSION_NAME_KEY);
                if (!FixedShapeTensor.BFLOAT16_EXTENSION_NAME.equals(ext)) {
                    throw new InteropException(where + ": fixed-size binary(2) without the "
                            + FixedShapeTensor.BFLOAT16_EXTENSION_NAME + " extension has no tensor dtype");
                }
                yield DType.BF16;
            }
            default -> throw new InteropException(where + ": element format '" + s.format
                    + "' has no tensor dtype (supported: f, i, e, w:2 with " + FixedShapeTensor.BFLOAT16_EXTENSION_NAME + ")");
        };
    }

    /** The C Data binary metadata encoding: int32 n, then n × (int32 len, key, int32 len, value), native order. */
    static MemorySegment encodeMetadata(Arena mem, Map<String, String> meta) {
        List<byte[]> parts = new ArrayList<>();
        long size = 4;
        for (Map.Entry<String, String> e : meta.entrySet()) {
            byte[] k = e.getKey().getBytes(StandardCharsets.UTF_8);
            byte[] v = e.getValue().getBytes(StandardCharsets.UTF_8);
            parts.add(k);
            parts.add(v);
            size += 8L + k.length + v.length;
        }
        MemorySegment m = mem.allocate(size, 8);
        m.set(JAVA_INT, 0, meta.size());
        long p = 4;
        for (byte[] b : parts) {
            m.set(ValueLayout.JAVA_INT_UNALIGNED, p, b.length);
            MemorySegment.copy(b, 0, m, ValueLayout.JAVA_BYTE, p + 4, b.length);
            p += 4 + b.length;
        }
        return m;
    }

    /**
     * Decodes the C Data binary metadata format from {@code m} (reads never leave {@code m}: a
     * declared length past its end raises).
     */
    static Map<String, String> decodeMetadata(MemorySegment m, String where) {
        try {
            int n = m.get(ValueLayout.JAVA_INT_UNALIGNED, 0);
            if (n < 0 || n > ArrowCData.MAX_METADATA_PAIRS) {
                throw new InteropException(where + ": " + n + " key/value pairs (allowed 0.." + ArrowCData.MAX_METADATA_PAIRS + ")");
            }
            Map<String, String> out = new LinkedHashMap<>();
            long p = 4;
            for (int i = 0; i < n; i++) {
                String[] kv = new String[2];
                for (int j = 0; j < 2; j++) {
                    int len = m.get(ValueLayout.JAVA_INT_UNALIGNED, p);
                    if (len < 0 || len > m.byteSize() - p - 4) {
                        throw new InteropException(where + ": " + (j == 0 ? "key" : "value") + " " + i + " has length "
                                + len + ", past the end of the metadata (at most " + m.byteSize() + " bytes)");
                    }
                    kv[j] = new String(m.asSlice(p + 4, len).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
                    p += 4L + len;
                }
                out.put(kv[0], kv[1]);
            }
            return out;
        } catch (IndexOutOfBoundsException e) {
            throw new InteropException(where + " runs past the end of its buffer (" + m.byteSize() + " bytes)", e);
        }
    }
}
