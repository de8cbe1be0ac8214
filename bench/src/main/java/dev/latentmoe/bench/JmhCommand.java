package dev.latentmoe.bench;

import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.io.Json;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;

import dev.latentmoe.bench.cpu.CpuCeilings;
import dev.latentmoe.bench.report.Roofline;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code jmh [REGEX...] [JMH options]}: runs the JMH benchmarks (KernelBench: router, dispatch,
 * experts, combine; LayerBench: forward; PeakBench: our dense GEMM, an ordinary row) with short
 * defaults (-f 1 -wi 2 -i 3 -w 1s -r 2s -prof gc -rf json -rff bench/out/jmh.json; any JMH option
 * overrides them), then measures the machine's ceilings in the same run: the memory bandwidth
 * (STREAM) and, per precision the rows ran in ({@code -p precision=exact,bf16}), the register-only
 * compute probe of that precision's kernel; prints the roofline table (rows whose working set fits
 * the last-level cache marked, compared with compute only) and writes the SVG plot next to the
 * JSON. {@code jmh --report FILE} redoes the report from an existing JSON.
 */
final class JmhCommand {
    private JmhCommand() {}

    static void run(String[] argv) {
        List<String> args = new ArrayList<>(Arrays.asList(argv).subList(1, argv.length));
        String reportOnly = null;
        int r = args.indexOf("--report");
        if (r >= 0) {
            if (r + 1 >= args.size()) throw new Args.UsageException("--report needs a JMH JSON file");
            reportOnly = args.get(r + 1);
            args.subList(r, r + 2).clear();
        }
        Path json;
        if (reportOnly != null) {
            json = Path.of(reportOnly);
        } else {
            List<String> full = withDefaults(args);
            json = Path.of(full.get(full.indexOf("-rff") + 1));
            try {
                if (json.getParent() != null) Files.createDirectories(json.getParent());
                CommandLineOptions opts = new CommandLineOptions(full.toArray(String[]::new));
                System.out.println("jmh " + String.join(" ", full));
                new Runner(opts).run();
            } catch (CommandLineOptionException e) {
                throw new Args.UsageException("bad JMH options: " + e.getMessage());
            } catch (RunnerException e) {
                throw new IllegalStateException("JMH failed: " + e.getMessage(), e);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        Cpu.setThreads(Runtime.getRuntime().availableProcessors());
        System.out.printf("%nceilings, measured now with %d threads (isa %s):%n", Cpu.threads(), Cpu.isa());
        double bw = CpuCeilings.measureBandwidth();
        Map<Precision, Double> peaks = new EnumMap<>(Precision.class);
        for (Precision p : precisionsIn(json)) peaks.put(p, CpuCeilings.measurePeak(p));
        Roofline roof = report(json, bw, peaks, CpuCeilings.lastLevelCacheBytes());
        System.out.print(roof.table());
        Path svg = json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", "") + ".svg");
        roof.writeSvg(svg);
        System.out.println("wrote " + json + " and " + svg);
    }

    static List<String> withDefaults(List<String> user) {
        List<String> out = new ArrayList<>();
        String[][] defaults = {{"-f", "1"}, {"-wi", "2"}, {"-i", "3"}, {"-w", "1s"}, {"-r", "2s"}, {"-rf", "json"},
                {"-rff", "bench/out/jmh.json"}};
        for (String[] d : defaults) {
            if (!user.contains(d[0])) out.addAll(List.of(d));
        }
        boolean gc = false;
        for (int i = 0; i + 1 < user.size(); i++) if (user.get(i).equals("-prof") && user.get(i + 1).startsWith("gc")) gc = true;
        if (!gc) out.addAll(List.of("-prof", "gc"));
        // positional regexes: whatever does not start with '-' and is not an option's value
        boolean anyRegex = false;
        for (int i = 0; i < user.size(); i++) {
            String a = user.get(i);
            if (a.startsWith("-")) {
                if (i + 1 < user.size() && !user.get(i + 1).startsWith("-") && takesValue(a)) i++;
            } else {
                anyRegex = true;
            }
        }
        out.addAll(user);
        return out;
    }

    private static boolean takesValue(String opt) {
        return !List.of("-h", "-l", "-lp", "-lprof").contains(opt);
    }

    @SuppressWarnings("unchecked")
    private static List<Object> results(Path json) {
        try {
            return (List<Object>) Json.parse(Files.readString(json));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + json + ": " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Precision precisionOf(Map<String, Object> result) {
        Map<String, Object> params = result.get("params") == null ? Map.of() : (Map<String, Object>) result.get("params");
        return Precision.fromName(String.valueOf(params.getOrDefault("precision", "exact")));
    }

    /** The precisions the results ran in (EXACT when none says). */
    @SuppressWarnings("unchecked")
    static List<Precision> precisionsIn(Path json) {
        List<Precision> out = new ArrayList<>();
        for (Object o : results(json)) {
            Precision p = precisionOf((Map<String, Object>) o);
            if (!out.contains(p)) out.add(p);
        }
        if (out.isEmpty()) out.add(Precision.EXACT);
        return out;
    }

    /**
     * Reads JMH's JSON into roofline points: each with the compute ceiling of its precision's kernel
     * ({@code peaks}, GFLOP/s, measured) and its working set; the report's main roof is the highest.
     */
    @SuppressWarnings("unchecked")
    static Roofline report(Path json, double bandwidthGBps, Map<Precision, Double> peaks, long llcBytes) {
        List<Roofline.Point> pts = new ArrayList<>();
        for (Object o : results(json)) {
            Map<String, Object> m = (Map<String, Object>) o;
            String bench = (String) m.get("benchmark");
            String name = bench.substring(bench.lastIndexOf('.') + 1);
            Map<String, Object> params = m.get("params") == null ? Map.of() : (Map<String, Object>) m.get("params");
            double callsPerS = score(m.get("primaryMetric"));
            Map<String, Object> sec = (Map<String, Object>) m.get("secondaryMetrics");
            if (sec == null || !sec.containsKey("bytes") || !sec.containsKey("flops")) continue;
            double bytesPerS = score(sec.get("bytes")), flopsPerS = score(sec.get("flops"));
            double alloc = sec.containsKey("gc.alloc.rate.norm") ? score(sec.get("gc.alloc.rate.norm")) : Double.NaN;
            double ws = sec.containsKey("workingSet") ? score(sec.get("workingSet")) / callsPerS : Double.NaN;
            Precision p = precisionOf(m);
            int tokens;
            String series;
            if (bench.contains("PeakBench")) {
                tokens = Integer.parseInt(String.valueOf(params.getOrDefault("peakTokens", "0")));
                series = "dense gemm (ours) " + p;
            } else {
                tokens = Integer.parseInt(String.valueOf(params.getOrDefault("tokens", "0")));
                series = name + " " + params.getOrDefault("shape", "") + " " + p;
            }
            double peak = peaks.getOrDefault(p, Double.NaN);
            pts.add(new Roofline.Point(series, tokens, 1 / callsPerS, bytesPerS / callsPerS, flopsPerS / callsPerS, alloc, peak, ws));
        }
        if (pts.isEmpty()) throw new IllegalStateException(json + " holds no results with bytes/flops counters");
        double main = 0;
        StringBuilder note = new StringBuilder("compute = register-only probe of each precision's kernel:");
        for (Map.Entry<Precision, Double> e : peaks.entrySet()) {
            main = Math.max(main, e.getValue());
            note.append(String.format(Locale.ROOT, " %s %s %.1f GFLOP/s", e.getKey(), CpuCeilings.kernelNote(e.getKey()), e.getValue()));
        }
        Roofline roof = new Roofline("LatentMoE CPU kernels, JMH (" + json.getFileName() + ")", bandwidthGBps, main, note.toString(), llcBytes);
        pts.forEach(roof::add);
        return roof;
    }

    @SuppressWarnings("unchecked")
    private static double score(Object metric) {
        return ((Number) ((Map<String, Object>) metric).get("score")).doubleValue();
    }
}
