package dev.latentmoe.memory;

/** Element types of a {@link Tensor}; {@link #code()} equals the C ABI's {@code lmoe_dtype}. */
public enum DType {
    F32(0, 4, "F32"),
    BF16(1, 2, "BF16"),
    F16(2, 2, "F16"),
    I32(3, 4, "I32");

    private final int code;
    private final int byteSize;
    private final String safetensorsName;

    DType(int code, int byteSize, String safetensorsName) {
        this.code = code;
        this.byteSize = byteSize;
        this.safetensorsName = safetensorsName;
    }

    /** The {@code lmoe_dtype} value. */
    public int code() { return code; }

    public int byteSize() { return byteSize; }

    /** The dtype string used in safetensors headers. */
    public String safetensorsName() { return safetensorsName; }

    public boolean isFloatingPoint() { return this != I32; }

    public static DType fromCode(int code) {
        for (DType t : values()) if (t.code == code) return t;
        throw new IllegalArgumentException("unknown dtype code " + code);
    }

    /** Parses a safetensors dtype string; unsupported ones raise with the name. */
    public static DType fromSafetensorsName(String name) {
        for (DType t : values()) if (t.safetensorsName.equals(name)) return t;
        throw new IllegalArgumentException("unsupported safetensors dtype '" + name + "' (supported: F32, BF16, F16, I32)");
    }

    /** bf16 bits to float: the bf16 is the high half of an IEEE float. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** float to bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return (short) ((bits >>> 16) | 0x0040);
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** Rounds a float to the nearest bf16 value and back. */
    public static float roundToBf16(float value) {
        return bf16ToFloat(floatToBf16(value));
    }
}
