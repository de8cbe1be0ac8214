package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaEvent;
import dev.latentmoe.memory.cuda.CudaStream;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * How the GPU commands time work: CUDA events recorded back to back around each call on one
 * stream (GPU time, not host time), and one sampling loop (warm-up, batches until 0.25 s of GPU
 * time, per-call means of what the rotating input sets need) shared by {@code bench --backend cuda}
 * and {@code bench --iso --backend cuda}.
 */
final class GpuTiming {
    private GpuTiming() {}

    /** Runs {@code reps} copies of the work {@code enqueue} puts on {@code s}, timed back to back with events; returns ms per call. */
    static double[] backToBack(CudaStream s, int reps, Runnable enqueue) {
        CudaEvent[] ev = new CudaEvent[reps + 1];
        try {
            for (int i = 0; i <= reps; i++) ev[i] = CudaEvent.create();
            ev[0].record(s);
            for (int i = 0; i < reps; i++) {
                enqueue.run();
                ev[i + 1].record(s);
            }
            ev[reps].synchronize();
            double[] ms = new double[reps];
            for (int i = 0; i < reps; i++) ms[i] = ev[i].elapsedMillisTo(ev[i + 1]);
            return ms;
        } finally {
            for (CudaEvent e : ev) if (e != null) e.close();
        }
    }

    /** {@code sets} device inputs bf16 [tokens, d], uniform in [-1, 1), seeded per (seed, tokens, set). */
    static Tensor[] randomInputs(DeviceArena dev, int sets, int tokens, long d, long seed) {
        Tensor[] xs = new Tensor[sets];
        for (int i = 0; i < sets; i++) {
            xs[i] = dev.allocateTensor(DType.BF16, tokens, d);
            Cuda.fillUniformAsync(xs[i], seed * 1_000_003L + tokens * 31L + i, -1f, 1f, dev.stream());
        }
        return xs;
    }

    /** Medians of a sampled forward loop, and the per-call means of what its input sets need. */
    record Sampled(double medianMs, double minMs, int calls, long meanBytes, double meanFlops, int meanDistinct) {}

    /**
     * Warms up, then times {@code fwd} (which cycles through {@code sets} input sets; {@code rewind}
     * restarts the cycle) in batches of {@code reps} calls until 0.25 s of GPU time or 10 batches;
     * bytes, flops and distinct experts are averaged over the calls actually made.
     */
    static Sampled sample(CudaStream s, int warmup, int reps, int sets, Runnable rewind, Runnable fwd, long[] bytes,
                          double[] flops, int[] distinct) {
        if (warmup > 0) backToBack(s, Math.max(warmup, Math.min(sets, 8)), fwd);
        rewind.run();
        List<Double> all = new ArrayList<>();
        double total = 0;
        for (int batch = 0; batch < 10 && (batch == 0 || total < 250); batch++) {
            for (double ms : backToBack(s, reps, fwd)) {
                all.add(ms);
                total += ms;
            }
        }
        double[] ms = all.stream().mapToDouble(Double::doubleValue).toArray();
        int n = ms.length;
        double bytesSum = 0, flopsSum = 0, distinctSum = 0;
        for (int i = 0; i < n; i++) {
            bytesSum += bytes[i % sets];
            flopsSum += flops[i % sets];
            distinctSum += distinct[i % sets];
        }
        double med = Stats.median(ms), min = Arrays.stream(ms).min().orElse(med);
        return new Sampled(med, min, n, Math.round(bytesSum / n), flopsSum / n, (int) Math.round(distinctSum / n));
    }
}
