package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.ArrowTensors;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Json;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The <a href="https://arrow.apache.org/docs/format/CDataInterface.html">Arrow C Data Interface</a>
 * ({@code ArrowSchema}, {@code ArrowArray}) and the
 * <a href="https://arrow.apache.org/docs/format/CDeviceDataInterface.html">C Device Data
 * Interface</a> ({@code ArrowDeviceArray}) as FFM layouts, with zero-copy export and import of
 * {@link Tensor}s. No Arrow Java (JNI) code is involved.
 *
 * <p><b>Type.</b> A tensor {@code [d0, d1, ..., dk]} is a fixed-size list array
 * ({@code "+w:<d1*...*dk>"}) of {@code d0} rows whose field metadata carries the canonical
 * {@code arrow.fixed_shape_tensor} extension ({@code ARROW:extension:name} and
 * {@code ARROW:extension:metadata = {"shape":[d1,...,dk]}}, encoded in the C Data binary metadata
 * format), the same field {@link ArrowTensors#field} describes. Its one child {@code "item"} has
 * format {@code "f"} (F32), {@code "i"} (I32), {@code "e"} (F16) or, for BF16, fixed-size binary
 * {@code "w:2"} with {@code ARROW:extension:name = latentmoe.bfloat16}. No nulls, no validity
 * bitmaps, offset 0. Import also accepts a plain primitive array of one of those formats (a
 * rank-1 tensor) and a fixed-size list without the extension (shape {@code [rows, listSize]}).
 *
 * <p><b>Lifetimes.</b> Export takes a hold ({@link MemoryArena#retain()}) on the tensor's arena
 * that the consumer's call of the array's {@code release} callback (an FFM upcall stub) drops; see
 * {@link MemoryArena} for what closing an arena with outstanding exports does. Children carry
 * their own release callbacks, so a consumer may move a child out and release it separately. The
 * schema holds no tensor memory. Import takes ownership of both structs: the array is moved into
 * our memory (the caller's struct is marked released) and its release callback runs exactly once,
 * when the returned tensor's {@link ForeignArena} is closed, or at once when the import fails; the
 * schema is read and released before the import returns. Structs are read with bounds: strings up
 * to {@value #MAX_STRING_BYTES} bytes, metadata up to {@value #MAX_METADATA_BYTES} bytes, no
 * allocation proportional to a declared size. Malformed input raises {@link InteropException}.
 */
public final class ArrowCData {
    private ArrowCData() {}

    /** {@code struct ArrowSchema} (72 bytes). */
    public static final StructLayout ARROW_SCHEMA = MemoryLayout.structLayout(
            ADDRESS.withName("format"),
            ADDRESS.withName("name"),
            ADDRESS.withName("metadata"),
            JAVA_LONG.withName("flags"),
            JAVA_LONG.withName("n_children"),
            ADDRESS.withName("children"),
            ADDRESS.withName("dictionary"),
            ADDRESS.withName("release"),
            ADDRESS.withName("private_data")).withName("ArrowSchema");

    /** {@code struct ArrowArray} (80 bytes). */
    public static final StructLayout ARROW_ARRAY = MemoryLayout.structLayout(
            JAVA_LONG.withName("length"),
            JAVA_LONG.withName("null_count"),
            JAVA_LONG.withName("offset"),
            JAVA_LONG.withName("n_buffers"),
            JAVA_LONG.withName("n_children"),
            ADDRESS.withName("buffers"),
            ADDRESS.withName("children"),
            ADDRESS.withName("dictionary"),
            ADDRESS.withName("release"),
            ADDRESS.withName("private_data")).withName("ArrowArray");

    /** {@code struct ArrowDeviceArray} (128 bytes). */
    public static final StructLayout ARROW_DEVICE_ARRAY = MemoryLayout.structLayout(
            ARROW_ARRAY.withName("array"),
            JAVA_LONG.withName("device_id"),
            JAVA_INT.withName("device_type"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("sync_event"),
            MemoryLayout.sequenceLayout(3, JAVA_LONG).withName("reserved")).withName("ArrowDeviceArray");

    /** {@code ArrowDeviceType} values (the DLPack device types). */
    public static final int ARROW_DEVICE_CPU = 1;
    public static final int ARROW_DEVICE_CUDA = 2;
    public static final int ARROW_DEVICE_CUDA_HOST = 3;
    public static final int ARROW_DEVICE_OPENCL = 4;
    public static final int ARROW_DEVICE_VULKAN = 7;
    public static final int ARROW_DEVICE_METAL = 8;
    public static final int ARROW_DEVICE_VPI = 9;
    public static final int ARROW_DEVICE_ROCM = 10;
    public static final int ARROW_DEVICE_ROCM_HOST = 11;
    public static final int ARROW_DEVICE_EXT_DEV = 12;
    public static final int ARROW_DEVICE_CUDA_MANAGED = 13;
    public static final int ARROW_DEVICE_ONEAPI = 14;
    public static final int ARROW_DEVICE_WEBGPU = 15;
    public static final int ARROW_DEVICE_HEXAGON = 16;

    /** {@code ArrowSchema.flags} bits. */
    public static final long ARROW_FLAG_DICTIONARY_ORDERED = 1;
    public static final long ARROW_FLAG_NULLABLE = 2;
    public static final long ARROW_FLAG_MAP_KEYS_SORTED = 4;

    public static final int MAX_STRING_BYTES = 4096;
    public static final int MAX_METADATA_BYTES = 1 << 20;
    /** Most key/value pairs accepted in one metadata blob. */
    public static final int MAX_METADATA_PAIRS = 1024;

    // field offsets
    static final long S_FORMAT = off(ARROW_SCHEMA, "format");
    static final long S_NAME = off(ARROW_SCHEMA, "name");
    static final long S_METADATA = off(ARROW_SCHEMA, "metadata");
    static final long S_FLAGS = off(ARROW_SCHEMA, "flags");
    static final long S_N_CHILDREN = off(ARROW_SCHEMA, "n_children");
    static final long S_CHILDREN = off(ARROW_SCHEMA, "children");
    static final long S_DICTIONARY = off(ARROW_SCHEMA, "dictionary");
    static final long S_RELEASE = off(ARROW_SCHEMA, "release");
    static final long S_PRIVATE = off(ARROW_SCHEMA, "private_data");
    static final long A_LENGTH = off(ARROW_ARRAY, "length");
    static final long A_NULL_COUNT = off(ARROW_ARRAY, "null_count");
    static final long A_OFFSET = off(ARROW_ARRAY, "offset");
    static final long A_N_BUFFERS = off(ARROW_ARRAY, "n_buffers");
    static final long A_N_CHILDREN = off(ARROW_ARRAY, "n_children");
    static final long A_BUFFERS = off(ARROW_ARRAY, "buffers");
    static final long A_CHILDREN = off(ARROW_ARRAY, "children");
    static final long A_DICTIONARY = off(ARROW_ARRAY, "dictionary");
    static final long A_RELEASE = off(ARROW_ARRAY, "release");
    static final long A_PRIVATE = off(ARROW_ARRAY, "private_data");
    static final long D_DEVICE_ID = off(ARROW_DEVICE_ARRAY, "device_id");
    static final long D_DEVICE_TYPE = off(ARROW_DEVICE_ARRAY, "device_type");
    static final long D_SYNC_EVENT = off(ARROW_DEVICE_ARRAY, "sync_event");
    static final long D_RESERVED = off(ARROW_DEVICE_ARRAY, "reserved");

    private static long off(StructLayout l, String f) { return l.byteOffset(groupElement(f)); }

    private static final MemorySegment SCHEMA_RELEASE = Native.upcall(java.lang.invoke.MethodHandles.lookup(), "releaseSchemaUpcall");
    private static final MemorySegment ARRAY_RELEASE = Native.upcall(java.lang.invoke.MethodHandles.lookup(), "releaseArrayUpcall");

    // ------------------------------------------------------------------------------------------
    // export

    /** The C Data format string of one element of {@code dtype}. */
    public static String elementFormat(DType dtype) {
        return switch (dtype) {
            case F32 -> "f";
            case I32 -> "i";
            case F16 -> "e";
            case BF16 -> "w:2";
        };
    }

    /**
     * Writes the schema of a {@code dtype} tensor of {@code shape} (first axis = rows) into the
     * caller's {@code out} ({@link #ARROW_SCHEMA}-sized). The consumer must call its release.
     */
    public static void exportSchema(DType dtype, long[] shape, String name, MemorySegment out) {
        if (dtype == null) throw new InteropException("dtype is null");
        if (shape == null || shape.length == 0) throw new InteropException("tensor shape must have rank >= 1");
        for (long d : shape) if (d < 0) throw new InteropException("negative dimension in " + Arrays.toString(shape));
        long listSize = listSize(shape);
        MemorySegment s = checkOut(out, ARROW_SCHEMA, "schema");
        long[] row = Arrays.copyOfRange(shape, 1, shape.length);
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(ArrowTensors.EXTENSION_NAME_KEY, ArrowTensors.FIXED_SHAPE_TENSOR);
        meta.put(ArrowTensors.EXTENSION_METADATA_KEY, Json.write(Map.of("shape", row)));
        Map<String, String> childMeta = null;
        if (dtype == DType.BF16) {
            childMeta = new LinkedHashMap<>();
            childMeta.put(ArrowTensors.EXTENSION_NAME_KEY, ArrowTensors.BFLOAT16_EXTENSION_NAME);
            childMeta.put(ArrowTensors.EXTENSION_METADATA_KEY, "");
        }
        Arena parentMem = Arena.ofShared();
        Arena childMem = Arena.ofShared();
        try {
            MemorySegment child = parentMem.allocate(ARROW_SCHEMA);
            fillSchema(child, childMem, elementFormat(dtype), "item", childMeta, 0, MemorySegment.NULL,
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
        s.set(ADDRESS, S_METADATA, meta == null ? MemorySegment.NULL : encodeMetadata(mem, meta));
        s.set(JAVA_LONG, S_FLAGS, 0L);
        s.set(JAVA_LONG, S_N_CHILDREN, nChildren);
        s.set(ADDRESS, S_CHILDREN, children);
        s.set(ADDRESS, S_DICTIONARY, MemorySegment.NULL);
        s.set(ADDRESS, S_PRIVATE, MemorySegment.ofAddress(id));
        s.set(ADDRESS, S_RELEASE, SCHEMA_RELEASE);
    }

    /**
     * Exports a host tensor: its schema into {@code outSchema} and its data, zero-copy, into
     * {@code outArray} (caller-owned, {@link #ARROW_SCHEMA}/{@link #ARROW_ARRAY}-sized). The
     * consumer must call both release callbacks; the array's drops the hold on the tensor's arena.
     */
    public static void exportTensor(Tensor tensor, String name, MemorySegment outSchema, MemorySegment outArray) {
        if (tensor == null) throw new InteropException("tensor is null");
        if (!tensor.device().isHost()) {
            throw new InteropException(tensor + " is not in host memory; use exportDeviceTensor (C Device Data Interface)");
        }
        MemorySegment array = checkOut(outArray, ARROW_ARRAY, "array");
        exportSchema(tensor.dtype(), tensor.shape(), name, outSchema);
        try {
            writeArray(tensor, array);
        } catch (RuntimeException | Error e) {
            releaseSchema(outSchema);
            throw e;
        }
    }

    /**
     * Exports a tensor on any device through the C Device Data Interface: the schema into
     * {@code outSchema}, an {@link #ARROW_DEVICE_ARRAY} into {@code outDeviceArray} with
     * {@code device_type} {@link #ARROW_DEVICE_CPU} (device_id -1), {@link #ARROW_DEVICE_CUDA_HOST}
     * for pinned host memory (device_id 0) or {@link #ARROW_DEVICE_CUDA} (the CUDA device id), and
     * {@code sync_event} (a pointer to a {@code cudaEvent_t} the consumer waits on before reading,
     * or NULL when the data is ready). The event must stay valid until the array is released.
     */
    public static void exportDeviceTensor(Tensor tensor, String name, MemorySegment outSchema, MemorySegment outDeviceArray,
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
            releaseSchema(outSchema);
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
        long listSize = listSize(shape);
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

    private static long listSize(long[] shape) {
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

    private static MemorySegment checkOut(MemorySegment out, StructLayout layout, String what) {
        if (out == null || out.equals(MemorySegment.NULL)) throw new InteropException("output " + what + " pointer is NULL");
        return out.byteSize() >= layout.byteSize() ? out.asSlice(0, layout.byteSize()) : Native.at(out, layout.byteSize());
    }

    /** The C Data binary metadata encoding: int32 n, then n × (int32 len, key, int32 len, value), native order. */
    static MemorySegment encodeMetadata(Arena mem, Map<String, String> meta) {
        List<byte[]> parts = new ArrayList<>();
        long size = 4;
        for (Map.Entry<String, String> e : meta.entrySet()) {
            byte[] k = e.getKey().getBytes(StandardCharsets.UTF_8);
            byte[] v = e.getValue().getBytes(StandardCharsets.UTF_8);
            parts.add(k);
            parts.add(v);
            size += 8L + k.length + v.length;
        }
        MemorySegment m = mem.allocate(size, 8);
        m.set(JAVA_INT, 0, meta.size());
        long p = 4;
        for (byte[] b : parts) {
            m.set(ValueLayout.JAVA_INT_UNALIGNED, p, b.length);
            MemorySegment.copy(b, 0, m, ValueLayout.JAVA_BYTE, p + 4, b.length);
            p += 4 + b.length;
        }
        return m;
    }

    // ------------------------------------------------------------------------------------------
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

    /** Calls a schema's release callback when it is not released yet (whoever produced it). */
    public static void releaseSchema(MemorySegment schema) {
        MemorySegment s = Native.at(schema, ARROW_SCHEMA.byteSize());
        MemorySegment fn = s.get(ADDRESS, S_RELEASE);
        if (!fn.equals(MemorySegment.NULL)) Native.callVoidPtr(fn, s);
    }

    /** Calls an array's release callback when it is not released yet (whoever produced it). */
    public static void releaseArray(MemorySegment array) {
        MemorySegment a = Native.at(array, ARROW_ARRAY.byteSize());
        MemorySegment fn = a.get(ADDRESS, A_RELEASE);
        if (!fn.equals(MemorySegment.NULL)) Native.callVoidPtr(fn, a);
    }

    /** Struct nodes of our exports (schemas, arrays, DLPack tensors) whose consumer has not released them. */
    public static int liveExports() { return Native.liveExports(); }

    // ------------------------------------------------------------------------------------------
    // import

    /** A parsed schema node. */
    record SchemaInfo(String format, String name, Map<String, String> metadata, long flags, List<SchemaInfo> children) {}

    /** What the schema says the tensor is. */
    record TensorType(DType dtype, boolean list, long listSize, long[] rowShape) {}

    /**
     * Imports a host array (C Data Interface) as a tensor viewing the producer's memory (no copy),
     * owned by a new {@link ForeignArena}: closing it calls the array's release exactly once.
     * Ownership of both structs passes to this call (see the class comment), also when it throws.
     *
     * @throws InteropException when the structs are malformed or not a supported tensor
     */
    public static Tensor importTensor(MemorySegment schema, MemorySegment array) {
        if (array == null || array.equals(MemorySegment.NULL)) {
            releaseQuietly(schema);
            throw new InteropException("ArrowArray pointer is NULL");
        }
        return doImport(schema, Native.at(array, ARROW_ARRAY.byteSize()), Device.CPU, MemorySegment.NULL, "arrow-import");
    }

    /**
     * Imports an {@code ArrowDeviceArray}: {@link #ARROW_DEVICE_CPU} and
     * {@link #ARROW_DEVICE_CUDA_HOST} give a host tensor, {@link #ARROW_DEVICE_CUDA} a tensor on
     * {@code cuda:<device_id>} (device memory: not readable from Java); other device types raise.
     * The producer's {@code sync_event} is kept as {@link ForeignArena#syncEvent()}.
     */
    public static Tensor importDeviceTensor(MemorySegment schema, MemorySegment deviceArray) {
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
                releaseArray(array);
            } catch (RuntimeException ignored) {
                // the error we raise is the import's
            }
            throw e;
        }
        return doImport(schema, array, device, sync, "arrow-device-import");
    }

    private static void releaseQuietly(MemorySegment schema) {
        if (schema == null || schema.equals(MemorySegment.NULL)) return;
        releaseSchema(schema);
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
            TensorType type;
            try {
                if (schemaPtr == null || schemaPtr.equals(MemorySegment.NULL)) throw new InteropException("ArrowSchema pointer is NULL");
                MemorySegment schema = Native.at(schemaPtr, ARROW_SCHEMA.byteSize());
                if (schema.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) throw new InteropException("ArrowSchema is released");
                try {
                    type = tensorType(readSchema(schema, 0));
                } finally {
                    releaseSchema(schema);
                }
            } catch (ArithmeticException | IndexOutOfBoundsException e) {
                throw new InteropException("ArrowSchema: " + e.getMessage(), e);
            }
            if (!ownArray) throw new InteropException("ArrowArray is released");
            Runnable release = () -> releaseArray(array);
            Located loc;
            try {
                loc = locate(array, type, device.isHost());
            } catch (ArithmeticException | IndexOutOfBoundsException e) {
                throw new InteropException("ArrowArray: " + e.getMessage(), e);
            }
            ForeignArena arena = ForeignArena.of(name, device, release, structs, sync);
            try {
                MemorySegment seg = loc.bytes == 0 ? MemorySegment.NULL : Native.at(loc.address, loc.bytes);
                return Tensor.wrap(arena, seg, type.dtype, loc.shape);
            } catch (RuntimeException | Error e) {
                arena.close();
                throw e;
            }
        } catch (RuntimeException | Error e) {
            if (structs.scope().isAlive()) {
                try {
                    if (ownArray) releaseArray(array);
                } finally {
                    structs.close();
                }
            }
            throw e;
        }
    }

    /** Reads a schema node and (depth 0 only) its children, with every count and string bounded. */
    static SchemaInfo readSchema(MemorySegment s, int depth) {
        String where = depth == 0 ? "ArrowSchema" : "ArrowSchema child";
        String format = Native.cString(s.get(ADDRESS, S_FORMAT), MAX_STRING_BYTES, where + ".format");
        if (format == null) throw new InteropException(where + ".format is NULL");
        String name = Native.cString(s.get(ADDRESS, S_NAME), MAX_STRING_BYTES, where + ".name");
        MemorySegment metaPtr = s.get(ADDRESS, S_METADATA);
        Map<String, String> meta = metaPtr.equals(MemorySegment.NULL) ? Map.of()
                : decodeMetadata(Native.at(metaPtr, MAX_METADATA_BYTES), where + ".metadata");
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
        List<SchemaInfo> children = new ArrayList<>();
        if (n == 1) {
            MemorySegment ptrs = s.get(ADDRESS, S_CHILDREN);
            if (ptrs.equals(MemorySegment.NULL)) throw new InteropException(where + ".children is NULL with n_children 1");
            MemorySegment c = Native.at(ptrs, ADDRESS.byteSize()).get(ADDRESS, 0);
            if (c.equals(MemorySegment.NULL)) throw new InteropException(where + ".children[0] is NULL");
            MemorySegment child = Native.at(c, ARROW_SCHEMA.byteSize());
            if (child.get(ADDRESS, S_RELEASE).equals(MemorySegment.NULL)) throw new InteropException(where + ".children[0] is released");
            children.add(readSchema(child, depth + 1));
        }
        return new SchemaInfo(format, name, meta, flags, children);
    }

    /**
     * Decodes the C Data binary metadata format from {@code m} (reads never leave {@code m}: a
     * declared length past its end raises).
     */
    static Map<String, String> decodeMetadata(MemorySegment m, String where) {
        try {
            int n = m.get(ValueLayout.JAVA_INT_UNALIGNED, 0);
            if (n < 0 || n > MAX_METADATA_PAIRS) {
                throw new InteropException(where + ": " + n + " key/value pairs (allowed 0.." + MAX_METADATA_PAIRS + ")");
            }
            Map<String, String> out = new LinkedHashMap<>();
            long p = 4;
            for (int i = 0; i < n; i++) {
                String[] kv = new String[2];
                for (int j = 0; j < 2; j++) {
                    int len = m.get(ValueLayout.JAVA_INT_UNALIGNED, p);
                    if (len < 0 || len > m.byteSize() - p - 4) {
                        throw new InteropException(where + ": " + (j == 0 ? "key" : "value") + " " + i + " has length "
                                + len + ", past the end of the metadata (at most " + m.byteSize() + " bytes)");
                    }
                    kv[j] = new String(m.asSlice(p + 4, len).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
                    p += 4L + len;
                }
                out.put(kv[0], kv[1]);
            }
            return out;
        } catch (IndexOutOfBoundsException e) {
            throw new InteropException(where + " runs past the end of its buffer (" + m.byteSize() + " bytes)", e);
        }
    }

    /** The tensor type a schema describes, or an {@link InteropException} saying why it is none. */
    static TensorType tensorType(SchemaInfo s) {
        if (s.format.startsWith("+w:")) {
            long listSize = parseSize(s.format.substring(3), "ArrowSchema.format '" + s.format + "'");
            if (s.children.size() != 1) {
                throw new InteropException("fixed-size list '" + s.format + "' must have exactly 1 child, has " + s.children.size());
            }
            DType dtype = elementDType(s.children.getFirst(), "ArrowSchema child");
            long[] row = rowShape(s, listSize);
            return new TensorType(dtype, true, listSize, row);
        }
        if (!s.children.isEmpty()) throw new InteropException("ArrowSchema '" + s.format + "' has children; expected a primitive array");
        return new TensorType(elementDType(s, "ArrowSchema"), false, 1, new long[0]);
    }

    private static long parseSize(String digits, String where) {
        if (digits.isEmpty() || digits.length() > 10) throw new InteropException(where + ": bad list size");
        long v = 0;
        for (int i = 0; i < digits.length(); i++) {
            char c = digits.charAt(i);
            if (c < '0' || c > '9') throw new InteropException(where + ": bad list size");
            v = v * 10 + (c - '0');
        }
        if (v > Integer.MAX_VALUE) throw new InteropException(where + ": list size exceeds int32");
        return v;
    }

    private static DType elementDType(SchemaInfo s, String where) {
        return switch (s.format) {
            case "f" -> DType.F32;
            case "i" -> DType.I32;
            case "e" -> DType.F16;
            case "w:2" -> {
                String ext = s.metadata.get(ArrowTensors.EXTENSION_NAME_KEY);
                if (!ArrowTensors.BFLOAT16_EXTENSION_NAME.equals(ext)) {
                    throw new InteropException(where + ": fixed-size binary(2) without the "
                            + ArrowTensors.BFLOAT16_EXTENSION_NAME + " extension has no tensor dtype");
                }
                yield DType.BF16;
            }
            default -> throw new InteropException(where + ": element format '" + s.format
                    + "' has no tensor dtype (supported: f, i, e, w:2 with " + ArrowTensors.BFLOAT16_EXTENSION_NAME + ")");
        };
    }

    /** The row shape from arrow.fixed_shape_tensor metadata, or {@code [listSize]} without it. */
    private static long[] rowShape(SchemaInfo s, long listSize) {
        if (!ArrowTensors.FIXED_SHAPE_TENSOR.equals(s.metadata.get(ArrowTensors.EXTENSION_NAME_KEY))) return new long[] {listSize};
        String where = "ArrowSchema '" + s.format + "': " + ArrowTensors.FIXED_SHAPE_TENSOR + " metadata";
        Object parsed;
        try {
            parsed = Json.parse(s.metadata.getOrDefault(ArrowTensors.EXTENSION_METADATA_KEY, ""));
        } catch (IllegalArgumentException e) {
            throw new InteropException(where + " is not JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map<?, ?> m) || !(m.get("shape") instanceof List<?> list)) {
            throw new InteropException(where + " lacks a shape array");
        }
        if (list.size() > 64) throw new InteropException(where + ": shape of rank " + list.size() + " (at most 64)");
        long[] row = new long[list.size()];
        long n = 1;
        for (int i = 0; i < row.length; i++) {
            if (!(list.get(i) instanceof Long d) || d < 0) throw new InteropException(where + ": bad shape " + list);
            row[i] = d;
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new InteropException(where + ": shape " + list + " overflows");
            }
        }
        if (n != listSize) throw new InteropException(where + ": shape " + list + " does not match list size " + listSize);
        if (m.get("permutation") instanceof List<?> perm) {
            for (int i = 0; i < perm.size(); i++) {
                if (!(perm.get(i) instanceof Long p) || p != i) {
                    throw new InteropException(where + ": permutation " + perm + " is not the identity (only row-major tensors are supported)");
                }
            }
        } else if (m.containsKey("permutation") && m.get("permutation") != null) {
            throw new InteropException(where + ": permutation must be an array");
        }
        return row;
    }

    private record Located(long address, long bytes, long[] shape) {}

    /** Validates an array against its type and finds the tensor's bytes. */
    private static Located locate(MemorySegment a, TensorType type, boolean hostReadable) {
        long elemSize = type.dtype.byteSize();
        long length = a.get(JAVA_LONG, A_LENGTH);
        long offset = a.get(JAVA_LONG, A_OFFSET);
        String where = "ArrowArray";
        checkCounts(a, where, type.list ? 1 : 2, type.list ? 1 : 0);
        if (length < 0) throw new InteropException(where + ".length is negative (" + length + ")");
        if (offset < 0) throw new InteropException(where + ".offset is negative (" + offset + ")");
        checkNoNulls(a, where, offset, length, hostReadable);
        long rows = length;
        MemorySegment values = a;
        long elemOffset = offset;
        long elements = length;
        long needed = Math.addExact(offset, length);
        if (type.list) {
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
            elements = Math.multiplyExact(length, type.listSize);
            needed = Math.multiplyExact(Math.addExact(offset, length), type.listSize);
            if (cLength < needed) {
                throw new InteropException(where + ".length " + cLength + " is less than (offset + length) x list size = " + needed);
            }
            elemOffset = Math.addExact(cOffset, Math.multiplyExact(offset, type.listSize));
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
        long[] shape = new long[1 + type.rowShape.length];
        shape[0] = rows;
        System.arraycopy(type.rowShape, 0, shape, 1, type.rowShape.length);
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

    /** Rejects nulls in [offset, offset + length); counts validity bits only when the producer did not. */
    private static void checkNoNulls(MemorySegment a, String where, long offset, long length, boolean hostReadable) {
        long nullCount = a.get(JAVA_LONG, A_NULL_COUNT);
        if (nullCount == 0) return;
        if (nullCount < -1) throw new InteropException(where + ".null_count is " + nullCount);
        MemorySegment validity = Native.at(a.get(ADDRESS, A_BUFFERS), ADDRESS.byteSize()).get(ADDRESS, 0);
        if (validity.equals(MemorySegment.NULL)) {
            if (nullCount > 0) throw new InteropException(where + ".null_count is " + nullCount + " without a validity bitmap");
            return;
        }
        if (nullCount > 0) throw new InteropException(where + " has " + nullCount + " nulls; a tensor cannot hold them");
        if (!hostReadable) throw new InteropException(where + ": null_count unknown (-1) and the validity bitmap is in device memory");
        long end = Math.addExact(offset, length);
        MemorySegment bits = Native.at(validity, (end + 7) / 8);
        for (long i = offset; i < end; i++) {
            if ((bits.get(ValueLayout.JAVA_BYTE, i >>> 3) & (1 << (i & 7))) == 0) {
                throw new InteropException(where + " has a null at index " + (i - offset) + "; a tensor cannot hold nulls");
            }
        }
    }
}
