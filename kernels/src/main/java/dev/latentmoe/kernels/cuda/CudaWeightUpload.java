package dev.latentmoe.kernels.cuda;

import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_cuda_weights;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Copies host weights into a device arena as {@code latentmoe_cuda.h} wants them: matrices in the
 * dtype asked (host F32 rounded to bf16 on the way, through a reused staging buffer), and each
 * expert matrix kind stacked into one contiguous [N, rows, cols] array. A new weight format
 * (a quantised dtype with scales) adds its conversion here.
 */
final class CudaWeightUpload implements AutoCloseable {
    private final DeviceArena dev;
    private final CudaStream stream;
    private HostArena staging;
    private MemorySegment stagingBytes;
    private long stagingCapacity;

    private CudaWeightUpload(DeviceArena dev, CudaStream stream) {
        this.dev = dev;
        this.stream = stream;
    }

    /**
     * Uploads {@code w} into {@code dev} on {@code stream} and returns the {@code lmoe_cuda_weights}
     * struct (in {@code structs}, host memory holding the device pointers); waits until the copies
     * are done.
     */
    static MemorySegment upload(MoeWeights w, DeviceArena dev, CudaStream stream, HostArena structs) {
        for (WeightMatrix m : w.matrices()) {
            if (m.format().isQuantized()) {
                // FP8 / NVFP4 device kernels are not in this build: refuse rather than dequantize into a copy.
                throw new UnsupportedOperationException("the CUDA backend does not run " + m.format()
                        + " weights yet (layer has " + w.expertFormat() + " experts)");
            }
        }
        try (CudaWeightUpload up = new CudaWeightUpload(dev, stream)) {
            MemorySegment wts = structs.allocate(lmoe_cuda_weights.sizeof());
            lmoe_cuda_weights.weight_dtype(wts, latentmoe_h.LMOE_DTYPE_BF16);
            // The ABI takes a bf16 or f32 router gate: keep an F32 gate F32 (routing precision).
            DType gateType = w.gate().data().dtype() == DType.F32 ? DType.F32 : DType.BF16;
            lmoe_cuda_weights.gate_dtype(wts, gateType.code());
            lmoe_cuda_weights.gate(wts, up.matrix(w.gate().data(), gateType));
            lmoe_cuda_weights.gate_bias(wts, w.gateBias() == null ? MemorySegment.NULL : up.matrix(w.gateBias(), DType.F32));
            lmoe_cuda_weights.latent_down(wts, up.bf16(data(w.latentDown())));
            lmoe_cuda_weights.latent_up(wts, up.bf16(data(w.latentUp())));
            int n = w.config().numExperts();
            Tensor[] eu = new Tensor[n], ed = new Tensor[n], eg = w.expertGate(0) == null ? null : new Tensor[n];
            for (int e = 0; e < n; e++) {
                eu[e] = w.expertUp(e).data();
                ed[e] = w.expertDown(e).data();
                if (eg != null) eg[e] = w.expertGate(e).data();
            }
            lmoe_cuda_weights.expert_up(wts, up.stacked(eu));
            lmoe_cuda_weights.expert_gate(wts, eg == null ? MemorySegment.NULL : up.stacked(eg));
            lmoe_cuda_weights.expert_down(wts, up.stacked(ed));
            lmoe_cuda_weights.shared_up(wts, up.bf16(data(w.sharedUp())));
            lmoe_cuda_weights.shared_gate(wts, up.bf16(data(w.sharedGate())));
            lmoe_cuda_weights.shared_down(wts, up.bf16(data(w.sharedDown())));
            stream.synchronize(); // every upload done (and any copy error raised) before staging is freed
            return wts;
        }
    }

    private static Tensor data(WeightMatrix m) { return m == null ? null : m.data(); }

    MemorySegment bf16(Tensor host) { return host == null ? MemorySegment.NULL : matrix(host, DType.BF16); }

    /** One device buffer holding {@code host} as {@code target}. */
    MemorySegment matrix(Tensor host, DType target) {
        Tensor d = dev.allocateTensor(target, host.shape());
        copyInto(host, target, d.segment());
        return d.segment();
    }

    /** The tensors (same shape) stacked as one contiguous [N, rows, cols] bf16 device array. */
    MemorySegment stacked(Tensor[] hosts) {
        long[] s = hosts[0].shape();
        Tensor d = dev.allocateTensor(DType.BF16, hosts.length, s[0], s[1]);
        long each = hosts[0].numel() * DType.BF16.byteSize();
        MemorySegment all = d.segment();
        for (int e = 0; e < hosts.length; e++) {
            copyInto(hosts[e], DType.BF16, all.asSlice(e * each, each));
        }
        return all;
    }

    private void copyInto(Tensor host, DType target, MemorySegment devDst) {
        MemorySegment src;
        if (host.dtype() == target) {
            src = host.segment();
        } else {
            // Convert on the host into a reused staging buffer; wait before reusing it.
            long bytes = host.numel() * target.byteSize();
            if (bytes > stagingCapacity) {
                if (staging != null) staging.close();
                staging = HostArena.shared("cuda-weight-staging");
                stagingBytes = staging.allocate(bytes);
                stagingCapacity = bytes;
            } else {
                stream.synchronize();
            }
            src = stagingBytes.asSlice(0, bytes);
            convert(host, target, src);
        }
        Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_h2d_async(devDst, src, src.byteSize(), stream.handle()),
                "lmoe_cuda_memcpy_h2d_async (weights)");
        if (host.dtype() != target) stream.synchronize();
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
