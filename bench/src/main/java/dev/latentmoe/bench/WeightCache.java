package dev.latentmoe.bench;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.CheckpointWeights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import dev.latentmoe.bench.report.Progress;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Seeded random weights (MoeWeights.random) of a shape, written once as a Nemotron-H style
 * checkpoint (config.json + model.safetensors, layer 0) under {@code .tools/bench-weights/} (or
 * {@code -Dlatentmoe.weights.cache=DIR}) and memory-mapped after that. The same files feed the
 * JMH benchmarks (one load per trial, in place, no copy) and the Python peers, so every side runs on
 * identical weights. A 5.7 GB Super checkpoint is built once (about a minute) and then maps in
 * well under a second while it stays in the page cache.
 */
public final class WeightCache {
    private WeightCache() {}

    public static Path root() {
        return Path.of(Knob.WEIGHTS_CACHE.get());
    }

    /** The checkpoint directory for a shape, built if missing. */
    public static Path checkpoint(MoeConfig c, DType dtype, long seed) {
        Path dir = root().resolve(key(c, dtype, seed));
        if (Files.isRegularFile(dir.resolve("model.safetensors")) && Files.isRegularFile(dir.resolve("config.json"))) return dir;
        build(c, dtype, seed, dir);
        return dir;
    }

    /** Opens the cached layer (building it first if needed) and touches every weight page once. */
    public static MoeLayer layer(MoeConfig c, DType dtype, long seed, Backend backend) {
        return layer(c, dtype, seed, backend, backend.defaultPrecision());
    }

    /** As {@link #layer(MoeConfig, DType, long, Backend)}, computing in {@code precision}. */
    public static MoeLayer layer(MoeConfig c, DType dtype, long seed, Backend backend, Precision precision) {
        MoeLayer layer = MoeLayer.fromCheckpoint(checkpoint(c, dtype, seed), 0, backend, precision);
        if (!layer.config().equals(c)) {
            layer.close();
            throw new IllegalStateException("cached checkpoint config differs from " + c);
        }
        touch(layer.weights());
        return layer;
    }

    static String key(MoeConfig c, DType dtype, long seed) {
        return String.format(Locale.ROOT, "d%d-l%d-n%d-k%d-m%d-s%d-%s-%s-%s-seed%d", c.hiddenSize(), c.latentSize(),
                c.numExperts(), c.topK(), c.intermediateSize(), c.sharedIntermediateSize(),
                c.activation().name().toLowerCase(Locale.ROOT), c.scoring().name().toLowerCase(Locale.ROOT),
                dtype.name().toLowerCase(Locale.ROOT), seed);
    }

    /** Reads one byte per 4 KiB page so that the first timed call does not fault the weights in. */
    static long touch(MoeWeights w) {
        long sum = 0;
        for (Tensor t : w.all()) {
            MemorySegment s = t.segment();
            for (long o = 0; o < s.byteSize(); o += 4096) sum += s.get(ValueLayout.JAVA_BYTE, o);
        }
        return sum;
    }

    private static void build(MoeConfig c, DType dtype, long seed, Path dir) {
        long t0 = System.nanoTime();
        Progress progress = new Progress("building weights " + dir.getFileName(), c.numExperts());
        Path tmp = dir.resolveSibling(dir.getFileName() + ".tmp" + ProcessHandle.current().pid());
        try (HostArena arena = HostArena.shared("weight-cache")) {
            MoeWeights w = MoeWeights.random(c, dtype, seed, arena, e -> progress.step(e + 1));
            Files.createDirectories(tmp);
            Map<String, Tensor> m = CheckpointWeights.tensors(w, 0);
            SafeTensorsWriter.write(tmp.resolve("model.safetensors"), m, Map.of("format", "pt"));
            Files.writeString(tmp.resolve("config.json"), configJson(c));
            if (Files.exists(dir)) deleteTree(dir);
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the weight cache " + dir + ": " + e.getMessage(), e);
        } finally {
            try { if (Files.exists(tmp)) deleteTree(tmp); } catch (IOException ignored) { /* best effort */ }
        }
        progress.done(String.format("%.1f s", (System.nanoTime() - t0) / 1e9));
    }

    /** A Nemotron-H config.json with the MoE keys (one MoE layer, "E" pattern). */
    public static String configJson(MoeConfig c) {
        return String.format(Locale.ROOT, """
                {
                  "model_type": "nemotron_h",
                  "hidden_size": %d,
                  %s
                  "n_routed_experts": %d,
                  "num_experts_per_tok": %d,
                  "moe_intermediate_size": %d,
                  "moe_shared_expert_intermediate_size": %d,
                  "routed_scaling_factor": %s,
                  "norm_topk_prob": %s,
                  "mlp_hidden_act": "%s",
                  "scoring_func": "%s",
                  "n_group": 1,
                  "topk_group": 1,
                  "hybrid_override_pattern": "E",
                  "num_hidden_layers": 1
                }
                """, c.hiddenSize(), c.isLatent() ? "\"moe_latent_size\": " + c.latentSize() + "," : "\"moe_latent_size\": null,",
                c.numExperts(), c.topK(), c.intermediateSize(), c.sharedIntermediateSize(),
                Float.toString(c.routedScalingFactor()), c.normTopkProb(),
                c.activation() == Activation.SWIGLU ? "silu" : "relu2",
                c.scoring().name().toLowerCase(Locale.ROOT));
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }
}
