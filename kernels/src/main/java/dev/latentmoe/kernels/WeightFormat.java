package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;

/**
 * How one weight matrix is stored; {@link #code()} equals the C ABI's {@code lmoe_weight_format}.
 * Every format is used in place: the kernels dequantize on the fly, never into a widened copy.
 */
public enum WeightFormat {
    /** data F32 [rows, cols]. */
    F32(0, DType.F32),
    /** data BF16 [rows, cols]. */
    BF16(1, DType.BF16),
    /** data F8_E4M3 [rows, cols]; value = e4m3 × scale (ModelOpt FP8, per tensor). */
    FP8_E4M3(2, DType.F8_E4M3),
    /**
     * data U8 [rows, cols/2], two e2m1 codes per byte, the even column in the low nibble; block
     * scales F8_E4M3 [rows, cols/16]; value = e2m1 × block scale × scale (ModelOpt NVFP4).
     */
    NVFP4(3, DType.U8);

    private final int code;
    private final DType dataDType;

    WeightFormat(int code, DType dataDType) {
        this.code = code;
        this.dataDType = dataDType;
    }

    public int code() { return code; }

    /** The dtype of the data tensor. */
    public DType dataDType() { return dataDType; }

    /** Columns of the data tensor for {@code cols} logical input features. */
    public long dataCols(long cols) { return this == NVFP4 ? cols / 2 : cols; }

    /** Whether the values carry a per-tensor scale (and, for NVFP4, block scales). */
    public boolean isQuantized() { return this == FP8_E4M3 || this == NVFP4; }

    /** Storage bits per weight, block scales included (NVFP4: 4 + 8/16). */
    public double bitsPerWeight() {
        return switch (this) {
            case F32 -> 32;
            case BF16 -> 16;
            case FP8_E4M3 -> 8;
            case NVFP4 -> 4.5;
        };
    }

    public static WeightFormat fromCode(int code) {
        for (WeightFormat f : values()) if (f.code == code) return f;
        throw new IllegalArgumentException("unknown weight format code " + code);
    }

    /** The plain format of an F32 or BF16 tensor. */
    public static WeightFormat plain(DType dtype) {
        return switch (dtype) {
            case F32 -> F32;
            case BF16 -> BF16;
            default -> throw new IllegalArgumentException("plain weights must be F32 or BF16, got " + dtype);
        };
    }
}
