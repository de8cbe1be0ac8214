package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Tensor;

import java.util.Arrays;

/**
 * One weight matrix of logical shape [rows, cols] (rows = output features, cols = input features)
 * in a {@link WeightFormat}: the data tensor (see the format for its shape), the NVFP4 block
 * scales, the per-tensor scale (FP8 {@code weight_scale}, NVFP4 {@code weight_scale_2}; 1 for
 * F32/BF16) and the checkpoint's static activation scale ({@code input_scale}, 0 when none; used
 * only by the GPU's W8A8 path). Mirrors the C ABI's {@code lmoe_matrix}.
 */
public record WeightMatrix(WeightFormat format, Tensor data, Tensor blockScales, float scale, float inputScale) {

    public WeightMatrix {
        if (format == null) throw new IllegalArgumentException("weight format is null");
        if (data == null) throw new IllegalArgumentException("weight data is null");
        if (!Float.isFinite(scale) || scale <= 0) {
            throw new IllegalArgumentException("weight scale must be finite and > 0, got " + scale);
        }
        if (!format.isQuantized() && scale != 1f) {
            throw new IllegalArgumentException(format + " weights have no scale (must be 1), got " + scale);
        }
        if (!Float.isFinite(inputScale) || inputScale < 0) {
            throw new IllegalArgumentException("input scale must be finite and >= 0, got " + inputScale);
        }
        if ((format == WeightFormat.NVFP4) != (blockScales != null)) {
            throw new IllegalArgumentException(format == WeightFormat.NVFP4 ? "NVFP4 weights need block scales"
                    : format + " weights have no block scales");
        }
    }

    /** An F32 or BF16 tensor as it is. */
    public static WeightMatrix of(Tensor t) {
        if (t == null) return null;
        return new WeightMatrix(WeightFormat.plain(t.dtype()), t, null, 1f, 0f);
    }

    /** FP8 E4M3 data [rows, cols] with its per-tensor scale. */
    public static WeightMatrix fp8(Tensor data, float weightScale, float inputScale) {
        return new WeightMatrix(WeightFormat.FP8_E4M3, data, null, weightScale, inputScale);
    }

    /** NVFP4 data U8 [rows, cols/2], block scales F8_E4M3 [rows, cols/16], per-tensor scale 2. */
    public static WeightMatrix nvfp4(Tensor data, Tensor blockScales, float weightScale2, float inputScale) {
        return new WeightMatrix(WeightFormat.NVFP4, data, blockScales, weightScale2, inputScale);
    }

    /** Logical rows (output features). */
    public long rows() { return data.rank() == 2 ? data.dim(0) : -1; }

    /** Logical cols (input features). */
    public long cols() {
        if (data.rank() != 2) return -1;
        return format == WeightFormat.NVFP4 ? data.dim(1) * 2 : data.dim(1);
    }

    /** Bytes the kernels read: data plus block scales. */
    public long byteSize() {
        return data.byteSize() + (blockScales == null ? 0 : blockScales.byteSize());
    }

    private static final float[] E2M1 = {0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f};

    /**
     * The dequantized values [rows · cols] row-major (F32/BF16 as stored; FP8: e4m3 × scale; NVFP4:
     * e2m1 × block scale × scale). A full copy in f32, for references and checks, not for the kernels.
     */
    public float[] dequantized() {
        int rows = (int) rows(), cols = (int) cols();
        float[] out = new float[rows * cols];
        switch (format) {
            case F32, BF16 -> { return data.toFloatArray(); }
            case FP8_E4M3 -> {
                for (int i = 0; i < out.length; i++) out[i] = data.getFloat(i) * scale;
            }
            case NVFP4 -> {
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        int b = (int) data.getFloat((long) r * (cols / 2) + c / 2);
                        int code = (c & 1) == 0 ? b & 0xF : b >>> 4;
                        float v = E2M1[code & 7] * ((code & 8) != 0 ? -1f : 1f);
                        out[r * cols + c] = v * blockScales.getFloat((long) r * (cols / 16) + c / 16) * scale;
                    }
                }
            }
        }
        return out;
    }

    /** Checks dtypes and shapes against [rows, cols]; messages name the tensor. */
    void check(String name, long rows, long cols) {
        if (data.dtype() != format.dataDType()) {
            throw new IllegalArgumentException("weight " + name + " is " + format + " but its data is " + data.dtype()
                    + ", expected " + format.dataDType());
        }
        if (format == WeightFormat.NVFP4 && cols % 16 != 0) {
            throw new IllegalArgumentException("weight " + name + " is NVFP4 but its " + cols
                    + " input features are not a multiple of 16");
        }
        long dataCols = format.dataCols(cols);
        if (data.rank() != 2 || data.dim(0) != rows || data.dim(1) != dataCols) {
            throw new IllegalArgumentException("weight " + name + " has shape " + Arrays.toString(data.shape())
                    + ", expected [" + rows + ", " + dataCols + "]" + (format == WeightFormat.NVFP4 ? " (packed e2m1)" : ""));
        }
        if (blockScales != null) {
            if (blockScales.dtype() != DType.F8_E4M3 || blockScales.rank() != 2 || blockScales.dim(0) != rows
                    || blockScales.dim(1) != cols / 16) {
                throw new IllegalArgumentException("weight " + name + " block scales must be F8_E4M3 [" + rows + ", "
                        + cols / 16 + "], got " + blockScales.dtype() + " " + Arrays.toString(blockScales.shape()));
            }
        }
    }
}
