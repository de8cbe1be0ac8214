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
 * Each kernel of the layer alone, through {@code layer.kernels()}, on inputs whose earlier steps were
 * precomputed in the trial set-up: router + top-K, down-projection + dispatch, grouped expert GEMMs,
 * combine + up-projection + shared expert. Throughput mode, so the {@link Traffic} counters come out
 * as bytes/s and FLOP/s; time per call = 1 / score.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
public class KernelBench {

    @Benchmark
    public void router(LayerState st, Traffic tr) {
        int s = st.next();
        st.kernels.routerTopK(st.x[s], st.ids[s], st.wts[s]);
        tr.add(st.routerBytes, st.routerFlops, st.routerWorkingSet);
    }

    @Benchmark
    public void dispatch(LayerState st, Traffic tr) {
        int s = st.next();
        st.kernels.dispatch(st.x[s], st.ids[s], st.offsets[s], st.rows[s], st.latent[s]);
        tr.add(st.dispatchBytes, st.dispatchFlops, st.dispatchWorkingSet);
    }

    @Benchmark
    public void experts(LayerState st, Traffic tr) {
        int s = st.next();
        st.kernels.experts(st.offsets[s], st.latent[s], st.expertOut[s]);
        tr.add(st.expertBytes[s], st.expertFlops[s], st.expertWorkingSet);
    }

    @Benchmark
    public void combine(LayerState st, Traffic tr) {
        int s = st.next();
        st.kernels.combine(st.x[s], st.wts[s], st.rows[s], st.expertOut[s], st.out);
        tr.add(st.combineBytes, st.combineFlops, st.combineWorkingSet);
    }
}
