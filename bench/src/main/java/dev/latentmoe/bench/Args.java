package dev.latentmoe.bench;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Minimal "--name value" / "--flag" parser that rejects unknown options with a clear message. */
final class Args {
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> used = new HashSet<>();

    /** Thrown for bad usage; the message is printed as one line and the exit code is 2. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) { super(message); }
    }

    Args(String[] argv, int from, Set<String> flags) {
        for (int i = from; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--")) throw new UsageException("unexpected argument '" + a + "'");
            String name = a.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (flags.contains(name)) {
                value = "true";
            } else {
                if (i + 1 >= argv.length) throw new UsageException("option --" + name + " needs a value");
                value = argv[++i];
            }
            values.put(name, value);
        }
    }

    String get(String name, String fallback) {
        used.add(name);
        return values.getOrDefault(name, fallback);
    }

    String require(String name) {
        String v = get(name, null);
        if (v == null) throw new UsageException("missing required option --" + name);
        return v;
    }

    boolean flag(String name) { return Boolean.parseBoolean(get(name, "false")); }

    int intValue(String name, int fallback) {
        String v = get(name, null);
        if (v == null) return fallback;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
        }
    }

    long longValue(String name, long fallback) {
        String v = get(name, null);
        if (v == null) return fallback;
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
        }
    }

    List<Integer> intList(String name, String fallback) {
        String v = get(name, fallback);
        List<Integer> out = new ArrayList<>();
        for (String s : v.split(",")) {
            try {
                int n = Integer.parseInt(s.trim());
                if (n < 1) throw new UsageException("--" + name + " values must be >= 1, got " + n);
                out.add(n);
            } catch (NumberFormatException e) {
                throw new UsageException("--" + name + " must be a comma-separated list of integers, got '" + v + "'");
            }
        }
        return out;
    }

    /** Fails on any option no command asked for. */
    void finish() {
        for (String k : values.keySet()) {
            if (!used.contains(k)) throw new UsageException("unknown option --" + k);
        }
    }
}
