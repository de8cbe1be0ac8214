package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

/**
 * The router's decision for T tokens: {@code expertIds} [T, K] i32, in descending order of the
 * biased score (ties to the lower id), and {@code weights} [T, K] f32, the unbiased scores
 * (normalised when norm_topk_prob) times routed_scaling_factor.
 */
public record Routing(Tensor expertIds, Tensor weights) {
    public Routing {
        if (expertIds == null || weights == null) throw new IllegalArgumentException("routing tensors are null");
    }

    /** Uninitialised routing buffers for T tokens in {@code arena}. */
    public static Routing allocate(MemoryArena arena, long tokens, int topK) {
        return new Routing(arena.allocateTensor(DType.I32, tokens, topK), arena.allocateTensor(DType.F32, tokens, topK));
    }

    public long tokens() { return expertIds.dim(0); }

    public int topK() { return (int) expertIds.dim(1); }

    public int expertId(long token, int k) { return expertIds.getInt(token * topK() + k); }

    public float weight(long token, int k) { return weights.getFloat(token * topK() + k); }
}
