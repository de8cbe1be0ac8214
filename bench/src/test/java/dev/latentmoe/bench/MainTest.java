package dev.latentmoe.bench;

import dev.latentmoe.bench.cpu.CpuBenchCommand;
import dev.latentmoe.bench.cpu.CpuIsoCommand;
import dev.latentmoe.bench.gpu.CudaBenchCommand;
import dev.latentmoe.bench.gpu.CudaIsoCommand;
import dev.latentmoe.bench.gpu.GraphBenchCommand;
import dev.latentmoe.bindings.runtime.Knob;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command table: which row argv selects, and help drawn from it. */
class MainTest {

    private static String selected(String... argv) {
        Main.Entry e = Main.select(argv);
        if (e == null) return null;
        return e.name() + " " + e.selectors();
    }

    @Test
    void benchVariantsAreSelectedByTheirOptions() {
        assertEquals("bench []", selected("bench"));
        assertEquals("bench []", selected("bench", "--backend", "cpu"));
        assertEquals("bench []", selected("bench", "--preset", "cuda"), "a value that is not --backend's");
        assertEquals("bench []", selected("bench", "--backend"), "--backend without a value");
        assertEquals("bench [--backend cuda]", selected("bench", "--backend", "cuda"));
        assertEquals("bench [--backend cuda]", selected("bench", "--tokens", "1", "--backend=cuda"));
        assertEquals("bench [--iso]", selected("bench", "--iso"));
        assertEquals("bench [--iso, --backend cuda]", selected("bench", "--iso", "--backend", "cuda"));
        assertEquals("bench [--iso, --backend cuda]", selected("bench", "--backend=cuda", "--iso", "--graph-overhead"));
        assertEquals("bench [--graph-overhead]", selected("bench", "--backend", "cuda", "--graph-overhead"));
        assertEquals("bench [--graph-overhead]", selected("bench", "--graph-overhead"));
        assertEquals("bench [--iso]", selected("bench", "--iso", "--graph-overhead"), "--iso wins a tie, as before");
        assertNull(selected("frob"));
        assertNull(selected("--graph-overhead"), "argv[0] is the command");
    }

    @Test
    void eachRowRunsItsCommand() {
        // The rows hold method references; compare by the class that owns them through a marker call.
        List<String> rows = Main.COMMANDS.stream().map(e -> e.name() + " " + e.selectors() + " " + e.runner()).toList();
        assertTrue(rows.contains("bench [--iso] JAVA") && rows.contains("peers [] LAUNCHER") && rows.contains("test [] LAUNCHER"), rows.toString());
        assertEquals(List.of("run", "bench", "jmh", "cost", "peers"), Main.userCommands());
        for (Class<?> c : List.of(CpuBenchCommand.class, CpuIsoCommand.class, CudaBenchCommand.class, CudaIsoCommand.class,
                GraphBenchCommand.class)) {
            assertTrue(java.lang.reflect.Modifier.isPublic(c.getModifiers()), c + " is reachable from the table");
        }
    }

    @Test
    void helpListsEveryCommandAndKnob() {
        String help = Main.help();
        for (Main.Entry e : Main.COMMANDS) {
            if (e.usage() != null) assertTrue(help.contains(e.usage()) && help.contains(e.summary()), e.usage());
        }
        assertTrue(!help.contains("peers-prepare"), "internal steps stay out of help");
        for (Knob k : Knob.values()) assertTrue(help.contains(k.key()), k.key());
    }
}
