package dev.latentmoe.bench.jmh;

import dev.latentmoe.bench.LayerTraffic;
import dev.latentmoe.bench.Shapes;
import dev.latentmoe.bench.WeightCache;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.Cpu;
import dev.latentmoe.kernels.LayerKernels;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.BitSet;
import java.util.SplittableRandom;

/**
 * One layer with seeded random bf16 weights (built once per trial through {@link WeightCache}: the
 * first trial of a shape writes the checkpoint, later ones map it) and {@value #SETS} input sets,
 * each with every intermediate of the pipeline precomputed so that each kernel can be timed alone.
 * Calls rotate among the sets so that the experts read are not all cache-resident.
 */
@State(Scope.Benchmark)
public class LayerState {
    static final int SETS = 8;

    /** super, nano (full preset shapes) or PRESET/F (scaled down by F, see {@link Shapes}). */
    @Param({"super", "nano"})
    public String shape;

    @Param({"1", "4", "16", "64"})
    public int tokens;

    /** Native worker threads; 0 = all cores. */
    @Param("0")
    public int threads;

    /** exact or bf16 (see {@link Precision}); {@code -p precision=exact,bf16} runs both. */
    @Param("exact")
    public String precision;

    @Param("42")
    public long seed;

    MoeLayer layer;
    LayerKernels kernels;
    HostArena arena;
    Tensor[] x = new Tensor[SETS], ids = new Tensor[SETS], wts = new Tensor[SETS], offsets = new Tensor[SETS],
            rows = new Tensor[SETS], latent = new Tensor[SETS], expertOut = new Tensor[SETS];
    Tensor out;
    final long[] layerBytes = new long[SETS], layerFlops = new long[SETS];
    final long[] expertBytes = new long[SETS], expertFlops = new long[SETS];
    long routerBytes, routerFlops, dispatchBytes, dispatchFlops, combineBytes, combineFlops;
    // What the rotation over the SETS inputs touches, per benchmark.
    long routerWorkingSet, dispatchWorkingSet, expertWorkingSet, combineWorkingSet, layerWorkingSet;
    private int next;

    @Setup(Level.Trial)
    public void setUp() {
        Cpu.setThreads(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
        MoeConfig c = Shapes.byName(shape);
        layer = WeightCache.layer(c, DType.BF16, seed, Backends.cpu(), Precision.fromName(precision));
        kernels = layer.kernels();
        arena = HostArena.shared("jmh-activations");
        int d = c.hiddenSize(), k = c.topK(), w = c.expertWidth(), n = c.numExperts();
        int wb = layer.weights().expertUp(0).data().dtype().byteSize(), gb = layer.weights().gate().data().dtype().byteSize();
        SplittableRandom r = new SplittableRandom(seed * 31 + tokens);
        BitSet union = new BitSet(n);
        for (int s = 0; s < SETS; s++) {
            float[] v = new float[tokens * d];
            for (int j = 0; j < v.length; j++) v[j] = (float) (r.nextDouble() * 2 - 1);
            x[s] = arena.allocateTensor(DType.F32, tokens, d).copyFrom(v);
            ids[s] = arena.allocateTensor(DType.I32, tokens, k);
            wts[s] = arena.allocateTensor(DType.F32, tokens, k);
            offsets[s] = arena.allocateTensor(DType.I32, n + 1);
            rows[s] = arena.allocateTensor(DType.I32, (long) tokens * k);
            latent[s] = arena.allocateTensor(DType.F32, (long) tokens * k, w);
            expertOut[s] = arena.allocateTensor(DType.F32, (long) tokens * k, w);
            kernels.routerTopK(x[s], ids[s], wts[s]);
            kernels.dispatch(x[s], ids[s], offsets[s], rows[s], latent[s]);
            kernels.experts(offsets[s], latent[s], expertOut[s]);
            Routing routing = new Routing(ids[s], wts[s]);
            for (long t = 0; t < routing.tokens(); t++) for (int q = 0; q < k; q++) union.set(routing.expertId(t, q));
            LayerTraffic lt = LayerTraffic.of(layer.weights(), routing);
            layerBytes[s] = lt.bytes();
            layerFlops[s] = (long) lt.flops();
            LayerTraffic et = LayerTraffic.experts(c, wb, lt.distinctExperts(), tokens);
            expertBytes[s] = et.bytes();
            expertFlops[s] = (long) et.flops();
        }
        out = arena.allocateTensor(DType.F32, tokens, d);
        LayerTraffic rt = LayerTraffic.router(c, gb, tokens);
        routerBytes = rt.bytes();
        routerFlops = (long) rt.flops();
        LayerTraffic dt = LayerTraffic.dispatch(c, wb, tokens);
        dispatchBytes = dt.bytes();
        dispatchFlops = (long) dt.flops();
        LayerTraffic ct = LayerTraffic.combine(c, wb, tokens);
        combineBytes = ct.bytes();
        combineFlops = (long) ct.flops();
        long all = (long) tokens * SETS;
        routerWorkingSet = LayerTraffic.router(c, gb, all).bytes();
        dispatchWorkingSet = LayerTraffic.dispatch(c, wb, all).bytes();
        expertWorkingSet = LayerTraffic.experts(c, wb, union.cardinality(), all).bytes();
        combineWorkingSet = LayerTraffic.combine(c, wb, all).bytes();
        layerWorkingSet = LayerTraffic.of(c, wb, gb, union.cardinality(), all).bytes();
        System.out.printf("%n# layer %s (%s), T=%d, %d threads, precision %s (kernel %s)%n", shape, Shapes.describe(c), tokens,
                Cpu.threads(), precision, Cpu.gemmKernel(Precision.fromName(precision)).name());
    }

    /** The next input set. */
    final int next() {
        int s = next;
        next = (s + 1) & (SETS - 1);
        return s;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (arena != null) arena.close();
        if (layer != null) layer.close();
    }
}
