package dev.latentmoe.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.CheckpointException;
import dev.latentmoe.kernels.CheckpointWeights;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Npy;
import dev.latentmoe.memory.io.SafeTensorsWriter;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ./latentmoe run}: a checkpoint layer on an .npy input; a FIFO in the checkpoint fails fast (#12 item 2). */
class RunCommandTest {
    private static final MoeConfig C = new MoeConfig(40, 16, 6, 2, 24, 20, 2.0f, true, Activation.RELU2, Scoring.SIGMOID);

    @Test
    void runsACheckpointLayerAndRefusesAFifo(@TempDir Path dir) throws Exception {
        Path ck = dir.resolve("ckpt"), x = dir.resolve("x.npy"), y = dir.resolve("y.npy");
        Files.createDirectories(ck);
        try (HostArena a = HostArena.shared("run-test")) {
            MoeWeights w = MoeWeights.random(C, DType.BF16, 3, a);
            SafeTensorsWriter.write(ck.resolve("model.safetensors"), CheckpointWeights.tensors(w, 0), Map.of());
            Files.writeString(ck.resolve("config.json"), WeightCache.configJson(C));
            Tensor in = a.allocateTensor(DType.F32, 5, C.hiddenSize());
            for (int i = 0; i < in.numel(); i++) in.setFloat(i, (float) Math.cos(i));
            Npy.write(x, in);
            PrintStream old = System.out;
            ByteArrayOutputStream printed = new ByteArrayOutputStream();
            System.setOut(new PrintStream(printed, true));
            try {
                RunCommand.run(new String[] {"run", "--checkpoint", ck.toString(), "--layer", "0", "--input", x.toString(),
                        "--output", y.toString()});
            } finally {
                System.setOut(old);
            }
            assertTrue(printed.toString().contains("weights: experts BF16"), printed.toString());
            Tensor out = Npy.read(y, a);
            try (MoeLayer direct = MoeLayer.of(w, Backends.cpu())) {
                assertArrayEquals(direct.forward(in).toFloatArray(), out.toFloatArray());
            }
        }
        Path cfg = ck.resolve("config.json");
        Files.delete(cfg);
        Process p = new ProcessBuilder("mkfifo", cfg.toString()).inheritIO().start();
        assertEquals(0, p.waitFor());
        CheckpointException e = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThrows(CheckpointException.class,
                () -> RunCommand.run(new String[] {"run", "--checkpoint", ck.toString(), "--layer", "0", "--input",
                        x.toString(), "--output", y.toString()})));
        assertTrue(e.getMessage().contains("config.json: is a FIFO"), e.getMessage());
    }
}
