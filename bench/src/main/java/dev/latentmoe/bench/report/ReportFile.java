package dev.latentmoe.bench.report;

import dev.latentmoe.memory.io.Json;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes a command's report files: JSON through the memory module's {@link Json} (one row per line), SVG as text. */
public final class ReportFile {
    private ReportFile() {}

    /** {@code value} (rows, a {@link JsonRow}, lists of them) in {@link Json#writeReport}'s layout. */
    public static void json(Path path, Object value) {
        text(path, Json.writeReport(value));
    }

    /** Writes {@code text} to {@code path}, creating its folder. */
    public static void text(Path path, String text) {
        try {
            Path parent = path.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            Files.writeString(path, text);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + path + ": " + e.getMessage(), e);
        }
    }
}
