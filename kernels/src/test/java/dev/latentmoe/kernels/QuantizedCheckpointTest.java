package dev.latentmoe.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.kernels.TestCheckpoint.Fmt;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Json;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * FP8, NVFP4 and mixed ModelOpt checkpoints through {@link MoeLayer#fromCheckpoint}: written by
 * {@link TestCheckpoint}'s own quantizer (seeded, odd sizes, NVFP4 blocks of 16) and by ModelOpt
 * 0.47 itself (the committed fixtures under resources/.../modelopt, a tiny NemotronH with layers
 * M, E, *, E... : see their README). Each forward must match a float64 reference on the values the
 * writer meant to <= 1e-5 relative, with the weights used in place; every malformed quantized
 * checkpoint raises a {@link CheckpointException} naming the tensor.
 */
@ExtendWith(NoLeaks.class)
class QuantizedCheckpointTest {

    private static void forwardMatches(MoeLayer layer, MoeWeights meant, long tokens, long seed) {
        try (HostArena a = HostArena.shared("x")) {
            Tensor x = Cases.input(a, tokens, layer.config().hiddenSize(), seed);
            Tensor y = a.allocateTensor(DType.F32, tokens, layer.config().hiddenSize()).fill(Float.NaN);
            Routing r = Routing.allocate(a, tokens, layer.config().topK());
            layer.forward(x, y, r);
            LayerForwardTest.assertMatches(meant, x, y, r, 1e-5, 1e-5);
        }
    }

    private static CheckpointException refused(Path dir, int layer, String... fragments) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> MoeLayer.fromCheckpoint(dir, layer, Backends.cpu()));
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "'" + f + "' not in: " + e.getMessage());
        return e;
    }

    @Test
    void fp8OddSizesUsedInPlace(@TempDir Path dir) throws IOException {
        MoeConfig c = Cases.cfg(67, 29, 7, 3, 45, 37, 2.5f, Activation.RELU2);
        long seed = Cases.seed("fp8 checkpoint");
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            MoeWeights meant = ck.addLayer(c, 2, Fmt.BF16, Fmt.FP8, Fmt.FP8, Fmt.FP8, seed);
            ck.write(dir, c, "relu2", true, false);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 2, Backends.cpu())) {
                assertEquals(c, layer.config());
                assertEquals(WeightFormat.FP8_E4M3, layer.weights().expertFormat());
                assertEquals(WeightFormat.FP8_E4M3, layer.weights().sharedUp().format());
                assertEquals(WeightFormat.FP8_E4M3, layer.weights().latentDown().format());
                assertEquals(WeightFormat.BF16, layer.weights().gate().format());
                assertEquals(0.0123f, layer.weights().expertUp(0).inputScale());
                CheckpointMemory mem = layer.checkpointMemory().orElseThrow();
                System.out.println("fp8 layer: " + mem);
                assertEquals(mem.weightBytes(), mem.inPlaceBytes() + mem.convertedBytes());
                assertTrue(mem.convertedBytes() == 0, "FP8 matrices are used in place: " + mem);
                // The Java views are the loader's bytes: they decode to what the writer meant.
                assertArrayEquals(meant.expertDown(3).data().toFloatArray(), layer.weights().expertDown(3).dequantized());
                forwardMatches(layer, meant, 1, seed);
                forwardMatches(layer, meant, 29, seed + 1);
            }
        }
    }

    @Test
    void nvfp4FromConfigJsonWithSentinelNames(@TempDir Path dir) throws IOException {
        MoeConfig c = Cases.cfg(80, 48, 6, 2, 112, 144, 2.5f, Activation.RELU2);
        long seed = Cases.seed("nvfp4 checkpoint");
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            ck.sentinelNames = true;
            MoeWeights meant = ck.addLayer(c, 0, Fmt.F32, Fmt.NVFP4, Fmt.NVFP4, Fmt.NVFP4, seed);
            ck.write(dir, c, "relu2", false, true);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu())) {
                assertEquals(WeightFormat.NVFP4, layer.weights().expertFormat());
                assertEquals(DType.F8_E4M3, layer.weights().expertUp(0).blockScales().dtype());
                forwardMatches(layer, meant, 1, seed);
                forwardMatches(layer, meant, 40, seed + 2);
            }
        }
    }

    @Test
    void mixedLayersDifferFromEachOther(@TempDir Path dir) throws IOException {
        // layer 1: BF16 latents, NVFP4 experts, FP8 shared expert; layer 3: FP8 experts, BF16 rest
        MoeConfig c = Cases.cfg(67, 48, 5, 2, 80, 37, 1.5f, Activation.RELU2);
        long seed = Cases.seed("mixed checkpoint");
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            MoeWeights meant1 = ck.addLayer(c, 1, Fmt.BF16, Fmt.NVFP4, Fmt.FP8, Fmt.BF16, seed);
            MoeWeights meant3 = ck.addLayer(c, 3, Fmt.BF16, Fmt.FP8, Fmt.BF16, Fmt.BF16, seed + 7);
            ck.write(dir, c, "relu2", true, true);
            try (MoeLayer l1 = MoeLayer.fromCheckpoint(dir, 1, Backends.cpu());
                 MoeLayer l3 = MoeLayer.fromCheckpoint(dir, 3, Backends.cpu())) {
                assertEquals(WeightFormat.NVFP4, l1.weights().expertFormat());
                assertEquals(WeightFormat.FP8_E4M3, l1.weights().sharedDown().format());
                assertEquals(WeightFormat.BF16, l1.weights().latentUp().format());
                assertEquals(WeightFormat.FP8_E4M3, l3.weights().expertFormat());
                assertEquals(WeightFormat.BF16, l3.weights().sharedUp().format());
                forwardMatches(l1, meant1, 17, seed);
                forwardMatches(l3, meant3, 17, seed);
            }
        }
    }

    @Test
    void gatedFp8ExpertsWithNonGatedSiluAndSwiglu(@TempDir Path dir) throws IOException {
        long seed = Cases.seed("gated fp8");
        MoeConfig swiglu = Cases.cfg(64, 32, 5, 2, 48, 32, 1.0f, Activation.SWIGLU);
        MoeConfig silu = swiglu.withActivation(Activation.SILU);
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            MoeWeights meant = ck.addLayer(swiglu, 0, Fmt.BF16, Fmt.FP8, Fmt.NVFP4, Fmt.BF16, seed);
            ck.write(dir.resolve("swiglu"), swiglu, "silu", true, false);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir.resolve("swiglu"), 0, Backends.cpu())) {
                assertEquals(Activation.SWIGLU, layer.config().activation(), "silu with gate_proj tensors is SwiGLU");
                forwardMatches(layer, meant, 9, seed);
            }
            TestCheckpoint ck2 = new TestCheckpoint(w);
            MoeWeights meant2 = ck2.addLayer(silu, 0, Fmt.BF16, Fmt.FP8, Fmt.FP8, Fmt.BF16, seed);
            ck2.write(dir.resolve("silu"), silu, "silu", true, false);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir.resolve("silu"), 0, Backends.cpu())) {
                assertEquals(Activation.SILU, layer.config().activation(), "nemotron_h silu without gate_proj is non-gated");
                forwardMatches(layer, meant2, 9, seed);
            }
        }
    }

    @Test
    void malformedQuantizedCheckpointsNameTheTensor(@TempDir Path dir) throws IOException {
        MoeConfig c = Cases.cfg(64, 32, 4, 2, 48, 32, 1.0f, Activation.RELU2);
        String p = "backbone.layers.0.mixer.";
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            ck.addLayer(c, 0, Fmt.BF16, Fmt.NVFP4, Fmt.FP8, Fmt.BF16, 5);
            ck.write(dir, c, "relu2", true, false);
            MoeLayer.fromCheckpoint(dir, 0, Backends.cpu()).close();
            Path st = dir.resolve("model.safetensors");
            Map<String, Tensor> good = new LinkedHashMap<>(ck.tensors());

            Map<String, Tensor> t = new LinkedHashMap<>(good);
            t.remove(p + "shared_experts.up_proj.weight_scale");
            SafeTensorsWriter.write(st, t, Map.of());
            refused(dir, 0, "FP8 module " + p + "shared_experts.up_proj has no weight_scale");

            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, 0f, -1f}) {
                t = new LinkedHashMap<>(good);
                Tensor s = w.allocateTensor(DType.F32, 1);
                s.setFloat(0, bad);
                t.put(p + "shared_experts.down_proj.weight_scale", s);
                SafeTensorsWriter.write(st, t, Map.of());
                refused(dir, 0, p + "shared_experts.down_proj.weight_scale");
            }
            t = new LinkedHashMap<>(good);
            t.put(p + "experts.1.up_proj.weight", w.allocateTensor(DType.U8, 48, 8).fill(0));
            SafeTensorsWriter.write(st, t, Map.of());
            refused(dir, 0, p + "experts.1.up_proj.weight has packed width 8", "in/2 = 16");

            t = new LinkedHashMap<>(good);
            t.put(p + "experts.2.down_proj.weight_scale", w.allocateTensor(DType.F32, 32, 3).fill(1));
            SafeTensorsWriter.write(st, t, Map.of());
            refused(dir, 0, p + "experts.2.down_proj.weight_scale is F32", "F8_E4M3");

            t = new LinkedHashMap<>(good);
            t.put(p + "experts.2.down_proj.weight_scale", w.allocateTensor(DType.F8_E4M3, 32, 2).fill(1));
            SafeTensorsWriter.write(st, t, Map.of());
            refused(dir, 0, p + "experts.2.down_proj.weight_scale has shape [32, 2], expected [32, 3]");

            SafeTensorsWriter.write(st, good, Map.of());
            Path hq = dir.resolve("hf_quant_config.json");
            String hqText = Files.readString(hq);
            Files.writeString(hq, hqText.replace("MIXED_PRECISION", "W4A8_AWQ"));
            assertTrue(refused(dir, 0, "quant_algo 'W4A8_AWQ' is not supported").isUnsupported());
            Files.writeString(hq, hqText.replace("\"quantized_layers\":{",
                    "\"quantized_layers\":{\"backbone.layers.0.mixer.experts.9\":{\"quant_algo\":\"FP8\"},"));
            refused(dir, 0, "quantized_layers names module 'backbone.layers.0.mixer.experts.9'");
            Files.delete(hq);
            refused(dir, 0, p + "experts.0.up_proj.weight is U8 but the checkpoint has no quantization config");
        }
    }

    // ---------------------------------------------------------------- ModelOpt 0.47's own exports

    private static Path fixture(String name, Path tmp) throws IOException {
        Path src;
        try {
            src = Path.of(QuantizedCheckpointTest.class.getResource("modelopt/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
        Path dst = tmp.resolve(name);
        Files.createDirectories(dst);
        for (String f : new String[] {"config.json", "hf_quant_config.json", "model.safetensors"}) {
            Files.copy(src.resolve(f), dst.resolve(f));
        }
        return dst;
    }

    /** Layer {@code layer}'s weights decoded from the file's raw bytes by this test (not the library). */
    @SuppressWarnings("unchecked")
    private static MoeWeights decodeRaw(Path file, MoeConfig c, int layer, HostArena arena) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        Map<String, Object> header = Json.parseObject(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));
        String p = "backbone.layers." + layer + ".mixer.";
        java.util.function.Function<String, ByteBuffer> raw = name -> {
            Map<String, Object> e = (Map<String, Object>) header.get(name);
            if (e == null) return null;
            List<Object> offs = (List<Object>) e.get("data_offsets");
            int b = (int) (8 + n + (Long) offs.get(0)), end = (int) (8 + n + (Long) offs.get(1));
            return ByteBuffer.wrap(bytes, b, end - b).slice().order(ByteOrder.LITTLE_ENDIAN);
        };
        java.util.function.Function<String, String> dtype = name -> (String) ((Map<String, Object>) header.get(name)).get("dtype");
        java.util.function.BiFunction<String, int[], Tensor> mat = (module, shape) -> {
            int rows = shape[0], cols = shape[1];
            Tensor out = arena.allocateTensor(DType.F32, rows, cols);
            ByteBuffer w = raw.apply(module + ".weight");
            switch (dtype.apply(module + ".weight")) {
                case "BF16" -> {
                    for (int i = 0; i < rows * cols; i++) out.setFloat(i, Float.intBitsToFloat((w.getShort(2 * i) & 0xFFFF) << 16));
                }
                case "F8_E4M3" -> {
                    float s = raw.apply(module + ".weight_scale").getFloat(0);
                    for (int i = 0; i < rows * cols; i++) out.setFloat(i, (float) ((double) TestCheckpoint.e4m3(w.get(i) & 0xFF) * s));
                }
                case "U8" -> {
                    ByteBuffer bs = raw.apply(module + ".weight_scale");
                    float s2 = raw.apply(module + ".weight_scale_2").getFloat(0);
                    double[] e2m1 = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
                    for (int r = 0; r < rows; r++) {
                        for (int k = 0; k < cols; k++) {
                            int b = w.get(r * (cols / 2) + k / 2) & 0xFF;
                            int code = (k & 1) == 0 ? b & 0xF : b >>> 4;   // even column: low nibble
                            double v = e2m1[code & 7] * ((code & 8) != 0 ? -1 : 1);
                            float block = TestCheckpoint.e4m3(bs.get(r * (cols / 16) + k / 16) & 0xFF);
                            out.setFloat((long) r * cols + k, (float) (v * block * s2));
                        }
                    }
                }
                default -> throw new AssertionError(module + ": " + dtype.apply(module + ".weight"));
            }
            return out;
        };
        int d = c.hiddenSize(), l = c.latentSize(), ne = c.numExperts(), m = c.intermediateSize(), ms = c.sharedIntermediateSize();
        Tensor gate = mat.apply(p + "gate", new int[] {ne, d});
        Tensor bias = arena.allocateTensor(DType.F32, ne);
        ByteBuffer bb = raw.apply(p + "gate.e_score_correction_bias");
        for (int e = 0; e < ne; e++) bias.setFloat(e, bb.getFloat(4 * e));
        Tensor[] eu = new Tensor[ne], ed = new Tensor[ne];
        for (int e = 0; e < ne; e++) {
            eu[e] = mat.apply(p + "experts." + e + ".up_proj", new int[] {m, l});
            ed[e] = mat.apply(p + "experts." + e + ".down_proj", new int[] {l, m});
        }
        return new MoeWeights(c, gate, bias, mat.apply(p + "fc1_latent_proj", new int[] {l, d}),
                mat.apply(p + "fc2_latent_proj", new int[] {d, l}), eu, null, ed,
                mat.apply(p + "shared_experts.up_proj", new int[] {ms, d}), null,
                mat.apply(p + "shared_experts.down_proj", new int[] {d, ms}));
    }

    @Test
    void modelOptExportsLoadAndMatchTheirDequantizedWeights(@TempDir Path tmp) throws IOException {
        MoeConfig c = Cases.cfg(80, 48, 6, 2, 112, 144, 2.5f, Activation.RELU2);
        long seed = Cases.seed("modelopt fixtures");
        // fp8: FP8 experts and shared expert, BF16 latents; nvfp4: NVFP4 experts and shared, BF16
        // latents; mixed: layer 0 all FP8 (latents too), layer 2 NVFP4, layer 4 BF16 experts + NVFP4 shared.
        Map<String, WeightFormat[]> expect = Map.of(
                "fp8-latent", new WeightFormat[] {WeightFormat.FP8_E4M3, WeightFormat.FP8_E4M3, WeightFormat.FP8_E4M3},
                "nvfp4-latent", new WeightFormat[] {WeightFormat.NVFP4, WeightFormat.NVFP4, WeightFormat.NVFP4},
                "mixed-latent", new WeightFormat[] {WeightFormat.FP8_E4M3, WeightFormat.NVFP4, WeightFormat.BF16});
        for (Map.Entry<String, WeightFormat[]> fx : expect.entrySet()) {
            Path dir = fixture(fx.getKey(), tmp);
            int[] moe = {0, 2, 4};
            for (int i = 0; i < moe.length; i++) {
                try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, moe[i], Backends.cpu());
                     HostArena arena = HostArena.shared("decoded")) {
                    assertEquals(c, layer.config(), fx.getKey());
                    assertEquals(fx.getValue()[i], layer.weights().expertFormat(), fx.getKey() + " layer " + moe[i]);
                    System.out.println(fx.getKey() + " layer " + moe[i] + ": experts " + layer.weights().expertFormat()
                            + ", shared " + layer.weights().sharedUp().format() + ", latent "
                            + layer.weights().latentDown().format() + ", " + layer.checkpointMemory().orElseThrow());
                    forwardMatches(layer, decodeRaw(dir.resolve("model.safetensors"), c, moe[i], arena), 7, seed + i);
                }
            }
            refused(dir, 1, "layer 1 is a mamba layer, not a MoE layer");
            refused(dir, 3, "layer 3 is an attention layer, not a MoE layer");
        }
    }
}
