package dev.latentmoe.memory.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latentmoe.memory.Json;

class JsonFuzzTest {
    @FuzzTest(maxDuration = "5s")
    void parse(byte[] data) {
        String s = new String(data, java.nio.charset.StandardCharsets.UTF_8);
        try {
            Json.parse(s);
        } catch (IllegalArgumentException expected) {
        }
    }
}
