package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Layers loaded from (sharded) safetensors checkpoints that also hold other layers' tensors. */
@ExtendWith(NoLeaks.class)
class CheckpointLayerTest {

    /** Writes layers {@code layers} of random weights; shard 0 gets even experts and the router. */
    static Map<String, Tensor> checkpointTensors(MoeConfig cfg, HostArena arena, DType dtype, long seed, int... layers) {
        Map<String, Tensor> all = new LinkedHashMap<>();
        for (int layer : layers) {
            MoeWeights w = MoeWeights.random(cfg, dtype == DType.F16 ? DType.F32 : dtype, seed + layer, arena);
            String p = CheckpointWeights.prefix(layer);
            all.put(p + "gate.weight", w.gate().data());
            all.put(p + "gate.e_score_correction_bias", w.gateBias());
            if (cfg.isLatent()) {
                all.put(p + "fc1_latent_proj.weight", conv(w.latentDown().data(), dtype, arena));
                all.put(p + "fc2_latent_proj.weight", conv(w.latentUp().data(), dtype, arena));
            }
            for (int e = 0; e < cfg.numExperts(); e++) {
                all.put(p + "experts." + e + ".up_proj.weight", conv(w.expertUp(e).data(), dtype, arena));
                all.put(p + "experts." + e + ".down_proj.weight", conv(w.expertDown(e).data(), dtype, arena));
                if (cfg.activation() == Activation.SWIGLU) {
                    all.put(p + "experts." + e + ".gate_proj.weight", conv(w.expertGate(e).data(), dtype, arena));
                }
            }
            if (cfg.hasSharedExpert()) {
                all.put(p + "shared_experts.up_proj.weight", conv(w.sharedUp().data(), dtype, arena));
                all.put(p + "shared_experts.down_proj.weight", conv(w.sharedDown().data(), dtype, arena));
                if (cfg.activation() == Activation.SWIGLU) {
                    all.put(p + "shared_experts.gate_proj.weight", conv(w.sharedGate().data(), dtype, arena));
                }
            }
            all.put("backbone.layers." + layer + ".norm.weight", arena.allocateTensor(DType.F32, cfg.hiddenSize()).fill(1));
        }
        return all;
    }

    private static Tensor conv(Tensor t, DType dt, HostArena arena) { return t.dtype() == dt ? t : t.convertTo(dt, arena); }

    static void writeSharded(Path dir, Map<String, Tensor> all, MoeConfig cfg, String act) throws IOException {
        Map<String, Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        StringBuilder idx = new StringBuilder("{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
        int i = 0;
        for (Map.Entry<String, Tensor> e : all.entrySet()) {
            boolean first = (i++ % 3) != 1;
            (first ? a : b).put(e.getKey(), e.getValue());
            idx.append(i > 1 ? ", " : "").append('"').append(e.getKey()).append("\": \"")
                    .append(first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors").append('"');
        }
        SafeTensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), a, Map.of("format", "pt"));
        SafeTensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), b, Map.of("format", "pt"));
        Files.writeString(dir.resolve("model.safetensors.index.json"), idx.append("}}").toString());
        writeConfig(dir, cfg, act);
    }

    static void writeConfig(Path dir, MoeConfig cfg, String act) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"NemotronHForCausalLM\"], \"hidden_size\": " + cfg.hiddenSize()
                + ", \"moe_latent_size\": " + (cfg.isLatent() ? cfg.latentSize() : "null")
                + ", \"n_routed_experts\": " + cfg.numExperts() + ", \"num_experts_per_tok\": " + cfg.topK()
                + ", \"moe_intermediate_size\": " + cfg.intermediateSize()
                + ", \"moe_shared_expert_intermediate_size\": " + cfg.sharedIntermediateSize()
                + ", \"routed_scaling_factor\": " + cfg.routedScalingFactor() + ", \"norm_topk_prob\": " + cfg.normTopkProb()
                + ", \"mlp_hidden_act\": \"" + act + "\", \"n_group\": 1}");
    }

    @Test
    void shardedLatentCheckpointWithOtherLayers(@TempDir Path dir) throws IOException {
        MoeConfig cfg = Cases.SUPER_SMALL.withTopK(32);
        long seed = Cases.seed("sharded checkpoint");
        try (HostArena w = HostArena.shared("ckpt-writer")) {
            writeSharded(dir, checkpointTensors(cfg, w, DType.BF16, seed, 0, 3, 5), cfg, "relu2");
        }
        try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 3, Backends.cpu());
             HostArena arena = HostArena.shared("x")) {
            assertTrue(layer.config().equals(cfg), "config from config.json: " + layer.config());
            Tensor x = Cases.input(arena, 65, cfg.hiddenSize(), seed);
            Tensor y = arena.allocateTensor(DType.F32, 65, cfg.hiddenSize()).fill(Float.NaN);
            Routing r = Routing.allocate(arena, 65, cfg.topK());
            layer.forward(x, y, r);
            LayerForwardTest.assertMatches(layer, x, y, r, 1e-5);   // CPU: f32 accumulation on the stored bf16 weights
            // The weights are the very ones generated for layer 3 (not 0 or 5): same output as a layer built directly.
            try (HostArena wa = HostArena.shared("direct");
                 MoeLayer direct = MoeLayer.of(MoeWeights.random(cfg, DType.BF16, seed + 3, wa), Backends.cpu())) {
                assertArrayEquals(y.toFloatArray(), direct.forward(x).toFloatArray());
            }
        }
    }

    @Test
    void standardSwigluF16CheckpointIsWidenedToF32(@TempDir Path dir) throws IOException {
        MoeConfig cfg = Cases.NANO_SMALL.withActivation(Activation.SWIGLU);
        long seed = Cases.seed("f16 checkpoint");
        try (HostArena w = HostArena.shared("ckpt-writer")) {
            Map<String, Tensor> t = checkpointTensors(cfg, w, DType.F16, seed, 1);
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
            writeConfig(dir, cfg, "silu");
        }
        try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 1, Backends.cpu());
             HostArena arena = HostArena.shared("x")) {
            assertTrue(layer.weights().expertFormat() == WeightFormat.F32);
            Tensor x = Cases.input(arena, 9, cfg.hiddenSize(), seed);
            Tensor y = arena.allocateTensor(DType.F32, 9, cfg.hiddenSize()).fill(Float.NaN);
            Routing r = Routing.allocate(arena, 9, cfg.topK());
            layer.forward(x, y, r);
            LayerForwardTest.assertMatches(layer, x, y, r, 1e-5);
        }
    }

    @Test
    void missingOrMisshapedTensorsAndCorruptFiles(@TempDir Path dir) throws IOException {
        MoeConfig cfg = Cases.cfg(24, 8, 5, 2, 12, 0, 1.0f, Activation.RELU2);
        Path single = dir.resolve("single");
        Files.createDirectories(single);
        try (HostArena w = HostArena.shared("ckpt-writer")) {
            Map<String, Tensor> t = checkpointTensors(cfg, w, DType.BF16, 1, 0);
            Map<String, Tensor> missing = new LinkedHashMap<>(t);
            missing.remove("backbone.layers.0.mixer.experts.3.down_proj.weight");
            SafeTensorsWriter.write(single.resolve("model.safetensors"), missing, Map.of());
            writeConfig(single, cfg, "relu2");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> MoeLayer.fromCheckpoint(single, 0, Backends.cpu()));
            assertTrue(e.getMessage().contains("experts.3.down_proj.weight"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> MoeLayer.fromCheckpoint(single, 7, Backends.cpu()));
            assertTrue(e.getMessage().contains("backbone.layers.7.mixer.gate.weight"), e.getMessage());

            Map<String, Tensor> misshaped = new LinkedHashMap<>(t);
            misshaped.put("backbone.layers.0.mixer.fc2_latent_proj.weight", w.allocateTensor(DType.BF16, 8, 24).fill(0.1f));
            SafeTensorsWriter.write(single.resolve("model.safetensors"), misshaped, Map.of());
            e = assertThrows(IllegalArgumentException.class, () -> MoeLayer.fromCheckpoint(single, 0, Backends.cpu()));
            assertTrue(e.getMessage().contains("fc2_latent_proj.weight has shape [8, 24], expected [24, 8]"), e.getMessage());

            SafeTensorsWriter.write(single.resolve("model.safetensors"), t, Map.of());
            try (RandomAccessFile f = new RandomAccessFile(single.resolve("model.safetensors").toFile(), "rw")) {
                f.setLength(f.length() - 10);   // truncated data
            }
            assertThrows(CheckpointException.class, () -> MoeLayer.fromCheckpoint(single, 0, Backends.cpu()));
            try (RandomAccessFile f = new RandomAccessFile(single.resolve("model.safetensors").toFile(), "rw")) {
                f.seek(8);
                f.write("not json".getBytes());   // corrupt header
            }
            assertThrows(CheckpointException.class, () -> MoeLayer.fromCheckpoint(single, 0, Backends.cpu()));
        }
    }
}
