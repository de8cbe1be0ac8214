package dev.latentmoe.kernels;

import java.util.Locale;
import java.util.Map;

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
     * From a parsed config.json. Keys: hidden_size, moe_latent_size (absent or null: standard),
     * n_routed_experts, num_experts_per_tok, moe_intermediate_size,
     * moe_shared_expert_intermediate_size (absent: 0), routed_scaling_factor (absent: 1.0),
     * norm_topk_prob (absent: true), mlp_hidden_act (absent: relu2), scoring_func (absent: sigmoid).
     * Group-limited routing (n_group > 1) is not supported and is rejected.
     */
    public static MoeConfig fromConfigJson(Map<String, Object> json) {
        int d = intKey(json, "hidden_size", null);
        Object latent = json.get("moe_latent_size");
        int l = latent == null ? 0 : intKey(json, "moe_latent_size", null);
        int n = intKey(json, "n_routed_experts", null);
        int k = intKey(json, "num_experts_per_tok", null);
        int m = intKey(json, "moe_intermediate_size", null);
        int shared = intKey(json, "moe_shared_expert_intermediate_size", 0);
        float scale = (float) doubleKey(json, "routed_scaling_factor", 1.0);
        boolean norm = boolKey(json, "norm_topk_prob", true);
        Activation act = Activation.fromConfigName(stringKey(json, "mlp_hidden_act", "relu2"));
        Scoring scoring = Scoring.fromConfigName(stringKey(json, "scoring_func", "sigmoid"));
        Object groups = json.get("n_group");
        if (groups != null && intKey(json, "n_group", 1) > 1) {
            throw new IllegalArgumentException("invalid MoE config: group-limited routing (n_group = " + groups + ") is not supported");
        }
        return new MoeConfig(d, l, n, k, m, shared, scale, norm, act, scoring);
    }

    private static int intKey(Map<String, Object> json, String key, Integer fallback) {
        Object v = json.get(key);
        if (v == null) {
            if (fallback != null) return fallback;
            throw new IllegalArgumentException("invalid MoE config: config.json has no '" + key + "'");
        }
        if (v instanceof Number num) {
            double dv = num.doubleValue();
            if (dv == Math.rint(dv) && Math.abs(dv) <= Integer.MAX_VALUE) return (int) dv;
        }
        throw new IllegalArgumentException("invalid MoE config: '" + key + "' must be an integer, got " + v);
    }

    private static double doubleKey(Map<String, Object> json, String key, double fallback) {
        Object v = json.get(key);
        if (v == null) return fallback;
        if (v instanceof Number num) return num.doubleValue();
        throw new IllegalArgumentException("invalid MoE config: '" + key + "' must be a number, got " + v);
    }

    private static boolean boolKey(Map<String, Object> json, String key, boolean fallback) {
        Object v = json.get(key);
        if (v == null) return fallback;
        if (v instanceof Boolean b) return b;
        throw new IllegalArgumentException("invalid MoE config: '" + key + "' must be true or false, got " + v);
    }

    private static String stringKey(Map<String, Object> json, String key, String fallback) {
        Object v = json.get(key);
        if (v == null) return fallback;
        if (v instanceof String s) return s;
        throw new IllegalArgumentException("invalid MoE config: '" + key + "' must be a string, got " + v);
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
