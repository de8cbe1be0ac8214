package dev.latentmoe.kernels.spi;

import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;

import java.util.Arrays;

/**
 * The argument checks of one layer's kernels, run in Java before any native call: tensors present,
 * arenas open and usable from this thread, device, dtype, shape, a non-empty batch; and on the host,
 * where Java can read them, values: finite x, expert ids in range, expert offsets, the slot
 * permutation. Device tensors cannot be read from Java, so their values are the native side's to
 * reject. Shared by {@link CheckedLayerKernels} and anything else that takes a layer's tensors
 * (the CUDA graphed layer). Nothing on the call path allocates.
 */
public final class LayerChecks {
    private final MoeConfig config;
    private final Device device;
    private final DType activationDType;
    private final DType sortedDType;

    /**
     * @param activationDType dtype of x and out
     * @param sortedDType dtype of latentSorted and expertOutSorted
     */
    public LayerChecks(MoeConfig config, Device device, DType activationDType, DType sortedDType) {
        this.config = config;
        this.device = device;
        this.activationDType = activationDType;
        this.sortedDType = sortedDType;
    }

    public MoeConfig config() { return config; }

    public Device device() { return device; }

    public DType activationDType() { return activationDType; }

    public DType sortedDType() { return sortedDType; }

    /** x [T, d] in the activation dtype on the device, T ≥ 1, finite when on the host; returns T. */
    public long input(Tensor x) {
        if (x == null) throw new IllegalArgumentException("input x is null");
        x.checkAccessible();
        if (x.rank() != 2) throw new IllegalArgumentException("input x must be [T, " + config.hiddenSize() + "], got shape " + Arrays.toString(x.shape()));
        long t = x.dim(0);
        if (t == 0) throw new IllegalArgumentException("empty batch: input x has T = 0 tokens");
        check("x", x, activationDType, t, config.hiddenSize());
        if (x.device().isHost() && x.hasNonFinite()) {
            throw new IllegalArgumentException("input x contains NaN or Inf; the layer rejects non-finite inputs");
        }
        return t;
    }

    /** out [T, d] in the activation dtype on the device. */
    public void output(long tokens, Tensor out) {
        check("out", out, activationDType, tokens, config.hiddenSize());
    }

    /** topkIds [T, K] i32 and topkWeights [T, K] f32 on the device. */
    public void routing(long tokens, Tensor topkIds, Tensor topkWeights) {
        check("topkIds", topkIds, DType.I32, tokens, config.topK());
        check("topkWeights", topkWeights, DType.F32, tokens, config.topK());
    }

    /** latentSorted or expertOutSorted [S, w] in the sorted dtype ({@code slots} -1: any S). */
    public void sorted(String name, Tensor t, long slots) {
        check(name, t, sortedDType, slots, config.expertWidth());
    }

    /** dtype, device and a rank-1 shape ({@code d0} -1: any). */
    public void check(String name, Tensor t, DType dtype, long d0) {
        checkCommon(name, t, dtype);
        if (t.rank() != 1 || (d0 >= 0 && t.dim(0) != d0)) shapeMismatch(name, t, new long[] {d0});
    }

    /** dtype, device and a rank-2 shape (a -1 dimension matches anything). */
    public void check(String name, Tensor t, DType dtype, long d0, long d1) {
        checkCommon(name, t, dtype);
        if (t.rank() != 2 || (d0 >= 0 && t.dim(0) != d0) || (d1 >= 0 && t.dim(1) != d1)) {
            shapeMismatch(name, t, new long[] {d0, d1});
        }
    }

    private void checkCommon(String name, Tensor t, DType dtype) {
        if (t == null) throw new IllegalArgumentException(name + " is null");
        t.checkAccessible();
        if (t.dtype() != dtype) throw new IllegalArgumentException(name + " must be " + dtype + ", got " + t.dtype());
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(name + " is on " + t.device() + " but this backend runs on " + device);
        }
    }

    private static void shapeMismatch(String name, Tensor t, long[] shape) {
        throw new IllegalArgumentException(name + " must have shape " + Arrays.toString(shape).replace("-1", "*")
                + ", got " + Arrays.toString(t.shape()));
    }

    /** Every expert id of a host tensor in [0, N). */
    public void expertIds(Tensor ids) {
        if (!ids.device().isHost()) return;
        int n = config.numExperts();
        int k = config.topK();
        for (long i = 0; i < ids.numel(); i++) {
            int e = ids.getInt(i);
            if (e < 0 || e >= n) {
                throw new IllegalArgumentException("expert id " + e + " at token " + (i / k) + ", k " + (i % k)
                        + " is out of range [0, " + n + ")");
            }
        }
    }

    /** Host expert offsets start at 0, never decrease and end at {@code slots}. */
    public void offsets(Tensor offsets, long slots) {
        if (!offsets.device().isHost()) return;
        int prev = 0;
        if (offsets.getInt(0) != 0) throw new IllegalArgumentException("expertOffsets[0] must be 0");
        for (int e = 1; e <= config.numExperts(); e++) {
            int o = offsets.getInt(e);
            if (o < prev) throw new IllegalArgumentException("expertOffsets must be non-decreasing (at expert " + e + ")");
            prev = o;
        }
        if (prev != slots) throw new IllegalArgumentException("expertOffsets[N] = " + prev + " but there are " + slots + " rows");
    }

    /** Every entry of a host slot permutation in [0, slots). */
    public void permutation(Tensor rows, long slots) {
        if (!rows.device().isHost()) return;
        for (long i = 0; i < slots; i++) {
            int r = rows.getInt(i);
            if (r < 0 || r >= slots) throw new IllegalArgumentException("sortedRowOfSlot[" + i + "] = " + r + " is out of range [0, " + slots + ")");
        }
    }
}
