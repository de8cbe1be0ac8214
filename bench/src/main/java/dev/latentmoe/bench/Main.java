package dev.latentmoe.bench;

import dev.latentmoe.bindings.runtime.Knob;
import java.util.Locale;

/** The command line behind {@code ./latentmoe}: run, bench. Errors print one line and exit non-zero. */
public final class Main {
    private Main() {}

    public static void main(String[] argv) {
        Locale.setDefault(Locale.ROOT);
        if (argv.length == 0) {
            System.err.println("usage: latentmoe (run|bench|jmh|cost|peers) [options]; see README.md");
            System.exit(2);
        }
        try {
            switch (argv[0]) {
                case "run" -> RunCommand.run(argv);
                case "bench" -> {
                    if (java.util.Arrays.asList(argv).contains("--iso")) IsoCommand.run(argv); else BenchCommand.run(argv);
                }
                case "jmh" -> JmhCommand.run(argv);
                case "cost" -> CostCommand.run(argv);
                case "peers-prepare" -> PeersCommand.run(argv);
                default -> throw new Args.UsageException("unknown command '" + argv[0] + "' (run, bench, jmh, cost, peers)");
            }
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
