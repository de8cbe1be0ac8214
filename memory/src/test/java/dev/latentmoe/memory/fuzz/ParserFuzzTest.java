package dev.latentmoe.memory.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Json;
import dev.latentmoe.memory.io.Npy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Coverage-guided fuzzing (Jazzer) of the Java file and text parsers: .npy files and JSON (the
 * checkpoint readers are the native loader's, fuzzed through MoeLayer.fromCheckpoint by the
 * kernels module's CheckpointFuzzTest). Each target accepts only the parser's documented exception
 * ({@link IllegalArgumentException}); anything else (another exception, an OOM, a crash, a hang
 * caught by Jazzer's timeout) is a finding. On success the result is checked against the input
 * (sizes) and read end to end. In the normal test run the inputs under
 * {@code src/test/resources/dev/latentmoe/memory/fuzz/ParserFuzzTestInputs/<method>/} are replayed;
 * {@code JAZZER_FUZZ=1} fuzzes (see {@code ./latentmoe fuzz}).
 */
class ParserFuzzTest {
    private static final Path FILE;

    static {
        try {
            FILE = Files.createTempFile("latentmoe-fuzz", ".bin");
            FILE.toFile().deleteOnExit();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void write(byte[] bytes) {
        try {
            Files.write(FILE, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void readNpy(byte[] bytes) {
        write(bytes);
        try (HostArena arena = HostArena.confined("npy-fuzz")) {
            Tensor t = Npy.read(FILE, arena);
            if (t.byteSize() > bytes.length) throw new AssertionError("tensor of " + t.byteSize() + " bytes from a " + bytes.length + "-byte file");
            t.toFloatArray();
        } catch (IllegalArgumentException expected) {
            // documented
        }
    }

    /** Raw bytes as a .npy file. */
    @FuzzTest(maxDuration = "10s")
    void npyFile(byte[] bytes) {
        readNpy(bytes);
    }

    /** A correct magic and version, a fuzzed header (usually dict-like) and data. */
    @FuzzTest(maxDuration = "10s")
    void npyHeader(FuzzedDataProvider d) {
        int version = d.pickValue(new int[] {1, 2, 3});
        String header = d.consumeBoolean()
                ? "{'descr': '" + d.pickValue(new String[] {"<f4", "<f8", "<f2", "<u2", "<i4", ">f4", "|b1"}) + "', 'fortran_order': "
                  + (d.consumeBoolean() ? "False" : d.consumeString(6)) + ", 'shape': (" + d.consumeString(24) + "), }"
                  + " ".repeat(d.consumeInt(0, 64)) + "\n"
                : d.consumeString(256);
        byte[] h = header.getBytes(version == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        int prefix = version == 1 ? 10 : 12;
        long hlen = d.consumeBoolean() ? h.length : d.consumeInt();
        byte[] data = d.consumeRemainingAsBytes();
        ByteBuffer b = ByteBuffer.allocate(prefix + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) version, 0});
        if (version == 1) b.putShort((short) hlen); else b.putInt((int) hlen);
        b.put(h).put(data);
        readNpy(b.array());
    }

    /** JSON text. */
    @FuzzTest(maxDuration = "10s")
    void json(byte[] bytes) {
        String text = new String(bytes, StandardCharsets.UTF_8);
        Object v;
        try {
            v = Json.parse(text);
        } catch (IllegalArgumentException expected) {
            return;
        }
        // what we parse we can write, and it parses back to the same value
        String again;
        try {
            again = Json.write(v);
        } catch (IllegalArgumentException unpairedSurrogate) {
            return; // documented: JSON text cannot hold a lone surrogate escape's result
        }
        Object w = Json.parse(again);
        if (!Json.write(w).equals(again)) throw new AssertionError("write/parse not stable for " + again);
    }
}
