package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes test checkpoints the way ModelOpt lays them out, with this file's own seeded quantizer:
 * per matrix F32, BF16, F16, FP8 (E4M3 codes, weight_scale = amax / 448, input_scale) or NVFP4
 * (e2m1 codes two per byte, the even column in the low nibble, e4m3 block scales of 16,
 * weight_scale_2 = amax / (6 * 448)), plus hf_quant_config.json and/or config.json's
 * quantization_config. Each layer added returns the values the writer meant (the dequantized
 * weights, F32 tensors) for the float64 reference, independent of the library's decoding.
 */
final class TestCheckpoint {
    enum Fmt { F32, BF16, F16, FP8, NVFP4 }

    private final HostArena arena;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, String> quantized = new LinkedHashMap<>();   // module -> FP8 / NVFP4
    private final List<String> unquantized = new ArrayList<>();            // linear modules left alone
    private final List<String> extraConfig = new ArrayList<>();
    boolean sentinelNames;   // write module names as ModelOpt 0.47 does ("...proj.\u0000backbone.pt_name_sentinel")

    TestCheckpoint(HostArena arena) { this.arena = arena; }

    /** Adds one more config.json member, e.g. {@code "mlp_bias": true}. */
    TestCheckpoint config(String member) {
        extraConfig.add(member);
        return this;
    }

    Map<String, Tensor> tensors() { return tensors; }

    /** Adds layer {@code layer}; returns the weights the kernels must compute with (F32). */
    MoeWeights addLayer(MoeConfig c, int layer, Fmt gate, Fmt experts, Fmt shared, Fmt latent, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        String p = "backbone.layers." + layer + ".mixer.";
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean gated = c.activation() == Activation.SWIGLU;
        Tensor g = matrix(p + "gate", gate, n, d, rnd, false);
        Tensor bias = arena.allocateTensor(DType.F32, n);
        for (int e = 0; e < n; e++) bias.setFloat(e, (float) (rnd.nextDouble() * 0.2 - 0.1));
        tensors.put(p + "gate.e_score_correction_bias", bias);
        Tensor down = c.isLatent() ? matrix(p + "fc1_latent_proj", latent, l, d, rnd, true) : null;
        Tensor up = c.isLatent() ? matrix(p + "fc2_latent_proj", latent, d, l, rnd, true) : null;
        Tensor[] eu = new Tensor[n], ed = new Tensor[n], eg = gated ? new Tensor[n] : null;
        for (int e = 0; e < n; e++) {
            eu[e] = matrix(p + "experts." + e + ".up_proj", experts, m, w, rnd, false);
            if (gated) eg[e] = matrix(p + "experts." + e + ".gate_proj", experts, m, w, rnd, false);
            ed[e] = matrix(p + "experts." + e + ".down_proj", experts, w, m, rnd, false);
        }
        noteModule(p + "experts", experts);
        if (c.isLatent()) {
            noteModule(p + "fc1_latent_proj", latent);
            noteModule(p + "fc2_latent_proj", latent);
        }
        Tensor su = null, sg = null, sd = null;
        if (ms > 0) {
            su = matrix(p + "shared_experts.up_proj", shared, ms, d, rnd, false);
            if (gated) sg = matrix(p + "shared_experts.gate_proj", shared, ms, d, rnd, false);
            sd = matrix(p + "shared_experts.down_proj", shared, d, ms, rnd, false);
            noteModule(p + "shared_experts.up_proj", shared);
            noteModule(p + "shared_experts.down_proj", shared);
            if (gated) noteModule(p + "shared_experts.gate_proj", shared);
        }
        return new MoeWeights(c, g, bias, down, up, eu, eg, ed, su, sg, sd);
    }

    private void noteModule(String module, Fmt f) {
        if (f == Fmt.FP8 || f == Fmt.NVFP4) quantized.put(module, f.name());
        else unquantized.add(module);
    }

    /** Stores module.weight (and its scales) in fmt; returns the values meant, as F32 [rows, cols]. */
    private Tensor matrix(String module, Fmt fmt, int rows, int cols, SplittableRandom rnd, boolean latentScale) {
        float bound = (float) (1.0 / Math.sqrt(cols));
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
        Tensor meant = arena.allocateTensor(DType.F32, rows, cols);
        switch (fmt) {
            case F32, BF16, F16 -> {
                DType dt = fmt == Fmt.F32 ? DType.F32 : fmt == Fmt.BF16 ? DType.BF16 : DType.F16;
                Tensor t = arena.allocateTensor(dt, rows, cols).copyFrom(v);
                tensors.put(module + ".weight", t);
                meant.copyFrom(t.toFloatArray());
            }
            case FP8 -> {
                float amax = 0;
                for (float x : v) amax = Math.max(amax, Math.abs(x));
                float scale = amax / 448f;
                Tensor codes = arena.allocateTensor(DType.F8_E4M3, rows, cols);
                for (int i = 0; i < v.length; i++) {
                    int code = e4m3Encode(v[i] / scale);
                    codes.segment().set(ValueLayout.JAVA_BYTE, i, (byte) code);
                    meant.setFloat(i, (float) ((double) e4m3(code) * scale));
                }
                tensors.put(module + ".weight", codes);
                tensors.put(module + ".weight_scale", scalar(scale));
                tensors.put(module + ".input_scale", scalar(0.0123f));
            }
            case NVFP4 -> {
                float amax = 0;
                for (float x : v) amax = Math.max(amax, Math.abs(x));
                float scale2 = amax / (6f * 448f);
                int blocks = cols / 16;
                byte[] packed = new byte[rows * cols / 2];
                Tensor bs = arena.allocateTensor(DType.F8_E4M3, rows, blocks);
                for (int r = 0; r < rows; r++) {
                    for (int b = 0; b < blocks; b++) {
                        float bmax = 0;
                        for (int j = 0; j < 16; j++) bmax = Math.max(bmax, Math.abs(v[r * cols + b * 16 + j]));
                        int sc = e4m3Encode(bmax / (6f * scale2));
                        bs.segment().set(ValueLayout.JAVA_BYTE, (long) r * blocks + b, (byte) sc);
                        float s = e4m3(sc);
                        for (int j = 0; j < 16; j++) {
                            int i = r * cols + b * 16 + j;
                            int q = s > 0 ? e2m1Encode(v[i] / (s * scale2)) : 0;
                            packed[i / 2] |= (byte) ((j & 1) != 0 ? q << 4 : q);
                            meant.setFloat(i, (float) (E2M1[q & 7] * ((q & 8) != 0 ? -1.0 : 1.0) * s * scale2));
                        }
                    }
                }
                Tensor codes = arena.allocateTensor(DType.U8, rows, cols / 2);
                codes.segment().copyFrom(java.lang.foreign.MemorySegment.ofArray(packed));
                tensors.put(module + ".weight", codes);
                tensors.put(module + ".weight_scale", bs);
                tensors.put(module + ".weight_scale_2", scalar(scale2));
                tensors.put(module + ".input_scale", scalar(0.0045f));
            }
        }
        return meant;
    }

    private Tensor scalar(float v) {
        Tensor t = arena.allocateTensor(DType.F32, 1);
        t.setFloat(0, v);
        return t;
    }

    private static final double[] E2M1 = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

    /** OCP e4m3 (FN) value of a byte. */
    static float e4m3(int code) {
        int sign = (code >> 7) & 1, exp = (code >> 3) & 0xF, man = code & 7;
        if (exp == 0xF && man == 7) return Float.NaN;
        float v = exp == 0 ? Math.scalb((float) man, -9) : Math.scalb((float) (8 + man), exp - 10);
        return sign != 0 ? -v : v;
    }

    /** Nearest finite e4m3 (ties to the even code). */
    static int e4m3Encode(float v) {
        float a = Math.abs(v);
        int best = 0;
        float bestD = Float.POSITIVE_INFINITY;
        for (int c = 0; c < 127; c++) {
            float dd = Math.abs(e4m3(c) - a);
            if (dd < bestD || (dd == bestD && (c & 1) == 0)) {
                bestD = dd;
                best = c;
            }
        }
        return best | (v < 0 ? 0x80 : 0);
    }

    static int e2m1Encode(float v) {
        double a = Math.abs(v);
        int best = 0;
        for (int c = 1; c < 8; c++) if (Math.abs(E2M1[c] - a) < Math.abs(E2M1[best] - a)) best = c;
        return best | (v < 0 && best != 0 ? 8 : 0);
    }

    private String name(String module) {
        return sentinelNames ? module + ".\u0000backbone.pt_name_sentinel" : module;
    }

    /** "quant_algo": ... members: one algo with exclusions, or MIXED_PRECISION with a per-module map. */
    private Map<String, Object> quantMembers(String excludeKey) {
        Map<String, Object> q = new LinkedHashMap<>();
        if (quantized.isEmpty()) return q;
        boolean mixed = quantized.values().stream().distinct().count() > 1;
        if (!mixed) {
            String algo = quantized.values().iterator().next();
            q.put("quant_algo", algo);
            if (algo.equals("NVFP4")) q.put("group_size", 16L);
            List<Object> excluded = new ArrayList<>(List.of("lm_head"));
            for (String u : unquantized) excluded.add(name(u));
            q.put(excludeKey, excluded);
        } else {
            q.put("quant_algo", "MIXED_PRECISION");
            Map<String, Object> layers = new LinkedHashMap<>();
            for (Map.Entry<String, String> e : quantized.entrySet()) {
                Map<String, Object> algo = new LinkedHashMap<>();
                algo.put("quant_algo", e.getValue());
                if (e.getValue().equals("NVFP4")) algo.put("group_size", 16L);
                layers.put(name(e.getKey()), algo);
            }
            q.put("quantized_layers", layers);
        }
        return q;
    }

    /**
     * Writes config.json (hf style keys of {@code c}, mlp_hidden_act {@code act}), the
     * quantization description (hf_quant_config.json when {@code inHf}, config.json's
     * quantization_config when {@code inConfig}) and model.safetensors.
     */
    void write(Path dir, MoeConfig c, String act, boolean inHf, boolean inConfig) throws IOException {
        Files.createDirectories(dir);
        StringBuilder cfg = new StringBuilder("{\"architectures\": [\"NemotronHForCausalLM\"], \"model_type\": \"nemotron_h\"");
        cfg.append(", \"hidden_size\": ").append(c.hiddenSize())
                .append(", \"moe_latent_size\": ").append(c.isLatent() ? String.valueOf(c.latentSize()) : "null")
                .append(", \"n_routed_experts\": ").append(c.numExperts())
                .append(", \"num_experts_per_tok\": ").append(c.topK())
                .append(", \"moe_intermediate_size\": ").append(c.intermediateSize())
                .append(", \"moe_shared_expert_intermediate_size\": ").append(c.sharedIntermediateSize())
                .append(", \"routed_scaling_factor\": ").append(c.routedScalingFactor())
                .append(", \"norm_topk_prob\": ").append(c.normTopkProb())
                .append(", \"scoring_func\": \"").append(c.scoring() == Scoring.SOFTMAX ? "softmax" : "sigmoid").append('"')
                .append(", \"mlp_hidden_act\": \"").append(act).append("\", \"n_group\": 1");
        for (String m : extraConfig) cfg.append(", ").append(m);
        Map<String, Object> q = quantMembers("ignore");
        if (inConfig && !q.isEmpty()) {
            Map<String, Object> qc = new LinkedHashMap<>();
            qc.put("quant_method", "modelopt");
            qc.putAll(q);
            cfg.append(", \"quantization_config\": ").append(dev.latentmoe.memory.io.Json.write(qc));
        }
        Files.writeString(dir.resolve("config.json"), cfg.append('}').toString());
        Files.deleteIfExists(dir.resolve("hf_quant_config.json"));
        Map<String, Object> hq = quantMembers("exclude_modules");
        if (inHf && !hq.isEmpty()) {
            Map<String, Object> root = new LinkedHashMap<>();
            root.put("producer", Map.of("name", "modelopt", "version", "0.47.0"));
            root.put("quantization", hq);
            Files.writeString(dir.resolve("hf_quant_config.json"), dev.latentmoe.memory.io.Json.write(root));
        }
        SafeTensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
    }
}
