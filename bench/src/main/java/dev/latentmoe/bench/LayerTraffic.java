package dev.latentmoe.bench;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeWeights;
import dev.latentmoe.kernels.Routing;

import java.util.BitSet;

/**
 * The fewest bytes one forward call must move and the FLOPs it must do: the weights of the
 * distinct experts actually routed, the router, the latent projections and the shared expert,
 * each read once, plus x read and y written (f32).
 */
record LayerTraffic(long bytes, double flops, int distinctExperts) {

    static LayerTraffic of(MoeWeights w, Routing routing) {
        MoeConfig c = w.config();
        long t = routing.tokens();
        BitSet used = new BitSet(c.numExperts());
        for (long i = 0; i < t; i++) for (int k = 0; k < c.topK(); k++) used.set(routing.expertId(i, k));
        return of(c, w.weightDType().byteSize(), w.gate().dtype().byteSize(), used.cardinality(), t);
    }

    static LayerTraffic of(MoeConfig c, int weightBytes, int gateBytes, int distinct, long tokens) {
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
}
