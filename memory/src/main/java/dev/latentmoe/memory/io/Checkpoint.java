package dev.latentmoe.memory.io;

import dev.latentmoe.memory.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * A Hugging Face style checkpoint directory: {@code config.json} plus either
 * {@code model.safetensors} or, when that is absent, {@code model.safetensors.index.json} whose
 * {@code weight_map} names the shard file of every tensor. Shards are mapped lazily on first use
 * and cached; {@link #close()} unmaps them all. Thread-safe.
 *
 * <p>Shard file names from the index must be relative paths that stay inside the directory
 * lexically (no absolute paths, no {@code ..} escaping it); symbolic links inside the directory are
 * followed, as in the Hugging Face hub cache. Every shard the index names must exist at open.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String CONFIG = "config.json";
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";
    /** Largest config.json / index.json read. */
    public static final long MAX_JSON_BYTES = 64L * 1024 * 1024;

    private final Path dir;
    private final Map<String, Object> config;
    private final Map<String, Path> weightMap; // tensor name -> shard path
    private final Map<Path, SafeTensorsFile> open = new LinkedHashMap<>();
    private boolean closed;

    private Checkpoint(Path dir, Map<String, Object> config, Map<String, Path> weightMap) {
        this.dir = dir;
        this.config = config;
        this.weightMap = weightMap;
    }

    /** Opens the checkpoint in {@code dir}; reads the config and the index (or the single file's header). */
    public static Checkpoint open(Path dir) {
        Path d = dir.toAbsolutePath().normalize();
        if (!Files.isDirectory(d)) throw new SafeTensorsException(d, "not a checkpoint directory");
        Map<String, Object> config = readJsonObject(d.resolve(CONFIG));
        Path single = d.resolve(SINGLE_FILE);
        Path index = d.resolve(INDEX);
        if (Files.exists(single)) {
            SafeTensorsFile f = SafeTensorsFile.open(single);
            Map<String, Path> weightMap = new LinkedHashMap<>();
            for (String n : f.names()) weightMap.put(n, single);
            Checkpoint c = new Checkpoint(d, config, Collections.unmodifiableMap(weightMap));
            c.open.put(single, f);
            return c;
        }
        if (!Files.exists(index)) {
            throw new SafeTensorsException(d, "neither " + SINGLE_FILE + " nor " + INDEX + " found");
        }
        Map<String, Object> idx = readJsonObject(index);
        if (!(idx.get("weight_map") instanceof Map<?, ?> wm)) {
            throw new SafeTensorsException(index, "weight_map must be an object, got " + Json.typeName(idx.get("weight_map")));
        }
        Map<String, Path> weightMap = new LinkedHashMap<>();
        Map<String, Path> shards = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : wm.entrySet()) {
            String tensor = (String) e.getKey();
            if (!(e.getValue() instanceof String shardName)) {
                throw new SafeTensorsException(index, "weight_map entry of '" + tensor + "' must be a file name, got "
                        + Json.typeName(e.getValue()));
            }
            Path shard = shards.get(shardName);
            if (shard == null) {
                shard = resolveShard(d, index, shardName);
                if (!Files.isRegularFile(shard)) {
                    throw new SafeTensorsException(index, "shard '" + shardName + "' of tensor '" + tensor + "' does not exist");
                }
                shards.put(shardName, shard);
            }
            weightMap.put(tensor, shard);
        }
        return new Checkpoint(d, config, Collections.unmodifiableMap(weightMap));
    }

    private static Path resolveShard(Path dir, Path index, String name) {
        String problem = null;
        Path p = null;
        if (name.isEmpty() || name.indexOf('\0') >= 0 || name.indexOf('\\') >= 0) {
            problem = "is not a plain relative file name";
        } else {
            try {
                Path rel = dir.getFileSystem().getPath(name);
                if (rel.isAbsolute() || rel.getRoot() != null) problem = "is an absolute path";
                else {
                    p = dir.resolve(rel).normalize();
                    if (!p.startsWith(dir) || p.equals(dir)) problem = "escapes the checkpoint directory";
                }
            } catch (InvalidPathException e) {
                problem = "is not a valid path";
            }
        }
        if (problem != null) {
            String shown = name.length() > 200 ? name.substring(0, 200) + "..." : name;
            throw new SafeTensorsException(index, "shard file name '" + shown.replace("\0", "\\0") + "' " + problem);
        }
        return p;
    }

    /** Reads a UTF-8 JSON object file of at most {@link #MAX_JSON_BYTES}; errors name the file. */
    static Map<String, Object> readJsonObject(Path file) {
        byte[] bytes;
        try {
            if (!Files.isRegularFile(file)) throw new SafeTensorsException(file, "file not found");
            long size = Files.size(file);
            if (size > MAX_JSON_BYTES) throw new SafeTensorsException(file, size + " bytes exceeds the limit of " + MAX_JSON_BYTES);
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new SafeTensorsException(file, "cannot read: " + e.getMessage(), e);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new SafeTensorsException(file, "not valid UTF-8");
        }
        if (text.startsWith("\uFEFF")) text = text.substring(1);
        try {
            Object v = Json.parse(text);
            if (!(v instanceof Map)) throw new SafeTensorsException(file, "expected a JSON object, got " + Json.typeName(v));
            @SuppressWarnings("unchecked") Map<String, Object> m = (Map<String, Object>) v;
            return Collections.unmodifiableMap(m);
        } catch (SafeTensorsException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new SafeTensorsException(file, e.getMessage());
        }
    }

    /** The checkpoint directory (absolute, normalized). */
    public Path dir() { return dir; }

    /** {@code config.json} as parsed by {@link Json} (unmodifiable top level). */
    public Map<String, Object> config() { return config; }

    /** All tensor names, in index (or header) order. */
    public Set<String> names() { return weightMap.keySet(); }

    public boolean has(String name) { return weightMap.containsKey(name); }

    /** The shard files, in first-use order of the index. */
    public Set<Path> shardFiles() { return Collections.unmodifiableSet(new LinkedHashSet<>(weightMap.values())); }

    /** Header entry of {@code name}, opening its shard if needed. */
    public SafeTensorsFile.TensorInfo info(String name) {
        return shardOf(name).info(name);
    }

    /** Zero-copy view of tensor {@code name} from its shard; valid until this checkpoint is closed. */
    public Tensor tensor(String name) {
        return shardOf(name).tensor(name);
    }

    private synchronized SafeTensorsFile shardOf(String name) {
        if (closed) throw new IllegalStateException("checkpoint " + dir + " is closed");
        Path shard = weightMap.get(name);
        if (shard == null) throw new SafeTensorsException(dir, "no tensor '" + name + "' in checkpoint");
        SafeTensorsFile f = open.get(shard);
        if (f == null) {
            f = SafeTensorsFile.open(shard);
            open.put(shard, f);
        }
        if (!f.has(name)) {
            throw new SafeTensorsException(shard, "tensor '" + name + "' is listed in " + INDEX + " but missing from the shard");
        }
        return f;
    }

    /** Shards mapped so far. */
    public synchronized int openShardCount() { return open.size(); }

    /** Unmaps every shard; idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        RuntimeException first = null;
        for (SafeTensorsFile f : open.values()) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        open.clear();
        if (first != null) throw first;
    }

    @Override
    public String toString() { return "Checkpoint[" + dir + ", " + weightMap.size() + " tensors]"; }
}
