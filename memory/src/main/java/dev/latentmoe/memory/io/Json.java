package dev.latentmoe.memory.io;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The project's one JSON reader and writer: checkpoint headers, {@code config.json},
 * {@code index.json}, Arrow metadata, and the command line's reports. It is meant to survive
 * hostile input.
 *
 * <p>Values map to Java as: object → {@link LinkedHashMap}{@code <String,Object>} (key order kept,
 * duplicate keys rejected), array → {@link List}{@code <Object>}, number → {@link Long} when written
 * without fraction or exponent and inside the {@code long} range, else {@link Double}, string →
 * {@link String}, {@code true}/{@code false} → {@link Boolean}, {@code null} → {@code null}.
 *
 * <p>Strictness: only the RFC 8259 grammar (no comments, trailing commas, single quotes, NaN,
 * leading zeros or {@code +}), whitespace only space/tab/CR/LF, raw control characters in strings
 * rejected, {@code \}{@code uXXXX} surrogates must pair up, nothing but whitespace after the value.
 * Errors raise {@code IllegalArgumentException("invalid JSON at offset N: ...")}. Nesting deeper
 * than the depth limit ({@value #DEFAULT_MAX_DEPTH} by default) is an error, never a
 * {@link StackOverflowError}; a caller bounds the input size ({@link #parse(CharSequence, int, int)}).
 */
public final class Json {
    private Json() {}

    /** Default nesting limit for objects and arrays. */
    public static final int DEFAULT_MAX_DEPTH = 64;
    /** Default input length limit in chars (100 M). */
    public static final int DEFAULT_MAX_LENGTH = 100 * 1024 * 1024;

    /** A number already formatted as a JSON number literal ({@link #decimal}, {@link #scientific}). */
    public record FormattedNumber(String text) {}

    /** Parses one JSON value with the default depth and length limits. */
    public static Object parse(CharSequence text) {
        return parse(text, DEFAULT_MAX_DEPTH, DEFAULT_MAX_LENGTH);
    }

    /** Parses one JSON value; nesting beyond {@code maxDepth} or input beyond {@code maxLength} chars is an error. */
    public static Object parse(CharSequence text, int maxDepth, int maxLength) {
        return JsonParser.parse(text, maxDepth, maxLength);
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

    /**
     * Writes a value compactly: {@link Map} (keys as strings), {@link Iterable}, {@code long[]},
     * {@code int[]}, {@link CharSequence}, {@link Number} (finite), {@link FormattedNumber},
     * {@link Boolean}, {@code null}.
     */
    public static String write(Object value) {
        return JsonWriter.compact(value);
    }

    /**
     * Writes a value for people and line tools to read, ending with a newline: an array one
     * element per line; an object one member per line, and a member that is an array of objects
     * one element per line; within a line ", " and ": ".
     */
    public static String writeReport(Object value) {
        return JsonWriter.report(value);
    }

    /** {@code text} as a JSON string literal (quotes included). */
    public static String quote(CharSequence text) {
        StringBuilder sb = new StringBuilder(text.length() + 2);
        JsonWriter.quote(sb, text);
        return sb.toString();
    }

    /** {@code v} with exactly {@code places} digits after the point ({@code %.Nf}); null (JSON null) when not finite. */
    public static FormattedNumber decimal(double v, int places) {
        if (!Double.isFinite(v)) return null;
        return new FormattedNumber(String.format(Locale.ROOT, "%." + places + "f", v));
    }

    /** {@code v} in scientific notation with {@code digits} digits after the point ({@code %.Ne}); null when not finite. */
    public static FormattedNumber scientific(double v, int digits) {
        if (!Double.isFinite(v)) return null;
        return new FormattedNumber(String.format(Locale.ROOT, "%." + digits + "e", v));
    }
}
