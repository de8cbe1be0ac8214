package dev.latentmoe.bench.gpu;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.io.Json;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.IsoVariants;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What of {@code bench --iso --backend cuda} is testable without a GPU: the variants, arguments, tables, JSON, the no-GPU failure. */
class CudaIsoCommandTest {

    private static MoeConfig standard(int d, int n, int k) {
        return new MoeConfig(d, 0, n, k, 2688, 5376, 5.0f, true, Activation.RELU2, Scoring.SIGMOID);
    }

    @Test
    void defaultVariantsAreTheIsoCostSetAtSuperWidths() {
        CudaIsoCommand.Options o = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend", "cuda"});
        assertEquals(CudaIsoCommand.DEFAULT_PRESET, o.preset());
        assertEquals(4, o.alpha());
        List<IsoVariants.Variant> vs = o.variants();
        assertEquals(List.of("standard", "l-MoE_eff", "l-MoE_acc"), vs.stream().map(IsoVariants.Variant::name).toList());
        MoeConfig std = vs.get(0).config(), eff = vs.get(1).config(), acc = vs.get(2).config();
        assertEquals(List.of(4096, 0, 128, 8), List.of(std.hiddenSize(), std.latentSize(), std.numExperts(), std.topK()));
        assertEquals(List.of(4096, 1024, 512, 8), List.of(eff.hiddenSize(), eff.latentSize(), eff.numExperts(), eff.topK()));
        assertEquals(List.of(4096, 1024, 512, 32), List.of(acc.hiddenSize(), acc.latentSize(), acc.numExperts(), acc.topK()));
        for (IsoVariants.Variant v : vs) {
            assertEquals(2688, v.config().intermediateSize());
            assertEquals(5376, v.config().sharedIntermediateSize());
            // 128 experts x (up + down) x 4096 x 2688 x 2 bytes, the same for all three
            assertEquals(128L * 2 * 4096 * 2688 * 2, v.routedWeightBytes(2), v.name());
        }
        // per token: eff reads 1/α of the standard's expert bytes, acc as many as the standard
        assertEquals(std.topK() * std.expertWeightBytes(2), 4 * eff.topK() * eff.expertWeightBytes(2));
        assertEquals(std.topK() * std.expertWeightBytes(2), acc.topK() * acc.expertWeightBytes(2));
        assertEquals(List.of(1, 4, 16, 64, 256, 1024, 4096), o.tokens());
        assertEquals("bench/out/iso-cuda.json", o.json());
        assertTrue(o.ceilings());
        String h = CudaIsoCommand.header(o);
        assertTrue(h.contains("α = d/ℓ = 4096/1024 = 4") && h.contains("routed weight bytes equal: 5637144576 B"), h);
    }

    @Test
    void presetsGiveEqualRoutedBytesWithinTheLibraryLimits() {
        for (String p : List.of("super", "nano", "super/2", "super/4", "nano/2")) {
            CudaIsoCommand.Options o = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend=cuda", "--preset", p});
            long bytes = o.variants().get(0).routedWeightBytes(2);
            MoeConfig base = o.base().config();
            for (IsoVariants.Variant v : o.variants()) {
                assertEquals(bytes, v.routedWeightBytes(2), p + " " + v.name());
                assertTrue(v.config().topK() <= MoeConfig.MAX_TOP_K && v.config().numExperts() <= MoeConfig.MAX_EXPERTS, p);
            }
            assertEquals(o.alpha() * base.numExperts(), o.variants().get(1).config().numExperts(), p);
            assertEquals(base.topK(), o.variants().get(1).config().topK(), p);
            assertEquals(o.alpha() * base.topK(), o.variants().get(2).config().topK(), p + ": acc K is αK, not clamped");
        }
        // super: the base is Super's N/α = 128 and K rounded to 22/4 -> 6; acc is N 512, K 24
        CudaIsoCommand.Options s = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend", "cuda", "--preset", "super"});
        assertEquals(512, s.variants().get(2).config().numExperts());
        assertEquals(24, s.variants().get(2).config().topK());
    }

    @Test
    void shapesOutsideTheLibraryLimitsAreRefusedNotClamped() {
        IllegalArgumentException k = assertThrows(IllegalArgumentException.class,
                () -> IsoVariants.checked(new IsoVariants.Base(standard(4096, 128, 9), 1024)));
        assertTrue(k.getMessage().contains("K′ = αK = 4·9 = 36") && k.getMessage().contains("32"), k.getMessage());
        IllegalArgumentException n = assertThrows(IllegalArgumentException.class,
                () -> IsoVariants.checked(new IsoVariants.Base(standard(4096, 1024, 4), 1024)));
        assertTrue(n.getMessage().contains("4096 experts") && n.getMessage().contains("2048"), n.getMessage());
        assertThrows(IllegalArgumentException.class, () -> IsoVariants.checked(new IsoVariants.Base(standard(4096, 64, 4), 1000)));
        assertThrows(IllegalArgumentException.class, () -> IsoVariants.checked(new IsoVariants.Base(standard(4096, 64, 4), 4096)));
    }

    @Test
    void badUsageIsOneClearLine() {
        String[][] bad = {
                {"bench", "--iso", "--backend", "cuda", "--tokens", "0"},
                {"bench", "--iso", "--backend", "cuda", "--tokens", "a"},
                {"bench", "--iso", "--backend", "cuda", "--reps", "0"},
                {"bench", "--iso", "--backend", "cuda", "--inputs", "0"},
                {"bench", "--iso", "--backend", "cuda", "--threads", "2"},
                {"bench", "--iso", "--backend", "cuda", "--preset", "nope"},
                {"bench", "--iso", "--backend", "cuda", "--gemm-size", "100"},
                {"bench", "--iso", "--backend", "cuda", "--json"},
                {"bench", "--iso", "--backend", "cuda", "--json", " "},
        };
        for (String[] argv : bad) {
            Args.UsageException e = assertThrows(Args.UsageException.class, () -> CudaIsoCommand.parse(argv), String.join(" ", argv));
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void options() {
        CudaIsoCommand.Options o = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend", "cuda", "--tokens", "2,8",
                "--json", "x.json", "--reps", "5", "--warmup", "0", "--inputs", "2", "--seed", "7", "--no-ceilings",
                "--copy-mib", "64", "--gemm-size", "1024"});
        assertEquals(List.of(2, 8), o.tokens());
        assertEquals("x.json", o.json());
        assertEquals(5, o.reps());
        assertEquals(0, o.warmup());
        assertEquals(2, o.inputs());
        assertEquals(7, o.seed());
        assertFalse(o.ceilings());
        assertEquals(64L << 20, o.copyBytes());
        assertEquals(1024, o.gemmSize());
        assertTrue(o.weightsNote().contains("generated on the GPU") && o.weightsNote().contains("seed 7"), o.weightsNote());
    }

    private static List<CudaIsoCommand.Measured> measured(CudaIsoCommand.Options o) {
        List<IsoVariants.Variant> vs = o.variants();
        return List.of(
                new CudaIsoCommand.Measured(vs.get(0), 5_800_000_000L, List.of(
                        new CudaIsoCommand.Row("standard", 1, "decode", 0.20, 0.19, 200, 445_000_000L, 1.9e8, 8),
                        new CudaIsoCommand.Row("standard", 4096, "sorted", 4.0, 3.9, 60, 5_900_000_000L, 1.9e12, 128))),
                new CudaIsoCommand.Measured(vs.get(1), 5_810_000_000L, List.of(
                        new CudaIsoCommand.Row("l-MoE_eff", 1, "decode", 0.05, 0.05, 200, 190_000_000L, 0.9e8, 8),
                        new CudaIsoCommand.Row("l-MoE_eff", 4096, "sorted", 1.6, 1.5, 100, 5_810_000_000L, 0.7e12, 512))),
                new CudaIsoCommand.Measured(vs.get(2), 5_810_000_000L, List.of(
                        new CudaIsoCommand.Row("l-MoE_acc", 1, "decode", 0.18, 0.17, 200, 450_000_000L, 1.9e8, 32),
                        new CudaIsoCommand.Row("l-MoE_acc", 4096, "sorted", 4.4, 4.3, 60, 5_810_000_000L, 1.9e12, 512))));
    }

    @Test
    void tablesShowEveryVariantAndTheRatios() {
        CudaIsoCommand.Options o = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend", "cuda"});
        List<CudaIsoCommand.Measured> m = measured(o);
        String side = CudaIsoCommand.sideBySide(m);
        assertTrue(side.contains("standard_ms") && side.contains("l-MoE_eff_ms") && side.contains("l-MoE_acc_ms"), side);
        assertTrue(side.contains("eff/std") && side.contains("acc/std"), side);
        assertTrue(side.contains("0.25x") && side.contains("0.90x") && side.contains("0.40x") && side.contains("1.10x"), side);
        String t = CudaIsoCommand.table(m, new GpuCeilings("dev", 4000, 1L << 30, 700, "x", List.of()));
        assertTrue(t.contains("decode") && t.contains("sorted") && t.contains("%copy") && t.contains("%gemm"), t);
        // standard T=4096: 5.9 GB in 4 ms = 1475 GB/s = 36.9% of 4000; 1.9 TFLOP in 4 ms = 475 TFLOP/s = 67.9% of 700
        assertTrue(t.contains("1475.0") && t.contains("36.9%") && t.contains("475.00") && t.contains("67.9%"), t);
        String noCeil = CudaIsoCommand.table(m, new GpuCeilings("dev", Double.NaN, 0, Double.NaN, "n/a", List.of()));
        assertFalse(noCeil.contains("NaN"), noCeil);
    }

    @Test
    void jsonHasOneRowPerVariantAndTokenCount() {
        CudaIsoCommand.Options o = CudaIsoCommand.parse(new String[] {"bench", "--iso", "--backend", "cuda"});
        GpuCeilings c = new GpuCeilings("NVIDIA H200 (132 SMs, 139.8 GiB)", 4000, 1L << 30,
                Double.NaN, "unavailable: \"x\"", List.of());
        List<?> list = assertInstanceOf(List.class, Json.parse(Json.writeReport(CudaIsoCommand.json(measured(o), o, c))));
        assertEquals(6, list.size());
        Map<?, ?> acc = assertInstanceOf(Map.class, list.get(5));
        for (String k : List.of("variant", "tokens", "path", "median_ms", "min_ms", "calls", "bytes", "flops", "achieved_gbps",
                "tflops", "distinct_experts", "ratio_to_standard", "d", "l", "N", "K", "m", "shared", "alpha",
                "routed_weight_bytes", "weight_bytes", "device_weight_bytes", "preset", "backend", "dtype", "device", "weights",
                "roofline_gbps", "ratio", "d2d_copy_gbps", "d2d_copy_bytes", "gemm_tflops", "tflops_ratio", "gemm_note")) {
            assertTrue(acc.containsKey(k), "key " + k + " in " + acc);
        }
        assertEquals("l-MoE_acc", acc.get("variant"));
        assertEquals(4096, ((Number) acc.get("tokens")).intValue());
        assertEquals(32, ((Number) acc.get("K")).intValue());
        assertEquals(512, ((Number) acc.get("N")).intValue());
        assertEquals(1024, ((Number) acc.get("l")).intValue());
        assertEquals(4, ((Number) acc.get("alpha")).intValue());
        assertEquals(1.1, ((Number) acc.get("ratio_to_standard")).doubleValue(), 1e-9);
        assertEquals(5_637_144_576L, ((Number) acc.get("routed_weight_bytes")).longValue());
        // acc: + bf16 router 512 x 4096, f32 bias, latent projections 2 x 4096 x 1024, shared 2 x 4096 x 5376
        assertEquals(5_637_144_576L + 512L * 4096 * 2 + 512 * 4 + 2L * 4096 * 1024 * 2 + 2L * 4096 * 5376 * 2,
                ((Number) acc.get("weight_bytes")).longValue());
        assertEquals("cuda", acc.get("backend"));
        assertEquals("gpu-default", acc.get("preset"));
        assertEquals("unavailable: \"x\"", acc.get("gemm_note"));
        assertNull(acc.get("gemm_tflops"));
        assertNull(acc.get("tflops_ratio"));
        Map<?, ?> std = assertInstanceOf(Map.class, list.get(0));
        assertEquals(1.0, ((Number) std.get("ratio_to_standard")).doubleValue(), 1e-12);
        assertEquals("decode", std.get("path"));
        assertEquals(0, ((Number) std.get("l")).intValue());
    }

    @Test
    void withoutAGpuItFailsWithOneLineBeforeAllocating() {
        Assumptions.assumeFalse(Backends.get("cuda").isAvailable(), "a GPU is here");
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaIsoCommand.run(new String[] {"bench", "--iso", "--backend", "cuda", "--tokens", "1"}));
        assertTrue(e.getMessage().startsWith("bench --iso --backend cuda needs a GPU: CUDA backend unavailable: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
