package dev.latentmoe.bench.jmh;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The whole layer ({@code MoeLayer.forward(x, out)}, one native call) for LatentMoE Super and the
 * standard Nano at full preset shapes (or scaled ones with {@code -p shape=super/4}).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
public class LayerBench {

    @Benchmark
    public void forward(LayerState st, Traffic tr) {
        int s = st.next();
        st.layer.forward(st.x[s], st.out);
        tr.add(st.layerBytes[s], st.layerFlops[s], st.layerWorkingSet);
    }
}
