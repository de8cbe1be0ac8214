package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.lmoe_cuda_matrix;
import dev.latentmoe.bindings.lmoe_cuda_weights;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.WeightFormat;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntFunction;

/**
 * Copies host weights into a device arena as {@code latentmoe_cuda.h} wants them, one
 * {@code lmoe_cuda_matrix} per matrix kind: F32 / BF16 matrices as bf16 (host F32 rounded on the way,
 * through a reused staging buffer; an F32 router gate stays F32), FP8 and NVFP4 ones as they are
 * stored (data and block scales byte for byte, never dequantized) with their per-tensor scales as a
 * device f32 array, and each expert matrix kind stacked into one contiguous [N, rows, cols] array
 * (its scales [N]). With {@code w8a8} the FP8 matrices whose checkpoint declares an input scale
 * also get their input scales: the library then runs them W8A8 (see {@link CudaBackend#w8a8()}).
 */
final class CudaWeightUpload implements AutoCloseable {
    private final DeviceArena dev;
    private final CudaStream stream;
    private final boolean w8a8;
    private HostArena staging;
    private MemorySegment stagingBytes;
    private long stagingCapacity;

    private CudaWeightUpload(DeviceArena dev, CudaStream stream, boolean w8a8) {
        this.dev = dev;
        this.stream = stream;
        this.w8a8 = w8a8;
    }

    /**
     * Uploads {@code w} into {@code dev} on {@code stream} and returns the {@code lmoe_cuda_weights}
     * struct (in {@code structs}, host memory holding the device pointers); waits until the copies
     * are done.
     */
    static MemorySegment upload(MoeWeights w, DeviceArena dev, CudaStream stream, HostArena structs, boolean w8a8) {
        try (CudaWeightUpload up = new CudaWeightUpload(dev, stream, w8a8)) {
            MemorySegment wts = structs.allocate(lmoe_cuda_weights.sizeof());
            // The ABI takes a bf16 or f32 router gate: keep an F32 gate F32 (routing precision).
            Tensor gate = w.gate().data();
            DType gateType = gate.dtype() == DType.F32 ? DType.F32 : DType.BF16;
            MemorySegment g = lmoe_cuda_weights.gate(wts);
            lmoe_cuda_matrix.format(g, gateType == DType.F32 ? WeightFormat.F32.code() : WeightFormat.BF16.code());
            lmoe_cuda_matrix.data(g, up.matrix(gate, gateType));
            lmoe_cuda_weights.gate_bias(wts, w.gateBias() == null ? MemorySegment.NULL : up.matrix(w.gateBias(), DType.F32));
            up.dense(lmoe_cuda_weights.latent_down(wts), "latent_down", w.latentDown());
            up.dense(lmoe_cuda_weights.latent_up(wts), "latent_up", w.latentUp());
            int n = w.config().numExperts();
            up.experts(lmoe_cuda_weights.expert_up(wts), "expert_up", n, w::expertUp);
            if (w.expertGate(0) != null) up.experts(lmoe_cuda_weights.expert_gate(wts), "expert_gate", n, w::expertGate);
            up.experts(lmoe_cuda_weights.expert_down(wts), "expert_down", n, w::expertDown);
            up.dense(lmoe_cuda_weights.shared_up(wts), "shared_up", w.sharedUp());
            up.dense(lmoe_cuda_weights.shared_gate(wts), "shared_gate", w.sharedGate());
            up.dense(lmoe_cuda_weights.shared_down(wts), "shared_down", w.sharedDown());
            stream.synchronize(); // every upload done (and any copy error raised) before staging is freed
            return wts;
        }
    }

    /** One dense matrix into descriptor {@code d} (left zeroed, i.e. absent, when {@code m} is null). */
    private void dense(MemorySegment d, String name, WeightMatrix m) {
        if (m == null) return;
        experts(d, name, 1, e -> m);
    }

    /** The n matrices of one kind (same format) stacked into descriptor {@code d}. */
    private void experts(MemorySegment d, String name, int n, IntFunction<WeightMatrix> of) {
        WeightMatrix first = of.apply(0);
        WeightFormat f = first.format();
        boolean quantized = f.isQuantized();
        for (int e = 1; e < n; e++) {
            WeightFormat fe = of.apply(e).format();
            if (fe.isQuantized() != quantized || (quantized && fe != f)) {
                throw new UnsupportedOperationException("the CUDA backend takes one format per expert matrix kind: "
                        + name + " has " + f + " (expert 0) and " + fe + " (expert " + e + ")");
            }
        }
        if (!quantized) {
            lmoe_cuda_matrix.format(d, WeightFormat.BF16.code());
            lmoe_cuda_matrix.data(d, stacked(n, e -> of.apply(e).data(), DType.BF16));
            return;
        }
        lmoe_cuda_matrix.format(d, f.code());
        lmoe_cuda_matrix.data(d, stacked(n, e -> of.apply(e).data(), f.dataDType()));
        if (f == WeightFormat.NVFP4) lmoe_cuda_matrix.block_scales(d, stacked(n, e -> of.apply(e).blockScales(), DType.F8_E4M3));
        float[] scales = new float[n], inputScales = new float[n];
        int withInput = 0;
        for (int e = 0; e < n; e++) {
            scales[e] = of.apply(e).scale();
            inputScales[e] = of.apply(e).inputScale();
            if (inputScales[e] > 0) withInput++;
        }
        lmoe_cuda_matrix.scales(d, floats(scales));
        if (w8a8 && f == WeightFormat.FP8_E4M3 && withInput > 0) {
            if (withInput != n) {
                throw new IllegalArgumentException("W8A8: " + name + " has input scales for " + withInput + " of its "
                        + n + " matrices; the checkpoint must declare all or none");
            }
            lmoe_cuda_matrix.input_scales(d, floats(inputScales));
        }
    }

    /** One device buffer holding {@code host} as {@code target}. */
    MemorySegment matrix(Tensor host, DType target) {
        Tensor d = dev.allocateTensor(target, host.shape());
        copyInto(host, target, d.segment());
        return d.segment();
    }

    /** The n tensors (same shape) stacked as one contiguous [n, rows, cols] device array of {@code target}. */
    private MemorySegment stacked(int n, IntFunction<Tensor> of, DType target) {
        Tensor first = of.apply(0);
        if (n == 1) return matrix(first, target);
        long[] s = first.shape();
        Tensor d = dev.allocateTensor(target, n, s[0], s[1]);
        long each = first.numel() * target.byteSize();
        MemorySegment all = d.segment();
        for (int e = 0; e < n; e++) copyInto(of.apply(e), target, all.asSlice(e * each, each));
        return all;
    }

    /** A device f32 array holding {@code v}. */
    private MemorySegment floats(float[] v) {
        Tensor d = dev.allocateTensor(DType.F32, v.length);
        MemorySegment src = stage(4L * v.length);
        MemorySegment.copy(v, 0, src, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, v.length);
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_h2d_async(d.segment(), src, src.byteSize(), stream.handle()),
                "lmoe_cuda_memcpy_h2d_async (weight scales)");
        stream.synchronize();
        return d.segment();
    }

    private void copyInto(Tensor host, DType target, MemorySegment devDst) {
        MemorySegment src;
        if (host.dtype() == target) {
            src = host.segment();
        } else {
            // Convert on the host into a reused staging buffer; wait before reusing it.
            src = stage(host.numel() * target.byteSize());
            convert(host, target, src);
        }
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_h2d_async(devDst, src, src.byteSize(), stream.handle()),
                "lmoe_cuda_memcpy_h2d_async (weights)");
        if (host.dtype() != target) stream.synchronize();
    }

    /** The staging buffer, at least {@code bytes}, once the copies reading it are done. */
    private MemorySegment stage(long bytes) {
        if (bytes > stagingCapacity) {
            if (staging != null) staging.close();
            staging = HostArena.shared("cuda-weight-staging");
            stagingBytes = staging.allocate(bytes);
            stagingCapacity = bytes;
        } else {
            stream.synchronize();
        }
        return stagingBytes.asSlice(0, bytes);
    }

    private static void convert(Tensor host, DType target, MemorySegment dst) {
        long n = host.numel();
        if (target == DType.BF16) {
            for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, DType.floatToBf16(host.getFloat(i)));
        } else if (target == DType.F32) {
            for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, host.getFloat(i));
        } else {
            throw new IllegalArgumentException("cannot convert weights to " + target);
        }
    }

    @Override
    public void close() {
        if (staging != null) staging.close();
    }
}
