package dev.latentmoe.bench;

import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.Json;
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
