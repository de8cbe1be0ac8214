package com.example.engine;

import dev.latentmoe.bindings.runtime.NativeLibraries;
import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeKernels;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Scoring;
import dev.latentmoe.kernels.WeightMatrix;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.Device;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.interop.ArrowTensors;
import dev.latentmoe.memory.interop.ForeignArena;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.Float4Vector;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * What a JVM inference engine does with the library: it owns every byte. Its weights are a
 * {@link MemorySegment} it allocated and filled itself (router, fused expert tensors
 * {@code up_proj [N, m, l]} / {@code down_proj [N, l, m]} as transformers keeps them, shared expert)
 * and Arrow Java buffers (the latent projections, as if read from Arrow IPC); its activations and one
 * workspace are segments of its own arena. It runs a stack of LatentMoE layers in a decode loop
 * through the stateless caller-owned-weights API ({@link MoeKernels}), measures the Java heap bytes
 * each call allocates (none, once warm), and checks every layer against its own float64
 * implementation of the layer.
 *
 * <p>Run: {@code java --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
 * -cp <the dependencies> com.example.engine.CallerOwnedEngine}.
 */
public final class CallerOwnedEngine {
    /** A small LatentMoE: d 96, l 24, N 16, K 4, m 40, shared 48, relu², sigmoid, scale 2.5. */
    public static final MoeConfig CONFIG =
            new MoeConfig(96, 24, 16, 4, 40, 48, 2.5f, true, Activation.RELU2, Scoring.SIGMOID);

    /**
     * What one run measured: forward calls made, the Java heap bytes the calling thread allocated in
     * the best round of {@code callsPerRound} warm calls, the largest relative error of a layer.
     */
    public record Result(int layers, int tokens, long calls, long callsPerRound, long heapBytesBestRound,
                         double maxRelativeError, String nativeSource) {}

    public static void main(String[] args) {
        Result r = run(4, 5, 250, 40, System.nanoTime());
        System.out.println("engine: " + r.layers() + " layers, T = " + r.tokens() + ", " + r.calls() + " forward calls");
        System.out.println("engine: Java heap bytes allocated over " + r.callsPerRound() + " warm calls: "
                + r.heapBytesBestRound());
        System.out.printf("engine: max relative error against the float64 layer: %.3e%n", r.maxRelativeError());
        System.out.println("engine: liblatentmoe.so from " + r.nativeSource());
    }

    /** Offsets of one layer's tensors in the engine's weight slab (bytes, each 64-aligned). */
    private record SlabLayout(long gate, long bias, long up, long down, long sharedUp, long sharedDown, long bytes) {
        static SlabLayout of(MoeConfig c) {
            long o = 0;
            long gate = o; o = align(o + 4L * c.numExperts() * c.hiddenSize());
            long bias = o; o = align(o + 4L * c.numExperts());
            long up = o; o = align(o + 2L * c.numExperts() * c.intermediateSize() * c.latentSize());
            long down = o; o = align(o + 2L * c.numExperts() * c.latentSize() * c.intermediateSize());
            long su = o; o = align(o + 2L * c.sharedIntermediateSize() * c.hiddenSize());
            long sd = o; o = align(o + 2L * c.hiddenSize() * c.sharedIntermediateSize());
            return new SlabLayout(gate, bias, up, down, su, sd, o);
        }

        static long align(long b) { return (b + 63) & ~63L; }
    }

    /**
     * Builds {@code layers} layers of weights, runs decode steps of {@code tokens} tokens through all
     * of them in rounds of {@code stepsPerRound} until a round allocates nothing (at most
     * {@code maxRounds}), then one step checked against the float64 reference.
     */
    public static Result run(int layers, int tokens, int stepsPerRound, int maxRounds, long seed) {
        MoeConfig c = CONFIG;
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), k = c.topK();
        int m = c.intermediateSize(), ms = c.sharedIntermediateSize();
        SlabLayout lay = SlabLayout.of(c);
        SplittableRandom rnd = new SplittableRandom(seed);
        List<EngineLayer> reference = new ArrayList<>();
        // The engine's memory: one arena for the weight slab and the activations, an Arrow allocator
        // for the latent projections. The library sees views of it (ForeignArena.view: nothing is
        // allocated or freed by the library), and checks before every call that it is still alive.
        try (Arena engine = Arena.ofShared();
             BufferAllocator arrow = new RootAllocator();
             ForeignArena view = ForeignArena.view("engine memory", Device.CPU)) {
            MemorySegment slab = engine.allocate(lay.bytes() * layers, 64);
            MoeWeights[] weights = new MoeWeights[layers];
            List<AutoCloseable> arrowViews = new ArrayList<>();
            List<Float4Vector> vectors = new ArrayList<>();
            try {
                for (int i = 0; i < layers; i++) {
                    long base = lay.bytes() * i;
                    EngineLayer ref = new EngineLayer(c);
                    fillF32(slab, base + lay.gate(), ref.gate, rnd, 1 / Math.sqrt(d));
                    fillF32(slab, base + lay.bias(), ref.bias, rnd, 0.1);
                    fillBf16(slab, base + lay.up(), ref.up, rnd, 1 / Math.sqrt(l));
                    fillBf16(slab, base + lay.down(), ref.down, rnd, 1 / Math.sqrt(m));
                    fillBf16(slab, base + lay.sharedUp(), ref.sharedUp, rnd, 1 / Math.sqrt(d));
                    fillBf16(slab, base + lay.sharedDown(), ref.sharedDown, rnd, 1 / Math.sqrt(ms));
                    // fc1_latent_proj in an Arrow Float4Vector, fc2_latent_proj as bf16 in a raw ArrowBuf
                    Float4Vector downVec = new Float4Vector("layers." + i + ".fc1_latent_proj", arrow);
                    vectors.add(downVec);
                    downVec.allocateNew(l * d);
                    for (int j = 0; j < l * d; j++) {
                        ref.latentDown[j] = (float) (uniform(rnd) / Math.sqrt(d));
                        downVec.set(j, ref.latentDown[j]);
                    }
                    downVec.setValueCount(l * d);
                    ArrowBuf upBuf = arrow.buffer(2L * d * l);
                    fillBf16(MemorySegment.ofAddress(upBuf.memoryAddress()).reinterpret(2L * d * l), 0, ref.latentUp, rnd,
                            1 / Math.sqrt(l));

                    Tensor latentDown = ArrowTensors.retain(downVec.getDataBuffer(), "layers." + i + ".fc1_latent_proj",
                            DType.F32, l, d);
                    Tensor latentUp = ArrowTensors.retain(upBuf, "layers." + i + ".fc2_latent_proj", DType.BF16, d, l);
                    upBuf.close();   // the engine drops its own reference: the views keep the memory
                    arrowViews.add(latentDown.arena());
                    arrowViews.add(latentUp.arena());

                    // Fused 3D expert tensors as views (no copy); strides in elements, as torch gives them.
                    WeightMatrix[] up = WeightMatrix.experts("layers." + i + ".experts.up_proj", view,
                            slab.asSlice(base + lay.up(), 2L * n * m * l), DType.BF16,
                            new long[] {n, m, l}, new long[] {(long) m * l, l, 1});
                    WeightMatrix[] down = WeightMatrix.experts("layers." + i + ".experts.down_proj", view,
                            slab.asSlice(base + lay.down(), 2L * n * l * m), DType.BF16,
                            new long[] {n, l, m}, new long[] {(long) l * m, m, 1});
                    weights[i] = new MoeWeights(c,
                            WeightMatrix.of(wrap(view, slab, base + lay.gate(), DType.F32, n, d)),
                            wrap(view, slab, base + lay.bias(), DType.F32, n),
                            WeightMatrix.of(latentDown), WeightMatrix.of(latentUp), up, null, down,
                            WeightMatrix.of(wrap(view, slab, base + lay.sharedUp(), DType.BF16, ms, d)), null,
                            WeightMatrix.of(wrap(view, slab, base + lay.sharedDown(), DType.BF16, d, ms)));
                    reference.add(ref);
                }

                // Activations, routing and one workspace: the engine's own segments, made once.
                long wsBytes = MoeKernels.workspaceBytes(c, MoeKernels.Step.FORWARD, tokens);
                Tensor workspace = wrap(view, engine.allocate(wsBytes, 64), 0, DType.U8, wsBytes);
                Tensor[] act = new Tensor[layers + 1];
                for (int i = 0; i <= layers; i++) act[i] = wrap(view, engine.allocate(4L * tokens * d, 64), 0, DType.F32, tokens, d);
                Tensor ids = wrap(view, engine.allocate(4L * tokens * k, 64), 0, DType.I32, tokens, k);
                Tensor routeWeights = wrap(view, engine.allocate(4L * tokens * k, 64), 0, DType.F32, tokens, k);

                var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
                long calls = 0, bestRoundBytes = Long.MAX_VALUE;
                // Decode steps in rounds until a whole round allocates nothing (the JIT has compiled the
                // call path), at most maxRounds; then one more step, checked layer by layer.
                for (int round = 0; round < maxRounds && bestRoundBytes != 0; round++) {
                    long before = mx.getCurrentThreadAllocatedBytes();
                    for (int step = 0; step < stepsPerRound; step++) {
                        decodeStep(weights, act, ids, routeWeights, workspace);
                    }
                    bestRoundBytes = Math.min(bestRoundBytes, mx.getCurrentThreadAllocatedBytes() - before);
                    calls += (long) stepsPerRound * layers;
                }
                fillInput(act[0], rnd);
                double maxRel = 0;
                for (int i = 0; i < layers; i++) {
                    MoeKernels.forward(weights[i], act[i], ids, routeWeights, act[i + 1], workspace);
                    maxRel = Math.max(maxRel, reference.get(i).check(act[i], ids, act[i + 1]));
                }
                calls += layers;
                String source = NativeLibraries.loadedSource(NativeLibraries.CPU).orElse("?");
                return new Result(layers, tokens, calls, (long) stepsPerRound * layers, bestRoundBytes, maxRel, source);
            } finally {
                for (AutoCloseable a : arrowViews) {
                    try {
                        a.close();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
                for (Float4Vector v : vectors) v.close();
            }
        }
    }

    /** One decode step: new tokens in, every layer in turn, each output the next layer's input. */
    private static void decodeStep(MoeWeights[] weights, Tensor[] act, Tensor ids, Tensor routeWeights, Tensor workspace) {
        MemorySegment x = act[0].segment();
        long n = act[0].numel();
        for (long j = 0; j < n; j++) {   // a cheap deterministic "embedding" of the step's tokens
            x.setAtIndex(ValueLayout.JAVA_FLOAT, j, (float) Math.sin(0.37 * j + weights.length));
        }
        for (int i = 0; i < weights.length; i++) {
            MoeKernels.forward(weights[i], act[i], ids, routeWeights, act[i + 1], workspace);
        }
    }

    private static void fillInput(Tensor x, SplittableRandom r) {
        MemorySegment s = x.segment();
        for (long j = 0; j < x.numel(); j++) s.setAtIndex(ValueLayout.JAVA_FLOAT, j, (float) uniform(r));
    }

    private static Tensor wrap(ForeignArena view, MemorySegment slab, long offset, DType dt, long... shape) {
        long elems = 1;
        for (long s : shape) elems *= s;
        return Tensor.wrap(view, slab.asSlice(offset, elems * dt.byteSize()), dt, shape);
    }

    private static double uniform(SplittableRandom r) {
        double u = r.nextDouble() * 2 - 1;
        return u == 0 ? 0.5 : u;
    }

    private static void fillF32(MemorySegment s, long offset, float[] keep, SplittableRandom r, double scale) {
        for (int i = 0; i < keep.length; i++) {
            keep[i] = (float) (uniform(r) * scale);
            s.set(ValueLayout.JAVA_FLOAT_UNALIGNED, offset + 4L * i, keep[i]);
        }
    }

    /** The engine's own bf16 encoding (round to nearest even); keeps the values it stored. */
    private static void fillBf16(MemorySegment s, long offset, float[] keep, SplittableRandom r, double scale) {
        for (int i = 0; i < keep.length; i++) {
            int bits = Float.floatToRawIntBits((float) (uniform(r) * scale));
            int rounded = (bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16;
            s.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset + 2L * i, (short) rounded);
            keep[i] = Float.intBitsToFloat(rounded << 16);
        }
    }
}
