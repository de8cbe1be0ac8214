package dev.latentmoe.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A dense row-major tensor: shape, dtype and the segment holding its elements, owned by a
 * {@link MemoryArena}. Every access checks that the owner is open and usable from this thread, so
 * a closed or foreign-confined arena raises a Java exception instead of touching freed memory.
 * Element accessors work on host tensors only.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;

    private final MemoryArena owner;
    private final MemorySegment segment;
    private final DType dtype;
    private final long[] shape;
    private final long numel;

    Tensor(MemoryArena owner, MemorySegment segment, DType dtype, long[] shape) {
        if (owner == null) throw new IllegalArgumentException("tensor owner arena is null");
        if (dtype == null) throw new IllegalArgumentException("tensor dtype is null");
        this.owner = owner;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.numel = checkedNumel(this.shape);
        long bytes = Math.multiplyExact(numel, dtype.byteSize());
        if (segment.byteSize() != bytes) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes does not hold "
                    + dtype + Arrays.toString(shape) + " (" + bytes + " bytes)");
        }
        this.segment = segment;
    }

    /**
     * Views existing memory owned by {@code owner} (for example a memory-mapped checkpoint) as a
     * tensor without copying. The segment must hold exactly the tensor's bytes.
     */
    public static Tensor wrap(MemoryArena owner, MemorySegment segment, DType dtype, long... shape) {
        owner.checkAccess();
        return new Tensor(owner, segment, dtype, shape);
    }

    static long checkedNumel(long[] shape) {
        if (shape == null || shape.length == 0) throw new IllegalArgumentException("tensor shape must have rank >= 1");
        long n = 1;
        for (long s : shape) {
            if (s < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            n = Math.multiplyExact(n, s);
        }
        return n;
    }

    public MemoryArena arena() { return owner; }

    public Device device() { return owner.device(); }

    public DType dtype() { return dtype; }

    public int rank() { return shape.length; }

    public long[] shape() { return shape.clone(); }

    public long dim(int axis) { return shape[axis]; }

    /** Row-major strides in elements. */
    public long[] strides() {
        long[] strides = new long[shape.length];
        long s = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    public long numel() { return numel; }

    public long byteSize() { return segment.byteSize(); }

    /** The tensor's bytes; checks the owner arena and the segment's own scope first. */
    public MemorySegment segment() {
        checkAccessible();
        return segment;
    }

    /**
     * Throws unless the owner arena is open and usable from this thread, and the segment itself is
     * still alive and accessible from this thread. The second half matters for memory the caller
     * manages ({@link #wrap} over a segment of the caller's own {@link java.lang.foreign.Arena}):
     * once the caller closes that arena the tensor raises here instead of handing freed memory to
     * native code.
     */
    public void checkAccessible() {
        owner.checkAccess();
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException("the memory of " + this + " was freed by its owner (the arena of its"
                    + " MemorySegment is closed); the caller must keep it alive while the library uses it");
        }
        if (!segment.isAccessibleBy(Thread.currentThread())) {
            throw new WrongThreadException("the memory of " + this + " belongs to a confined arena of another"
                    + " thread; thread '" + Thread.currentThread().getName() + "' cannot use it");
        }
    }

    /** Whether the owner arena is open and the segment's scope alive. */
    public boolean isAlive() { return owner.isOpen() && segment.scope().isAlive(); }

    /** Same elements under another shape of equal element count. */
    public Tensor reshape(long... newShape) {
        if (checkedNumel(newShape) != numel) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        }
        owner.checkAccess();
        return new Tensor(owner, segment, dtype, newShape);
    }

    /** Rows [from, to) along the first axis, sharing memory. */
    public Tensor rows(long from, long to) {
        if (from < 0 || to < from || to > shape[0]) {
            throw new IndexOutOfBoundsException("rows [" + from + ", " + to + ") of " + Arrays.toString(shape));
        }
        long rowElems = numel / Math.max(1, shape[0]);
        long[] s = shape.clone();
        s[0] = to - from;
        long b = dtype.byteSize();
        return new Tensor(owner, segment().asSlice(from * rowElems * b, (to - from) * rowElems * b), dtype, s);
    }

    private MemorySegment hostSegment() {
        owner.checkAccess();
        if (!owner.device().isHost()) {
            throw new IllegalStateException("tensor on " + owner.device() + " cannot be read element-wise from Java; copy it to the host first");
        }
        return segment;
    }

    private long checkIndex(long flatIndex) {
        if (flatIndex < 0 || flatIndex >= numel) {
            throw new IndexOutOfBoundsException("index " + flatIndex + " out of " + numel + " elements");
        }
        return flatIndex;
    }

    /** Element at a flat row-major index, converted to float. */
    public float getFloat(long flatIndex) {
        MemorySegment s = hostSegment();
        long i = checkIndex(flatIndex);
        return switch (dtype) {
            case F32 -> s.getAtIndex(F32, i);
            case BF16 -> DType.bf16ToFloat(s.getAtIndex(U16, i));
            case F16 -> Float.float16ToFloat(s.getAtIndex(U16, i));
            case I32 -> s.getAtIndex(I32, i);
            case F8_E4M3 -> DType.e4m3ToFloat(s.get(BYTE, i));
            case U8 -> s.get(BYTE, i) & 0xFF;
        };
    }

    /** Stores a float at a flat index, rounding to the tensor's dtype (round to nearest even). */
    public void setFloat(long flatIndex, float value) {
        MemorySegment s = hostSegment();
        long i = checkIndex(flatIndex);
        switch (dtype) {
            case F32 -> s.setAtIndex(F32, i, value);
            case BF16 -> s.setAtIndex(U16, i, DType.floatToBf16(value));
            case F16 -> s.setAtIndex(U16, i, Float.floatToFloat16(value));
            case I32 -> s.setAtIndex(I32, i, (int) value);
            case F8_E4M3 -> s.set(BYTE, i, DType.floatToE4m3(value));
            case U8 -> s.set(BYTE, i, (byte) Math.max(0, Math.min(255, Math.round(value))));
        }
    }

    public int getInt(long flatIndex) {
        if (dtype != DType.I32) throw new IllegalStateException("getInt on a " + dtype + " tensor");
        return hostSegment().getAtIndex(I32, checkIndex(flatIndex));
    }

    public void setInt(long flatIndex, int value) {
        if (dtype != DType.I32) throw new IllegalStateException("setInt on a " + dtype + " tensor");
        hostSegment().setAtIndex(I32, checkIndex(flatIndex), value);
    }

    /** 2-D convenience accessor. */
    public float getFloat(long row, long col) {
        if (shape.length != 2) throw new IllegalStateException("getFloat(row, col) on a rank-" + shape.length + " tensor");
        if (row < 0 || row >= shape[0] || col < 0 || col >= shape[1]) {
            throw new IndexOutOfBoundsException("(" + row + ", " + col + ") outside " + Arrays.toString(shape));
        }
        return getFloat(row * shape[1] + col);
    }

    /** All elements as floats (a copy). */
    public float[] toFloatArray() {
        if (numel > Integer.MAX_VALUE - 8) throw new IllegalStateException("tensor too large for a Java array");
        MemorySegment s = hostSegment();
        float[] out = new float[(int) numel];
        if (dtype == DType.F32) {
            MemorySegment.copy(s, F32, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) out[i] = getFloat(i);
        }
        return out;
    }

    /** Overwrites all elements from {@code values}, rounding to the dtype. */
    public Tensor copyFrom(float[] values) {
        if (values.length != numel) {
            throw new IllegalArgumentException(values.length + " values for a tensor of " + numel + " elements");
        }
        MemorySegment s = hostSegment();
        if (dtype == DType.F32) {
            MemorySegment.copy(values, 0, s, F32, 0, values.length);
        } else {
            for (int i = 0; i < values.length; i++) setFloat(i, values[i]);
        }
        return this;
    }

    /** Sets every element to {@code value} (NaN is how tests poison outputs). */
    public Tensor fill(float value) {
        MemorySegment s = hostSegment();
        switch (dtype) {
            case F32 -> { for (long i = 0; i < numel; i++) s.setAtIndex(F32, i, value); }
            case BF16 -> { short v = DType.floatToBf16(value); for (long i = 0; i < numel; i++) s.setAtIndex(U16, i, v); }
            case F16 -> { short v = Float.floatToFloat16(value); for (long i = 0; i < numel; i++) s.setAtIndex(U16, i, v); }
            case I32 -> { int v = (int) value; for (long i = 0; i < numel; i++) s.setAtIndex(I32, i, v); }
            case F8_E4M3, U8 -> { for (long i = 0; i < numel; i++) setFloat(i, value); }
        }
        return this;
    }

    /** Copies this tensor's bytes into {@code dst} (same dtype and element count, both on the host). */
    public void copyTo(Tensor dst) {
        if (dst.dtype != dtype || dst.numel != numel) {
            throw new IllegalArgumentException("copy " + this + " to " + dst + ": dtype or size differs");
        }
        MemorySegment.copy(hostSegment(), 0, dst.hostSegment(), 0, byteSize());
    }

    /** A copy of this host tensor converted to {@code target} (rounded to nearest even), in {@code arena}. */
    public Tensor convertTo(DType target, MemoryArena arena) {
        Tensor out = arena.allocateTensor(target, shape);
        if (target == dtype) {
            copyTo(out);
            return out;
        }
        MemorySegment s = hostSegment();
        MemorySegment d = out.segment;
        if (dtype == DType.BF16 && target == DType.F32) {
            for (long i = 0; i < numel; i++) d.setAtIndex(F32, i, DType.bf16ToFloat(s.getAtIndex(U16, i)));
        } else if (dtype == DType.F16 && target == DType.F32) {
            for (long i = 0; i < numel; i++) d.setAtIndex(F32, i, Float.float16ToFloat(s.getAtIndex(U16, i)));
        } else {
            for (long i = 0; i < numel; i++) out.setFloat(i, getFloat(i));
        }
        return out;
    }

    /** True when any element is NaN or infinite (host, floating point). */
    public boolean hasNonFinite() {
        MemorySegment s = hostSegment();
        switch (dtype) {
            case F32 -> {
                for (long i = 0; i < numel; i++) {
                    if ((Float.floatToRawIntBits(s.getAtIndex(F32, i)) & 0x7F800000) == 0x7F800000) return true;
                }
            }
            case BF16 -> {
                for (long i = 0; i < numel; i++) if ((s.getAtIndex(U16, i) & 0x7F80) == 0x7F80) return true;
            }
            case F16 -> {
                for (long i = 0; i < numel; i++) if ((s.getAtIndex(U16, i) & 0x7C00) == 0x7C00) return true;
            }
            case F8_E4M3 -> {
                for (long i = 0; i < numel; i++) if ((s.get(BYTE, i) & 0x7F) == 0x7F) return true;
            }
            case I32, U8 -> { }
        }
        return false;
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + Arrays.toString(shape) + " on " + owner.device() + " in '" + owner.name() + "']";
    }
}
