package dev.latentmoe.bench.jmh;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Our grouped GEMM (the experts kernel) on one dense bf16 expert, d 2048 x m 4096, with every one
 * of {@code peakTokens} rows routed to it, so the weights are reused peakTokens times and the call
 * is compute-bound: an ordinary row of the report (how close the kernel gets on a dense GEMM). The
 * roofline's compute ceiling is the machine's register-only probe ({@code Cpu.peakGFlops}), never
 * this row.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
public class PeakBench {

    @State(Scope.Benchmark)
    public static class Dense {
        @Param("512")
        public int peakTokens;

        @Param("0")
        public int threads;

        @Param("exact")
        public String precision;

        MoeLayer layer;
        HostArena arena;
        Tensor offsets, in, out;
        long bytes, flops;

        @Setup(Level.Trial)
        public void setUp() {
            Cpu.setThreads(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
            int d = 2048, m = 4096;
            MoeConfig c = new MoeConfig(d, 0, 1, 1, m, 0, 1f, false, Activation.RELU2, Scoring.SIGMOID);
            layer = MoeLayer.random(c, DType.BF16, 7, Backends.cpu(), Precision.fromName(precision), null);
            arena = HostArena.shared("peak");
            offsets = arena.allocateTensor(DType.I32, 2);
            offsets.setInt(0, 0);
            offsets.setInt(1, peakTokens);
            float[] v = new float[peakTokens * d];
            SplittableRandom r = new SplittableRandom(3);
            for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextDouble() * 2 - 1);
            in = arena.allocateTensor(DType.F32, peakTokens, d).copyFrom(v);
            out = arena.allocateTensor(DType.F32, peakTokens, d);
            flops = 2L * peakTokens * 2 * d * m;
            bytes = 2L * d * m * 2 + 2L * peakTokens * d * 4;
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
            layer.close();
        }
    }

    @Benchmark
    public void gemm(Dense st, Traffic tr) {
        st.layer.kernels().experts(st.offsets, st.in, st.out);
        tr.add(st.bytes, st.flops, st.bytes);
    }
}
