package dev.latentmoe.bench;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** A command's "--name value" / "--flag" options; options no command asked for are rejected with a clear message. */
public final class Args {
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> used = new HashSet<>();

    /** Thrown for bad usage; the message is printed as one line and the exit code is 2. */
    public static final class UsageException extends RuntimeException {
        public UsageException(String message) { super(message); }
    }

    public Args(String[] argv, int from, Set<String> flags) {
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

    public String get(String name, String fallback) {
        used.add(name);
        return values.getOrDefault(name, fallback);
    }

    public String require(String name) {
        String v = get(name, null);
        if (v == null) throw new UsageException("missing required option --" + name);
        return v;
    }

    public boolean flag(String name) { return Boolean.parseBoolean(get(name, "false")); }

    public int intValue(String name, int fallback) { return number(name, fallback, Integer::parseInt); }

    public long longValue(String name, long fallback) { return number(name, fallback, Long::parseLong); }

    private <T> T number(String name, T fallback, java.util.function.Function<String, T> parse) {
        String v = get(name, null);
        if (v == null) return fallback;
        try {
            return parse.apply(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
        }
    }

    public List<Integer> intList(String name, String fallback) {
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
    public void finish() {
        for (String k : values.keySet()) {
            if (!used.contains(k)) throw new UsageException("unknown option --" + k);
        }
    }
}
