package dev.latentmoe.bench;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Npy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/** {@code run --checkpoint DIR --layer I --input x.npy --output y.npy}: one layer on one input. */
final class RunCommand {
    private RunCommand() {}

    static void run(String[] argv) {
        Args a = new Args(argv, 1, Set.of());
        Path dir = Path.of(a.require("checkpoint"));
        int layerIndex = a.intValue("layer", -1);
        if (layerIndex < 0) throw new Args.UsageException("missing or negative --layer");
        Path input = Path.of(a.require("input"));
        Path output = Path.of(a.require("output"));
        String backendName = a.get("backend", "cpu");
        int threads = a.intValue("threads", 0);
        a.finish();
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("checkpoint directory " + dir + " does not exist");
        if (!Files.isRegularFile(input)) throw new IllegalArgumentException("input file " + input + " does not exist");
        Backend backend = Backends.get(backendName);
        if (!backend.isAvailable()) throw new IllegalStateException("backend " + backendName + " unavailable: " + backend.unavailableReason());
        if (threads > 0) Cpu.setThreads(threads);
        try (MoeLayer layer = MoeLayer.fromCheckpoint(dir, layerIndex, backend);
             HostArena arena = HostArena.shared("run")) {
            Tensor x = Npy.read(input, arena);
            if (x.dtype() != DType.F32) x = x.convertTo(DType.F32, arena);
            int d = layer.config().hiddenSize();
            if (x.rank() == 1 && x.dim(0) == d) x = x.reshape(1, d);
            if (x.rank() != 2 || x.dim(1) != d) {
                throw new IllegalArgumentException("input " + input + " has shape " + java.util.Arrays.toString(x.shape())
                        + "; expected [T, " + d + "] float32");
            }
            Tensor y = layer.forward(x);
            Npy.write(output, y);
            System.out.printf("wrote %s: float32 [%d, %d] (layer %d of %s, %s backend)%n",
                    output, y.dim(0), y.dim(1), layerIndex, dir, backend.name());
            layer.checkpointMemory().ifPresent(m -> System.out.printf(
                    "weights: experts %s, %.1f MiB read by the kernels (%.1f MiB in place from the mapped files,"
                            + " %.1f MiB converted); files mapped: %.1f MiB%n",
                    layer.weights().expertFormat(), m.weightBytes() / 1048576.0, m.inPlaceBytes() / 1048576.0,
                    m.convertedBytes() / 1048576.0, m.mappedBytes() / 1048576.0));
        }
    }
}
