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
     * constants of the bindings, named in lower case ("scalar", "avx2", "avx512", ...), so a new
     * path is named here as soon as its constant is bound.
     */
    private static final Map<Integer, String> ISA_NAMES = isaNames(latentmoe_h.class);

    static Map<Integer, String> isaNames(Class<?> header) {
        Map<Integer, String> names = new TreeMap<>();
        for (Field f : header.getFields()) {
            if (f.getName().startsWith("LMOE_ISA_") && f.getType() == int.class && Modifier.isStatic(f.getModifiers())) {
                try {
                    names.put(f.getInt(null), f.getName().substring("LMOE_ISA_".length()).toLowerCase(Locale.ROOT));
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

    /** One measurement of {@code probe} over arrays of {@code arrayBytes} each, in GB/s (1e9 bytes/s). */
    public static double streamGBps(StreamProbe probe, long arrayBytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_DOUBLE);
            latentmoe_h.check(latentmoe_h.lmoe_cpu_membw_probe(probe.code, arrayBytes, 1, out), "lmoe_cpu_membw_probe");
            return out.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }
}
