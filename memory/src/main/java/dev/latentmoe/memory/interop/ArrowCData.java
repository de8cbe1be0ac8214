package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The <a href="https://arrow.apache.org/docs/format/CDataInterface.html">Arrow C Data Interface</a>
 * ({@code ArrowSchema}, {@code ArrowArray}) and the
 * <a href="https://arrow.apache.org/docs/format/CDeviceDataInterface.html">C Device Data
 * Interface</a> ({@code ArrowDeviceArray}) as FFM layouts, with zero-copy export and import of
 * {@link Tensor}s. No Arrow Java (JNI) code is involved. Strings are read up to {@value #MAX_STRING_BYTES} bytes, metadata up to
 * {@value #MAX_METADATA_BYTES}; the type and lifetime rules are in the package documentation.
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

    /** The C Data format string of one element of {@code dtype}. */
    public static String elementFormat(DType dtype) { return CDataFormat.elementFormat(dtype); }

    /**
     * Writes the schema of a {@code dtype} tensor of {@code shape} (first axis = rows) into the
     * caller's {@code out} ({@link #ARROW_SCHEMA}-sized). The consumer must call its release.
     */
    public static void exportSchema(DType dtype, long[] shape, String name, MemorySegment out) {
        CDataExporter.exportSchema(dtype, shape, name, out);
    }

    /**
     * Exports a host tensor: its schema into {@code outSchema} and its data, zero-copy, into
     * {@code outArray} (caller-owned, {@link #ARROW_SCHEMA}/{@link #ARROW_ARRAY}-sized). The
     * consumer must call both release callbacks; the array's drops the hold on the tensor's arena.
     */
    public static void exportTensor(Tensor tensor, String name, MemorySegment outSchema, MemorySegment outArray) {
        CDataExporter.exportTensor(tensor, name, outSchema, outArray);
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
        CDataExporter.exportDeviceTensor(tensor, name, outSchema, outDeviceArray, syncEvent);
    }

    /**
     * Imports a host array (C Data Interface) as a tensor viewing the producer's memory (no copy),
     * owned by a new {@link ForeignArena}: closing it calls the array's release exactly once.
     * Ownership of both structs passes to this call (see the class comment), also when it throws.
     *
     * @throws InteropException when the structs are malformed or not a supported tensor
     */
    public static Tensor importTensor(MemorySegment schema, MemorySegment array) {
        return CDataImporter.importTensor(schema, array);
    }

    /**
     * Imports an {@code ArrowDeviceArray}: {@link #ARROW_DEVICE_CPU} and
     * {@link #ARROW_DEVICE_CUDA_HOST} give a host tensor, {@link #ARROW_DEVICE_CUDA} a tensor on
     * {@code cuda:<device_id>} (device memory: not readable from Java); other device types raise.
     * The producer's {@code sync_event} is kept as {@link ForeignArena#syncEvent()}.
     */
    public static Tensor importDeviceTensor(MemorySegment schema, MemorySegment deviceArray) {
        return CDataImporter.importDeviceTensor(schema, deviceArray);
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
}
