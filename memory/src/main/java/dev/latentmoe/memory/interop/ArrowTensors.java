package dev.latentmoe.memory.interop;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.ForeignAllocation;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float2Vector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;

/**
 * Zero-copy views between host {@link Tensor}s and Arrow Java vectors.
 *
 * <p>A tensor of shape {@code [d0, d1, ..., dk]} is a {@link FixedSizeListVector} of
 * {@code d0} rows, each a list of {@code d1*...*dk} elements; the vector's field carries the
 * canonical {@code arrow.fixed_shape_tensor} extension type in its IPC encoding, i.e. the field
 * metadata {@code ARROW:extension:name = arrow.fixed_shape_tensor} and
 * {@code ARROW:extension:metadata = {"shape":[d1,...,dk]}} (the per-row shape), so Arrow C++ and
 * pyarrow recognise it after an IPC round trip. Children by dtype:
 * <ul>
 *   <li>F32 → {@link Float4Vector}; I32 → {@link IntVector}; F16 → {@link Float2Vector};</li>
 *   <li>BF16 → {@link FixedSizeBinaryVector} of byte width 2 holding the raw little-endian bf16
 *       bits, whose field carries {@code ARROW:extension:name = latentmoe.bfloat16}
 *       and empty extension metadata (Arrow has no bfloat16 type; readers that do not know the
 *       name see plain 2-byte binary).</li>
 * </ul>
 *
 * <p><b>Lifetimes.</b> Neither direction copies. {@link #toVector} wraps the tensor's memory as a
 * foreign allocation whose release does nothing: the tensor's arena owns the bytes, so the vector
 * must be closed before the arena, and the vector's reads are not access-checked (no closed-arena
 * or thread-confinement checks). {@link #fromVector} returns a tensor over the vector's child
 * buffer, owned (for access checks only) by the given arena; the vector must outlive the tensor.
 *
 * <p><b>Read-only tensors.</b> A tensor over a read-only mapping (e.g. a checkpoint layer's weights)
 * can be viewed, but its vector must only be read: Arrow writes bypass the read-only check and
 * would fault. The wrapped bytes count against {@code allocator}'s limit while the vector lives.
 */
public final class ArrowTensors {
    private ArrowTensors() {}

    /** The Arrow storage type of one element of {@code dtype}. */
    public static ArrowType elementType(DType dtype) {
        return switch (dtype) {
            case F32 -> new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE);
            case F16 -> new ArrowType.FloatingPoint(FloatingPointPrecision.HALF);
            case I32 -> new ArrowType.Int(32, true);
            case BF16 -> new ArrowType.FixedSizeBinary(2);
            case U8 -> new ArrowType.Int(8, false);
            case F8_E4M3 -> throw new IllegalArgumentException("Arrow has no FP8 E4M3 type");
        };
    }

    /** The field describing a tensor of {@code dtype} and full {@code shape} (first axis = rows). */
    public static Field field(String name, DType dtype, long... shape) {
        if (shape.length == 0) throw new IllegalArgumentException("tensor shape must have rank >= 1");
        int listSize = (int) FixedShapeTensor.listSize(shape);
        Field child = new Field("item", new FieldType(false, elementType(dtype), null,
                FixedShapeTensor.elementMetadata(dtype)), null);
        return new Field(name, new FieldType(false, new ArrowType.FixedSizeList(listSize), null,
                FixedShapeTensor.listMetadata(shape)), List.of(child));
    }

    /**
     * A vector viewing {@code tensor}'s memory (host tensor, no copy). Close the vector before the
     * tensor's arena. Only the all-valid validity bitmaps are allocated from {@code allocator}.
     */
    public static FixedSizeListVector toVector(Tensor tensor, String name, BufferAllocator allocator) {
        MemorySegment seg = tensor.segment(); // access check
        if (!tensor.device().isHost()) throw new IllegalArgumentException(tensor + " is not on the host");
        long[] shape = tensor.shape();
        if (shape[0] > Integer.MAX_VALUE || tensor.numel() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(tensor + " has too many elements for Arrow Java vectors");
        }
        int rows = (int) shape[0];
        int elems = (int) tensor.numel();
        Field field = field(name, tensor.dtype(), shape);
        FixedSizeListVector vector = new FixedSizeListVector(field, allocator, null);
        ArrowBuf data = null;
        try {
            vector.initializeChildrenFromFields(field.getChildren());
            FieldVector child = vector.getDataVector();
            data = allocator.wrapForeignAllocation(new ForeignAllocation(seg.byteSize(), seg.address()) {
                @Override
                protected void release0() {
                    // the tensor's arena owns the memory
                }
            });
            vector.loadFieldBuffers(new ArrowFieldNode(rows, 0), List.of(allocator.getEmpty()));
            child.loadFieldBuffers(new ArrowFieldNode(elems, 0), List.of(allocator.getEmpty(), data));
            return vector;
        } catch (RuntimeException | Error e) {
            vector.close();
            throw e;
        } finally {
            if (data != null) data.close(); // the child holds its own reference
        }
    }

    /**
     * A tensor viewing {@code vector}'s child data buffer (no copy), of shape {@code [rows] +}
     * the per-row shape from the field's fixed_shape_tensor metadata ({@code [listSize]} when
     * absent). {@code owner} is the arena whose open/thread checks guard the tensor; the vector
     * must stay open while the tensor is used. Nulls are rejected.
     */
    @SuppressWarnings("restricted")
    public static Tensor fromVector(FixedSizeListVector vector, MemoryArena owner) {
        FieldVector child = vector.getDataVector();
        Field childField = child.getField();
        DType dtype = switch (child) {
            case Float4Vector v -> DType.F32;
            case IntVector v -> DType.I32;
            case Float2Vector v -> DType.F16;
            case FixedSizeBinaryVector v when v.getByteWidth() == 2
                    && FixedShapeTensor.BFLOAT16_EXTENSION_NAME.equals(metadata(childField).get(FixedShapeTensor.EXTENSION_NAME_KEY)) -> DType.BF16;
            default -> throw new IllegalArgumentException("vector '" + vector.getName() + "' has child type "
                    + childField.getType() + " with no tensor dtype (need Float4, Int32, Float2 or "
                    + FixedShapeTensor.BFLOAT16_EXTENSION_NAME + " FixedSizeBinary(2))");
        };
        if (vector.getNullCount() != 0 || child.getNullCount() != 0) {
            throw new IllegalArgumentException("vector '" + vector.getName() + "' has nulls; a tensor cannot hold them");
        }
        int listSize = vector.getListSize();
        long rows = vector.getValueCount();
        long[] rowShape = FixedShapeTensor.rowShape(metadata(vector.getField()), listSize,
                "field '" + vector.getName() + "'");
        long[] shape = new long[rowShape.length + 1];
        shape[0] = rows;
        System.arraycopy(rowShape, 0, shape, 1, rowShape.length);
        long elems = rows * listSize;
        if (child.getValueCount() < elems) {
            throw new IllegalArgumentException("vector '" + vector.getName() + "' child holds " + child.getValueCount()
                    + " values, fewer than " + rows + " x " + listSize);
        }
        long bytes = elems * dtype.byteSize();
        ArrowBuf buf = child.getDataBuffer();
        if (buf.capacity() < bytes) {
            throw new IllegalArgumentException("vector '" + vector.getName() + "' data buffer of " + buf.capacity()
                    + " bytes is smaller than " + bytes);
        }
        MemorySegment seg = bytes == 0 ? MemorySegment.NULL : MemorySegment.ofAddress(buf.memoryAddress()).reinterpret(bytes);
        return Tensor.wrap(owner, seg, dtype, shape);
    }

    /**
     * As {@link #fromVector}, but the tensor holds a reference on the vector's data buffer: its memory
     * stays allocated until the returned tensor's arena ({@code tensor.arena()}, a {@link ForeignArena})
     * is closed, even when the caller closes the vector first, so weights kept in Arrow vectors cannot
     * be freed under a native call. Close the arena when done (it releases the reference once);
     * closing the Arrow allocator before that reports the outstanding buffer as a leak, as Arrow does.
     *
     * @throws IllegalStateException when the buffer was already released
     */
    public static Tensor retain(FixedSizeListVector vector, String name) {
        ArrowBuf buf = vector.getDataVector().getDataBuffer();
        ForeignArena arena = holding(buf, name);
        try {
            return fromVector(vector, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * A host tensor of {@code dtype} and {@code shape} over the first bytes of an Arrow buffer (e.g.
     * weights an engine filled into an {@link ArrowBuf} itself), holding a reference on the buffer as
     * {@link #retain(FixedSizeListVector, String)} does. No copy.
     *
     * @throws IllegalStateException when the buffer was already released
     */
    @SuppressWarnings("restricted")
    public static Tensor retain(ArrowBuf buf, String name, DType dtype, long... shape) {
        long elems = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException(name + ": negative dimension in " + java.util.Arrays.toString(shape));
            elems = Math.multiplyExact(elems, d);
        }
        long bytes = Math.multiplyExact(elems, dtype.byteSize());
        if (buf.capacity() < bytes) {
            throw new IllegalArgumentException(name + ": Arrow buffer of " + buf.capacity() + " bytes is smaller than "
                    + dtype + java.util.Arrays.toString(shape) + " (" + bytes + " bytes)");
        }
        ForeignArena arena = holding(buf, name);
        try {
            MemorySegment seg = bytes == 0 ? MemorySegment.NULL : MemorySegment.ofAddress(buf.memoryAddress()).reinterpret(bytes);
            return Tensor.wrap(arena, seg, dtype, shape);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** A foreign arena holding one reference on {@code buf}, released when the arena closes. */
    private static ForeignArena holding(ArrowBuf buf, String name) {
        if (buf.refCnt() <= 0) {
            throw new IllegalStateException(name + ": the Arrow buffer was already released (closed vector or allocator)");
        }
        buf.getReferenceManager().retain();
        return ForeignArena.of(name, dev.latentmoe.memory.Device.CPU, () -> buf.getReferenceManager().release(), null, null);
    }

    private static Map<String, String> metadata(Field f) {
        Map<String, String> m = f.getMetadata();
        return m == null ? Map.of() : m;
    }
}
