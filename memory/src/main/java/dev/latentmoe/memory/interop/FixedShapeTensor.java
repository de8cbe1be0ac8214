package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.io.Json;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How a tensor {@code [d0, d1, ..., dk]} looks in Arrow, for both Arrow Java vectors
 * ({@link ArrowTensors}) and the C Data Interface ({@link ArrowCData}): a fixed-size list of
 * {@code d1*...*dk} elements per row whose field carries the canonical
 * {@code arrow.fixed_shape_tensor} extension ({@code {"shape":[d1,...,dk]}}), over a child of the
 * element type; BF16, which Arrow lacks, is FixedSizeBinary(2) marked {@value #BFLOAT16_EXTENSION_NAME}.
 */
public final class FixedShapeTensor {
    private FixedShapeTensor() {}

    /** Extension name marking a FixedSizeBinary(2) child as bfloat16. */
    public static final String BFLOAT16_EXTENSION_NAME = "latentmoe.bfloat16";
    /** The canonical Arrow fixed-shape tensor extension name. */
    public static final String EXTENSION = "arrow.fixed_shape_tensor";
    public static final String EXTENSION_NAME_KEY = "ARROW:extension:name";
    public static final String EXTENSION_METADATA_KEY = "ARROW:extension:metadata";
    /** Largest row rank accepted from foreign metadata. */
    static final int MAX_RANK = 64;

    /** The field metadata of a tensor of {@code shape} (the extension with the per-row shape). */
    public static Map<String, String> listMetadata(long[] shape) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(EXTENSION_NAME_KEY, EXTENSION);
        meta.put(EXTENSION_METADATA_KEY, Json.write(Map.of("shape", Arrays.copyOfRange(shape, 1, shape.length))));
        return meta;
    }

    /** The child field's metadata: the bfloat16 marker for BF16, else none (null). */
    public static Map<String, String> elementMetadata(DType dtype) {
        if (dtype != DType.BF16) return null;
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(EXTENSION_NAME_KEY, BFLOAT16_EXTENSION_NAME);
        meta.put(EXTENSION_METADATA_KEY, "");
        return meta;
    }

    /** Elements per row (d1*...*dk) of {@code shape}; at most int32, Arrow's list size. */
    public static long listSize(long[] shape) {
        long n = 1;
        try {
            for (int i = 1; i < shape.length; i++) n = Math.multiplyExact(n, shape[i]);
        } catch (ArithmeticException e) {
            throw new InteropException("shape " + Arrays.toString(shape) + " overflows");
        }
        if (n > Integer.MAX_VALUE) {
            throw new InteropException("row of " + n + " elements exceeds the int32 list size of a fixed-size list");
        }
        return n;
    }

    /**
     * The per-row shape a field's metadata declares, or {@code [listSize]} when it does not carry
     * the extension. Raises {@link InteropException} (prefixed by {@code where}) for metadata that
     * is not JSON, has no shape, a bad or mismatched shape, or a permutation other than the identity.
     */
    public static long[] rowShape(Map<String, String> fieldMetadata, long listSize, String where) {
        if (!EXTENSION.equals(fieldMetadata.get(EXTENSION_NAME_KEY))) return new long[] {listSize};
        String at = where + ": " + EXTENSION + " metadata";
        Object parsed;
        try {
            parsed = Json.parse(fieldMetadata.getOrDefault(EXTENSION_METADATA_KEY, ""));
        } catch (IllegalArgumentException e) {
            throw new InteropException(at + " is not JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map<?, ?> m) || !(m.get("shape") instanceof List<?> list)) {
            throw new InteropException(at + " lacks a shape array");
        }
        if (list.size() > MAX_RANK) throw new InteropException(at + ": shape of rank " + list.size() + " (at most " + MAX_RANK + ")");
        long[] row = new long[list.size()];
        long n = 1;
        for (int i = 0; i < row.length; i++) {
            if (!(list.get(i) instanceof Long d) || d < 0) throw new InteropException(at + ": bad shape " + list);
            row[i] = d;
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new InteropException(at + ": shape " + list + " overflows");
            }
        }
        if (n != listSize) throw new InteropException(at + ": shape " + list + " does not match list size " + listSize);
        if (m.get("permutation") instanceof List<?> perm) {
            for (int i = 0; i < perm.size(); i++) {
                if (!(perm.get(i) instanceof Long p) || p != i) {
                    throw new InteropException(at + ": permutation " + perm + " is not the identity (only row-major tensors are supported)");
                }
            }
        } else if (m.containsKey("permutation") && m.get("permutation") != null) {
            throw new InteropException(at + ": permutation must be an array");
        }
        return row;
    }
}
