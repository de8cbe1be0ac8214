package dev.latentmoe.bench.gpu;

import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.io.Json;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import dev.latentmoe.bench.Args;
import dev.latentmoe.bench.Shapes;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What of {@code bench --backend cuda --graph-overhead} is testable without a GPU. */
class GraphBenchCommandTest {
    private static final GraphBenchCommand.Options DEFAULTS =
            GraphBenchCommand.parse(new String[] {"bench", "--backend", "cuda", "--graph-overhead"});

    @Test
    void defaultsAndOptions() {
        assertEquals(MoeConfig.preset("nemotron3-super"), DEFAULTS.config());
        assertEquals(List.of(1, 4, 16, 64), DEFAULTS.tokens());
        assertEquals(20000, DEFAULTS.calls());
        assertEquals(32, DEFAULTS.burst());
        assertNull(DEFAULTS.json());
        assertArrayEquals(new int[] {1, 4, 16, 64}, DEFAULTS.buckets());
        GraphBenchCommand.Options o = GraphBenchCommand.parse(new String[] {"bench", "--graph-overhead", "--preset", "super/8",
                "--tokens", "8,2", "--calls", "100", "--burst", "16", "--reps", "3", "--seed", "9", "--json", "g.json"});
        assertEquals(Shapes.byName("super/8"), o.config());
        assertArrayEquals(new int[] {1, 2, 8}, o.buckets(), "T = 1 is always captured for the host-time runs");
        assertEquals(100, o.calls());
        assertEquals(16, o.burst());
        assertEquals(3, o.reps());
        assertEquals(9, o.seed());
        assertEquals("g.json", o.json());
    }

    @Test
    void badUsageIsOneClearLine() {
        String[][] bad = {
                {"bench", "--graph-overhead", "--backend", "cpu"},
                {"bench", "--graph-overhead", "--calls", "0"},
                {"bench", "--graph-overhead", "--burst", "0"},
                {"bench", "--graph-overhead", "--burst", "100000"},
                {"bench", "--graph-overhead", "--reps", "0"},
                {"bench", "--graph-overhead", "--tokens", "0"},
                {"bench", "--graph-overhead", "--preset", "nope"},
                {"bench", "--graph-overhead", "--threads", "2"},
        };
        for (String[] argv : bad) {
            Args.UsageException e = assertThrows(Args.UsageException.class, () -> GraphBenchCommand.parse(argv), String.join(" ", argv));
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    private static List<GraphBenchCommand.HostRow> hostRows(double replayAlloc) {
        return List.of(
                new GraphBenchCommand.HostRow("ffm_downcall", "FFM", 0.01, 0.012, 0.009, 20000, 0, false),
                new GraphBenchCommand.HostRow("trivial_raw_launch", "trivial raw", 1.9, 2.0, 1.8, 20000, 0, false),
                new GraphBenchCommand.HostRow("trivial_graph_launch", "trivial \"java\"", 1.95, 2.0, 1.85, 20000, 0, true),
                new GraphBenchCommand.HostRow("layer_raw_launch", "layer raw", 2.1, 2.2, 2.0, 20000, 0, false),
                new GraphBenchCommand.HostRow("layer_replay", "replay", 2.2, 2.3, 2.1, 20000, replayAlloc, true),
                new GraphBenchCommand.HostRow("layer_graphed_forward", "fwd", 5.0, 5.1, 4.9, 20000, 0, true),
                new GraphBenchCommand.HostRow("layer_plain_forward", "plain", 30.0, 31.0, 29.0, 20000, 48.0, false));
    }

    @Test
    void tablesJsonAndFailures() {
        List<GraphBenchCommand.GpuRow> gpu = List.of(new GraphBenchCommand.GpuRow(1, 1, "decode", 0.14, 0.13, 0.129, true),
                new GraphBenchCommand.GpuRow(64, 64, "sorted", 2.0, 1.9, 1.89, true));
        String table = GraphBenchCommand.hostTable(hostRows(0), DEFAULTS);
        assertTrue(table.contains("Bucket.replay +0.100 us") && table.contains("NOT met") && table.contains("0 bytes per call"), table);
        assertTrue(GraphBenchCommand.gpuTable(gpu, DEFAULTS).contains("decode"));
        assertNull(GraphBenchCommand.failures(hostRows(0), gpu), "the plain forward may allocate");

        Map<?, ?> j = assertInstanceOf(Map.class, Json.parse(Json.writeReport(GraphBenchCommand.json(hostRows(0), gpu, DEFAULTS, "dev \"x\"", 12.5))));
        assertEquals("dev \"x\"", j.get("device"));
        assertEquals(7, ((List<?>) j.get("host")).size());
        Map<?, ?> overhead = assertInstanceOf(Map.class, j.get("java_overhead_us"));
        assertEquals(0.1, ((Number) overhead.get("replay")).doubleValue(), 1e-9);
        assertEquals(Boolean.FALSE, j.get("replay_target_met"));
        Map<?, ?> g0 = assertInstanceOf(Map.class, ((List<?>) j.get("gpu")).get(0));
        assertEquals("decode", g0.get("path"));
        assertEquals(Boolean.TRUE, g0.get("bitwise_equal"));

        String bad = GraphBenchCommand.failures(hostRows(16), List.of(new GraphBenchCommand.GpuRow(4, 4, "decode", 1, 1, 1, false)));
        assertTrue(bad != null && bad.contains("layer_replay allocates 16.00") && bad.contains("T=4") && !bad.contains("\n"), bad);
    }

    @Test
    void withoutAGpuItFailsWithOneLineBeforeBuildingWeights() {
        Assumptions.assumeFalse(Backends.get("cuda").isAvailable(), "a GPU is here");
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> GraphBenchCommand.run(new String[] {"bench", "--backend", "cuda", "--graph-overhead"}));
        assertTrue(e.getMessage().startsWith("CUDA backend unavailable: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
