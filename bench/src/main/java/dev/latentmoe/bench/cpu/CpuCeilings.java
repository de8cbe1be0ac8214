package dev.latentmoe.bench.cpu;

import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.Precision;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * This machine's ceilings, measured, never our kernels' best: memory bandwidth (STREAM copy,
 * triad and a read-only sum over 256 MiB arrays), the compute rate of the register-only probe of
 * the GEMM kernel in use ({@link Cpu#gemmKernel}, {@link Cpu#peakGFlops}: FMA, vdpbf16ps or AMX
 * tiles, random operands, no memory traffic; divided by the kernel's bf16 terms per activation,
 * 3 for AMX's exact kernel), and the size of the last-level cache (rows whose working set fits in
 * it are not compared with DRAM bandwidth).
 */
public final class CpuCeilings {
    private CpuCeilings() {}

    static final String[] PROBES = {"copy", "triad", "read"};
    static final long PROBE_ARRAY_BYTES = 256L << 20;
    /** Seconds of each compute-probe measurement. */
    static final double PEAK_SECONDS = 0.2;

    /** One STREAM-style measurement of probe {@code p} (an index into {@link #PROBES}) in GB/s. */
    static double probe(int p) {
        return Cpu.streamGBps(Cpu.StreamProbe.values()[p], PROBE_ARRAY_BYTES);
    }

    /** Largest of the copy, triad and read medians over 3 measurements each, printed (for the JMH and iso reports). */
    public static double measureBandwidth() {
        double best = 0;
        StringBuilder sb = new StringBuilder("memory bandwidth (STREAM-style, 256 MiB arrays, median of 3):");
        for (int p = 0; p < PROBES.length; p++) {
            List<Double> v = new ArrayList<>();
            for (int i = 0; i < 3; i++) v.add(probe(p));
            double m = Stats.median(v);
            sb.append(String.format(" %s %.1f GB/s", PROBES[p], m));
            best = Math.max(best, m);
        }
        System.out.println(sb.append(String.format("; roofline = %.1f GB/s", best)));
        return best;
    }

    /** One measurement of the useful compute ceiling of {@code precision}'s kernel, in GFLOP/s (probe / terms). */
    static double peakOnce(Precision precision) {
        Cpu.GemmKernel k = Cpu.gemmKernel(precision);
        return Cpu.peakGFlops(k.probe(), PEAK_SECONDS) / k.terms();
    }

    /** The compute ceiling of {@code precision}'s kernel: median of 3 measurements, printed. */
    public static double measurePeak(Precision precision) {
        Cpu.GemmKernel k = Cpu.gemmKernel(precision);
        List<Double> v = new ArrayList<>();
        for (int i = 0; i < 3; i++) v.add(Cpu.peakGFlops(k.probe(), PEAK_SECONDS));
        double probe = Stats.median(v);
        System.out.printf(Locale.ROOT, "compute ceiling (%s, kernel %s): register-only %s probe %.1f GFLOP/s%s%n",
                precision, k.name(), k.probe().label(), probe,
                k.terms() > 1 ? String.format(Locale.ROOT, " / %d bf16 terms = %.1f GFLOP/s", k.terms(), probe / k.terms()) : "");
        return probe / k.terms();
    }

    /** The kernel's description for table headers: "amx-exact3 (tdpbf16ps (amx) / 3)". */
    public static String kernelNote(Precision precision) {
        Cpu.GemmKernel k = Cpu.gemmKernel(precision);
        return k.name() + " (" + k.probe().label() + (k.terms() > 1 ? " / " + k.terms() : "") + ")";
    }

    /** Bytes of the largest CPU cache (sysfs), 0 when unknown. */
    public static long lastLevelCacheBytes() {
        long best = 0;
        for (int i = 0; i < 8; i++) {
            Path p = Path.of("/sys/devices/system/cpu/cpu0/cache/index" + i + "/size");
            if (!Files.isReadable(p)) continue;
            try {
                String s = Files.readString(p).trim().toUpperCase(Locale.ROOT);
                long mult = s.endsWith("K") ? 1L << 10 : s.endsWith("M") ? 1L << 20 : s.endsWith("G") ? 1L << 30 : 1;
                long v = Long.parseLong(s.replaceAll("[^0-9]", "")) * mult;
                best = Math.max(best, v);
            } catch (IOException | NumberFormatException e) {
                // unknown: no row is marked cache-resident
            }
        }
        return best;
    }
}
