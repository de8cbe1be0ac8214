package dev.latentmoe.memory.io;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

@ExtendWith(ArenaLeakCheck.class)
class CheckpointTest {
    @TempDir Path tmp;

    private static Tensor filled(MemoryArena a, DType t, float base, long... shape) {
        Tensor x = a.allocateTensor(t, shape);
        float[] v = new float[(int) x.numel()];
        for (int i = 0; i < v.length; i++) v[i] = base + i;
        return x.copyFrom(v);
    }

    private static void writeConfig(Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"latentmoe\", \"hidden_size\": 64, \"num_experts\": 8,"
                + " \"rope_theta\": 10000.0, \"layers\": [\"moe\", \"dense\"]}");
    }

    /** Two shards: layer 0 in shard 1, layer 1 + embeddings in shard 2. */
    private Path shardedCheckpoint() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("ckpt"));
        writeConfig(dir);
        try (HostArena a = HostArena.confined("build")) {
            Map<String, Tensor> s1 = new LinkedHashMap<>();
            s1.put("model.layers.0.w", filled(a, DType.BF16, 1, 4, 8));
            s1.put("model.layers.0.router", filled(a, DType.F32, 100, 8));
            Map<String, Tensor> s2 = new LinkedHashMap<>();
            s2.put("model.layers.1.w", filled(a, DType.BF16, 2, 4, 8));
            s2.put("model.embed", filled(a, DType.F16, 3, 16, 4));
            s2.put("model.layers.1.ids", filled(a, DType.I32, 7, 3));
            SafeTensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), s1, Map.of("format", "pt"));
            SafeTensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), s2, Map.of("format", "pt"));
        }
        Files.writeString(dir.resolve("model.safetensors.index.json"), """
                {"metadata": {"total_size": 1000},
                 "weight_map": {
                   "model.layers.0.w": "model-00001-of-00002.safetensors",
                   "model.layers.0.router": "model-00001-of-00002.safetensors",
                   "model.layers.1.w": "model-00002-of-00002.safetensors",
                   "model.embed": "model-00002-of-00002.safetensors",
                   "model.layers.1.ids": "model-00002-of-00002.safetensors"}}
                """);
        return dir;
    }

    @Test
    void shardedCheckpointOpensShardsLazily() throws Exception {
        Path dir = shardedCheckpoint();
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals("latentmoe", c.config().get("model_type"));
            assertEquals(64L, c.config().get("hidden_size"));
            assertEquals(10000.0, c.config().get("rope_theta"));
            assertEquals(List.of("moe", "dense"), c.config().get("layers"));
            assertEquals(5, c.names().size());
            assertTrue(c.has("model.embed"));
            assertFalse(c.has("model.layers.2.w"));
            assertEquals(2, c.shardFiles().size());
            assertEquals(0, c.openShardCount());
            assertEquals(0, MemoryAccounting.mappedBytes());

            Tensor w0 = c.tensor("model.layers.0.w");
            assertEquals(1, c.openShardCount());
            assertEquals(DType.BF16, w0.dtype());
            assertArrayEquals(new long[] {4, 8}, w0.shape());
            assertEquals(1f + 9, w0.getFloat(1, 1));
            assertEquals(105f, c.tensor("model.layers.0.router").getFloat(5));
            assertEquals(1, c.openShardCount()); // cached

            assertEquals(2f + 31, c.tensor("model.layers.1.w").getFloat(31));
            assertEquals(2, c.openShardCount());
            assertEquals(DType.F16, c.tensor("model.embed").dtype());
            assertEquals(9, c.tensor("model.layers.1.ids").getInt(2));
            assertEquals("F16", c.info("model.embed").dtype());
            assertTrue(MemoryAccounting.mappedBytes() > 0);
            assertEquals(2, MemoryAccounting.openArenas());

            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> c.tensor("model.layers.9.w"));
            assertTrue(e.getMessage().contains("model.layers.9.w") && e.getMessage().contains(dir.toAbsolutePath().toString()),
                    e.getMessage());
        }
    }

    @Test
    void closeUnmapsEverything() throws Exception {
        Path dir = shardedCheckpoint();
        Checkpoint c = Checkpoint.open(dir);
        Tensor t = c.tensor("model.embed");
        c.tensor("model.layers.0.w");
        c.close();
        assertEquals(0, MemoryAccounting.totalBytes());
        assertThrows(IllegalStateException.class, () -> t.getFloat(0));
        assertThrows(IllegalStateException.class, () -> c.tensor("model.embed"));
        c.close();
    }

    @Test
    void singleFileCheckpoint() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("single"));
        writeConfig(dir);
        try (HostArena a = HostArena.confined("build")) {
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), Map.of("x", filled(a, DType.F32, 5, 2, 2)), null);
        }
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(List.of("x"), List.copyOf(c.names()));
            assertEquals(8f, c.tensor("x").getFloat(1, 1));
        }
    }

    @Test
    void indexListsTensorMissingFromShard() throws Exception {
        Path dir = shardedCheckpoint();
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"ghost\": \"model-00001-of-00002.safetensors\"}}");
        try (Checkpoint c = Checkpoint.open(dir)) {
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> c.tensor("ghost"));
            assertTrue(e.getMessage().contains("ghost") && e.getMessage().contains("missing from the shard"), e.getMessage());
        }
    }

    private void badIndex(Path dir, String weightMapJson, String fragment) throws Exception {
        Files.writeString(dir.resolve("model.safetensors.index.json"), weightMapJson);
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(dir).close());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
        assertTrue(e.getMessage().contains("model.safetensors.index.json"), e.getMessage());
    }

    @Test
    void pathTraversalInIndexIsRejected() throws Exception {
        Path dir = shardedCheckpoint();
        // a real file outside the checkpoint that the traversal would reach
        try (HostArena a = HostArena.confined("build")) {
            SafeTensorsWriter.write(tmp.resolve("outside.safetensors"), Map.of("x", filled(a, DType.F32, 0, 1)), null);
        }
        badIndex(dir, "{\"weight_map\": {\"x\": \"../outside.safetensors\"}}", "escapes the checkpoint directory");
        badIndex(dir, "{\"weight_map\": {\"x\": \"sub/../../outside.safetensors\"}}", "escapes");
        badIndex(dir, "{\"weight_map\": {\"x\": \"" + tmp.resolve("outside.safetensors").toAbsolutePath() + "\"}}", "absolute");
        badIndex(dir, "{\"weight_map\": {\"x\": \"..\\\\outside.safetensors\"}}", "not a plain relative file name");
        badIndex(dir, "{\"weight_map\": {\"x\": \"a\\u0000b\"}}", "not a plain relative file name");
        badIndex(dir, "{\"weight_map\": {\"x\": \"\"}}", "not a plain relative file name");
        badIndex(dir, "{\"weight_map\": {\"x\": \".\"}}", "escapes");
        badIndex(dir, "{\"weight_map\": {\"x\": 3}}", "must be a file name");
        badIndex(dir, "{\"weight_map\": {\"x\": \"model-00003-of-00002.safetensors\"}}", "does not exist");
        badIndex(dir, "{\"weight_map\": []}", "weight_map must be an object");
        badIndex(dir, "{\"weight_map\": {", "invalid JSON");
        badIndex(dir, "[]", "expected a JSON object");
    }

    @Test
    void missingPieces() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("empty"));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        writeConfig(dir);
        e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("neither model.safetensors nor"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), "{\"a\": 1,}");
        e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("invalid JSON"), e.getMessage());
        assertThrows(SafeTensorsException.class, () -> Checkpoint.open(tmp.resolve("nope")));
    }
}
