package dev.latentmoe.kernels.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.io.Json;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Coverage-guided fuzzing of config.json handling: {@link Json#parseObject} then
 * {@link MoeConfig#fromConfigJson}. Only {@link IllegalArgumentException} (the documented error of
 * both) may escape; an accepted config must satisfy the record's invariants. Regression inputs:
 * {@code src/test/resources/dev/latentmoe/kernels/fuzz/ConfigFuzzTestInputs/<method>/}.
 */
class ConfigFuzzTest {
    private static final String[] KEYS = {"hidden_size", "moe_latent_size", "n_routed_experts", "num_experts_per_tok",
            "moe_intermediate_size", "moe_shared_expert_intermediate_size", "routed_scaling_factor", "norm_topk_prob",
            "mlp_hidden_act", "scoring_func", "n_group"};

    private static void check(MoeConfig c) {
        if (c.hiddenSize() <= 0 || c.latentSize() < 0 || c.topK() < 1 || c.topK() > c.numExperts()
                || c.numExperts() > MoeConfig.MAX_EXPERTS || c.intermediateSize() <= 0 || !Float.isFinite(c.routedScalingFactor())) {
            throw new AssertionError("accepted an invalid config " + c);
        }
    }

    /** config.json text (UTF-8 bytes, so that seed inputs are plain config.json files). */
    @FuzzTest(maxDuration = "10s")
    void configText(byte[] bytes) {
        String text = new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
        try {
            check(MoeConfig.fromConfigJson(Json.parseObject(text)));
        } catch (IllegalArgumentException expected) {
            // documented
        }
    }

    /** A map of the known keys with fuzzed values of every JSON type. */
    @FuzzTest(maxDuration = "10s")
    void configMap(FuzzedDataProvider d) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (String key : KEYS) {
            switch (d.consumeInt(0, 7)) {
                case 0 -> { }
                case 1 -> m.put(key, null);
                case 2 -> m.put(key, d.consumeLong(-4, 5000));
                case 3 -> m.put(key, d.consumeLong());
                case 4 -> m.put(key, d.consumeRegularDouble());
                case 5 -> m.put(key, d.pickValue(new Object[] {Double.NaN, Double.POSITIVE_INFINITY, 1e300, -0.0, 2.5}));
                case 6 -> m.put(key, d.consumeBoolean());
                default -> m.put(key, d.consumeString(12));
            }
        }
        try {
            check(MoeConfig.fromConfigJson(m));
        } catch (IllegalArgumentException expected) {
            // documented
        }
    }
}
