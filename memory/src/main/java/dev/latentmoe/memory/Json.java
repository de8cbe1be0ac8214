package dev.latentmoe.memory;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON (RFC 8259) parser and writer for checkpoint headers, {@code config.json} and
 * {@code index.json}; it is meant to survive hostile input.
 *
 * <p>Values map to Java as: object → {@link LinkedHashMap}{@code <String,Object>} (key order kept,
 * duplicate keys rejected), array → {@link List}{@code <Object>}, number → {@link Long} when written
 * without fraction or exponent and inside the {@code long} range, else {@link Double}, string →
 * {@link String}, {@code true}/{@code false} → {@link Boolean}, {@code null} → {@code null}.
 *
 * <p>Strictness: only the RFC grammar (no comments, trailing commas, single quotes, NaN, leading
 * zeros or {@code +}), whitespace only space/tab/CR/LF, raw control characters in strings rejected,
 * {@code \}{@code uXXXX} surrogates must pair up, nothing but whitespace after the value. Errors
 * raise {@code IllegalArgumentException("invalid JSON at offset N: ...")} where N is the char offset.
 *
 * <p>Safety: nesting deeper than the depth limit ({@value #DEFAULT_MAX_DEPTH} by default) is an
 * error, never a {@link StackOverflowError}; the result is at most linear in the input size, and a
 * caller bounds the input size ({@link #parse(CharSequence, int, int)}) before reading a file.
 */
public final class Json {
    /** Default nesting limit for objects and arrays. */
    public static final int DEFAULT_MAX_DEPTH = 64;
    /** Default input length limit in chars (100 M). */
    public static final int DEFAULT_MAX_LENGTH = 100 * 1024 * 1024;

    private final CharSequence s;
    private final int maxDepth;
    private int pos;

    private Json(CharSequence s, int maxDepth) {
        this.s = s;
        this.maxDepth = maxDepth;
    }

    /** Parses one JSON value with the default depth and length limits. */
    public static Object parse(CharSequence text) {
        return parse(text, DEFAULT_MAX_DEPTH, DEFAULT_MAX_LENGTH);
    }

    /** Parses one JSON value; nesting beyond {@code maxDepth} or input beyond {@code maxLength} chars is an error. */
    public static Object parse(CharSequence text, int maxDepth, int maxLength) {
        if (text == null) throw new IllegalArgumentException("invalid JSON at offset 0: input is null");
        if (maxDepth < 1) throw new IllegalArgumentException("maxDepth " + maxDepth + " < 1");
        if (text.length() > maxLength) {
            throw new IllegalArgumentException("invalid JSON at offset " + maxLength + ": input of " + text.length()
                    + " chars exceeds the limit of " + maxLength);
        }
        Json p = new Json(text, maxDepth);
        p.skipWs();
        Object v = p.value(0);
        p.skipWs();
        if (p.pos != text.length()) throw p.error("unexpected " + p.describe(p.pos) + " after the value");
        return v;
    }

    /** Parses text that must be a JSON object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(CharSequence text) {
        Object v = parse(text);
        if (!(v instanceof Map)) throw new IllegalArgumentException("invalid JSON at offset 0: expected an object, got " + typeName(v));
        return (Map<String, Object>) v;
    }

    /** A short name of a parsed value's JSON type, for error messages. */
    public static String typeName(Object v) {
        if (v == null) return "null";
        if (v instanceof Map) return "object";
        if (v instanceof List) return "array";
        if (v instanceof String) return "string";
        if (v instanceof Boolean) return "boolean";
        if (v instanceof Number) return "number";
        return v.getClass().getSimpleName();
    }

    // ---------------------------------------------------------------- parser

    private IllegalArgumentException error(String message) {
        return error(pos, message);
    }

    private static IllegalArgumentException error(int offset, String message) {
        return new IllegalArgumentException("invalid JSON at offset " + offset + ": " + message);
    }

    private String describe(int at) {
        if (at >= s.length()) return "end of input";
        char c = s.charAt(at);
        if (c < 0x20 || c > 0x7E) return String.format("character U+%04X", (int) c);
        return "'" + c + "'";
    }

    private void skipWs() {
        int n = s.length();
        while (pos < n) {
            char c = s.charAt(pos);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++;
            else break;
        }
    }

    private Object value(int depth) {
        if (pos >= s.length()) throw error("unexpected end of input, expected a value");
        char c = s.charAt(pos);
        return switch (c) {
            case '{' -> object(depth + 1);
            case '[' -> array(depth + 1);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) yield number();
                throw error("unexpected " + describe(pos) + ", expected a value");
            }
        };
    }

    private Object literal(String word, Object result) {
        int n = word.length();
        if (pos + n > s.length() || !word.contentEquals(s.subSequence(pos, pos + n))) {
            throw error("unexpected " + describe(pos) + ", expected a value");
        }
        pos += n;
        return result;
    }

    private Map<String, Object> object(int depth) {
        if (depth > maxDepth) throw error("nesting deeper than " + maxDepth);
        pos++; // '{'
        Map<String, Object> map = new LinkedHashMap<>();
        skipWs();
        if (pos < s.length() && s.charAt(pos) == '}') {
            pos++;
            return map;
        }
        while (true) {
            skipWs();
            if (pos >= s.length() || s.charAt(pos) != '"') throw error("expected a string key, got " + describe(pos));
            int keyAt = pos;
            String key = string();
            skipWs();
            if (pos >= s.length() || s.charAt(pos) != ':') throw error("expected ':' after key, got " + describe(pos));
            pos++;
            skipWs();
            Object v = value(depth);
            if (map.containsKey(key)) throw error(keyAt, "duplicate key \"" + abbreviate(key) + "\"");
            map.put(key, v);
            skipWs();
            if (pos >= s.length()) throw error("unexpected end of input in an object");
            char c = s.charAt(pos++);
            if (c == '}') return map;
            if (c != ',') {
                pos--;
                throw error("expected ',' or '}' in an object, got " + describe(pos));
            }
        }
    }

    private List<Object> array(int depth) {
        if (depth > maxDepth) throw error("nesting deeper than " + maxDepth);
        pos++; // '['
        List<Object> list = new ArrayList<>();
        skipWs();
        if (pos < s.length() && s.charAt(pos) == ']') {
            pos++;
            return list;
        }
        while (true) {
            skipWs();
            list.add(value(depth));
            skipWs();
            if (pos >= s.length()) throw error("unexpected end of input in an array");
            char c = s.charAt(pos++);
            if (c == ']') return list;
            if (c != ',') {
                pos--;
                throw error("expected ',' or ']' in an array, got " + describe(pos));
            }
        }
    }

    private String string() {
        pos++; // opening quote
        StringBuilder sb = null;
        int start = pos;
        int n = s.length();
        while (true) {
            if (pos >= n) throw error(start - 1, "unterminated string");
            char c = s.charAt(pos);
            if (c == '"') {
                String out = sb == null ? s.subSequence(start, pos).toString() : sb.append(s, start, pos).toString();
                pos++;
                return out;
            }
            if (c < 0x20) throw error("raw control character U+" + String.format("%04X", (int) c) + " in a string");
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && pos + 1 < n && Character.isLowSurrogate(s.charAt(pos + 1))) {
                    pos += 2;
                    continue;
                }
                throw error("unpaired surrogate in a string");
            }
            if (c != '\\') {
                pos++;
                continue;
            }
            if (sb == null) sb = new StringBuilder();
            sb.append(s, start, pos);
            pos++;
            if (pos >= n) throw error(start - 1, "unterminated string");
            char e = s.charAt(pos++);
            switch (e) {
                case '"' -> sb.append('"');
                case '\\' -> sb.append('\\');
                case '/' -> sb.append('/');
                case 'b' -> sb.append('\b');
                case 'f' -> sb.append('\f');
                case 'n' -> sb.append('\n');
                case 'r' -> sb.append('\r');
                case 't' -> sb.append('\t');
                case 'u' -> {
                    char u = hex4();
                    if (Character.isHighSurrogate(u)) {
                        if (pos + 1 < n && s.charAt(pos) == '\\' && s.charAt(pos + 1) == 'u') {
                            pos += 2;
                            char low = hex4();
                            if (!Character.isLowSurrogate(low)) throw error(pos - 6, "high surrogate escape not followed by a low surrogate");
                            sb.append(u).append(low);
                        } else {
                            throw error(pos - 6, "unpaired high surrogate escape");
                        }
                    } else if (Character.isLowSurrogate(u)) {
                        throw error(pos - 6, "unpaired low surrogate escape");
                    } else {
                        sb.append(u);
                    }
                }
                default -> {
                    pos--;
                    throw error("invalid escape '\\" + (e < 0x20 || e > 0x7E ? "?" : String.valueOf(e)) + "'");
                }
            }
            start = pos;
        }
    }

    private char hex4() {
        if (pos + 4 > s.length()) throw error("truncated \\u escape");
        int v = 0;
        for (int i = 0; i < 4; i++) {
            char c = s.charAt(pos + i);
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) throw error(pos + i, "invalid hex digit " + describe(pos + i) + " in \\u escape");
            v = (v << 4) | d;
        }
        pos += 4;
        return (char) v;
    }

    private Object number() {
        int start = pos;
        int n = s.length();
        if (s.charAt(pos) == '-') pos++;
        if (pos >= n) throw error("truncated number");
        char c = s.charAt(pos);
        if (c == '0') {
            pos++;
            if (pos < n && isDigit(s.charAt(pos))) throw error("leading zero in a number");
        } else if (c >= '1' && c <= '9') {
            while (pos < n && isDigit(s.charAt(pos))) pos++;
        } else {
            throw error("expected a digit, got " + describe(pos));
        }
        boolean integral = true;
        if (pos < n && s.charAt(pos) == '.') {
            integral = false;
            pos++;
            if (pos >= n || !isDigit(s.charAt(pos))) throw error("expected a digit after '.'");
            while (pos < n && isDigit(s.charAt(pos))) pos++;
        }
        if (pos < n && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
            integral = false;
            pos++;
            if (pos < n && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) pos++;
            if (pos >= n || !isDigit(s.charAt(pos))) throw error("expected a digit in the exponent");
            while (pos < n && isDigit(s.charAt(pos))) pos++;
        }
        String text = s.subSequence(start, pos).toString();
        if (integral && text.length() <= 20) {
            try {
                return Long.parseLong(text);
            } catch (NumberFormatException overflow) {
                // falls through to a double
            }
        }
        double d = Double.parseDouble(text);
        if (Double.isInfinite(d)) throw error(start, "number " + abbreviate(text) + " out of range");
        return d;
    }

    private static boolean isDigit(char c) { return c >= '0' && c <= '9'; }

    private static String abbreviate(String key) {
        return key.length() <= 64 ? key : key.substring(0, 61) + "...";
    }

    // ---------------------------------------------------------------- writer

    /**
     * Writes a value compactly: {@link Map} (keys as strings), {@link Iterable}, {@code long[]},
     * {@code int[]}, {@link CharSequence}, {@link Number} (finite), {@link Boolean}, {@code null}.
     */
    public static String write(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, int depth) {
        if (depth > 1000) throw new IllegalArgumentException("value nested too deeply (cyclic?)");
        switch (v) {
            case null -> sb.append("null");
            case CharSequence cs -> quote(sb, cs);
            case Boolean b -> sb.append(b.booleanValue());
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
                for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : ",").append(a[i]);
                sb.append(']');
            }
            case int[] a -> {
                sb.append('[');
                for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : ",").append(a[i]);
                sb.append(']');
            }
            case Map<?, ?> m -> {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    quote(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue(), depth + 1);
                }
                sb.append('}');
            }
            case Iterable<?> it -> {
                sb.append('[');
                boolean first = true;
                for (Object o : it) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, o, depth + 1);
                }
                sb.append(']');
            }
            default -> throw new IllegalArgumentException("cannot write " + v.getClass().getName() + " as JSON");
        }
    }

    /** {@code text} as a JSON string literal (quotes included). */
    public static String quote(CharSequence text) {
        StringBuilder sb = new StringBuilder(text.length() + 2);
        quote(sb, text);
        return sb.toString();
    }

    private static void quote(StringBuilder sb, CharSequence text) {
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
