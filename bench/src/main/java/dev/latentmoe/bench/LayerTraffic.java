package dev.latentmoe.bench;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Routing;
import dev.latentmoe.kernels.WeightMatrix;

import java.util.BitSet;

/**
 * The fewest bytes one forward call must move and the FLOPs it must do: the weights of the
 * distinct experts actually routed, the router, the latent projections and the shared expert,
 * each read once (at their stored size), plus x read and y written (f32).
 */
public record LayerTraffic(long bytes, double flops, int distinctExperts) {

    /** Distinct experts routed to in {@code routing}. */
    public static int distinctExperts(int numExperts, Routing routing) {
        BitSet used = new BitSet(numExperts);
        for (long i = 0; i < routing.tokens(); i++) for (int k = 0; k < routing.topK(); k++) used.set(routing.expertId(i, k));
        return used.cardinality();
    }

    /**
     * The traffic of {@code w} for {@code routing}: each matrix counted at its stored size
     * ({@link WeightMatrix#byteSize()}: FP8 one byte per weight, NVFP4 half a byte plus its block
     * scales), the routed experts' once each; FLOPs as {@link #of(MoeConfig, int, int, int, long)}.
     */
    public static LayerTraffic of(MoeWeights w, Routing routing) {
        MoeConfig c = w.config();
        BitSet used = new BitSet(c.numExperts());
        for (long i = 0; i < routing.tokens(); i++) for (int k = 0; k < routing.topK(); k++) used.set(routing.expertId(i, k));
        long weights = w.gate().byteSize() + c.numExperts() * 4L;
        for (WeightMatrix m : new WeightMatrix[] {w.latentDown(), w.latentUp(), w.sharedUp(), w.sharedGate(), w.sharedDown()}) {
            if (m != null) weights += m.byteSize();
        }
        for (int e = used.nextSetBit(0); e >= 0; e = used.nextSetBit(e + 1)) {
            weights += w.expertUp(e).byteSize() + w.expertDown(e).byteSize();
            if (w.expertGate(e) != null) weights += w.expertGate(e).byteSize();
        }
        LayerTraffic flopsOnly = of(c, 0, 0, used.cardinality(), routing.tokens());
        return new LayerTraffic(weights + 2 * routing.tokens() * c.hiddenSize() * 4L, flopsOnly.flops(), used.cardinality());
    }

    public static LayerTraffic of(MoeConfig c, int weightBytes, int gateBytes, int distinct, long tokens) {
        long d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        long w = c.expertWidth(), ms = c.sharedIntermediateSize(), k = c.topK();
        long mats = c.activation() == Activation.SWIGLU ? 3 : 2;
        long bytes = n * d * gateBytes + n * 4L                       // router + correction bias
                + 2 * d * l * weightBytes                              // latent projections (0 when standard)
                + distinct * mats * w * m * weightBytes                // routed experts actually used
                + mats * d * ms * weightBytes                          // shared expert
                + 2 * tokens * d * 4L;                                 // x in, y out
        double flops = 2.0 * tokens * (n * d                           // router
                + 2 * d * l                                            // latent projections
                + k * mats * w * m                                     // experts
                + mats * d * ms);                                      // shared expert
        return new LayerTraffic(bytes, flops, distinct);
    }

    /** The same call with x and y of {@code activationBytes} per element instead of f32 (bf16 on the GPU: 2). */
    public LayerTraffic withActivations(long tokens, int hiddenSize, int activationBytes) {
        return new LayerTraffic(bytes - 2L * tokens * hiddenSize * (4 - activationBytes), flops, distinctExperts);
    }

    /** Router + top-K: the gate and bias read, x read, ids and weights written. */
    public static LayerTraffic router(MoeConfig c, int gateBytes, long tokens) {
        long d = c.hiddenSize(), n = c.numExperts(), k = c.topK();
        long bytes = n * d * gateBytes + n * 4L + tokens * d * 4L + tokens * k * 8L;
        return new LayerTraffic(bytes, 2.0 * tokens * n * d, 0);
    }

    /** Down-projection + dispatch: W_down read (latent only), x and ids read, the sorted rows, offsets and map written. */
    public static LayerTraffic dispatch(MoeConfig c, int weightBytes, long tokens) {
        long d = c.hiddenSize(), l = c.latentSize(), w = c.expertWidth(), k = c.topK(), n = c.numExperts();
        long bytes = l * d * weightBytes + tokens * d * 4L + tokens * k * 4L
                + tokens * k * w * 4L + (n + 1) * 4L + tokens * k * 4L;
        return new LayerTraffic(bytes, 2.0 * tokens * d * l, 0);
    }

    /** Grouped expert GEMMs: the weights of the distinct experts read, T·K rows in and out. */
    public static LayerTraffic experts(MoeConfig c, int weightBytes, int distinct, long tokens) {
        long w = c.expertWidth(), m = c.intermediateSize(), k = c.topK(), n = c.numExperts();
        long mats = c.activation() == Activation.SWIGLU ? 3 : 2;
        long bytes = distinct * mats * w * m * weightBytes + 2 * tokens * k * w * 4L + (n + 1) * 4L;
        return new LayerTraffic(bytes, 2.0 * tokens * k * mats * w * m, distinct);
    }

    /** Combine + up-projection + shared expert: W_up and the shared expert read, expert rows, x, weights read, y written. */
    public static LayerTraffic combine(MoeConfig c, int weightBytes, long tokens) {
        long d = c.hiddenSize(), l = c.latentSize(), w = c.expertWidth(), k = c.topK(), ms = c.sharedIntermediateSize();
        long mats = c.activation() == Activation.SWIGLU ? 3 : 2;
        long bytes = d * l * weightBytes + mats * d * ms * weightBytes
                + tokens * k * w * 4L + tokens * k * 8L + 2 * tokens * d * 4L;
        double flops = 2.0 * tokens * (d * l + mats * d * ms) + 2.0 * tokens * k * w;
        return new LayerTraffic(bytes, flops, 0);
    }
}
