package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.nvidia.cublasLt_h;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Json;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.WeightCache;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Stats;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What of {@code bench --backend cuda} is testable without a GPU: routing, arguments, JSON, the no-GPU failure. */
class CudaBenchCommandTest {

    @Test
    void defaults() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda"});
        assertEquals("nemotron3-super", o.preset());
        assertEquals(MoeConfig.preset("nemotron3-super"), o.config());
        assertEquals(List.of(1, 4, 16, 64, 256, 4096, 8192), o.tokens());
        assertNull(o.json());
        assertEquals(20, o.reps());
        assertTrue(o.ceilings());
        assertEquals(1L << 30, o.copyBytes());
        assertEquals(8192, o.gemmSize());
        assertEquals(List.of(4096, 8192), o.gemmShapeTokens(), "expert-shape GEMMs at the run's T >= 4096");
    }

    @Test
    void gemmShapeTokens() {
        assertEquals(List.of(4096, 8192), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--gemm-shape-tokens", "4096,8192"}).gemmShapeTokens());
        assertEquals(List.of(512, 16384), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--gemm-shape-tokens", "512, 16384"}).gemmShapeTokens());
        assertEquals(List.of(), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--gemm-shape-tokens", ""}).gemmShapeTokens(), "empty disables");
        assertEquals(List.of(), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--gemm-shape-tokens="}).gemmShapeTokens());
        // default: the T >= 4096 of --tokens, distinct, in order
        assertEquals(List.of(8192, 4096), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--tokens", "1,8192,64,4096,8192"}).gemmShapeTokens());
        assertEquals(List.of(), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--tokens", "1,4,4095"}).gemmShapeTokens());
        // with --input files (T unknown until read) the default is none
        assertEquals(List.of(), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--checkpoint", "ck",
                "--input", "x.npy"}).gemmShapeTokens());
        assertEquals(List.of(4096), CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--checkpoint", "ck",
                "--input", "x.npy", "--gemm-shape-tokens", "4096"}).gemmShapeTokens());
    }

    @Test
    void expertGemmShapesAndRates() {
        // Super: d 4096, ℓ 1024, K 22, m 2688
        GpuCeilings.ExpertGemm g = GpuCeilings.ExpertGemm.of(4096, MoeConfig.NEMOTRON3_SUPER, 1.0, 3.0, null);
        assertEquals(4096L * 22, g.rows());
        assertEquals(1024, g.width());
        assertEquals(2688, g.inter());
        double flops = 2.0 * 4096 * 22 * 1024 * 2688;
        assertEquals(flops, g.flopsEach(), 1.0);
        assertEquals(flops / 1e-3 / 1e12, g.fc1Tflops(), 1e-9);
        assertEquals(flops / 3e-3 / 1e12, g.fc2Tflops(), 1e-9);
        assertEquals(2 * flops / 4e-3 / 1e12, g.combinedTflops(), 1e-9);
        assertTrue(g.available());
        String line = GpuCeilings.expertGemmLine(g);
        assertTrue(line.contains("T=4096") && line.contains("90112x2688x1024") && line.contains("90112x1024x2688")
                && line.contains("combined") && !line.contains("\n"), line);
        // a standard MoE runs its experts at d
        GpuCeilings.ExpertGemm nano = GpuCeilings.ExpertGemm.of(8192, MoeConfig.NEMOTRON3_NANO, 1, 1, null);
        assertEquals(2688, nano.width());
        assertEquals(1856, nano.inter());
        assertEquals(8192L * 6, nano.rows());
        GpuCeilings.ExpertGemm na = GpuCeilings.ExpertGemm.of(4096, MoeConfig.NEMOTRON3_SUPER, Double.NaN, Double.NaN,
                "unavailable: libcublasLt.so.13 not found");
        assertFalse(na.available());
        assertTrue(GpuCeilings.expertGemmLine(na).contains("unavailable: libcublasLt.so.13 not found"));
    }

    @Test
    void expertShapeCeilingsTimeFc1AndFc2AtTheExpertShapes(@TempDir Path dir) throws Exception {
        List<long[]> calls = new ArrayList<>();
        GpuCeilings.GemmTimer fake = (m, n, k) -> {
            calls.add(new long[] {m, n, k});
            return n == 2688 ? 2.0 : 1.0; // FC1 (N = m) 2 ms, FC2 (N = ℓ) 1 ms
        };
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda"});
        List<GpuCeilings.ExpertGemm> g = CudaBenchCommand.expertShapeCeilings(o, fake);
        assertEquals(List.of(4096, 8192), g.stream().map(GpuCeilings.ExpertGemm::tokens).toList());
        // Super: K 22, ℓ 1024, m 2688; FC1 M x m x ℓ then FC2 M x ℓ x m, per T
        assertEquals(List.of(List.of(90112L, 2688L, 1024L), List.of(90112L, 1024L, 2688L),
                        List.of(180224L, 2688L, 1024L), List.of(180224L, 1024L, 2688L)),
                calls.stream().map(c -> List.of(c[0], c[1], c[2])).toList());
        GpuCeilings.ExpertGemm g0 = g.get(0);
        assertTrue(g0.available());
        assertNull(g0.note());
        assertEquals(2.0, g0.fc1Ms());
        assertEquals(1.0, g0.fc2Ms());
        double flops = 2.0 * 90112 * 1024 * 2688;
        assertEquals(flops / 2e-3 / 1e12, g0.fc1Tflops(), 1e-9);
        assertEquals(2 * flops / 3e-3 / 1e12, g0.combinedTflops(), 1e-9);

        // a failing GEMM (no cuBLASLt, out of memory, ...) is reported per T, never thrown
        List<GpuCeilings.ExpertGemm> na = CudaBenchCommand.expertShapeCeilings(o, (m, n, k) -> {
            throw new IllegalStateException("libcublasLt.so.13 not found\nsearched x");
        });
        assertEquals(2, na.size());
        for (GpuCeilings.ExpertGemm e : na) {
            assertFalse(e.available());
            assertEquals("unavailable: libcublasLt.so.13 not found searched x", e.note());
        }
        assertTrue(CudaBenchCommand.expertShapeCeilings(CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--gemm-shape-tokens", ""}), fake).isEmpty());

        // a checkpoint: the shape from its config.json (a standard MoE runs its experts at d)
        Files.writeString(dir.resolve("config.json"), WeightCache.configJson(MoeConfig.NEMOTRON3_NANO));
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {}}");
        calls.clear();
        List<GpuCeilings.ExpertGemm> ck = CudaBenchCommand.expertShapeCeilings(CudaBenchCommand.parse(new String[] {
                "bench", "--backend", "cuda", "--checkpoint", dir.toString(), "--gemm-shape-tokens", "4096"}), fake);
        assertEquals(1, ck.size());
        assertEquals(4096L * 6, ck.get(0).rows());
        assertEquals(2688, ck.get(0).width());
        assertEquals(1856, ck.get(0).inter());
        assertEquals(List.of(List.of(24576L, 1856L, 2688L), List.of(24576L, 2688L, 1856L)),
                calls.stream().map(c -> List.of(c[0], c[1], c[2])).toList());
        // an unreadable checkpoint: nothing measured, no exception (loading the weights fails later)
        assertTrue(CudaBenchCommand.expertShapeCeilings(CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda",
                "--checkpoint", dir.resolve("missing").toString(), "--gemm-shape-tokens", "4096"}), fake).isEmpty());
    }

    @Test
    void expertShapeCeilingsWithoutCublasLtAreReportedUnavailable() {
        Assumptions.assumeFalse(cublasLt_h.isAvailable(), "cuBLASLt is here");
        // the real timer: fails on the missing library before touching the (absent) stream
        List<GpuCeilings.ExpertGemm> g = CudaBenchCommand.expertShapeCeilings((dev.latentmoe.memory.cuda.CudaStream) null,
                CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda"}));
        assertEquals(2, g.size());
        for (GpuCeilings.ExpertGemm e : g) {
            assertFalse(e.available());
            assertTrue(e.note().startsWith("unavailable: ") && !e.note().contains("\n"), e.note());
        }
    }

    @Test
    void options() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--preset", "super/4",
                "--tokens", "2,8", "--json", "x.json", "--reps", "30", "--inputs", "2", "--no-ceilings", "--seed", "7",
                "--copy-mib", "64", "--gemm-size", "1024", "--dtype", "BF16"});
        assertEquals(Shapes.byName("super/4"), o.config());
        assertEquals(List.of(2, 8), o.tokens());
        assertEquals("x.json", o.json());
        assertEquals(30, o.reps());
        assertEquals(2, o.inputs());
        assertEquals(7, o.seed());
        assertFalse(o.ceilings());
        assertEquals(64L << 20, o.copyBytes());
        assertEquals(1024, o.gemmSize());
        assertEquals("bf16", o.dtype());
        assertFalse(o.w8a8());
        CudaBenchCommand.Options q = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--dtype", "FP8", "--w8a8"});
        assertEquals("fp8", q.dtype());
        assertTrue(q.w8a8());
        assertTrue(q.weightsNote().contains("fp8") && q.weightsNote().contains("W8A8"), q.weightsNote());
        assertEquals("nvfp4", CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--dtype", "nvfp4"}).dtype());
    }

    @Test
    void badUsageIsOneClearLine() {
        String[][] bad = {
                {"bench", "--backend", "cuda", "--dtype", "f32"},
                {"bench", "--backend", "cuda", "--dtype", "int4"},
                {"bench", "--backend", "cuda", "--dtype", "nvfp4", "--w8a8"},  // NVFP4 is weight-only on sm_90
                {"bench", "--backend", "cuda", "--w8a8"},
                {"bench", "--backend", "cuda", "--checkpoint", "ckpt", "--dtype", "fp8"},
                {"bench", "--backend", "cuda", "--tokens", "0"},
                {"bench", "--backend", "cuda", "--tokens", "a,b"},
                {"bench", "--backend", "cuda", "--reps", "0"},
                {"bench", "--backend", "cuda", "--threads", "4"},
                {"bench", "--backend", "cuda", "--preset", "nope"},
                {"bench", "--backend", "cuda", "--gemm-size", "100"},
                {"bench", "--backend", "cuda", "--json"},
                {"bench", "--backend", "cuda", "--gemm-shape-tokens", "0"},
                {"bench", "--backend", "cuda", "--gemm-shape-tokens", "4096,x"},
        };
        for (String[] argv : bad) {
            Args.UsageException e = assertThrows(Args.UsageException.class, () -> CudaBenchCommand.parse(argv), String.join(" ", argv));
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void jsonHasTheCpuBenchKeysAndTheCeilings() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda"});
        List<CudaBenchCommand.Row> rows = List.of(
                new CudaBenchCommand.Row(1, 0.4, 0.39, 40, 355_900_416L, 889.75, 4233.9, 0.21, 0.88, 22),
                new CudaBenchCommand.Row(64, 2.5, 2.4, 20, 5_000_000_000L, 2000, 4233.9, 0.47, 30.5, 500));
        GpuCeilings withGemm = new GpuCeilings("NVIDIA H200 (132 SMs, 139.8 GiB)",
                4233.9, 1L << 30, 750.0, "cuBLASLt \"x\" GEMM", List.of());
        Object parsed = Json.parse(Json.writeReport(CudaBenchCommand.json(rows, o, withGemm)));
        List<?> list = assertInstanceOf(List.class, parsed);
        assertEquals(2, list.size());
        Map<?, ?> r0 = assertInstanceOf(Map.class, list.get(0));
        for (String k : List.of("tokens", "median_ms", "bytes", "achieved_gbps", "roofline_gbps", "ratio", "tflops",
                "distinct_experts", "preset", "backend", "dtype", "device", "d2d_copy_gbps", "gemm_tflops", "tflops_ratio",
                "gemm_note", "min_ms", "calls")) {
            assertTrue(r0.containsKey(k), "key " + k + " in " + r0);
        }
        assertEquals("cuda", r0.get("backend"));
        assertEquals("bf16", r0.get("dtype"));
        assertEquals(Boolean.FALSE, r0.get("w8a8"));
        CudaBenchCommand.Options fp8 = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--dtype", "fp8", "--w8a8"});
        Map<?, ?> f0 = assertInstanceOf(Map.class, ((List<?>) Json.parse(Json.writeReport(CudaBenchCommand.json(rows, fp8, withGemm)))).get(0));
        assertEquals("fp8", f0.get("dtype"));
        assertEquals(Boolean.TRUE, f0.get("w8a8"));
        assertEquals("nemotron3-super", r0.get("preset"));
        assertEquals("cuBLASLt \"x\" GEMM", r0.get("gemm_note"));
        assertEquals(1, ((Number) r0.get("tokens")).intValue());
        assertEquals(355_900_416L, ((Number) r0.get("bytes")).longValue());
        assertEquals(750.0, ((Number) r0.get("gemm_tflops")).doubleValue(), 1e-9);

        GpuCeilings noGemm = new GpuCeilings("dev", 4233.9, 1L << 30, Double.NaN,
                "unavailable: libcublasLt.so.13 not found", List.of());
        Map<?, ?> n0 = assertInstanceOf(Map.class, ((List<?>) Json.parse(Json.writeReport(CudaBenchCommand.json(rows, o, noGemm)))).get(0));
        assertTrue(n0.containsKey("gemm_tflops"));
        assertNull(n0.get("gemm_tflops"));
        assertNull(n0.get("tflops_ratio"));
        assertEquals(List.of(), n0.get("gemm_expert_shapes"));

        GpuCeilings withShapes = new GpuCeilings("dev", 4233.9, 1L << 30, 750.0, "x",
                List.of(GpuCeilings.ExpertGemm.of(4096, MoeConfig.NEMOTRON3_SUPER, 0.5, 0.6, null),
                        GpuCeilings.ExpertGemm.of(8192, MoeConfig.NEMOTRON3_SUPER, Double.NaN, Double.NaN,
                                "unavailable: \"out of memory\"")));
        List<?> ws = assertInstanceOf(List.class, Json.parse(Json.writeReport(CudaBenchCommand.json(rows, o, withShapes))));
        for (Object row : ws) {
            List<?> shapes = assertInstanceOf(List.class, assertInstanceOf(Map.class, row).get("gemm_expert_shapes"));
            assertEquals(2, shapes.size());
            Map<?, ?> s0 = assertInstanceOf(Map.class, shapes.get(0));
            assertEquals(4096, ((Number) s0.get("tokens")).intValue());
            assertEquals(22, ((Number) s0.get("top_k")).intValue());
            assertEquals(90112L, ((Number) s0.get("m")).longValue());
            assertEquals(2688, ((Number) s0.get("fc1_n")).intValue());
            assertEquals(1024, ((Number) s0.get("fc1_k")).intValue());
            assertEquals(1024, ((Number) s0.get("fc2_n")).intValue());
            assertEquals(2688, ((Number) s0.get("fc2_k")).intValue());
            double flops = 2.0 * 90112 * 1024 * 2688;
            assertEquals(flops / 0.5e-3 / 1e12, ((Number) s0.get("fc1_tflops")).doubleValue(), 1e-3);
            assertEquals(flops / 0.6e-3 / 1e12, ((Number) s0.get("fc2_tflops")).doubleValue(), 1e-3);
            assertEquals(2 * flops / 1.1e-3 / 1e12, ((Number) s0.get("combined_tflops")).doubleValue(), 1e-3);
            assertEquals(0.5, ((Number) s0.get("fc1_ms")).doubleValue(), 1e-9);
            assertTrue(s0.containsKey("note"));
            assertNull(s0.get("note"));
            Map<?, ?> s1 = assertInstanceOf(Map.class, shapes.get(1));
            for (String k : List.of("fc1_ms", "fc2_ms", "fc1_tflops", "fc2_tflops", "combined_tflops")) {
                assertTrue(s1.containsKey(k), k);
                assertNull(s1.get(k), k);
            }
            assertEquals("unavailable: \"out of memory\"", s1.get("note"));
        }
    }

    @Test
    void checkpointInputAndCompareOptions() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--checkpoint", "/tmp/ck",
                "--layer", "3", "--input", "x_1.npy,x_64.npy", "--compare", "y_1.npy, y_64.npy", "--tolerance", "0.02",
                "--no-ceilings", "--json", "ours.json"});
        assertEquals(Path.of("/tmp/ck"), o.checkpoint());
        assertEquals(3, o.layer());
        assertEquals(List.of(Path.of("x_1.npy"), Path.of("x_64.npy")), o.inputFiles());
        assertEquals(List.of(Path.of("y_1.npy"), Path.of("y_64.npy")), o.compareFiles());
        assertEquals(0.02, o.tolerance());
        assertEquals("checkpoint", o.preset());
        assertNull(o.config(), "the shape comes from the checkpoint's config.json");
        assertTrue(o.tokens().isEmpty(), "T comes from the input files");
        assertFalse(o.ceilings());
        assertEquals("ours.json", o.json());
        assertTrue(o.weightsNote().contains("/tmp/ck") && o.weightsNote().contains("layer 3"), o.weightsNote());
    }

    @Test
    void checkpointDefaults() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend=cuda", "--checkpoint", "ck"});
        assertEquals(Path.of("ck"), o.checkpoint());
        assertEquals(0, o.layer());
        assertTrue(o.inputFiles().isEmpty());
        assertTrue(o.compareFiles().isEmpty());
        assertEquals(CudaBenchCommand.DEFAULT_TOLERANCE, o.tolerance());
        assertEquals(List.of(1, 4, 16, 64, 256, 4096, 8192), o.tokens(), "without --input: device-filled x per --tokens");
        CudaBenchCommand.Options t = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--checkpoint", "ck",
                "--tokens", "2,8"});
        assertEquals(List.of(2, 8), t.tokens());
        // without --checkpoint nothing changes
        CudaBenchCommand.Options r = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda"});
        assertNull(r.checkpoint());
        assertTrue(r.inputFiles().isEmpty());
        assertNotNull(r.config());
        assertTrue(r.weightsNote().contains("random"), r.weightsNote());
    }

    @Test
    void badCheckpointUsageIsOneClearLine() {
        String[][] bad = {
                {"bench", "--backend", "cuda", "--input", "x.npy"},
                {"bench", "--backend", "cuda", "--compare", "y.npy"},
                {"bench", "--backend", "cuda", "--layer", "1"},
                {"bench", "--backend", "cuda", "--tolerance", "0.1"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--compare", "y.npy"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--input", "a.npy,b.npy", "--compare", "y.npy"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--input", "a.npy,,b.npy"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--preset", "nemotron3-super"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--input", "x.npy", "--tokens", "4"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--layer", "-1"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--layer", "one"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--tolerance", "0"},
                {"bench", "--backend", "cuda", "--checkpoint", "ck", "--tolerance", "abc"},
                {"bench", "--backend", "cuda", "--checkpoint", " "},
                {"bench", "--backend", "cuda", "--checkpoint"},
        };
        for (String[] argv : bad) {
            Args.UsageException e = assertThrows(Args.UsageException.class, () -> CudaBenchCommand.parse(argv), String.join(" ", argv));
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void comparisonErrorAndFailureLine() {
        try (HostArena a = HostArena.shared("cmp")) {
            Tensor y = a.allocateTensor(DType.F32, 2, 2).copyFrom(new float[] {3, 0, 0, 4});
            Tensor same = a.allocateTensor(DType.BF16, 2, 2).copyFrom(new float[] {3, 0, 0, 4});
            Tensor off = a.allocateTensor(DType.F32, 2, 2).copyFrom(new float[] {3, 0, 0, 4.5f});
            assertEquals(0.0, CudaBenchCommand.relFrobenius(same, y), 0.0);
            assertEquals(0.1, CudaBenchCommand.relFrobenius(off, y), 1e-6);
            assertThrows(IllegalArgumentException.class, () -> CudaBenchCommand.relFrobenius(a.allocateTensor(DType.F32, 3), y));
        }
        CudaBenchCommand.Row ok = new CudaBenchCommand.Row(1, 0.4, 0.39, 40, 1L, 1, 1, 1, 1, 22).withRelErr(3e-3);
        CudaBenchCommand.Row notCompared = new CudaBenchCommand.Row(4, 0.4, 0.39, 40, 1L, 1, 1, 1, 1, 22);
        CudaBenchCommand.Row bad = new CudaBenchCommand.Row(64, 0.4, 0.39, 40, 1L, 1, 1, 1, 1, 22).withRelErr(0.5);
        CudaBenchCommand.Row nan = new CudaBenchCommand.Row(256, 0.4, 0.39, 40, 1L, 1, 1, 1, 1, 22).withRelErr(Double.POSITIVE_INFINITY);
        assertTrue(Double.isNaN(notCompared.relErr()));
        assertNull(CudaBenchCommand.failedComparisons(List.of(ok, notCompared), 1e-2));
        String line = CudaBenchCommand.failedComparisons(List.of(ok, bad, notCompared, nan), 1e-2);
        assertNotNull(line);
        assertTrue(line.contains("T=64") && line.contains("T=256") && !line.contains("T=1:") && !line.contains("\n"), line);
    }

    @Test
    void jsonHasRelErrAndWeights() {
        CudaBenchCommand.Options o = CudaBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--checkpoint", "ck",
                "--input", "x.npy", "--compare", "y.npy"});
        List<CudaBenchCommand.Row> rows = List.of(new CudaBenchCommand.Row(16, 0.9, 0.8, 20, 1L, 1, 1, 1, 1, 200).withRelErr(2.5e-3),
                new CudaBenchCommand.Row(64, 4.0, 3.9, 20, 1L, 1, 1, 1, 1, 400));
        GpuCeilings c = new GpuCeilings("dev", Double.NaN, 0, Double.NaN, "not measured", List.of());
        List<?> list = assertInstanceOf(List.class, Json.parse(Json.writeReport(CudaBenchCommand.json(rows, o, c))));
        Map<?, ?> r0 = assertInstanceOf(Map.class, list.get(0));
        Map<?, ?> r1 = assertInstanceOf(Map.class, list.get(1));
        assertEquals(2.5e-3, ((Number) r0.get("rel_err")).doubleValue(), 1e-9);
        assertTrue(r1.containsKey("rel_err"));
        assertNull(r1.get("rel_err"));
        assertEquals("checkpoint", r0.get("preset"));
        assertEquals("checkpoint ck layer 0", r0.get("weights"));
    }

    @Test
    void tableAndMedian() {
        assertEquals(2.0, Stats.median(new double[] {3, 1, 2}));
        assertEquals(2.5, Stats.median(new double[] {4, 1, 2, 3}));
        String t = CudaBenchCommand.table(List.of(new CudaBenchCommand.Row(4, 0.6747, 0.67, 20, 973_762_560L, 1443.2, 4233.9,
                0.34, 2.08, 78)));
        assertTrue(t.contains("tokens") && t.contains("1443.2") && t.contains("34.0%"), t);
        assertTrue(GpuCeilings.gemmLine(Double.NaN, "unavailable: x").contains("unavailable: x"));
    }

    @Test
    void writesJsonFile(@TempDir Path dir) throws Exception {
        Path p = dir.resolve("sub/bench-cuda.json");
        ReportFile.text(p, "[]\n");
        assertEquals("[]\n", Files.readString(p));
    }

    @Test
    void withoutAGpuItFailsWithOneLineBeforeBuildingWeights() {
        Assumptions.assumeFalse(Backends.get("cuda").isAvailable(), "a GPU is here");
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> CudaBenchCommand.run(new String[] {"bench", "--backend", "cuda", "--tokens", "1"}));
        assertTrue(e.getMessage().startsWith("CUDA backend unavailable: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
