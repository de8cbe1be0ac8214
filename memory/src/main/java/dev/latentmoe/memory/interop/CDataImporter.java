package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.latentmoe.memory.interop.ArrowCData.*;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Foreign arrays in through the C (Device) Data Interface, as tensors over the producer's memory:
 * the array is moved into our memory at once, read with bounds (no read or allocation
 * proportional to a declared size), and released exactly once, when the tensor's
 * {@link ForeignArena} closes or the import fails.
 */
final class CDataImporter {
    private CDataImporter() {}

    /** See {@link ArrowCData#importTensor}. */
    static Tensor importTensor(MemorySegment schema, MemorySegment array) {
        if (array == null || array.equals(MemorySegment.NULL)) {
            releaseQuietly(schema);
            throw new InteropException("ArrowArray pointer is NULL");
        }
        return doImport(schema, Native.at(array, ARROW_ARRAY.byteSize()), Device.CPU, MemorySegment.NULL, "arrow-import");
    }

    /** See {@link ArrowCData#importDeviceTensor}. */
    static Tensor importDeviceTensor(MemorySegment schema, MemorySegment deviceArray) {
        if (deviceArray == null || deviceArray.equals(MemorySegment.NULL)) {
            releaseQuietly(schema);
            throw new InteropException("ArrowDeviceArray pointer is NULL");
        }
        MemorySegment d = Native.at(deviceArray, ARROW_DEVICE_ARRAY.byteSize());
        MemorySegment array = d.asSlice(0, ARROW_ARRAY.byteSize());
        long deviceId = d.get(JAVA_LONG, D_DEVICE_ID);
        int type = d.get(JAVA_INT, D_DEVICE_TYPE);
        MemorySegment sync = d.get(ADDRESS, D_SYNC_EVENT);
        Device device;
        try {
            device = switch (type) {
                case ARROW_DEVICE_CPU, ARROW_DEVICE_CUDA_HOST -> Device.CPU;
                case ARROW_DEVICE_CUDA -> {
                    if (deviceId < 0 || deviceId > Integer.MAX_VALUE) {
                        throw new InteropException("ArrowDeviceArray: CUDA device_id " + deviceId + " out of range");
                    }
                    yield Device.cuda((int) deviceId);
                }
                default -> throw new InteropException("ArrowDeviceArray: unsupported device_type " + type
                        + " (supported: 1 CPU, 2 CUDA, 3 CUDA_HOST)");
            };
        } catch (InteropException e) {
            releaseQuietly(schema);
            try {
                ArrowCData.releaseArray(array);
            } catch (RuntimeException ignored) {
                // the error we raise is the import's
            }
            throw e;
        }
        return doImport(schema, array, device, sync, "arrow-device-import");
    }

    private static void releaseQuietly(MemorySegment schema) {
        if (schema == null || schema.equals(MemorySegment.NULL)) return;
        ArrowCData.releaseSchema(schema);
    }

    private static Tensor doImport(MemorySegment schemaPtr, MemorySegment source, Device device, MemorySegment sync, String name) {
        // move the array into our memory first: from here on its release is ours to call, once
        Arena structs = Arena.ofShared();
        MemorySegment array = structs.allocate(ARROW_ARRAY);
        boolean ownArray = !source.get(ADDRESS, A_RELEASE).equals(MemorySegment.NULL);
        if (ownArray) {
            array.copyFrom(source);
            source.set(ADDRESS, A_RELEASE, MemorySegment.NULL);
        }
        try {
            CDataFormat.TensorType type;
            try {
                if (schemaPtr == null || schemaPtr.equals(MemorySegment.NULL)) throw new InteropException("ArrowSchema pointer is NULL");
                MemorySegment schema = Native.at(schemaPtr, ARROW_SCHEMA.byteSize());
                if (schema.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) throw new InteropException("ArrowSchema is released");
                try {
                    type = CDataFormat.tensorType(readSchema(schema, 0));
                } finally {
                    ArrowCData.releaseSchema(schema);
                }
            } catch (ArithmeticException | IndexOutOfBoundsException e) {
                throw new InteropException("ArrowSchema: " + e.getMessage(), e);
            }
            if (!ownArray) throw new InteropException("ArrowArray is released");
            Runnable release = () -> ArrowCData.releaseArray(array);
            Located loc;
            try {
                loc = locate(array, type, device.isHost());
            } catch (ArithmeticException | IndexOutOfBoundsException e) {
                throw new InteropException("ArrowArray: " + e.getMessage(), e);
            }
            ForeignArena arena = ForeignArena.of(name, device, release, structs, sync);
            try {
                MemorySegment seg = loc.bytes() == 0 ? MemorySegment.NULL : Native.at(loc.address(), loc.bytes());
                return Tensor.wrap(arena, seg, type.dtype(), loc.shape());
            } catch (RuntimeException | Error e) {
                arena.close();
                throw e;
            }
        } catch (RuntimeException | Error e) {
            if (structs.scope().isAlive()) {
                try {
                    if (ownArray) ArrowCData.releaseArray(array);
                } finally {
                    structs.close();
                }
            }
            throw e;
        }
    }

    /** Reads a schema node and (depth 0 only) its children, with every count and string bounded. */
    static CDataFormat.SchemaInfo readSchema(MemorySegment s, int depth) {
        String where = depth == 0 ? "ArrowSchema" : "ArrowSchema child";
        String format = Native.cString(s.get(ADDRESS, S_FORMAT), MAX_STRING_BYTES, where + ".format");
        if (format == null) throw new InteropException(where + ".format is NULL");
        String name = Native.cString(s.get(ADDRESS, S_NAME), MAX_STRING_BYTES, where + ".name");
        MemorySegment metaPtr = s.get(ADDRESS, S_METADATA);
        Map<String, String> meta = metaPtr.equals(MemorySegment.NULL) ? Map.of()
                : CDataFormat.decodeMetadata(Native.at(metaPtr, MAX_METADATA_BYTES), where + ".metadata");
        long flags = s.get(JAVA_LONG, S_FLAGS);
        long n = s.get(JAVA_LONG, S_N_CHILDREN);
        if (!s.get(ADDRESS, S_DICTIONARY).equals(MemorySegment.NULL)) {
            throw new InteropException(where + " '" + format + "' is dictionary-encoded; a tensor cannot be");
        }
        if (n < 0) throw new InteropException(where + ".n_children is negative (" + n + ")");
        int maxChildren = depth == 0 ? 1 : 0;
        if (n > maxChildren) {
            throw new InteropException(where + " '" + format + "' has " + n + " children; a tensor has "
                    + (depth == 0 ? "at most 1 (the list's values)" : "none below the list's values"));
        }
        List<CDataFormat.SchemaInfo> children = new ArrayList<>();
        if (n == 1) {
            MemorySegment ptrs = s.get(ADDRESS, S_CHILDREN);
            if (ptrs.equals(MemorySegment.NULL)) throw new InteropException(where + ".children is NULL with n_children 1");
            MemorySegment c = Native.at(ptrs, ADDRESS.byteSize()).get(ADDRESS, 0);
            if (c.equals(MemorySegment.NULL)) throw new InteropException(where + ".children[0] is NULL");
            MemorySegment child = Native.at(c, ARROW_SCHEMA.byteSize());
            if (child.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) throw new InteropException(where + ".children[0] is released");
            children.add(readSchema(child, depth + 1));
        }
        return new CDataFormat.SchemaInfo(format, name, meta, flags, children);
    }

    private record Located(long address, long bytes, long[] shape) {}

    /** Validates an array against its type and finds the tensor's bytes. */
    private static Located locate(MemorySegment a, CDataFormat.TensorType type, boolean hostReadable) {
        long elemSize = type.dtype().byteSize();
        long length = a.get(JAVA_LONG, A_LENGTH);
        long offset = a.get(JAVA_LONG, A_OFFSET);
        String where = "ArrowArray";
        checkCounts(a, where, type.list() ? 1 : 2, type.list() ? 1 : 0);
        if (length < 0) throw new InteropException(where + ".length is negative (" + length + ")");
        if (offset < 0) throw new InteropException(where + ".offset is negative (" + offset + ")");
        checkNoNulls(a, where, offset, length, hostReadable);
        long rows = length;
        MemorySegment values = a;
        long elemOffset = offset;
        long elements = length;
        long needed = Math.addExact(offset, length);
        if (type.list()) {
            MemorySegment c = Native.at(a.get(ADDRESS, A_CHILDREN), ADDRESS.byteSize()).get(ADDRESS, 0);
            if (c.equals(MemorySegment.NULL)) throw new InteropException(where + ".children[0] is NULL");
            values = Native.at(c, ARROW_ARRAY.byteSize());
            where = "ArrowArray child";
            if (values.get(ADDRESS, A_RELEASE).equals(MemorySegment.NULL)) throw new InteropException(where + " is released");
            checkCounts(values, where, 2, 0);
            long cLength = values.get(JAVA_LONG, A_LENGTH);
            long cOffset = values.get(JAVA_LONG, A_OFFSET);
            if (cLength < 0) throw new InteropException(where + ".length is negative (" + cLength + ")");
            if (cOffset < 0) throw new InteropException(where + ".offset is negative (" + cOffset + ")");
            elements = Math.multiplyExact(length, type.listSize());
            needed = Math.multiplyExact(Math.addExact(offset, length), type.listSize());
            if (cLength < needed) {
                throw new InteropException(where + ".length " + cLength + " is less than (offset + length) x list size = " + needed);
            }
            elemOffset = Math.addExact(cOffset, Math.multiplyExact(offset, type.listSize()));
            checkNoNulls(values, where, elemOffset, elements, hostReadable);
        }
        MemorySegment bufs = Native.at(values.get(ADDRESS, A_BUFFERS), 2 * ADDRESS.byteSize());
        long data = bufs.getAtIndex(ADDRESS, 1).address();
        long bytes = Math.multiplyExact(elements, elemSize);
        long address = 0;
        if (bytes > 0) {
            if (data == 0) throw new InteropException(where + ".buffers[1] (data) is NULL for " + elements + " elements");
            address = Math.addExact(data, Math.multiplyExact(elemOffset, elemSize));
            Math.addExact(address, bytes);
            if (address % elemSize != 0) {
                throw new InteropException(where + ": data at 0x" + Long.toHexString(address) + " is not aligned to its "
                        + elemSize + "-byte elements");
            }
        }
        long[] shape = new long[1 + type.rowShape().length];
        shape[0] = rows;
        System.arraycopy(type.rowShape(), 0, shape, 1, type.rowShape().length);
        return new Located(address, bytes, shape);
    }

    private static void checkCounts(MemorySegment a, String where, long nBuffers, long nChildren) {
        long nb = a.get(JAVA_LONG, A_N_BUFFERS);
        long nc = a.get(JAVA_LONG, A_N_CHILDREN);
        if (nb != nBuffers) throw new InteropException(where + ".n_buffers is " + nb + ", expected " + nBuffers);
        if (nc != nChildren) throw new InteropException(where + ".n_children is " + nc + ", expected " + nChildren);
        if (a.get(ADDRESS, A_BUFFERS).equals(MemorySegment.NULL)) throw new InteropException(where + ".buffers is NULL");
        if (nChildren > 0 && a.get(ADDRESS, A_CHILDREN).equals(MemorySegment.NULL)) throw new InteropException(where + ".children is NULL");
        if (!a.get(ADDRESS, A_DICTIONARY).equals(MemorySegment.NULL)) throw new InteropException(where + " has a dictionary");
    }

    /**
     * Rejects nulls in [offset, offset + length), the elements the tensor uses. The validity bits of
     * that range decide, not null_count: a slice's child counts the nulls of the whole child, also
     * those outside the slice (pyarrow: a fixed-size list with a null row, sliced past it).
     */
    private static void checkNoNulls(MemorySegment a, String where, long offset, long length, boolean hostReadable) {
        long nullCount = a.get(JAVA_LONG, A_NULL_COUNT);
        if (nullCount == 0) return;
        if (nullCount < -1) throw new InteropException(where + ".null_count is " + nullCount);
        MemorySegment validity = Native.at(a.get(ADDRESS, A_BUFFERS), ADDRESS.byteSize()).get(ADDRESS, 0);
        if (validity.equals(MemorySegment.NULL)) {
            if (nullCount > 0) throw new InteropException(where + ".null_count is " + nullCount + " without a validity bitmap");
            return;
        }
        if (!hostReadable) {
            throw new InteropException(where + ": null_count " + (nullCount < 0 ? "unknown (-1)" : "is " + nullCount)
                    + " and the validity bitmap is in device memory, so the elements used cannot be checked for nulls");
        }
        long end = Math.addExact(offset, length);
        MemorySegment bits = Native.at(validity, (end + 7) / 8);
        for (long i = offset; i < end; ) {
            if ((i & 7) == 0 && end - i >= 8 && bits.get(ValueLayout.JAVA_BYTE, i >>> 3) == (byte) 0xFF) {
                i += 8;   // eight valid elements at once
                continue;
            }
            if ((bits.get(ValueLayout.JAVA_BYTE, i >>> 3) & (1 << (i & 7))) == 0) {
                throw new InteropException(where + " has a null at index " + (i - offset) + "; a tensor cannot hold nulls");
            }
            i++;
        }
    }
}
