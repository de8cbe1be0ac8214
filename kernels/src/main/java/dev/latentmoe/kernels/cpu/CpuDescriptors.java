package dev.latentmoe.kernels.cpu;

import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.bindings.lmoe_matrix;
import dev.latentmoe.bindings.lmoe_weights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.kernels.spi.NativeConfig;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Writes {@code lmoe_config}, {@code lmoe_weights} and the per-expert {@code lmoe_matrix} arrays into
 * one block of native memory at fixed offsets: once per layer ({@link CpuLayerKernels}) or on every
 * call into the caller's workspace ({@link CpuStatelessKernels}). Pointers are stored as addresses
 * (longs), never as new segments, so writing a block allocates nothing on the Java heap; reading
 * every weight's segment checks on the way that the caller has not freed it.
 *
 * <p>Layout (each part 64-byte aligned): config | weights | expert_up[N] | expert_gate[N] | expert_down[N].
 */
final class CpuDescriptors {
    private CpuDescriptors() {}

    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;

    static final long MATRIX_BYTES = lmoe_matrix.sizeof();
    static final long CONFIG_OFFSET = 0;
    static final long WEIGHTS_OFFSET = align64(lmoe_config.sizeof());
    static final long EXPERTS_OFFSET = WEIGHTS_OFFSET + align64(lmoe_weights.sizeof());

    /** Which parts of {@code lmoe_weights} a step reads; the others are written as absent. */
    static final int ROUTER = 1, DISPATCH = 2, EXPERTS = 4, COMBINE = 8, ALL = 15;

    static long align64(long bytes) { return (bytes + 63) & ~63L; }

    /** Bytes of a block for N experts (a multiple of 64). */
    static long blockBytes(int numExperts) {
        return EXPERTS_OFFSET + align64(3 * numExperts * MATRIX_BYTES);
    }

    static long expertArrayOffset(int which, int numExperts) {
        return EXPERTS_OFFSET + (long) which * numExperts * MATRIX_BYTES;
    }

    /** The config at {@code block + 0}: every byte written (a reused workspace holds old data). */
    static void writeConfig(MemorySegment block, MoeConfig c) {
        for (long o = 0; o < WEIGHTS_OFFSET; o += 8) block.set(LONG, CONFIG_OFFSET + o, 0L);
        NativeConfig.write(c, block);
    }

    /**
     * The weights struct and, when {@code parts} has {@link #EXPERTS}, the N expert descriptors. The
     * matrices a step does not read are written as absent (data NULL).
     */
    static void writeWeights(MemorySegment block, MoeWeights w, int parts) {
        MoeConfig c = w.config();
        int n = c.numExperts();
        long s = WEIGHTS_OFFSET;
        boolean router = (parts & ROUTER) != 0, dispatch = (parts & DISPATCH) != 0;
        boolean experts = (parts & EXPERTS) != 0, combine = (parts & COMBINE) != 0;
        describe(block, s + lmoe_weights.gate$OFFSET, router ? w.gate() : null);
        block.set(LONG, s + lmoe_weights.gate_bias$OFFSET,
                router && w.gateBias() != null ? w.gateBias().segment().address() : 0L);
        describe(block, s + lmoe_weights.latent_down$OFFSET, dispatch ? w.latentDown() : null);
        describe(block, s + lmoe_weights.latent_up$OFFSET, combine ? w.latentUp() : null);
        describe(block, s + lmoe_weights.shared_up$OFFSET, combine ? w.sharedUp() : null);
        describe(block, s + lmoe_weights.shared_gate$OFFSET, combine ? w.sharedGate() : null);
        describe(block, s + lmoe_weights.shared_down$OFFSET, combine ? w.sharedDown() : null);
        boolean gated = w.expertGate(0) != null;
        long up = expertArrayOffset(0, n), gate = expertArrayOffset(1, n), down = expertArrayOffset(2, n);
        long base = block.address();
        block.set(LONG, s + lmoe_weights.expert_up$OFFSET, experts ? base + up : 0L);
        block.set(LONG, s + lmoe_weights.expert_gate$OFFSET, experts && gated ? base + gate : 0L);
        block.set(LONG, s + lmoe_weights.expert_down$OFFSET, experts ? base + down : 0L);
        if (!experts) return;
        for (int e = 0; e < n; e++) {   // indexed: no iterator on the call path
            describe(block, up + e * MATRIX_BYTES, w.expertUp(e));
            describe(block, down + e * MATRIX_BYTES, w.expertDown(e));
            if (gated) describe(block, gate + e * MATRIX_BYTES, w.expertGate(e));
        }
    }

    /** One {@code lmoe_matrix} at {@code offset}; null writes an absent matrix (all zero). */
    static void describe(MemorySegment block, long offset, WeightMatrix m) {
        if (m == null) {
            for (long o = 0; o < MATRIX_BYTES; o += 8) block.set(LONG, offset + o, 0L);
            return;
        }
        block.set(INT, offset + lmoe_matrix.format$OFFSET, m.format().code());
        block.set(INT, offset + lmoe_matrix.reserved$OFFSET, 0);
        block.set(LONG, offset + lmoe_matrix.data$OFFSET, m.data().segment().address());
        block.set(LONG, offset + lmoe_matrix.block_scales$OFFSET,
                m.blockScales() == null ? 0L : m.blockScales().segment().address());
        block.set(FLOAT, offset + lmoe_matrix.scale$OFFSET, m.scale());
        block.set(FLOAT, offset + lmoe_matrix.input_scale$OFFSET, m.inputScale());
    }
}
