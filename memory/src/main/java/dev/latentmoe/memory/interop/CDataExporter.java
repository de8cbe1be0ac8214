package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.latentmoe.memory.interop.ArrowCData.*;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Our tensors out through the C (Device) Data Interface, zero-copy: the structs are filled in
 * memory we own, registered by id in {@link Native}, and freed by our release callbacks (FFM upcall
 * stubs), which also drop the export's hold on the tensor's arena.
 */
final class CDataExporter {
    private CDataExporter() {}

    private static final MemorySegment SCHEMA_RELEASE = Native.upcall(java.lang.invoke.MethodHandles.lookup(), "releaseSchemaUpcall");
    private static final MemorySegment ARRAY_RELEASE = Native.upcall(java.lang.invoke.MethodHandles.lookup(), "releaseArrayUpcall");

    /** See {@link ArrowCData#exportSchema}. */
    static void exportSchema(DType dtype, long[] shape, String name, MemorySegment out) {
        if (dtype == null) throw new InteropException("dtype is null");
        if (shape == null || shape.length == 0) throw new InteropException("tensor shape must have rank >= 1");
        for (long d : shape) if (d < 0) throw new InteropException("negative dimension in " + Arrays.toString(shape));
        long listSize = FixedShapeTensor.listSize(shape);
        MemorySegment s = checkOut(out, ARROW_SCHEMA, "schema");
        Map<String, String> meta = FixedShapeTensor.listMetadata(shape);
        Map<String, String> childMeta = FixedShapeTensor.elementMetadata(dtype);
        Arena parentMem = Arena.ofShared();
        Arena childMem = Arena.ofShared();
        try {
            MemorySegment child = parentMem.allocate(ARROW_SCHEMA);
            fillSchema(child, childMem, CDataFormat.elementFormat(dtype), "item", childMeta, 0, MemorySegment.NULL,
                    Native.register(new Native.Node(childMem, null, List.of())));
            MemorySegment children = parentMem.allocate(ADDRESS);
            children.set(ADDRESS, 0, child);
            long id = Native.register(new Native.Node(parentMem, null, List.of(child)));
            fillSchema(s, parentMem, "+w:" + listSize, name == null ? "" : name, meta, 1, children, id);
        } catch (RuntimeException | Error e) {
            childMem.close();
            parentMem.close();
            throw e;
        }
    }

    private static void fillSchema(MemorySegment s, Arena mem, String format, String name, Map<String, String> meta,
                                   long nChildren, MemorySegment children, long id) {
        s.set(ADDRESS, S_FORMAT, Native.cString(mem, format));
        s.set(ADDRESS, S_NAME, Native.cString(mem, name));
        s.set(ADDRESS, S_METADATA, meta == null ? MemorySegment.NULL : CDataFormat.encodeMetadata(mem, meta));
        s.set(JAVA_LONG, S_FLAGS, 0L);
        s.set(JAVA_LONG, S_N_CHILDREN, nChildren);
        s.set(ADDRESS, S_CHILDREN, children);
        s.set(ADDRESS, S_DICTIONARY, MemorySegment.NULL);
        s.set(ADDRESS, S_PRIVATE, MemorySegment.ofAddress(id));
        s.set(ADDRESS, S_RELEASE, SCHEMA_RELEASE);
    }

    /** See {@link ArrowCData#exportTensor}. */
    static void exportTensor(Tensor tensor, String name, MemorySegment outSchema, MemorySegment outArray) {
        if (tensor == null) throw new InteropException("tensor is null");
        if (!tensor.device().isHost()) {
            throw new InteropException(tensor + " is not in host memory; use exportDeviceTensor (C Device Data Interface)");
        }
        MemorySegment array = checkOut(outArray, ARROW_ARRAY, "array");
        exportSchema(tensor.dtype(), tensor.shape(), name, outSchema);
        try {
            writeArray(tensor, array);
        } catch (RuntimeException | Error e) {
            ArrowCData.releaseSchema(outSchema);
            throw e;
        }
    }

    /** See {@link ArrowCData#exportDeviceTensor}. */
    static void exportDeviceTensor(Tensor tensor, String name, MemorySegment outSchema, MemorySegment outDeviceArray,
                                          MemorySegment syncEvent) {
        if (tensor == null) throw new InteropException("tensor is null");
        MemorySegment d = checkOut(outDeviceArray, ARROW_DEVICE_ARRAY, "device array");
        Device dev = tensor.device();
        int type;
        long id;
        if (dev.isHost()) {
            boolean pinned = tensor.arena().kind() == MemoryArena.Kind.PINNED;
            type = pinned ? ARROW_DEVICE_CUDA_HOST : ARROW_DEVICE_CPU;
            id = pinned ? 0 : -1;
        } else {
            type = ARROW_DEVICE_CUDA;
            id = dev.id();
        }
        exportSchema(tensor.dtype(), tensor.shape(), name, outSchema);
        try {
            writeArray(tensor, d.asSlice(0, ARROW_ARRAY.byteSize()));
        } catch (RuntimeException | Error e) {
            ArrowCData.releaseSchema(outSchema);
            throw e;
        }
        d.set(JAVA_LONG, D_DEVICE_ID, id);
        d.set(JAVA_INT, D_DEVICE_TYPE, type);
        d.set(JAVA_INT, D_DEVICE_TYPE + 4, 0);
        d.set(ADDRESS, D_SYNC_EVENT, syncEvent == null ? MemorySegment.NULL : syncEvent);
        for (int i = 0; i < 3; i++) d.set(JAVA_LONG, D_RESERVED + 8L * i, 0L);
    }

    private static void writeArray(Tensor tensor, MemorySegment out) {
        MemorySegment data = tensor.segment(); // access check
        long[] shape = tensor.shape();
        long rows = shape[0];
        long listSize = FixedShapeTensor.listSize(shape);
        MemoryArena owner = tensor.arena();
        owner.retain();
        Arena parentMem = Arena.ofShared();
        Arena childMem = Arena.ofShared();
        long childId = 0;
        long id = 0;
        try {
            MemorySegment childBuffers = childMem.allocate(ADDRESS, 2);
            childBuffers.setAtIndex(ADDRESS, 0, MemorySegment.NULL);
            childBuffers.setAtIndex(ADDRESS, 1, MemorySegment.ofAddress(data.address()));
            MemorySegment child = parentMem.allocate(ARROW_ARRAY);
            childId = Native.register(new Native.Node(childMem, owner, List.of()));
            fillArray(child, Math.multiplyExact(rows, listSize), 2, childBuffers, 0, MemorySegment.NULL, childId);
            MemorySegment buffers = parentMem.allocate(ADDRESS);
            buffers.set(ADDRESS, 0, MemorySegment.NULL);
            MemorySegment children = parentMem.allocate(ADDRESS);
            children.set(ADDRESS, 0, child);
            id = Native.register(new Native.Node(parentMem, null, List.of(child)));
            fillArray(out, rows, 1, buffers, 1, children, id);
        } catch (RuntimeException | Error e) {
            if (childId != 0) Native.take(childId);
            if (id != 0) Native.take(id);
            childMem.close();
            parentMem.close();
            owner.release();
            throw e;
        }
    }

    private static void fillArray(MemorySegment a, long length, long nBuffers, MemorySegment buffers, long nChildren,
                                  MemorySegment children, long id) {
        a.set(JAVA_LONG, A_LENGTH, length);
        a.set(JAVA_LONG, A_NULL_COUNT, 0L);
        a.set(JAVA_LONG, A_OFFSET, 0L);
        a.set(JAVA_LONG, A_N_BUFFERS, nBuffers);
        a.set(JAVA_LONG, A_N_CHILDREN, nChildren);
        a.set(ADDRESS, A_BUFFERS, buffers);
        a.set(ADDRESS, A_CHILDREN, children);
        a.set(ADDRESS, A_DICTIONARY, MemorySegment.NULL);
        a.set(ADDRESS, A_PRIVATE, MemorySegment.ofAddress(id));
        a.set(ADDRESS, A_RELEASE, ARRAY_RELEASE);
    }

    private static MemorySegment checkOut(MemorySegment out, StructLayout layout, String what) {
        if (out == null || out.equals(MemorySegment.NULL)) throw new InteropException("output " + what + " pointer is NULL");
        return out.byteSize() >= layout.byteSize() ? out.asSlice(0, layout.byteSize()) : Native.at(out, layout.byteSize());
    }

    // release callbacks of our exports (upcalls: must never throw)

    @SuppressWarnings("unused") // upcall target
    private static void releaseSchemaUpcall(MemorySegment schema) {
        try {
            releaseOurSchema(Native.at(schema, ARROW_SCHEMA.byteSize()));
        } catch (Throwable t) {
            Native.reportUpcallFailure("ArrowSchema.release", t);
        }
    }

    private static void releaseOurSchema(MemorySegment s) {
        if (s.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) return;
        Native.Node n = Native.take(s.get(ADDRESS, S_PRIVATE).address());
        if (n != null) {
            for (MemorySegment c : n.children) {
                if (!c.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) releaseOurSchema(c);
            }
        }
        s.set(ADDRESS, S_RELEASE, MemorySegment.NULL);
        if (n != null) n.free();
    }

    @SuppressWarnings("unused") // upcall target
    private static void releaseArrayUpcall(MemorySegment array) {
        try {
            releaseOurArray(Native.at(array, ARROW_ARRAY.byteSize()));
        } catch (Throwable t) {
            Native.reportUpcallFailure("ArrowArray.release", t);
        }
    }

    private static void releaseOurArray(MemorySegment a) {
        if (a.get(ADDRESS, A_RELEASE).equals(MemorySegment.NULL)) return;
        Native.Node n = Native.take(a.get(ADDRESS, A_PRIVATE).address());
        if (n != null) {
            for (MemorySegment c : n.children) {
                if (!c.get(ADDRESS, A_RELEASE).equals(MemorySegment.NULL)) releaseOurArray(c);
            }
        }
        a.set(ADDRESS, A_RELEASE, MemorySegment.NULL);
        if (n != null) n.free();
    }
}
