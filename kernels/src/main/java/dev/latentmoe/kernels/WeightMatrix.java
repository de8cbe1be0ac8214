package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.MemorySegment;
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

    /**
     * Per-expert matrices viewing a fused [N, rows, cols] F32 or BF16 tensor, as transformers keeps
     * routed experts in memory ({@code up_proj} [N, m, w], {@code down_proj} [N, w, m]): matrix e is
     * a [rows, cols] view of the same memory (no copy), alive as long as {@code fused} is.
     */
    public static WeightMatrix[] experts(Tensor fused) {
        if (fused == null) throw new IllegalArgumentException("fused expert tensor is null");
        if (fused.rank() != 3) {
            throw new IllegalArgumentException("fused expert weights must be [N, rows, cols], got shape "
                    + Arrays.toString(fused.shape()));
        }
        WeightFormat format = WeightFormat.plain(fused.dtype());
        long rows = fused.dim(1), cols = fused.dim(2);
        WeightMatrix[] out = new WeightMatrix[Math.toIntExact(fused.dim(0))];
        for (int e = 0; e < out.length; e++) {
            out[e] = new WeightMatrix(format, fused.rows(e, e + 1).reshape(rows, cols), null, 1f, 0f);
        }
        return out;
    }

    /**
     * Per-expert matrices over a fused 3D F32 or BF16 tensor the caller describes as memory, shape
     * {@code [N, rows, cols]} and strides in elements (as torch / DLPack give them). The kernels read
     * each expert's matrix as dense and row-major, so its rows must be contiguous
     * ({@code strides[1] == cols, strides[2] == 1}); the experts may be spaced apart
     * ({@code strides[0] >= rows·cols}, e.g. padding, or one slice of a larger tensor). Any other
     * layout (a transposed view, a column slice, overlapping experts) is rejected with the reason:
     * make it contiguous first. No copy; {@code owner} guards access (use a
     * {@code ForeignArena.view} for memory the caller manages; the segment's own arena is checked
     * too).
     *
     * @param name what the tensor is, for messages (e.g. "experts.up_proj")
     */
    public static WeightMatrix[] experts(String name, MemoryArena owner, MemorySegment data, DType dtype,
                                         long[] shape, long[] strides) {
        if (owner == null || data == null || dtype == null || shape == null || strides == null) {
            throw new IllegalArgumentException(name + ": owner, data, dtype, shape and strides must not be null");
        }
        WeightFormat format = WeightFormat.plain(dtype);
        if (shape.length != 3 || strides.length != 3) {
            throw new IllegalArgumentException(name + ": fused expert weights need a shape [N, rows, cols] and 3 strides, got shape "
                    + Arrays.toString(shape) + ", strides " + Arrays.toString(strides));
        }
        long n = shape[0], rows = shape[1], cols = shape[2];
        if (n < 1 || rows < 1 || cols < 1) {
            throw new IllegalArgumentException(name + ": shape " + Arrays.toString(shape) + " has an empty dimension");
        }
        String layout = " (shape " + Arrays.toString(shape) + ", strides " + Arrays.toString(strides) + " in elements)";
        if (strides[2] != 1 || strides[1] != cols) {
            throw new IllegalArgumentException(name + ": non-contiguous expert weights" + layout + ": the kernels read each expert's ["
                    + rows + ", " + cols + "] matrix as dense row-major, which needs strides [*, " + cols + ", 1]"
                    + (strides[1] == 1 ? " (this looks transposed)" : "") + "; make the tensor contiguous first");
        }
        long matrix = Math.multiplyExact(rows, cols);
        if (n > 1 && strides[0] < matrix) {
            throw new IllegalArgumentException(name + ": wrong strides" + layout + ": the expert stride " + strides[0]
                    + " is smaller than one expert's " + rows + "·" + cols + " = " + matrix + " elements, so experts would overlap");
        }
        long esize = dtype.byteSize();
        long span = Math.multiplyExact(Math.addExact(Math.multiplyExact(n - 1, Math.max(0, strides[0])), matrix), esize);
        if (data.byteSize() < span) {
            throw new IllegalArgumentException(name + ": memory of " + data.byteSize() + " bytes is too small" + layout
                    + ": the last expert ends at byte " + span);
        }
        if (data.address() % esize != 0) {
            throw new IllegalArgumentException(name + ": data address 0x" + Long.toHexString(data.address())
                    + " is not aligned to its " + esize + "-byte elements");
        }
        WeightMatrix[] out = new WeightMatrix[Math.toIntExact(n)];
        for (int e = 0; e < out.length; e++) {
            MemorySegment m = data.asSlice(e * strides[0] * esize, matrix * esize);
            out[e] = new WeightMatrix(format, Tensor.wrap(owner, m, dtype, rows, cols), null, 1f, 0f);
        }
        return out;
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
