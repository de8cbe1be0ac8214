package dev.latentmoe.bench;

import dev.latentmoe.kernels.MoeConfig;

import java.util.Locale;

/**
 * Layer shapes by name: a preset ({@code super}, {@code nano}, or their full names) optionally
 * scaled down by an integer factor, {@code super/4}: d, ℓ, N, m and the shared width divided by the
 * factor (K kept, capped at N), so that the layer keeps its proportions at 1/f² of the weights.
 */
public final class Shapes {
    private Shapes() {}

    public static MoeConfig byName(String name) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        int slash = n.indexOf('/');
        if (slash < 0) return MoeConfig.preset(n);
        int f;
        try {
            f = Integer.parseInt(n.substring(slash + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad shape '" + name + "': expected PRESET or PRESET/FACTOR");
        }
        return scaled(MoeConfig.preset(n.substring(0, slash)), f);
    }

    public static MoeConfig scaled(MoeConfig c, int f) {
        if (f < 1) throw new IllegalArgumentException("scale factor must be >= 1, got " + f);
        int n = Math.max(1, c.numExperts() / f);
        return new MoeConfig(Math.max(1, c.hiddenSize() / f), c.latentSize() / f, n, Math.min(c.topK(), n),
                Math.max(1, c.intermediateSize() / f), c.sharedIntermediateSize() / f, c.routedScalingFactor(),
                c.normTopkProb(), c.activation(), c.scoring());
    }

    /** A compact description: d, ℓ, N, K, m, shared. */
    public static String describe(MoeConfig c) {
        return String.format("d %d, l %d, N %d, K %d, m %d, shared %d", c.hiddenSize(), c.latentSize(), c.numExperts(),
                c.topK(), c.intermediateSize(), c.sharedIntermediateSize());
    }
}
