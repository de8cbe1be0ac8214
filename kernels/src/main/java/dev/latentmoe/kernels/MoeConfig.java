package dev.latentmoe.kernels;

import java.util.Locale;

/**
 * Hyper-parameters of one (Latent)MoE layer. {@code latentSize == 0} is a standard MoE whose
 * experts run at the hidden size; {@code sharedIntermediateSize == 0} means no shared expert.
 */
public record MoeConfig(
        int hiddenSize,
        int latentSize,
        int numExperts,
        int topK,
        int intermediateSize,
        int sharedIntermediateSize,
        float routedScalingFactor,
        boolean normTopkProb,
        Activation activation,
        Scoring scoring) {

    public static final int MAX_EXPERTS = 2048;
    public static final int MAX_TOP_K = 32;

    public MoeConfig {
        require(hiddenSize > 0, "hidden_size must be > 0, got " + hiddenSize);
        require(latentSize >= 0, "moe_latent_size must be >= 0, got " + latentSize);
        require(numExperts >= 1 && numExperts <= MAX_EXPERTS,
                "n_routed_experts must be in 1.." + MAX_EXPERTS + ", got " + numExperts);
        require(topK >= 1 && topK <= MAX_TOP_K, "num_experts_per_tok must be in 1.." + MAX_TOP_K + ", got " + topK);
        require(topK <= numExperts, "num_experts_per_tok (" + topK + ") > n_routed_experts (" + numExperts + ")");
        require(intermediateSize > 0, "moe_intermediate_size must be > 0, got " + intermediateSize);
        require(sharedIntermediateSize >= 0, "moe_shared_expert_intermediate_size must be >= 0, got " + sharedIntermediateSize);
        require(Float.isFinite(routedScalingFactor), "routed_scaling_factor must be finite, got " + routedScalingFactor);
        require(activation != null, "activation is null");
        require(scoring != null, "scoring is null");
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException("invalid MoE config: " + message);
    }

    public boolean isLatent() { return latentSize > 0; }

    public boolean hasSharedExpert() { return sharedIntermediateSize > 0; }

    /** Width the routed experts run in: ℓ for LatentMoE, d for a standard MoE. */
    public int expertWidth() { return isLatent() ? latentSize : hiddenSize; }

    /** Nemotron 3 Super: d 4096, ℓ 1024, N 512, K 22, m 2688, shared 5376, scale 5.0, relu². */
    public static final MoeConfig NEMOTRON3_SUPER =
            new MoeConfig(4096, 1024, 512, 22, 2688, 5376, 5.0f, true, Activation.RELU2, Scoring.SIGMOID);

    /** Nemotron 3 Nano (standard MoE): d 2688, N 128, K 6, m 1856, shared 3712, scale 2.5, relu². */
    public static final MoeConfig NEMOTRON3_NANO =
            new MoeConfig(2688, 0, 128, 6, 1856, 3712, 2.5f, true, Activation.RELU2, Scoring.SIGMOID);

    /** A preset by name: {@code nemotron3-super} or {@code nemotron3-nano}. */
    public static MoeConfig preset(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "nemotron3-super", "super" -> NEMOTRON3_SUPER;
            case "nemotron3-nano", "nano" -> NEMOTRON3_NANO;
            default -> throw new IllegalArgumentException("unknown preset '" + name + "' (nemotron3-super, nemotron3-nano)");
        };
    }

    /**
     * The config layer {@code layer} of a checkpoint would have, as the native loader reads it from
     * config.json and the tensor names alone (keys and defaults, layer kinds, the activation gate
     * tensors imply: see latentmoe_engine.h), without reading any weight: for shape planning.
     * {@link MoeLayer#fromCheckpoint} may still refuse the layer.
     *
     * @throws CheckpointException when config.json or the names cannot be read
     */
    public static MoeConfig fromCheckpoint(java.nio.file.Path dir, int layer) {
        return NativeCheckpointLayer.readConfig(dir, layer);
    }

    public MoeConfig withTopK(int k) {
        return new MoeConfig(hiddenSize, latentSize, numExperts, k, intermediateSize, sharedIntermediateSize,
                routedScalingFactor, normTopkProb, activation, scoring);
    }

    public MoeConfig withActivation(Activation a) {
        return new MoeConfig(hiddenSize, latentSize, numExperts, topK, intermediateSize, sharedIntermediateSize,
                routedScalingFactor, normTopkProb, a, scoring);
    }

    public MoeConfig withScoring(Scoring s) {
        return new MoeConfig(hiddenSize, latentSize, numExperts, topK, intermediateSize, sharedIntermediateSize,
                routedScalingFactor, normTopkProb, activation, s);
    }

    public MoeConfig withSharedIntermediateSize(int shared) {
        return new MoeConfig(hiddenSize, latentSize, numExperts, topK, intermediateSize, shared,
                routedScalingFactor, normTopkProb, activation, scoring);
    }

    /** Weight bytes of the routed experts' matrices per expert at the given element size. */
    public long expertWeightBytes(int elementBytes) {
        long mats = activation == Activation.SWIGLU ? 3 : 2;
        return mats * (long) expertWidth() * intermediateSize * elementBytes;
    }
}
