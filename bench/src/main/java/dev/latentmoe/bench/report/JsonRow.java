package dev.latentmoe.bench.report;

import dev.latentmoe.memory.io.Json;

import java.util.LinkedHashMap;

/**
 * One object of a command's JSON report: keys in insertion order, numbers with the decimals the
 * command chose ({@link #num}); written by {@link ReportFile#json}.
 */
public final class JsonRow extends LinkedHashMap<String, Object> {
    public JsonRow with(String key, Object value) {
        put(key, value);
        return this;
    }

    /** {@code v} with {@code places} decimals; null when not finite. */
    public JsonRow num(String key, double v, int places) { return with(key, Json.decimal(v, places)); }

    /** {@code v} in scientific notation with {@code digits} decimals; null when not finite. */
    public JsonRow sci(String key, double v, int digits) { return with(key, Json.scientific(v, digits)); }
}
