package dev.latentmoe.memory.interop;

import dev.latentmoe.bindings.latentmoe_engine_h;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.util.Arrays;
import java.util.List;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * <a href="https://dmlc.github.io/dlpack/latest/">DLPack</a> 1.x ({@code DLManagedTensorVersioned})
 * as FFM layouts, with zero-copy export and import of host and CUDA {@link Tensor}s. Export holds the tensor's arena until the consumer's deleter; import views the producer's
 * memory until the tensor's {@link ForeignArena} closes. What is accepted: the package documentation.
 */
public final class DLPack {
    private DLPack() {}

    public static final int MAJOR_VERSION = 1;
    public static final int MINOR_VERSION = 1;
    public static final int MAX_NDIM = 32;

    public static final long FLAG_READ_ONLY = 1L;
    public static final long FLAG_IS_COPIED = 1L << 1;
    public static final long FLAG_IS_SUBBYTE_TYPE_PADDED = 1L << 2;

    // The values come from the binding of latentmoe_engine.h, which the header drift test checks.
    /** {@code DLDeviceType}. */
    public static final int kDLCPU = latentmoe_engine_h.kDLCPU;
    public static final int kDLCUDA = latentmoe_engine_h.kDLCUDA;
    public static final int kDLCUDAHost = latentmoe_engine_h.kDLCUDAHost;
    public static final int kDLOpenCL = latentmoe_engine_h.kDLOpenCL;
    public static final int kDLVulkan = latentmoe_engine_h.kDLVulkan;
    public static final int kDLMetal = latentmoe_engine_h.kDLMetal;
    public static final int kDLVPI = latentmoe_engine_h.kDLVPI;
    public static final int kDLROCM = latentmoe_engine_h.kDLROCM;
    public static final int kDLROCMHost = latentmoe_engine_h.kDLROCMHost;
    public static final int kDLExtDev = latentmoe_engine_h.kDLExtDev;
    public static final int kDLCUDAManaged = latentmoe_engine_h.kDLCUDAManaged;
    public static final int kDLOneAPI = latentmoe_engine_h.kDLOneAPI;

    /** {@code DLDataTypeCode}. */
    public static final int kDLInt = latentmoe_engine_h.kDLInt;
    public static final int kDLUInt = latentmoe_engine_h.kDLUInt;
    public static final int kDLFloat = latentmoe_engine_h.kDLFloat;
    public static final int kDLOpaqueHandle = latentmoe_engine_h.kDLOpaqueHandle;
    public static final int kDLBfloat = latentmoe_engine_h.kDLBfloat;
    public static final int kDLComplex = latentmoe_engine_h.kDLComplex;
    public static final int kDLBool = latentmoe_engine_h.kDLBool;

    public static final StructLayout DL_PACK_VERSION = MemoryLayout.structLayout(
            JAVA_INT.withName("major"), JAVA_INT.withName("minor")).withName("DLPackVersion");
    public static final StructLayout DL_DEVICE = MemoryLayout.structLayout(
            JAVA_INT.withName("device_type"), JAVA_INT.withName("device_id")).withName("DLDevice");
    public static final StructLayout DL_DATA_TYPE = MemoryLayout.structLayout(
            JAVA_BYTE.withName("code"), JAVA_BYTE.withName("bits"), JAVA_SHORT.withName("lanes")).withName("DLDataType");
    /** {@code DLTensor} (48 bytes). */
    public static final StructLayout DL_TENSOR = MemoryLayout.structLayout(
            ADDRESS.withName("data"),
            DL_DEVICE.withName("device"),
            JAVA_INT.withName("ndim"),
            DL_DATA_TYPE.withName("dtype"),
            ADDRESS.withName("shape"),
            ADDRESS.withName("strides"),
            JAVA_LONG.withName("byte_offset")).withName("DLTensor");
    /** {@code DLManagedTensorVersioned} (80 bytes). */
    public static final StructLayout DL_MANAGED_TENSOR_VERSIONED = MemoryLayout.structLayout(
            DL_PACK_VERSION.withName("version"),
            ADDRESS.withName("manager_ctx"),
            ADDRESS.withName("deleter"),
            JAVA_LONG.withName("flags"),
            DL_TENSOR.withName("dl_tensor")).withName("DLManagedTensorVersioned");

    static final long M_MAJOR = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("version"), groupElement("major"));
    static final long M_MINOR = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("version"), groupElement("minor"));
    static final long M_CTX = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("manager_ctx"));
    static final long M_DELETER = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("deleter"));
    static final long M_FLAGS = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("flags"));
    static final long M_TENSOR = DL_MANAGED_TENSOR_VERSIONED.byteOffset(groupElement("dl_tensor"));
    static final long T_DATA = DL_TENSOR.byteOffset(groupElement("data"));
    static final long T_DEVICE_TYPE = DL_TENSOR.byteOffset(groupElement("device"), groupElement("device_type"));
    static final long T_DEVICE_ID = DL_TENSOR.byteOffset(groupElement("device"), groupElement("device_id"));
    static final long T_NDIM = DL_TENSOR.byteOffset(groupElement("ndim"));
    static final long T_CODE = DL_TENSOR.byteOffset(groupElement("dtype"), groupElement("code"));
    static final long T_BITS = DL_TENSOR.byteOffset(groupElement("dtype"), groupElement("bits"));
    static final long T_LANES = DL_TENSOR.byteOffset(groupElement("dtype"), groupElement("lanes"));
    static final long T_SHAPE = DL_TENSOR.byteOffset(groupElement("shape"));
    static final long T_STRIDES = DL_TENSOR.byteOffset(groupElement("strides"));
    static final long T_BYTE_OFFSET = DL_TENSOR.byteOffset(groupElement("byte_offset"));

    private static final MemorySegment DELETER = Native.upcall(java.lang.invoke.MethodHandles.lookup(), "deleterUpcall");

    /** DLPack's (code, bits) of a dtype; lanes are always 1. */
    public static int[] dataType(DType dtype) {
        return switch (dtype) {
            case F32 -> new int[] {kDLFloat, 32};
            case F16 -> new int[] {kDLFloat, 16};
            case BF16 -> new int[] {kDLBfloat, 16};
            case I32 -> new int[] {kDLInt, 32};
            case U8 -> new int[] {kDLUInt, 8};
            case F8_E4M3 -> throw new InteropException("DLPack export of FP8 E4M3 tensors is not supported");
        };
    }

    /**
     * Exports {@code tensor} zero-copy; the result is a {@code DLManagedTensorVersioned*} (a
     * zero-length pointer segment) the consumer owns and must finish with by calling its
     * {@code deleter} (e.g. {@link #delete}).
     */
    public static MemorySegment export(Tensor tensor) {
        if (tensor == null) throw new InteropException("tensor is null");
        MemorySegment data = tensor.segment(); // access check
        long[] shape = tensor.shape();
        long[] strides = tensor.strides();
        Device dev = tensor.device();
        MemoryArena owner = tensor.arena();
        int deviceType;
        int deviceId;
        if (dev.isHost()) {
            deviceType = owner.kind() == MemoryArena.Kind.PINNED ? kDLCUDAHost : kDLCPU;
            deviceId = 0;
        } else {
            deviceType = kDLCUDA;
            deviceId = dev.id();
        }
        int[] dt = dataType(tensor.dtype());
        owner.retain();
        Arena mem = Arena.ofShared();
        try {
            MemorySegment m = mem.allocate(DL_MANAGED_TENSOR_VERSIONED);
            MemorySegment shapeArr = mem.allocate(JAVA_LONG, shape.length);
            MemorySegment strideArr = mem.allocate(JAVA_LONG, shape.length);
            for (int i = 0; i < shape.length; i++) {
                shapeArr.setAtIndex(JAVA_LONG, i, shape[i]);
                strideArr.setAtIndex(JAVA_LONG, i, strides[i]);
            }
            long id = Native.register(new Native.Node(mem, owner, List.of()));
            m.set(JAVA_INT, M_MAJOR, MAJOR_VERSION);
            m.set(JAVA_INT, M_MINOR, MINOR_VERSION);
            m.set(ADDRESS, M_CTX, MemorySegment.ofAddress(id));
            m.set(ADDRESS, M_DELETER, DELETER);
            m.set(JAVA_LONG, M_FLAGS, owner.kind() == MemoryArena.Kind.MAPPED || data.isReadOnly() ? FLAG_READ_ONLY : 0L);
            MemorySegment t = m.asSlice(M_TENSOR, DL_TENSOR.byteSize());
            t.set(ADDRESS, T_DATA, MemorySegment.ofAddress(data.address()));
            t.set(JAVA_INT, T_DEVICE_TYPE, deviceType);
            t.set(JAVA_INT, T_DEVICE_ID, deviceId);
            t.set(JAVA_INT, T_NDIM, shape.length);
            t.set(JAVA_BYTE, T_CODE, (byte) dt[0]);
            t.set(JAVA_BYTE, T_BITS, (byte) dt[1]);
            t.set(JAVA_SHORT, T_LANES, (short) 1);
            t.set(ADDRESS, T_SHAPE, shapeArr);
            t.set(ADDRESS, T_STRIDES, strideArr);
            t.set(JAVA_LONG, T_BYTE_OFFSET, 0L);
            return MemorySegment.ofAddress(m.address()); // a plain pointer: the struct lives until the deleter
        } catch (RuntimeException | Error e) {
            mem.close();
            owner.release();
            throw e;
        }
    }

    @SuppressWarnings("unused") // upcall target
    private static void deleterUpcall(MemorySegment self) {
        try {
            MemorySegment m = Native.at(self, DL_MANAGED_TENSOR_VERSIONED.byteSize());
            Native.Node n = Native.take(m.get(ADDRESS, M_CTX).address());
            if (n != null) n.free(); // frees m itself too
        } catch (Throwable t) {
            Native.reportUpcallFailure("DLManagedTensorVersioned.deleter", t);
        }
    }

    /** Calls the tensor's deleter (when it has one): how a consumer finishes with a DLPack tensor. */
    public static void delete(MemorySegment managed) {
        MemorySegment m = Native.at(managed, DL_MANAGED_TENSOR_VERSIONED.byteSize());
        MemorySegment fn = m.get(ADDRESS, M_DELETER);
        if (!fn.equals(MemorySegment.NULL)) Native.callVoidPtr(fn, m);
    }

    /**
     * Imports a {@code DLManagedTensorVersioned*} (ownership passes to this call, see the class
     * comment). Close {@code tensor.arena()} to call the producer's deleter.
     *
     * @throws InteropException when the tensor is malformed or unsupported (the deleter has run)
     */
    public static Tensor importTensor(MemorySegment managed) {
        if (managed == null || managed.equals(MemorySegment.NULL)) throw new InteropException("DLManagedTensorVersioned pointer is NULL");
        MemorySegment m = Native.at(managed, DL_MANAGED_TENSOR_VERSIONED.byteSize());
        MemorySegment deleter = m.get(ADDRESS, M_DELETER);
        Runnable delete = deleter.equals(MemorySegment.NULL) ? null : () -> Native.callVoidPtr(deleter, m);
        Described d;
        try {
            d = describe(m);
        } catch (RuntimeException | Error e) {
            if (delete != null) delete.run();
            if (e instanceof ArithmeticException || e instanceof IndexOutOfBoundsException) {
                throw new InteropException("DLManagedTensorVersioned: " + e.getMessage(), e);
            }
            throw e;
        }
        ForeignArena arena = ForeignArena.of("dlpack-import", d.device, delete, null, null);
        try {
            MemorySegment seg = d.bytes == 0 ? MemorySegment.NULL : Native.at(d.address, d.bytes);
            if (d.readOnly && d.device.isHost()) seg = seg.asReadOnly();
            return Tensor.wrap(arena, seg, d.dtype, d.shape);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private record Described(Device device, DType dtype, long[] shape, long address, long bytes, boolean readOnly) {}

    private static Described describe(MemorySegment m) {
        String w = "DLManagedTensorVersioned";
        int major = m.get(JAVA_INT, M_MAJOR);
        if (major != MAJOR_VERSION) {
            throw new InteropException(w + ": DLPack version " + Integer.toUnsignedString(major) + "." + Integer.toUnsignedString(m.get(JAVA_INT, M_MINOR))
                    + " is not supported (major version " + MAJOR_VERSION + ")");
        }
        long flags = m.get(JAVA_LONG, M_FLAGS);
        MemorySegment t = m.asSlice(M_TENSOR, DL_TENSOR.byteSize());
        int deviceType = t.get(JAVA_INT, T_DEVICE_TYPE);
        int deviceId = t.get(JAVA_INT, T_DEVICE_ID);
        Device device = switch (deviceType) {
            case kDLCPU, kDLCUDAHost -> Device.CPU;
            case kDLCUDA -> {
                if (deviceId < 0) throw new InteropException(w + ": CUDA device_id " + deviceId + " is negative");
                yield Device.cuda(deviceId);
            }
            default -> throw new InteropException(w + ": unsupported device_type " + deviceType + " (supported: 1 kDLCPU, 2 kDLCUDA, 3 kDLCUDAHost)");
        };
        int code = t.get(JAVA_BYTE, T_CODE) & 0xFF;
        int bits = t.get(JAVA_BYTE, T_BITS) & 0xFF;
        int lanes = t.get(JAVA_SHORT, T_LANES) & 0xFFFF;
        if (lanes != 1) throw new InteropException(w + ": dtype with " + lanes + " lanes (only 1 is supported)");
        DType dtype;
        if (code == kDLFloat && bits == 32) dtype = DType.F32;
        else if (code == kDLFloat && bits == 16) dtype = DType.F16;
        else if (code == kDLBfloat && bits == 16) dtype = DType.BF16;
        else if (code == kDLInt && bits == 32) dtype = DType.I32;
        else throw new InteropException(w + ": dtype (code " + code + ", bits " + bits + ") is not supported (float32, float16, bfloat16, int32)");
        int ndim = t.get(JAVA_INT, T_NDIM);
        if (ndim < 0 || ndim > MAX_NDIM) throw new InteropException(w + ": ndim " + ndim + " (allowed 0.." + MAX_NDIM + ")");
        long[] shape;
        long numel = 1;
        if (ndim == 0) {
            shape = new long[] {1};
        } else {
            MemorySegment sp = t.get(ADDRESS, T_SHAPE);
            if (sp.equals(MemorySegment.NULL)) throw new InteropException(w + ": shape is NULL with ndim " + ndim);
            shape = Native.at(sp, 8L * ndim).toArray(JAVA_LONG);
            for (long s : shape) {
                if (s < 0) throw new InteropException(w + ": negative dimension in shape " + Arrays.toString(shape));
                numel = Math.multiplyExact(numel, s);
            }
            MemorySegment st = t.get(ADDRESS, T_STRIDES);
            if (!st.equals(MemorySegment.NULL) && numel > 0) {
                long[] strides = Native.at(st, 8L * ndim).toArray(JAVA_LONG);
                long expect = 1;
                for (int i = ndim - 1; i >= 0; i--) {
                    if (shape[i] != 1 && strides[i] != expect) {
                        throw new InteropException(w + ": strides " + Arrays.toString(strides) + " of shape " + Arrays.toString(shape)
                                + " are not compact row-major (copy the tensor to a contiguous one first)");
                    }
                    expect *= shape[i];
                }
            }
        }
        long elemSize = dtype.byteSize();
        long bytes = Math.multiplyExact(numel, elemSize);
        long data = t.get(ADDRESS, T_DATA).address();
        long byteOffset = t.get(JAVA_LONG, T_BYTE_OFFSET);
        long address = 0;
        if (bytes > 0) {
            if (data == 0) throw new InteropException(w + ": data is NULL for " + numel + " elements");
            if (byteOffset < 0) throw new InteropException(w + ": byte_offset " + Long.toUnsignedString(byteOffset) + " is too large");
            address = Math.addExact(data, byteOffset);
            Math.addExact(address, bytes);
            if (address % elemSize != 0) {
                throw new InteropException(w + ": data + byte_offset = 0x" + Long.toHexString(address) + " is not aligned to "
                        + elemSize + "-byte elements");
            }
        }
        return new Described(device, dtype, shape, address, bytes, (flags & FLAG_READ_ONLY) != 0);
    }
}
