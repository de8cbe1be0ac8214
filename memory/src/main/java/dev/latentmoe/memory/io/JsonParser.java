package dev.latentmoe.memory.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The recursive-descent parser behind {@link Json#parse}: strict RFC 8259, bounded depth. */
final class JsonParser {
    private final CharSequence s;
    private final int maxDepth;
    private int pos;

    private JsonParser(CharSequence s, int maxDepth) {
        this.s = s;
        this.maxDepth = maxDepth;
    }

    /** See {@link Json#parse(CharSequence, int, int)}. */
    static Object parse(CharSequence text, int maxDepth, int maxLength) {
        if (text == null) throw new IllegalArgumentException("invalid JSON at offset 0: input is null");
        if (maxDepth < 1) throw new IllegalArgumentException("maxDepth " + maxDepth + " < 1");
        if (text.length() > maxLength) {
            throw new IllegalArgumentException("invalid JSON at offset " + maxLength + ": input of " + text.length()
                    + " chars exceeds the limit of " + maxLength);
        }
        JsonParser p = new JsonParser(text, maxDepth);
        p.skipWs();
        Object v = p.value(0);
        p.skipWs();
        if (p.pos != text.length()) throw p.error("unexpected " + p.describe(p.pos) + " after the value");
        return v;
    }

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
}
