package dev.latentmoe.kernels.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.CheckpointException;
import dev.latentmoe.kernels.CheckpointWeights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Json;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Coverage-guided fuzzing (Jazzer) of what reads checkpoints: the native loader
 * (latentmoe_engine.h) through {@link MoeLayer#fromCheckpoint}, fed fuzzed config.json,
 * hf_quant_config.json and safetensors files next to a valid tiny layer. Only
 * {@link CheckpointException} (the documented error) may escape; a native crash kills the fuzzing
 * JVM and is a finding like any other. Jazzer's coverage guidance sees the Java side only: the
 * native parsers get the seeds' mutations blind (native/tests-engine fuzzes them from C as well).
 * An accepted layer must satisfy the config's invariants and run one forward pass. Regression
 * inputs: {@code src/test/resources/dev/latentmoe/kernels/fuzz/CheckpointFuzzTestInputs/<method>/}.
 */
class CheckpointFuzzTest {
    private static final MoeConfig CFG =
            new MoeConfig(16, 8, 4, 2, 8, 8, 1.5f, true, Activation.RELU2, Scoring.SIGMOID);
    private static final Path DIR;
    private static final byte[] CONFIG;
    private static final byte[] MODEL;

    static {
        try {
            DIR = Files.createTempDirectory("latentmoe-ckpt-fuzz");
            DIR.toFile().deleteOnExit();
            try (HostArena a = HostArena.shared("fuzz-seed")) {
                MoeWeights w = MoeWeights.random(CFG, DType.BF16, 7, a);
                Map<String, Tensor> t = new LinkedHashMap<>(CheckpointWeights.tensors(w, 0));
                SafeTensorsWriter.write(DIR.resolve("model.safetensors"), t, Map.of("format", "pt"));
            }
            MODEL = Files.readAllBytes(DIR.resolve("model.safetensors"));
            CONFIG = ("{\"hidden_size\": 16, \"moe_latent_size\": 8, \"n_routed_experts\": 4, \"num_experts_per_tok\": 2,"
                    + " \"moe_intermediate_size\": 8, \"moe_shared_expert_intermediate_size\": 8, \"routed_scaling_factor\": 1.5,"
                    + " \"mlp_hidden_act\": \"relu2\"}").getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void write(String name, byte[] bytes) {
        try {
            if (bytes == null) Files.deleteIfExists(DIR.resolve(name));
            else Files.write(DIR.resolve(name), bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void open(byte[] config, byte[] quant, byte[] model) {
        write("config.json", config);
        write("hf_quant_config.json", quant);
        write("model.safetensors", model);
        try (MoeLayer layer = MoeLayer.fromCheckpoint(DIR, 0, Backends.cpu());
             HostArena a = HostArena.confined("x")) {
            MoeConfig c = layer.config();
            if (c.hiddenSize() <= 0 || c.topK() < 1 || c.topK() > c.numExperts() || c.intermediateSize() <= 0
                    || !Float.isFinite(c.routedScalingFactor())) {
                throw new AssertionError("accepted an invalid config " + c);
            }
            Tensor x = a.allocateTensor(DType.F32, 3, c.hiddenSize()).fill(0.25f);
            layer.forward(x);
        } catch (CheckpointException expected) {
            // documented
        }
    }

    /** config.json text (UTF-8 bytes, so that seed inputs are plain config.json files). */
    @FuzzTest(maxDuration = "10s")
    void configText(byte[] bytes) {
        open(bytes, null, MODEL);
    }

    /** config.json as a map of the known keys with fuzzed values of every JSON type. */
    @FuzzTest(maxDuration = "10s")
    void configMap(FuzzedDataProvider d) {
        String[] keys = {"hidden_size", "moe_latent_size", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                "moe_shared_expert_intermediate_size", "routed_scaling_factor", "norm_topk_prob", "mlp_hidden_act",
                "scoring_func", "n_group", "mlp_bias", "layers_block_type", "hybrid_override_pattern"};
        Map<String, Object> m = new LinkedHashMap<>(Json.parseObject(new String(CONFIG, StandardCharsets.UTF_8)));
        for (String key : keys) {
            switch (d.consumeInt(0, 8)) {
                case 0 -> { }
                case 1 -> m.put(key, null);
                case 2 -> m.put(key, d.consumeLong(-4, 5000));
                case 3 -> m.put(key, d.consumeLong());
                case 4 -> m.put(key, d.consumeRegularDouble());
                case 5 -> m.put(key, d.consumeBoolean());
                case 6 -> m.put(key, List.of(d.consumeString(8), "moe"));
                default -> m.put(key, d.consumeString(12));
            }
        }
        open(Json.write(m).getBytes(StandardCharsets.UTF_8), null, MODEL);
    }

    /** hf_quant_config.json text next to an unquantized layer (fuzzed algos, module maps, lists). */
    @FuzzTest(maxDuration = "10s")
    void quantConfig(FuzzedDataProvider d) {
        String module = "backbone.layers.0.mixer." + d.pickValue(new String[] {"experts", "experts.3", "shared_experts.up_proj",
                "fc1_latent_proj", "gate", "foo", "experts.9.up_proj"}) + (d.consumeBoolean() ? ".\u0000backbone.pt_name_sentinel" : "");
        String algo = d.pickValue(new String[] {"FP8", "NVFP4", "MIXED_PRECISION", "W4A8_AWQ", ""});
        String text = d.consumeBoolean()
                ? "{\"quantization\": {\"quant_algo\": \"" + algo + "\", \"quantized_layers\": {" + Json.write(module)
                  + ": {\"quant_algo\": \"" + d.pickValue(new String[] {"FP8", "NVFP4", "X"}) + "\"}}, \"exclude_modules\": ["
                  + Json.write(d.consumeString(24)) + "]}}"
                : d.consumeRemainingAsString();
        open(CONFIG, text.getBytes(StandardCharsets.UTF_8), MODEL);
    }

    /** Raw bytes as model.safetensors. */
    @FuzzTest(maxDuration = "10s")
    void safetensorsFile(byte[] bytes) {
        open(CONFIG, null, bytes);
    }

    /** A correct length prefix, a fuzzed header (usually JSON-like, with the layer's names) and a fuzzed data region. */
    @FuzzTest(maxDuration = "10s")
    void safetensorsHeader(FuzzedDataProvider d) {
        String name = "backbone.layers.0.mixer." + d.pickValue(new String[] {"gate.weight", "experts.0.up_proj.weight",
                "experts.1.up_proj.weight_scale", "shared_experts.down_proj.weight_scale_2", "x"});
        String header = d.consumeBoolean()
                ? "{\"" + name + "\":{\"dtype\":\"" + d.pickValue(new String[] {"F32", "BF16", "F16", "I32", "F64", "U8", "F8_E4M3", "F8_E5M2", "X"})
                  + "\",\"shape\":[" + d.consumeString(24) + "],\"data_offsets\":[" + d.consumeString(24) + "]}"
                  + (d.consumeBoolean() ? ",\"__metadata__\":" + d.consumeString(24) : "") + "}"
                : d.consumeString(512);
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        long n = h.length + (d.consumeBoolean() ? 0 : d.consumeLong());
        byte[] data = d.consumeRemainingAsBytes();
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(n).put(h).put(data);
        open(CONFIG, null, b.array());
    }
}
