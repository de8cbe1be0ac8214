package com.example.engine;

import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Npy;
import dev.latentmoe.memory.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What an engine does: writes (here: makes) a sharded Nemotron-H style checkpoint with several
 * layers, loads one LatentMoE layer from it through the public API, runs it, and checks the result
 * against its own float64 implementation of the layer.
 */
class EngineEndToEndTest {
    static final int D = 48, L = 13, N = 11, K = 4, M = 21, MS = 30;
    static final float SCALE = 2.5f;

    @Test
    void shardedCheckpointLayerMatchesOwnReference(@TempDir Path dir) throws Exception {
        long seed = new Random().nextLong();
        System.out.println("e2e seed " + seed);
        Random rnd = new Random(seed);
        Map<String, float[]> w = new LinkedHashMap<>();
        try (HostArena arena = HostArena.shared("e2e-ckpt")) {
            Map<String, Tensor> shard0 = new LinkedHashMap<>(), shard1 = new LinkedHashMap<>();
            for (int layer = 0; layer < 2; layer++) {
                String p = "backbone.layers." + layer + ".mixer.";
                Map<String, Tensor> shard = layer == 0 ? shard0 : shard1;
                put(arena, shard, w, p + "gate.weight", DType.F32, rnd, N, D);
                put(arena, shard, w, p + "gate.e_score_correction_bias", DType.F32, rnd, N);
                put(arena, shard, w, p + "fc1_latent_proj.weight", DType.BF16, rnd, L, D);
                put(arena, shard0, w, p + "fc2_latent_proj.weight", DType.BF16, rnd, D, L);
                for (int e = 0; e < N; e++) {
                    put(arena, e % 2 == 0 ? shard0 : shard1, w, p + "experts." + e + ".up_proj.weight", DType.BF16, rnd, M, L);
                    put(arena, shard1, w, p + "experts." + e + ".down_proj.weight", DType.BF16, rnd, L, M);
                }
                put(arena, shard, w, p + "shared_experts.up_proj.weight", DType.BF16, rnd, MS, D);
                put(arena, shard, w, p + "shared_experts.down_proj.weight", DType.BF16, rnd, D, MS);
            }
            put(arena, shard0, w, "backbone.embeddings.weight", DType.BF16, rnd, 7, D);
            SafeTensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), shard0, Map.of("format", "pt"));
            SafeTensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), shard1, Map.of("format", "pt"));
            StringBuilder idx = new StringBuilder("{\"metadata\": {}, \"weight_map\": {");
            String sep = "";
            for (String name : shard0.keySet()) { idx.append(sep).append('"').append(name).append("\": \"model-00001-of-00002.safetensors\""); sep = ", "; }
            for (String name : shard1.keySet()) { idx.append(sep).append('"').append(name).append("\": \"model-00002-of-00002.safetensors\""); sep = ", "; }
            Files.writeString(dir.resolve("model.safetensors.index.json"), idx.append("}}").toString());
        }
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"nemotron_h\", \"hidden_size\": " + D
                + ", \"moe_latent_size\": " + L + ", \"n_routed_experts\": " + N + ", \"num_experts_per_tok\": " + K
                + ", \"moe_intermediate_size\": " + M + ", \"moe_shared_expert_intermediate_size\": " + MS
                + ", \"routed_scaling_factor\": " + SCALE + ", \"norm_topk_prob\": true, \"mlp_hidden_act\": \"relu2\"}");

        int tokens = 19;
        try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 1, Backends.cpu());
             HostArena arena = HostArena.confined("e2e")) {
            Tensor x = arena.allocateTensor(DType.F32, tokens, D);
            for (long i = 0; i < x.numel(); i++) x.setFloat(i, (float) (rnd.nextDouble() * 2 - 1));
            Path xPath = dir.resolve("x.npy");
            Npy.write(xPath, x);
            Tensor xRead = Npy.read(xPath, arena);
            Tensor y = arena.allocateTensor(DType.F32, tokens, D).fill(Float.NaN);
            Routing routing = Routing.allocate(arena, tokens, K);
            layer.forward(xRead, y, routing);

            double num = 0, den = 0;
            String p = "backbone.layers.1.mixer.";
            for (int t = 0; t < tokens; t++) {
                double[] xt = new double[D];
                for (int i = 0; i < D; i++) xt[i] = x.getFloat((long) t * D + i);
                double[] want = referenceToken(w, p, xt, routing, t);
                for (int i = 0; i < D; i++) {
                    double got = y.getFloat((long) t * D + i);
                    assertTrue(!Double.isNaN(got), "output not written at " + t + "," + i);
                    num += (got - want[i]) * (got - want[i]);
                    den += want[i] * want[i];
                }
            }
            double rel = Math.sqrt(num / den);
            System.out.println("e2e relative error " + rel);
            // The reference uses the stored (bf16-rounded) weights: only f32 accumulation error remains.
            assertTrue(rel <= 1e-5, "relative Frobenius error " + rel);

            Tensor bad = arena.allocateTensor(DType.F32, tokens, D + 1);
            assertThrows(IllegalArgumentException.class, () -> layer.forward(bad));
        }
        assertEquals(0, MemoryAccounting.totalBytes(), "arena accounting back to zero");
    }

    /** float64 layer for one token; selection must agree with the kernel's except float32 near-ties. */
    static double[] referenceToken(Map<String, float[]> w, String p, double[] x, Routing routing, int t) {
        float[] gate = w.get(p + "gate.weight"), bias = w.get(p + "gate.e_score_correction_bias");
        double[] s = new double[N];
        for (int e = 0; e < N; e++) s[e] = 1 / (1 + Math.exp(-dot(gate, e, D, x)));
        int[] ids = new int[K];
        boolean[] taken = new boolean[N];
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < N; e++) if (!taken[e] && (best < 0 || s[e] + bias[e] > s[best] + bias[best])) best = e;
            taken[best] = true;
            ids[k] = best;
            int got = routing.expertId(t, k);
            if (got != best) {
                assertTrue(Math.abs(s[got] + bias[got] - s[best] - bias[best]) < 1e-5, "token " + t + " k " + k + ": " + got + " vs " + best);
                ids[k] = got;
                taken[best] = false;
                taken[got] = true;
            }
        }
        double sum = 0;
        for (int id : ids) sum += s[id];
        float[] down = w.get(p + "fc1_latent_proj.weight"), up = w.get(p + "fc2_latent_proj.weight");
        double[] z = new double[L];
        for (int i = 0; i < L; i++) z[i] = dot(down, i, D, x);
        double[] acc = new double[L];
        for (int id : ids) {
            double weight = s[id] / (sum + 1e-20) * SCALE;
            float[] eu = w.get(p + "experts." + id + ".up_proj.weight"), ed = w.get(p + "experts." + id + ".down_proj.weight");
            double[] h = new double[M];
            for (int j = 0; j < M; j++) { double r = Math.max(0, dot(eu, j, L, z)); h[j] = r * r; }
            for (int i = 0; i < L; i++) acc[i] += weight * dot(ed, i, M, h);
        }
        float[] su = w.get(p + "shared_experts.up_proj.weight"), sd = w.get(p + "shared_experts.down_proj.weight");
        double[] hs = new double[MS];
        for (int j = 0; j < MS; j++) { double r = Math.max(0, dot(su, j, D, x)); hs[j] = r * r; }
        double[] out = new double[D];
        for (int i = 0; i < D; i++) out[i] = dot(up, i, L, acc) + dot(sd, i, MS, hs);
        return out;
    }

    static double dot(float[] m, int row, int cols, double[] v) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += m[row * cols + c] * v[c];
        return s;
    }

    /** A random tensor; the float64 copy keeps exactly the values stored (bf16-rounded where BF16). */
    static void put(HostArena arena, Map<String, Tensor> shard, Map<String, float[]> all, String name, DType dt,
                    Random rnd, long... shape) {
        Tensor t = arena.allocateTensor(dt, shape);
        double a = 1 / Math.sqrt(shape[shape.length - 1]);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, (float) ((rnd.nextDouble() * 2 - 1) * a));
        shard.put(name, t);
        all.put(name, t.toFloatArray());
    }
}
