package dev.latentmoe.bench;

import dev.latentmoe.bench.cpu.CpuBenchCommand;
import dev.latentmoe.bench.cpu.CpuIsoCommand;
import dev.latentmoe.bench.gpu.CudaBenchCommand;
import dev.latentmoe.bench.gpu.CudaIsoCommand;
import dev.latentmoe.bench.gpu.GraphBenchCommand;
import dev.latentmoe.bindings.runtime.Knob;

import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The command line behind {@code ./latentmoe}: one table of every command, the only place argv is
 * dispatched and {@code help} is written. A command is chosen by its name and, for the variants of
 * {@code bench}, by the options that select it ({@code --iso}, {@code --graph-overhead},
 * {@code --backend cuda}). Errors print one line and exit non-zero (2 for usage errors).
 */
public final class Main {
    private Main() {}

    /** Who runs a command: this class, or the launcher script (which may then call this class). */
    enum Runner { JAVA, LAUNCHER }

    /**
     * One row of the table. {@code selectors} must all be present in argv (an option alone, or an
     * option with its value, {@code "--backend cuda"}); among the rows of a name whose selectors
     * are present the one with the most wins, earlier rows breaking ties. {@code usage} null: not in
     * {@code help} (an internal step of the launcher).
     */
    record Entry(String name, List<String> selectors, Runner runner, Command command, String usage, String summary) {
        boolean matches(String[] argv) {
            for (String s : selectors) if (!present(argv, s)) return false;
            return true;
        }

        private static boolean present(String[] argv, String selector) {
            int space = selector.indexOf(' ');
            String option = space < 0 ? selector : selector.substring(0, space);
            String value = space < 0 ? null : selector.substring(space + 1);
            for (int i = 1; i < argv.length; i++) {
                if (value == null && argv[i].equals(option)) return true;
                if (value != null && (argv[i].equals(option + "=" + value)
                        || (argv[i].equals(option) && i + 1 < argv.length && argv[i + 1].equals(value)))) return true;
            }
            return false;
        }
    }

    private static Entry java(String name, List<String> selectors, Command c, String usage, String summary) {
        return new Entry(name, selectors, Runner.JAVA, c, usage, summary);
    }

    private static Entry launcher(String name, String usage, String summary) {
        return new Entry(name, List.of(), Runner.LAUNCHER, null, usage, summary);
    }

    static final List<Entry> COMMANDS = List.of(
            java("run", List.of(), RunCommand::run, "run --checkpoint DIR --layer I --input x.npy --output y.npy",
                    "one layer of a checkpoint on an input"),
            java("bench", List.of(), CpuBenchCommand::run,
                    "bench [--preset P] [--tokens 1,...,4096] [--threads N[,M]] [--precision exact|bf16] [--chunk T] [--json FILE]",
                    "the layer against measured memory bandwidth and compute peak (roofline per row, thread scaling)"),
            java("bench", List.of("--iso"), CpuIsoCommand::run, "bench --iso [--preset P] [--tokens 1,...,4096]",
                    "standard vs ℓ-MoE_eff vs ℓ-MoE_acc at equal weight bytes"),
            java("bench", List.of("--graph-overhead"), GraphBenchCommand::run,
                    "bench --backend cuda --graph-overhead [--tokens 1,4,16,64] [--json FILE]",
                    "on a GPU: CUDA graph replay cost per call, bytes allocated, GPU time saved"),
            java("bench", List.of("--backend cuda"), CudaBenchCommand::run,
                    "bench --backend cuda [--preset P] [--tokens 1,...,8192] [--dtype bf16|fp8|nvfp4] [--w8a8] [--json FILE]",
                    "the layer on the GPU vs measured copy bandwidth and cuBLASLt GEMM rate"),
            java("bench", List.of("--iso", "--backend cuda"), CudaIsoCommand::run,
                    "bench --iso --backend cuda [--preset P] [--tokens 1,...,4096] [--json FILE]",
                    "the iso comparison on the GPU (bench/out/iso-cuda.json)"),
            java("jmh", List.of(), JmhCommand::run, "jmh [REGEX...] [JMH options]",
                    "JMH: every kernel and both layers, roofline table + SVG (bench/out)"),
            java("cost", List.of(), CostCommand::run, "cost --preset P [--dtype bf16] [--ep E]",
                    "the paper's per-token cost model (Table 1)"),
            launcher("peers", "peers [--tokens 1,...,4096] [--threads 2] [--precision exact|bf16]",
                    "ours vs HF transformers and plain PyTorch on the CPU (Super shapes)"),
            java("peers-prepare", List.of(), PeersCommand::run, null, "our side of peers: checkpoint, inputs, outputs, timings"),
            launcher("test", "test", "every test (native, Java, end to end)"),
            launcher("fuzz", "fuzz [--seconds N] [--target Class#method]", "Jazzer: each parser/importer target N s (default 1)"),
            launcher("build", "build", "build only"),
            launcher("bundle", "bundle --out DIR", "the self-contained GPU bundle (≤ 60 MiB): DIR/run.sh OUT on a GPU machine"),
            java("help", List.of(), argv -> System.out.print(help()), "help", "this list"));

    /** The row argv selects, or null for an unknown command name. */
    static Entry select(String[] argv) {
        Entry best = null;
        for (Entry e : COMMANDS) {
            if (e.name().equals(argv[0]) && e.matches(argv) && (best == null || e.selectors().size() > best.selectors().size())) {
                best = e;
            }
        }
        return best;
    }

    /** The commands a user types to this class or the launcher, in table order, without build and test chores. */
    static List<String> userCommands() {
        Set<String> names = new LinkedHashSet<>();
        for (Entry e : COMMANDS) {
            if (e.usage() != null && !List.of("test", "fuzz", "build", "bundle", "help").contains(e.name())) names.add(e.name());
        }
        return List.copyOf(names);
    }

    /** Every command with its usage, then every setting read from the environment. */
    static String help() {
        List<Entry> shown = COMMANDS.stream().filter(e -> e.usage() != null).toList();
        int width = shown.stream().mapToInt(e -> e.usage().length()).max().orElse(0);
        StringBuilder sb = new StringBuilder("usage: ./latentmoe COMMAND [options]\n");
        for (Entry e : shown) sb.append(String.format(Locale.ROOT, "  %-" + width + "s   %s%n", e.usage(), e.summary()));
        sb.append("settings (java -D... or the environment):\n");
        for (Knob k : Knob.values()) sb.append(k.usage()).append('\n');
        return sb.toString();
    }

    public static void main(String[] argv) {
        Locale.setDefault(Locale.ROOT);
        if (argv.length == 0) {
            System.err.println("usage: latentmoe (" + String.join("|", userCommands()) + ") [options]; see README.md");
            System.exit(2);
        }
        try {
            Entry e = select(argv);
            if (e == null) {
                throw new Args.UsageException("unknown command '" + argv[0] + "' (" + String.join(", ", userCommands()) + ")");
            }
            if (e.runner() == Runner.LAUNCHER) {
                throw new Args.UsageException("run by the launcher: ./latentmoe " + String.join(" ", Arrays.asList(argv)));
            }
            e.command().run(argv);
        } catch (Args.UsageException e) {
            System.err.println("latentmoe " + argv[0] + ": " + e.getMessage());
            System.exit(2);
        } catch (RuntimeException | OutOfMemoryError e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            System.err.println("latentmoe " + argv[0] + ": error: " + msg.replace('\n', ' '));
            if (Knob.TRACE.flag()) e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }
}
