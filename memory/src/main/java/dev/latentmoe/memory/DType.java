package dev.latentmoe.memory;

/** Element types of a {@link Tensor}; {@link #code()} equals the C ABI's {@code lmoe_dtype}. */
public enum DType {
    F32(0, 4, "F32"),
    BF16(1, 2, "BF16"),
    F16(2, 2, "F16"),
    I32(3, 4, "I32"),
    /** OCP FP8 E4M3 (FN: no Inf, 0x7f/0xff NaN, max 448): ModelOpt FP8 weights and NVFP4 block scales. */
    F8_E4M3(4, 1, "F8_E4M3"),
    /** Bytes (NVFP4 weights: two e2m1 codes per byte). */
    U8(5, 1, "U8");

    /** The element types that tensors are exchanged in (Arrow, DLPack, .npy); the rest are weight storage. */
    public static final java.util.Set<DType> ACTIVATION_TYPES = java.util.Collections.unmodifiableSet(
            java.util.EnumSet.of(F32, BF16, F16, I32));

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

    /** F32, BF16, F16: what a weight may be widened from. */
    public boolean isFloatingPoint() { return this == F32 || this == BF16 || this == F16; }

    public static DType fromCode(int code) {
        for (DType t : values()) if (t.code == code) return t;
        throw new IllegalArgumentException("unknown dtype code " + code);
    }

    /** Parses a safetensors dtype string; unsupported ones raise with the name. */
    public static DType fromSafetensorsName(String name) {
        for (DType t : values()) if (t.safetensorsName.equals(name)) return t;
        throw new IllegalArgumentException("unsupported safetensors dtype '" + name + "' (supported: F32, BF16, F16, I32, F8_E4M3, U8)");
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

    /** An OCP e4m3 (FN) code to float: bias 7, subnormals, 0x7f / 0xff NaN, no infinities. */
    public static float e4m3ToFloat(byte code) {
        int c = code & 0xFF, sign = c >>> 7, exp = (c >>> 3) & 0xF, man = c & 7;
        float v;
        if (exp == 0xF && man == 7) v = Float.NaN;
        else if (exp == 0) v = man * 0x1p-9f;
        else v = (8 + man) * Math.scalb(1f, exp - 10);
        return sign != 0 ? -v : v;
    }

    /** float to the nearest e4m3 (FN) code, ties to even, saturating at ±448; NaN to 0x7f. */
    public static byte floatToE4m3(float value) {
        if (Float.isNaN(value)) return 0x7F;
        int sign = Float.floatToRawIntBits(value) < 0 ? 0x80 : 0;
        float a = Math.min(Math.abs(value), 448f);
        int best = 0;
        float bestErr = Float.POSITIVE_INFINITY;
        for (int c = 0; c < 0x7F; c++) {   // 127 finite magnitudes: exact search, ties to the even code
            float err = Math.abs(e4m3ToFloat((byte) c) - a);
            if (err < bestErr || (err == bestErr && (c & 1) == 0)) {
                best = c;
                bestErr = err;
            }
        }
        return (byte) (best | sign);
    }

    /** Rounds a float to the nearest bf16 value and back. */
    public static float roundToBf16(float value) {
        return bf16ToFloat(floatToBf16(value));
    }
}
