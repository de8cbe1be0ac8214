package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cpu.CpuStatelessKernels;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

/**
 * The layer's kernels as stateless calls over memory the caller owns: the weights (a
 * {@link MoeWeights} over the caller's tensors: nothing is copied; per-expert matrices or views of a
 * fused 3D tensor, see {@link WeightMatrix#experts(Tensor)}), the activations and a workspace. Nothing
 * is kept between calls, and once warm a call allocates nothing on the Java heap. CPU backend: host
 * tensors, f32 activations (the shapes of {@link LayerKernels}).
 *
 * <pre>{@code
 * Tensor ws = MoeKernels.allocateWorkspace(arena, config, Step.FORWARD, maxTokens);   // once
 * for (...) MoeKernels.forward(weights, x, ids, topkWeights, out, ws);               // per call
 * }</pre>
 *
 * <p><b>Workspace.</b> Every step takes one: a host tensor of any dtype whose bytes are at least
 * {@link #workspaceBytes} for that step and T, 64-byte aligned (the library's arenas always are; a
 * caller's {@code Arena.allocate(bytes, 64)} too). A workspace sized for T serves every smaller T and,
 * sized for {@link Step#FORWARD}, every step. The call writes the native descriptors of the weights
 * at its start and uses the rest as scratch, so one workspace must not serve two calls at once
 * (one per thread).
 *
 * <p><b>Lifetimes.</b> The caller owns the weights and must keep them alive and unchanged during a
 * call. Every call first checks that each weight tensor, activation and the workspace is still
 * usable from this thread (its {@link MemoryArena} open, the arena of a wrapped
 * {@code MemorySegment} not closed): weights freed before the call raise an
 * {@link IllegalStateException} naming the tensor, never a crash. Freeing them <em>during</em> a call
 * from another thread is the caller's error, as for any native library.
 *
 * <p><b>Checks.</b> Shapes, dtypes, devices, T ≥ 1, NaN/Inf in x, expert ids in range, offsets and
 * the slot permutation are checked in Java before the native call (as in {@link LayerKernels}); the
 * weights were checked when the {@link MoeWeights} was built; native failures raise
 * {@code LatentMoeNativeException}.
 */
public final class MoeKernels {
    private MoeKernels() {}

    /** The entry points, for {@link #workspaceBytes}. */
    public enum Step { ROUTER_TOPK, DISPATCH, EXPERTS, COMBINE, FORWARD }

    /**
     * Workspace bytes {@code step} needs for {@code tokens} tokens (a multiple of 64): the weights'
     * descriptors (a few dozen bytes per expert) plus the step's scratch (router, dispatch: none;
     * experts: T·K·m floats; combine: T·(ℓ + ms) floats; forward: the whole layer's intermediates for
     * one token chunk ({@link Cpu#chunkTokens()}), and at least every step's need at this T).
     */
    public static long workspaceBytes(MoeConfig config, Step step, long tokens) {
        if (config == null || step == null) throw new IllegalArgumentException("config and step must not be null");
        return CpuStatelessKernels.workspaceBytes(config, step, tokens);
    }

    /** A workspace for {@code step} and up to {@code maxTokens} tokens: a U8 tensor in {@code arena}. */
    public static Tensor allocateWorkspace(MemoryArena arena, MoeConfig config, Step step, long maxTokens) {
        return arena.allocateTensor(DType.U8, workspaceBytes(config, step, maxTokens));
    }

    /** Router + top-K: x [T, d] f32 → topkIds [T, K] i32, topkWeights [T, K] f32. */
    public static void routerTopK(MoeWeights weights, Tensor x, Tensor topkIds, Tensor topkWeights, Tensor workspace) {
        CpuStatelessKernels.routerTopK(weights, x, topkIds, topkWeights, workspace);
    }

    /** Down-projection + dispatch: x, topkIds → expertOffsets [N+1], sortedRowOfSlot [T·K], latentSorted [T·K, w]. */
    public static void dispatch(MoeWeights weights, Tensor x, Tensor topkIds, Tensor expertOffsets,
                                Tensor sortedRowOfSlot, Tensor latentSorted, Tensor workspace) {
        CpuStatelessKernels.dispatch(weights, x, topkIds, expertOffsets, sortedRowOfSlot, latentSorted, workspace);
    }

    /** The grouped experts (FC1 + activation, FC2): expertOffsets, latentSorted → expertOutSorted [T·K, w]. */
    public static void experts(MoeWeights weights, Tensor expertOffsets, Tensor latentSorted, Tensor expertOutSorted,
                               Tensor workspace) {
        CpuStatelessKernels.experts(weights, expertOffsets, latentSorted, expertOutSorted, workspace);
    }

    /** Combine + up-projection + shared expert: x, topkWeights, sortedRowOfSlot, expertOutSorted → out [T, d]. */
    public static void combine(MoeWeights weights, Tensor x, Tensor topkWeights, Tensor sortedRowOfSlot,
                               Tensor expertOutSorted, Tensor out, Tensor workspace) {
        CpuStatelessKernels.combine(weights, x, topkWeights, sortedRowOfSlot, expertOutSorted, out, workspace);
    }

    /**
     * The whole layer in one native call: x [T, d] → out [T, d]; the routing goes to topkIds /
     * topkWeights, or into the workspace when both are null. Bit-identical with {@link MoeLayer#forward}
     * on the same weights and with the four steps in a row.
     */
    public static void forward(MoeWeights weights, Tensor x, Tensor topkIds, Tensor topkWeights, Tensor out,
                               Tensor workspace) {
        CpuStatelessKernels.forward(weights, x, topkIds, topkWeights, out, workspace);
    }
}
