package dev.latentmoe.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.bindings.latentmoe_engine_h;
import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.kernels.TestCheckpoint.Fmt;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue #12's loader items through the Java path (MoeLayer.fromCheckpoint and the engine handle
 * over FFM); native/tests-engine/engine_robust.c holds the same items for C callers.
 */
@ExtendWith(NoLeaks.class)
class CheckpointHardeningTest {
    static final MoeConfig C = Cases.cfg(48, 24, 6, 2, 40, 24, 2.5f, Activation.RELU2);

    private static MoeWeights write(Path dir, MoeConfig c, String act, HostArena w, String... config) throws IOException {
        TestCheckpoint ck = new TestCheckpoint(w);
        for (String m : config) ck.config(m);
        MoeWeights meant = ck.addLayer(c, 0, Fmt.F32, Fmt.BF16, Fmt.BF16, Fmt.BF16, 11);
        ck.write(dir, c, act, false, false);
        return meant;
    }

    private static CheckpointException refused(Path dir, int layer, String fragment) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> MoeLayer.fromCheckpoint(dir, layer, Backends.cpu()));
        assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' not in: " + e.getMessage());
        return e;
    }

    private static void mkfifo(Path p) throws IOException, InterruptedException {
        Files.deleteIfExists(p);
        Process pr = new ProcessBuilder("mkfifo", p.toString()).inheritIO().start();
        assertEquals(0, pr.waitFor(), "mkfifo");
    }

    /** #12 item 2: a FIFO named config.json / model.safetensors never blocks fromCheckpoint. */
    @Test
    void fifosAreRefusedNotWaitedOn(@TempDir Path dir) throws Exception {
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C, "relu2", w);
        }
        for (String name : new String[] {"config.json", "model.safetensors", "hf_quant_config.json"}) {
            Path p = dir.resolve(name);
            Path keep = dir.resolve(name + ".keep");
            if (Files.exists(p)) Files.move(p, keep);
            mkfifo(p);
            assertTimeoutPreemptively(Duration.ofSeconds(20), () -> refused(dir, 0, name + ": is a FIFO"));
            Files.delete(p);
            if (Files.exists(keep)) Files.move(keep, p);
        }
        MoeLayer.fromCheckpoint(dir, 0, Backends.cpu()).close();
    }

    /**
     * #12 items 1 and 3 on the engine handle, from Java threads: many threads call
     * lmoe_layer_forward while one closes; every call returns a bit-exact result or "the layer is
     * closed"; a second close and later calls are error statuses.
     */
    @Test
    void engineHandleCloseDuringForwardFromJavaThreads(@TempDir Path dir) throws Exception {
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C.withTopK(2), "relu2", w);
        }
        int tokens = 23, d = C.hiddenSize();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment x = arena.allocate((long) tokens * d * 4, 64);
            for (int i = 0; i < tokens * d; i++) x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) Math.sin(i));
            MemorySegment want = arena.allocate((long) tokens * d * 4, 64);
            MemorySegment dirC = arena.allocateFrom(dir.toString());
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            AtomicInteger ok = new AtomicInteger(), refusedCalls = new AtomicInteger(), other = new AtomicInteger();
            for (int round = 0; round < 60; round++) {
                assertEquals(0, latentmoe_engine_h.lmoe_layer_open(dirC, 0, out), latentmoe_h::lastError);
                MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
                if (round == 0) {
                    assertEquals(0, latentmoe_engine_h.lmoe_layer_forward(handle, x, tokens, want, MemorySegment.NULL, MemorySegment.NULL));
                }
                List<Thread> threads = new ArrayList<>();
                for (int t = 0; t < 6; t++) {
                    threads.add(Thread.ofPlatform().start(() -> {
                        MemorySegment y = arena.allocate((long) tokens * d * 4, 64);
                        for (;;) {
                            int st = latentmoe_engine_h.lmoe_layer_forward(handle, x, tokens, y, MemorySegment.NULL, MemorySegment.NULL);
                            if (st == 0) {
                                if (y.mismatch(want) == -1) ok.incrementAndGet();
                                else other.incrementAndGet();
                                continue;
                            }
                            if (st == latentmoe_h.LMOE_ERR_INVALID_ARGUMENT && latentmoe_h.lastError().contains("the layer is closed")) {
                                refusedCalls.incrementAndGet();
                            } else {
                                other.incrementAndGet();
                            }
                            return;
                        }
                    }));
                }
                Thread.sleep(Duration.ofNanos(ThreadLocalRandom.current().nextInt(2_000_000)));
                assertEquals(0, latentmoe_engine_h.lmoe_layer_close(handle), latentmoe_h::lastError);
                for (Thread t : threads) t.join();
                assertEquals(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT, latentmoe_engine_h.lmoe_layer_close(handle), "second close");
                assertTrue(latentmoe_h.lastError().contains("already closed"), latentmoe_h.lastError());
                assertEquals(latentmoe_h.LMOE_ERR_INVALID_ARGUMENT,
                        latentmoe_engine_h.lmoe_layer_config(handle, arena.allocate(64)), "config after close");
            }
            System.out.printf("60 rounds x 6 threads: %d calls completed bit-exact, %d refused as closed, %d other%n",
                    ok.get(), refusedCalls.get(), other.get());
            assertEquals(0, other.get());
            assertEquals(60 * 6, refusedCalls.get());
            assertTrue(ok.get() > 0, "the race was not exercised");
        }
    }

    /** MoeLayer.close twice is harmless; calls after close raise. */
    @Test
    void closedCheckpointLayer(@TempDir Path dir) throws IOException {
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C, "relu2", w);
        }
        MoeLayer layer = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu());
        Tensor gate = layer.weights().gate().data();
        layer.close();
        layer.close();
        assertThrows(IllegalStateException.class, gate::toFloatArray);
        try (HostArena a = HostArena.shared("x")) {
            Tensor x = Cases.input(a, 2, C.hiddenSize(), 1);
            assertThrows(IllegalStateException.class, () -> layer.forward(x));
        }
    }

    /** #12 item 6: mlp_bias is refused (LMOE_ERR_UNSUPPORTED), as is any bias tensor. */
    @Test
    void mlpBiasIsRefused(@TempDir Path dir) throws IOException {
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C, "relu2", w, "\"mlp_bias\": true");
            assertTrue(refused(dir, 0, "mlp_bias is true").isUnsupported());
            TestCheckpoint ck = new TestCheckpoint(w);
            ck.addLayer(C, 0, Fmt.F32, Fmt.BF16, Fmt.BF16, Fmt.BF16, 3);
            ck.tensors().put("backbone.layers.0.mixer.fc1_latent_proj.bias", w.allocateTensor(DType.F32, 24).fill(0.5f));
            ck.write(dir, C, "relu2", false, false);
            assertTrue(refused(dir, 0, "fc1_latent_proj.bias' is a bias").isUnsupported());
        }
    }

    /** #12 item 7: transformers' nemotron_h "silu" is non-gated without gate_proj tensors. */
    @Test
    void siluWithoutGateProjIsNonGated(@TempDir Path dir) throws IOException {
        MoeConfig silu = Cases.cfg(53, 31, 7, 3, 45, 29, 1.5f, Activation.SILU);
        try (HostArena w = HostArena.shared("writer")) {
            MoeWeights meant = write(dir, silu, "silu", w);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu());
                 HostArena a = HostArena.shared("x")) {
                assertEquals(Activation.SILU, layer.config().activation());
                Tensor x = Cases.input(a, 13, silu.hiddenSize(), 9);
                Tensor y = a.allocateTensor(DType.F32, 13, silu.hiddenSize()).fill(Float.NaN);
                Routing r = Routing.allocate(a, 13, silu.topK());
                layer.forward(x, y, r);
                LayerForwardTest.assertMatches(meant, x, y, r, 1e-5, 1e-5);
            }
        }
    }

    /** #12 item 8: a NaN correction bias or an Inf router weight is refused at load. */
    @Test
    void nonFiniteRouterOrBiasIsRefused(@TempDir Path dir) throws IOException {
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            ck.addLayer(C, 0, Fmt.F32, Fmt.BF16, Fmt.BF16, Fmt.BF16, 4);
            ck.tensors().get("backbone.layers.0.mixer.gate.e_score_correction_bias").setFloat(2, Float.NaN);
            ck.write(dir, C, "relu2", false, false);
            refused(dir, 0, "gate.e_score_correction_bias (router correction bias) holds a NaN or infinite value");
            ck.tensors().get("backbone.layers.0.mixer.gate.e_score_correction_bias").setFloat(2, 0.01f);
            ck.tensors().get("backbone.layers.0.mixer.gate.weight").setFloat(5, Float.POSITIVE_INFINITY);
            ck.write(dir, C, "relu2", false, false);
            refused(dir, 0, "gate.weight (backbone.layers.0.mixer.gate) holds a NaN or infinite value at [0, 5]");
        }
    }

    /** #12 item 9: a layer that is not a MoE layer is named as such. */
    @Test
    void layerKindsAreNamed(@TempDir Path dir) throws IOException {
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C, "relu2", w, "\"layers_block_type\": [\"moe\", \"mamba\", \"full_attention\", \"mlp\"]");
        }
        refused(dir, 1, "layer 1 is a mamba layer, not a MoE layer");
        refused(dir, 2, "layer 2 is an attention layer, not a MoE layer");
        refused(dir, 3, "layer 3 is an MLP layer, not a MoE layer");
        refused(dir, 4, "layer 4 does not exist");
        MoeLayer.fromCheckpoint(dir, 0, Backends.cpu()).close();
    }

    /** #12 item 10: files resolving outside the checkpoint are refused; no file bytes in messages. */
    @Test
    void symlinksLeavingTheCheckpointAreRefused(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("ckpt"), outside = tmp.resolve("outside");
        Files.createDirectories(outside);
        try (HostArena w = HostArena.shared("writer")) {
            write(dir, C, "relu2", w);
        }
        byte[] secret = "SECRET!!tail".getBytes();
        Files.write(outside.resolve("x.bin"), secret);
        long asNumber = java.nio.ByteBuffer.wrap(secret, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
        Path st = dir.resolve("model.safetensors");
        Files.move(st, dir.resolve("real.safetensors"));
        Files.createSymbolicLink(st, outside.resolve("x.bin"));
        CheckpointException e = refused(dir, 0, "outside the checkpoint directory");
        assertFalse(e.getMessage().contains(Long.toUnsignedString(asNumber)) || e.getMessage().contains("SECRET"), e.getMessage());
        Files.delete(st);
        Files.createSymbolicLink(st, Path.of("real.safetensors"));   // inside: followed
        MoeLayer.fromCheckpoint(dir, 0, Backends.cpu()).close();
    }

    /** The footprint the loader reports: BF16 / F32 in place, F16 widened per matrix. */
    @Test
    void footprintInPlaceAndConverted(@TempDir Path dir) throws IOException {
        try (HostArena w = HostArena.shared("writer")) {
            TestCheckpoint ck = new TestCheckpoint(w);
            MoeWeights meant = ck.addLayer(C, 0, Fmt.F32, Fmt.BF16, Fmt.F16, Fmt.BF16, 8);
            ck.write(dir, C, "relu2", false, false);
            try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu());
                 HostArena a = HostArena.shared("x")) {
                CheckpointMemory m = layer.checkpointMemory().orElseThrow();
                long f16Widened = 2L * C.sharedIntermediateSize() * C.hiddenSize() * 4;
                assertEquals(f16Widened, m.convertedBytes(), m.toString());
                assertEquals(WeightFormat.F32, layer.weights().sharedUp().format());
                assertEquals(WeightFormat.BF16, layer.weights().expertFormat(), "only the F16 matrices are widened");
                assertEquals(m.weightBytes(), m.inPlaceBytes() + m.convertedBytes());
                assertEquals(Files.size(dir.resolve("model.safetensors")), m.mappedBytes());
                Tensor x = Cases.input(a, 5, C.hiddenSize(), 2);
                Tensor y = a.allocateTensor(DType.F32, 5, C.hiddenSize()).fill(Float.NaN);
                Routing r = Routing.allocate(a, 5, C.topK());
                layer.forward(x, y, r);
                LayerForwardTest.assertMatches(meant, x, y, r, 1e-5, 1e-5);
            }
        }
    }

    /** The checkpoint writer's output and a layer from it: bit-identical to the same weights given directly. */
    @Test
    void checkpointLayerEqualsTheSameWeightsInMemory(@TempDir Path dir) throws IOException {
        MoeConfig c = Cases.ODD_SWIGLU;
        long seed = Cases.seed("checkpoint vs memory");
        try (HostArena w = HostArena.shared("writer")) {
            MoeWeights mem = MoeWeights.random(c, DType.BF16, seed, w);
            Map<String, Tensor> t = new LinkedHashMap<>(CheckpointWeights.tensors(mem, 0));
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), t, Map.of());
            CheckpointLayerTest.writeConfig(dir, c, "silu");
            try (MoeLayer fromFile = MoeLayer.fromCheckpoint(dir, 0, Backends.cpu());
                 MoeLayer direct = MoeLayer.of(mem, Backends.cpu());
                 HostArena a = HostArena.shared("x")) {
                assertEquals(c, fromFile.config());
                Tensor x = Cases.input(a, 37, c.hiddenSize(), seed);
                assertArrayEquals(direct.forward(x).toFloatArray(), fromFile.forward(x).toFloatArray());
            }
        }
    }
}
