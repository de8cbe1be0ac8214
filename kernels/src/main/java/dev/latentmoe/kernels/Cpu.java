package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The native CPU backend's process-wide settings and what it measures of this machine: worker
 * threads (results do not depend on them), the instruction-set path in use, and the STREAM-style
 * memory-bandwidth probes the benchmarks take as their ceiling.
 */
public final class Cpu {
    private Cpu() {}

    /** The probes of {@link #streamGBps}: copy (a = b), triad (a = b + s·c) and a read-only sum. */
    public enum StreamProbe {
        COPY(latentmoe_h.LMOE_PROBE_COPY), TRIAD(latentmoe_h.LMOE_PROBE_TRIAD), READ(latentmoe_h.LMOE_PROBE_READ);

        private final int code;

        StreamProbe(int code) { this.code = code; }
    }

    /** Sets the native worker threads (1..1024). */
    public static void setThreads(int threads) {
        if (threads < 1 || threads > 1024) throw new IllegalArgumentException("threads must be in 1..1024, got " + threads);
        latentmoe_h.check(latentmoe_h.lmoe_cpu_set_num_threads(threads), "lmoe_cpu_set_num_threads");
    }

    /** The native worker threads. */
    public static int threads() { return latentmoe_h.lmoe_cpu_num_threads(); }

    /** The instruction-set path in use: "scalar", "avx2" or "avx512". */
    public static String isa() {
        int isa = latentmoe_h.lmoe_cpu_isa();
        return switch (isa) {
            case latentmoe_h.LMOE_ISA_SCALAR -> "scalar";
            case latentmoe_h.LMOE_ISA_AVX2 -> "avx2";
            case latentmoe_h.LMOE_ISA_AVX512 -> "avx512";
            default -> "isa" + isa;
        };
    }

    /** One measurement of {@code probe} over arrays of {@code arrayBytes} each, in GB/s (1e9 bytes/s). */
    public static double streamGBps(StreamProbe probe, long arrayBytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_DOUBLE);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_membw_probe(probe.code, arrayBytes, 1, out), "lmoe_cpu_membw_probe");
            return out.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }
}
