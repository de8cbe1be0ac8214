package dev.latentmoe.bench;

import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Npy;

import dev.latentmoe.bench.report.JsonRow;
import dev.latentmoe.bench.report.ReportFile;
import dev.latentmoe.bench.report.Stats;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code peers-prepare}: our side of {@code ./latentmoe peers}. Writes (once) the seeded random bf16
 * checkpoint of the preset through {@link WeightCache}, then per T an input x_T.npy, our output
 * y_ours_T.npy and the median time of our forward call on it (same x every call, as the Python
 * peers do), into {@code --out}/ours.json. bench/peers/peers.py then runs the peers on the same files.
 */
final class PeersCommand {
    private PeersCommand() {}

    static void run(String[] argv) {
        Args a = new Args(argv, 1, Set.of());
        MoeConfig cfg = Shapes.byName(a.get("preset", "super"));
        List<Integer> tokens = a.intList("tokens", "1,4,16,64,256,1024,4096");
        int threads = a.intValue("threads", 2);
        Precision precision;
        try {
            precision = Precision.fromName(a.get("precision", "exact"));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--precision must be exact or bf16");
        }
        long seed = a.longValue("seed", 42);
        Path out = Path.of(a.get("out", ".tools/peers-work"));
        a.finish();
        Cpu.setThreads(threads);
        Path ckpt = WeightCache.checkpoint(cfg, DType.BF16, seed).toAbsolutePath();
        List<JsonRow> rows = new ArrayList<>();
        try (MoeLayer layer = WeightCache.layer(cfg, DType.BF16, seed, Backends.cpu(), precision);
             HostArena arena = HostArena.shared("peers")) {
            Files.createDirectories(out);
            for (int i = 0; i < tokens.size(); i++) {
                int t = tokens.get(i);
                SplittableRandom r = new SplittableRandom(seed * 977 + t);
                float[] v = new float[t * cfg.hiddenSize()];
                // bf16-representable inputs: the HF module runs in bf16 (and routes on bf16 x), so every side sees the same x
                for (int j = 0; j < v.length; j++) v[j] = DType.bf16ToFloat(DType.floatToBf16((float) (r.nextDouble() * 2 - 1)));
                Tensor x = arena.allocateTensor(DType.F32, t, cfg.hiddenSize()).copyFrom(v);
                Tensor y = arena.allocateTensor(DType.F32, t, cfg.hiddenSize());
                Npy.write(out.resolve("x_" + t + ".npy"), x);
                layer.forward(x, y);
                Npy.write(out.resolve("y_ours_" + t + ".npy"), y);
                layer.forward(x, y);                       // second warm-up
                double[] ms = new double[200];
                int n = 0;
                long start = System.nanoTime();
                while (n < 5 || (n < ms.length && System.nanoTime() - start < 2_000_000_000L)) {
                    long t0 = System.nanoTime();
                    layer.forward(x, y);
                    ms[n++] = (System.nanoTime() - t0) / 1e6;
                }
                double median = Stats.median(Arrays.copyOf(ms, n));
                System.err.printf("  ours T=%d: %d calls, median %.3f ms%n", t, n, median);
                rows.add(new JsonRow().with("tokens", t).num("median_ms", median, 4).with("calls", n));
            }
            ReportFile.json(out.resolve("ours.json"), new JsonRow().with("checkpoint", ckpt.toString()).with("threads", threads)
                    .with("precision", precision.toString()).with("kernel", Cpu.gemmKernel(precision).name())
                    .with("shape", Shapes.describe(cfg)).with("rows", rows));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        System.out.println("checkpoint " + ckpt);
    }
}
