package dev.latentmoe.memory.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.memory.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * The device itself: whether {@code liblatentmoe_cuda.so} is loaded and sees a usable GPU, what
 * the GPU is, the status check for CUDA calls, and device-wide operations (fills, memsets). Like
 * everything CUDA in this module it goes through {@code latentmoe_cuda.h}, never through libcudart
 * directly, so one CUDA runtime (the one linked into that library) owns every pointer.
 */
public final class Cuda {
    private Cuda() {}

    private static volatile String cachedReason;
    private static volatile boolean probed;

    /** Null when device {@code 0} can run the CUDA backend; else exactly what is missing. */
    public static String unavailableReason() {
        if (!probed) {
            synchronized (Cuda.class) {
                if (!probed) {
                    cachedReason = probe(0);
                    probed = true;
                }
            }
        }
        return cachedReason;
    }

    /** True when the library loads, a device exists and device 0 passes {@code lmoe_cuda_device_check}. */
    public static boolean isAvailable() { return unavailableReason() == null; }

    /** Throws {@link IllegalStateException} with {@link #unavailableReason()} when CUDA is unusable. */
    public static void requireAvailable(String what) {
        String r = unavailableReason();
        if (r != null) throw new IllegalStateException(what + ": CUDA is unavailable: " + r);
    }

    /** Number of devices the driver reports, 0 when there is no library, driver or GPU. */
    public static int deviceCount() {
        if (!latentmoe_cuda_h.isAvailable()) return 0;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
            int st = latentmoe_cuda_h.lmoe_cuda_device_count(n);
            return st == latentmoe_h.LMOE_OK ? n.get(ValueLayout.JAVA_INT, 0) : 0;
        }
    }

    private static String probe(int device) {
        if (!latentmoe_cuda_h.isAvailable()) {
            return "the CUDA backend library is missing: " + latentmoe_cuda_h.unavailableReason().orElse("?");
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
            int st = latentmoe_cuda_h.lmoe_cuda_device_count(n);
            if (st != latentmoe_h.LMOE_OK) {
                return "no usable CUDA driver: lmoe_cuda_device_count failed (" + latentmoe_h.statusName(st) + "): "
                        + latentmoe_cuda_h.lastError();
            }
            int count = n.get(ValueLayout.JAVA_INT, 0);
            if (count <= device) {
                return count == 0 ? "no CUDA device: the driver reports 0 GPUs"
                        : "no CUDA device " + device + ": the driver reports " + count;
            }
            st = latentmoe_cuda_h.lmoe_cuda_device_check(device);
            if (st != latentmoe_h.LMOE_OK) {
                return "CUDA device " + device + " cannot run the kernels (" + latentmoe_h.statusName(st) + "): "
                        + latentmoe_cuda_h.lastError();
            }
            return null;
        } catch (UnsatisfiedLinkError e) {
            return "the CUDA backend library lacks a symbol: " + e.getMessage();
        }
    }

    /** Throws {@link dev.latentmoe.bindings.runtime.LatentMoeNativeException} unless {@code status} is LMOE_OK. */
    public static void check(int status, String what) { latentmoe_cuda_h.check(status, what); }

    /** Waits for all work on the current device. */
    public static void deviceSynchronize() {
        check(latentmoe_cuda_h.lmoe_cuda_device_synchronize(), "lmoe_cuda_device_synchronize");
    }

    /** Makes {@code device} current for the calling thread. */
    public static void setDevice(int device) {
        check(latentmoe_cuda_h.lmoe_cuda_set_device(device), "lmoe_cuda_set_device(" + device + ")");
    }

    /** A device's name, streaming multiprocessors and memory. */
    public record DeviceInfo(String name, int smCount, long memoryBytes) {
        /** "NAME (N SMs, X.X GiB)". */
        public String summary() {
            return String.format(Locale.ROOT, "%s (%d SMs, %.1f GiB)", name, smCount, memoryBytes / (double) (1L << 30));
        }
    }

    /** What the driver says about {@code device}. */
    public static DeviceInfo deviceInfo(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(256);
            MemorySegment sms = a.allocate(ValueLayout.JAVA_INT);
            MemorySegment mem = a.allocate(ValueLayout.JAVA_LONG);
            check(latentmoe_cuda_h.lmoe_cuda_device_info(device, MemorySegment.NULL, MemorySegment.NULL, sms, mem, name, 256),
                    "lmoe_cuda_device_info");
            return new DeviceInfo(name.getString(0, StandardCharsets.UTF_8), sms.get(ValueLayout.JAVA_INT, 0),
                    mem.get(ValueLayout.JAVA_LONG, 0));
        }
    }

    /**
     * Enqueues on {@code stream} a fill of device tensor {@code t} with values uniform in
     * [{@code lo}, {@code hi}) from {@code seed} (same seed and device, same values).
     */
    public static void fillUniformAsync(Tensor t, long seed, float lo, float hi, CudaStream stream) {
        check(latentmoe_cuda_h.lmoe_cuda_fill_uniform(t.segment(), t.dtype().code(), t.numel(), seed, lo, hi, stream.handle()),
                "lmoe_cuda_fill_uniform");
    }

    /** Enqueues on {@code stream} the setting of {@code bytes} of device memory at {@code dst} to {@code value}. */
    public static void memsetAsync(MemorySegment dst, int value, long bytes, CudaStream stream) {
        check(latentmoe_cuda_h.lmoe_cuda_memset_async(dst, value, bytes, stream.handle()), "lmoe_cuda_memset_async");
    }

}
