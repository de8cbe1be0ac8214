package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

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

    /**
     * Every instruction-set path of the C ABI, by {@code lmoe_isa} code: the {@code LMOE_ISA_*}
     * constants of the bindings, named in lower case without underscores ("scalar", "avx2",
     * "avx512", "avx512bf16", "amx"), so a new
     * path is named here as soon as its constant is bound.
     */
    private static final Map<Integer, String> ISA_NAMES = isaNames(latentmoe_h.class);

    static Map<Integer, String> isaNames(Class<?> header) {
        Map<Integer, String> names = new TreeMap<>();
        for (Field f : header.getFields()) {
            if (f.getName().startsWith("LMOE_ISA_") && f.getType() == int.class && Modifier.isStatic(f.getModifiers())) {
                try {
                    names.put(f.getInt(null), f.getName().substring("LMOE_ISA_".length()).replace("_", "").toLowerCase(Locale.ROOT));
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return Collections.unmodifiableMap(names);
    }

    private static String isaName(int code) {
        String n = ISA_NAMES.get(code);
        return n != null ? n : "isa" + code;
    }

    /** The instruction-set path in use: "scalar", "avx2", "avx512", ... (see {@link #isaNames()}). */
    public static String isa() { return isaName(latentmoe_h.lmoe_cpu_isa()); }

    /** The path the library picks by default: the best this CPU supports. */
    public static String bestIsa() { return isaName(latentmoe_h.lmoe_cpu_best_isa()); }

    /** Every instruction-set path the library knows, in {@code lmoe_isa} order (this CPU may lack some). */
    public static List<String> isaNames() { return List.copyOf(ISA_NAMES.values()); }

    /**
     * Selects the instruction-set path for every later call in this process (results of one path
     * are bit-identical for any thread count; different paths round differently). Not while other
     * threads are inside calls.
     *
     * @throws IllegalArgumentException for a name not in {@link #isaNames()}
     * @throws dev.latentmoe.bindings.runtime.LatentMoeNativeException when this CPU lacks it
     */
    public static void setIsa(String name) {
        for (Map.Entry<Integer, String> e : ISA_NAMES.entrySet()) {
            if (e.getValue().equals(name)) {
                latentmoe_h.check(latentmoe_h.lmoe_cpu_set_isa(e.getKey()), "lmoe_cpu_set_isa(" + name + ")");
                return;
            }
        }
        throw new IllegalArgumentException("unknown ISA path '" + name + "'; known: " + isaNames());
    }

    /**
     * Tokens per chunk of a CPU forward (process-wide, default 2048): a forward over T tokens runs
     * ceil(T / chunk) chunks in turn over a workspace sized for one chunk, so prefill of any length
     * needs bounded memory; each chunk streams the routed experts' weights again. Results never
     * depend on it.
     */
    public static void setChunkTokens(long tokens) {
        if (tokens < 1 || tokens > (1L << 24)) throw new IllegalArgumentException("chunk tokens must be in 1..2^24, got " + tokens);
        latentmoe_h.check(latentmoe_h.lmoe_cpu_set_chunk_tokens(tokens), "lmoe_cpu_set_chunk_tokens");
    }

    public static long chunkTokens() { return latentmoe_h.lmoe_cpu_chunk_tokens(); }

    /** The register-only compute loops of {@link #peakGFlops}: the ceiling of each kernel family. */
    public enum PeakProbe {
        SSE2(latentmoe_h.LMOE_PEAK_SSE2, "f32 mul+add (sse2)"),
        FMA_AVX2(latentmoe_h.LMOE_PEAK_FMA_AVX2, "f32 FMA (avx2)"),
        FMA_AVX512(latentmoe_h.LMOE_PEAK_FMA_AVX512, "f32 FMA (avx512)"),
        DPBF16(latentmoe_h.LMOE_PEAK_DPBF16, "vdpbf16ps (avx512bf16)"),
        AMX_BF16(latentmoe_h.LMOE_PEAK_AMX_BF16, "tdpbf16ps (amx)");

        private final int code;
        private final String label;

        PeakProbe(int code, String label) { this.code = code; this.label = label; }

        public String label() { return label; }

        static PeakProbe of(int code) {
            for (PeakProbe p : values()) if (p.code == code) return p;
            throw new IllegalStateException("unknown peak probe " + code);
        }
    }

    /**
     * The GEMM kernel the CPU runs for a precision on the ISA in use: its name, the probe bounding
     * it, and the bf16 terms per activation (3 for AMX's exact kernel: its useful ceiling is the
     * probe's rate / 3).
     */
    public record GemmKernel(String name, PeakProbe probe, int terms) {}

    public static GemmKernel gemmKernel(Precision precision) {
        if (precision == null) throw new IllegalArgumentException("precision is null");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(ValueLayout.ADDRESS);
            MemorySegment probe = a.allocate(ValueLayout.JAVA_INT);
            MemorySegment terms = a.allocate(ValueLayout.JAVA_INT);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_gemm_kernel(precision.code(), name, probe, terms), "lmoe_cpu_gemm_kernel");
            String n = name.get(ValueLayout.ADDRESS, 0).reinterpret(64).getString(0);
            return new GemmKernel(n, PeakProbe.of(probe.get(ValueLayout.JAVA_INT, 0)), terms.get(ValueLayout.JAVA_INT, 0));
        }
    }

    /**
     * One measurement of a register-only compute probe on the native threads ({@link #setThreads}):
     * about {@code seconds} of the loop on every thread, random operands, no memory traffic; GFLOP/s
     * over all threads. {@link UnsupportedOperationException} when this CPU lacks the instructions.
     */
    public static double peakGFlops(PeakProbe probe, double seconds) {
        if (probe == null) throw new IllegalArgumentException("probe is null");
        if (!(seconds >= 1e-3 && seconds <= 60)) throw new IllegalArgumentException("seconds must be in [0.001, 60], got " + seconds);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_DOUBLE);
            int st = latentmoe_h.lmoe_cpu_peak_probe(probe.code, seconds, 1, out);
            if (st == latentmoe_h.LMOE_ERR_UNSUPPORTED)
                throw new UnsupportedOperationException(probe.label + ": " + latentmoe_h.lastError());
            latentmoe_h.check(st, "lmoe_cpu_peak_probe");
            return out.get(ValueLayout.JAVA_DOUBLE, 0);
        }
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
