package dev.latentmoe.memory.io;

import java.util.List;
import java.util.Map;

/**
 * The writer behind {@link Json#write} and {@link Json#writeReport}: one value walk with two
 * separator styles, and the report layout on top (rows of an array one per line).
 */
final class JsonWriter {
    private final StringBuilder sb = new StringBuilder();
    private final String comma;
    private final String colon;

    private JsonWriter(boolean spaced) {
        this.comma = spaced ? ", " : ",";
        this.colon = spaced ? ": " : ":";
    }

    static String compact(Object value) {
        JsonWriter w = new JsonWriter(false);
        w.value(value, 0);
        return w.sb.toString();
    }

    /**
     * An array: one element per line. An object: one member per line, a member that is an array of
     * objects with its elements one per line. Everything inside a line is written inline with
     * ", " and ": ". Ends with a newline.
     */
    static String report(Object value) {
        JsonWriter w = new JsonWriter(true);
        switch (value) {
            case Map<?, ?> m -> {
                w.sb.append("{\n");
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    w.sb.append(first ? "" : ",\n").append("  ");
                    first = false;
                    quote(w.sb, String.valueOf(e.getKey()));
                    w.sb.append(": ");
                    if (e.getValue() instanceof List<?> l && !l.isEmpty() && l.stream().allMatch(Map.class::isInstance)) {
                        w.rows(l, "    ");
                        w.sb.append("\n  ]");
                    } else {
                        w.value(e.getValue(), 1);
                    }
                }
                w.sb.append("\n}\n");
            }
            case Iterable<?> it -> {
                w.rows(it, "  ");
                w.sb.append("\n]\n");
            }
            default -> {
                w.value(value, 0);
                w.sb.append('\n');
            }
        }
        return w.sb.toString();
    }

    /** "[" and the elements, each on its own line after {@code indent} (no closing bracket). */
    private void rows(Iterable<?> elements, String indent) {
        sb.append('[');
        boolean first = true;
        for (Object o : elements) {
            sb.append(first ? "\n" : ",\n").append(indent);
            first = false;
            value(o, 1);
        }
    }

    private void value(Object v, int depth) {
        if (depth > 1000) throw new IllegalArgumentException("value nested too deeply (cyclic?)");
        switch (v) {
            case null -> sb.append("null");
            case CharSequence cs -> quote(sb, cs);
            case Boolean b -> sb.append(b.booleanValue());
            case Json.FormattedNumber f -> sb.append(f.text());
            case Double d -> {
                if (!Double.isFinite(d)) throw new IllegalArgumentException("JSON cannot hold " + d);
                sb.append(d);
            }
            case Float f -> {
                if (!Float.isFinite(f)) throw new IllegalArgumentException("JSON cannot hold " + f);
                sb.append(f);
            }
            case Number num -> sb.append(num);
            case long[] a -> {
                sb.append('[');
                for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : comma).append(a[i]);
                sb.append(']');
            }
            case int[] a -> {
                sb.append('[');
                for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : comma).append(a[i]);
                sb.append(']');
            }
            case Map<?, ?> m -> {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) sb.append(comma);
                    first = false;
                    quote(sb, String.valueOf(e.getKey()));
                    sb.append(colon);
                    value(e.getValue(), depth + 1);
                }
                sb.append('}');
            }
            case Iterable<?> it -> {
                sb.append('[');
                boolean first = true;
                for (Object o : it) {
                    if (!first) sb.append(comma);
                    first = false;
                    value(o, depth + 1);
                }
                sb.append(']');
            }
            default -> throw new IllegalArgumentException("cannot write " + v.getClass().getName() + " as JSON");
        }
    }

    static void quote(StringBuilder sb, CharSequence text) {
        sb.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    boolean lone = Character.isSurrogate(c) && !(Character.isHighSurrogate(c) && i + 1 < text.length()
                            && Character.isLowSurrogate(text.charAt(i + 1)));
                    if (lone) throw new IllegalArgumentException("unpaired surrogate at index " + i + " cannot be written as JSON");
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                        if (Character.isHighSurrogate(c)) sb.append(text.charAt(++i));
                    }
                }
            }
        }
        sb.append('"');
    }
}
