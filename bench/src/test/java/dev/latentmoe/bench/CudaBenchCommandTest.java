package dev.latentmoe.bench;

import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Json;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
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
    void routesOnlyTheCudaBackend() {
        assertTrue(CudaBenchCommand.wants(new String[] {"bench", "--backend", "cuda"}));
        assertTrue(CudaBenchCommand.wants(new String[] {"bench", "--tokens", "1", "--backend=cuda"}));
        assertFalse(CudaBenchCommand.wants(new String[] {"bench"}));
        assertFalse(CudaBenchCommand.wants(new String[] {"bench", "--backend", "cpu"}));
        assertFalse(CudaBenchCommand.wants(new String[] {"bench", "--backend"}));
        assertFalse(CudaBenchCommand.wants(new String[] {"bench", "--preset", "cuda"}));
    }

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
    }

    @Test
    void badUsageIsOneClearLine() {
        String[][] bad = {
                {"bench", "--backend", "cuda", "--dtype", "f32"},
                {"bench", "--backend", "cuda", "--tokens", "0"},
                {"bench", "--backend", "cuda", "--tokens", "a,b"},
                {"bench", "--backend", "cuda", "--reps", "0"},
                {"bench", "--backend", "cuda", "--threads", "4"},
                {"bench", "--backend", "cuda", "--preset", "nope"},
                {"bench", "--backend", "cuda", "--gemm-size", "100"},
                {"bench", "--backend", "cuda", "--json"},
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
        CudaBenchCommand.GpuCeilings withGemm = new CudaBenchCommand.GpuCeilings("NVIDIA H200 (132 SMs, 139.8 GiB)",
                4233.9, 1L << 30, 750.0, "cuBLASLt \"x\" GEMM");
        Object parsed = Json.parse(CudaBenchCommand.json(rows, o, withGemm));
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
        assertEquals("nemotron3-super", r0.get("preset"));
        assertEquals("cuBLASLt \"x\" GEMM", r0.get("gemm_note"));
        assertEquals(1, ((Number) r0.get("tokens")).intValue());
        assertEquals(355_900_416L, ((Number) r0.get("bytes")).longValue());
        assertEquals(750.0, ((Number) r0.get("gemm_tflops")).doubleValue(), 1e-9);

        CudaBenchCommand.GpuCeilings noGemm = new CudaBenchCommand.GpuCeilings("dev", 4233.9, 1L << 30, Double.NaN,
                "unavailable: libcublasLt.so.13 not found");
        Map<?, ?> n0 = assertInstanceOf(Map.class, ((List<?>) Json.parse(CudaBenchCommand.json(rows, o, noGemm))).get(0));
        assertTrue(n0.containsKey("gemm_tflops"));
        assertNull(n0.get("gemm_tflops"));
        assertNull(n0.get("tflops_ratio"));
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
        CudaBenchCommand.GpuCeilings c = new CudaBenchCommand.GpuCeilings("dev", Double.NaN, 0, Double.NaN, "not measured");
        List<?> list = assertInstanceOf(List.class, Json.parse(CudaBenchCommand.json(rows, o, c)));
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
        assertEquals(2.0, CudaBenchCommand.median(new double[] {3, 1, 2}));
        assertEquals(2.5, CudaBenchCommand.median(new double[] {4, 1, 2, 3}));
        String t = CudaBenchCommand.table(List.of(new CudaBenchCommand.Row(4, 0.6747, 0.67, 20, 973_762_560L, 1443.2, 4233.9,
                0.34, 2.08, 78)));
        assertTrue(t.contains("tokens") && t.contains("1443.2") && t.contains("34.0%"), t);
        assertTrue(CudaBenchCommand.gemmLine(Double.NaN, "unavailable: x").contains("unavailable: x"));
    }

    @Test
    void writesJsonFile(@TempDir Path dir) throws Exception {
        Path p = dir.resolve("sub/bench-cuda.json");
        CudaBenchCommand.writeJson(p, "[]\n");
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
