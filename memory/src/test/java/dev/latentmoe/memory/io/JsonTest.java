package dev.latentmoe.memory.io;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import java.util.Map;
import java.util.Random;

import dev.latentmoe.memory.ArenaLeakCheck;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(ArenaLeakCheck.class)
class JsonTest {
    @Test
    void parsesAllValueKinds() {
        Object v = Json.parse(" {\"a\": [1, -2, 3.5, 1e3, -0, 0.25E-1], \"b\": {\"c\": true, \"d\": false, \"e\": null},"
                + " \"s\": \"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}\n");
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of("a", "b", "s"), List.copyOf(m.keySet()));
        assertEquals(List.of(1L, -2L, 3.5, 1000.0, 0L, 0.025), m.get("a"));
        Map<?, ?> b = (Map<?, ?>) m.get("b");
        assertEquals(Boolean.TRUE, b.get("c"));
        assertEquals(Boolean.FALSE, b.get("d"));
        assertTrue(b.containsKey("e"));
        assertNull(b.get("e"));
        assertEquals("x\"y\\z/\b\f\n\r\t\u00e9\uD83D\uDE00", m.get("s"));
        assertEquals(Long.MAX_VALUE, Json.parse("9223372036854775807"));
        assertEquals(Long.MIN_VALUE, Json.parse("-9223372036854775808"));
        assertEquals(9.223372036854775808E18, Json.parse("9223372036854775808")); // overflow -> double
        assertEquals(List.of(), Json.parse("[]"));
        assertEquals(Map.of(), Json.parse("{ }"));
        assertEquals("\uD83D\uDE00", Json.parse("\"\uD83D\uDE00\"")); // raw pair ok
    }

    private static void bad(String text, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(text), text);
        assertTrue(e.getMessage().startsWith("invalid JSON at offset "), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void rejectsInvalidInput() {
        bad("", "end of input");
        bad("   ", "end of input");
        bad("{", "expected a string key");
        bad("{\"a\":1,}", "expected a string key");
        bad("[1,]", "expected a value");
        bad("[1 2]", "expected ',' or ']'");
        bad("{\"a\" 1}", "expected ':'");
        bad("{\"a\":1 \"b\":2}", "expected ',' or '}'");
        bad("{\"a\":1,\"a\":2}", "duplicate key");
        bad("01", "leading zero");
        bad("1.", "after '.'");
        bad(".5", "expected a value");
        bad("+1", "expected a value");
        bad("1e", "exponent");
        bad("-", "truncated");
        bad("1e999", "out of range");
        bad("NaN", "expected a value");
        bad("tru", "expected a value");
        bad("nul", "expected a value");
        bad("'a'", "expected a value");
        bad("\"abc", "unterminated");
        bad("\"a\nb\"", "control character");
        bad("\"\\x\"", "invalid escape");
        bad("\"\\u12zz\"", "hex digit");
        bad("\"\\u12", "truncated");
        bad("\"\\ud83d\"", "unpaired high surrogate");
        bad("\"\\ud83d\\u0041\"", "not followed by a low surrogate");
        bad("\"\\ude00\"", "unpaired low surrogate");
        bad("\"\uD83D\"", "unpaired surrogate");
        bad("{} x", "after the value");
        bad("[1]]", "after the value");
        bad("\u00a0[]", "expected a value");
        bad("/* c */ 1", "expected a value");
    }

    @Test
    void errorOffsetIsReported() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse("[1, 2, x]"));
        assertTrue(e.getMessage().startsWith("invalid JSON at offset 7:"), e.getMessage());
    }

    @Test
    void deepNestingIsAnErrorNotAStackOverflow() {
        String deep = "[".repeat(100_000) + "]".repeat(100_000);
        bad(deep, "nesting deeper than 64");
        String deepObj = "{\"a\":".repeat(100_000);
        bad(deepObj, "nesting deeper than 64");
        String ok = "[".repeat(64) + "]".repeat(64);
        assertNotNull(Json.parse(ok));
        bad("[".repeat(65) + "]".repeat(65), "nesting deeper than 64");
        assertThrows(IllegalArgumentException.class, () -> Json.parse("[[1]]", 1, 100));
    }

    @Test
    void lengthLimit() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse("[1,2,3]", 64, 5));
        assertTrue(e.getMessage().contains("exceeds the limit"));
    }

    @Test
    void fuzzNeverThrowsAnythingElse() {
        Random r = new Random(42);
        String seed = "{\"a\": [1, 2.5e-3, \"x\\u0041\\n\", true, null, {\"b\": false}], \"c\": -0.0}";
        char[] alphabet = "{}[]\",:\\u0123456789eE+-.tfnrl \n".toCharArray();
        for (int i = 0; i < 20_000; i++) {
            StringBuilder sb = new StringBuilder(seed);
            int edits = 1 + r.nextInt(4);
            for (int k = 0; k < edits; k++) {
                int at = r.nextInt(sb.length() + 1);
                switch (r.nextInt(3)) {
                    case 0 -> sb.insert(at, alphabet[r.nextInt(alphabet.length)]);
                    case 1 -> { if (at < sb.length()) sb.deleteCharAt(at); }
                    default -> { if (at < sb.length()) sb.setCharAt(at, (char) r.nextInt(0x10000)); }
                }
            }
            try {
                Json.parse(sb);
            } catch (IllegalArgumentException expected) {
                assertTrue(expected.getMessage().startsWith("invalid JSON at offset "), expected.getMessage());
            }
        }
    }

    @Test
    void writeRoundTrips() {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("s", "q\"\\\n\u0001é\uD83D\uDE00");
        m.put("n", List.of(1L, -2L, 0.5));
        m.put("shape", new long[] {2, 3});
        m.put("z", null);
        m.put("t", true);
        String text = Json.write(m);
        Map<String, Object> back = Json.parseObject(text);
        assertEquals(m.get("s"), back.get("s"));
        assertEquals(m.get("n"), back.get("n"));
        assertEquals(List.of(2L, 3L), back.get("shape"));
        assertNull(back.get("z"));
        assertEquals(true, back.get("t"));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Json.write("\uD800"));
        assertThrows(IllegalArgumentException.class, () -> Json.parseObject("[1]"));
    }

    @Test
    void reportLayoutIsOneRowPerLineAndParsesBack() {
        Map<String, Object> r1 = new java.util.LinkedHashMap<>();
        r1.put("tokens", 1);
        r1.put("median_ms", Json.decimal(16.5599451, 6));
        r1.put("rel_err", Json.scientific(2.5e-3, 4));
        r1.put("nan", Json.decimal(Double.NaN, 4));
        r1.put("shapes", List.of(Map.of("m", 2L), Map.of("m", 3L)));
        Map<String, Object> r2 = Map.of("tokens", 4L);
        String rows = Json.writeReport(List.of(r1, r2));
        assertEquals("[\n  {\"tokens\": 1, \"median_ms\": 16.559945, \"rel_err\": 2.5000e-03, \"nan\": null, "
                + "\"shapes\": [{\"m\": 2}, {\"m\": 3}]},\n  {\"tokens\": 4}\n]\n", rows);
        List<?> back = (List<?>) Json.parse(rows);
        assertEquals(16.559945, ((Map<?, ?>) back.get(0)).get("median_ms"));
        assertEquals(0.0025, ((Map<?, ?>) back.get(0)).get("rel_err"));

        Map<String, Object> doc = new java.util.LinkedHashMap<>();
        doc.put("device", "d");
        doc.put("host", List.of(Map.of("k", 1L), Map.of("k", 2L)));
        doc.put("over", Map.of("a", true));
        assertEquals("{\n  \"device\": \"d\",\n  \"host\": [\n    {\"k\": 1},\n    {\"k\": 2}\n  ],\n"
                + "  \"over\": {\"a\": true}\n}\n", Json.writeReport(doc));
        assertEquals(doc.get("device"), ((Map<?, ?>) Json.parse(Json.writeReport(doc))).get("device"));
        assertEquals("{\"a\":[1,2]}", Json.write(Map.of("a", new long[] {1, 2})), "compact stays compact");
    }
}
