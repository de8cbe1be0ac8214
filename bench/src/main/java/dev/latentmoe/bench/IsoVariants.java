package dev.latentmoe.bench;

import dev.latentmoe.kernels.MoeConfig;

import java.util.List;
import java.util.Locale;

/**
 * The paper's iso-cost set: a standard MoE and its two latent variants at α = d/ℓ, ℓ-MoE_eff
 * (N′ = αN experts, K active, experts in ℓ) and ℓ-MoE_acc (N′ = αN, K′ = αK), which hold the same
 * routed weight bytes. Used by {@code bench --iso} on the CPU and on the GPU.
 */
public final class IsoVariants {
    private IsoVariants() {}

    public record Variant(String name, MoeConfig config) {
        /** Bytes of all routed experts' matrices at {@code elementBytes} per weight (N·mats·w·m·bytes). */
        public long routedWeightBytes(int elementBytes) { return config.numExperts() * config.expertWeightBytes(elementBytes); }
    }

    /** The standard MoE the variants derive from, and the latent size ℓ they use. */
    public record Base(MoeConfig config, int latent) {
        /**
         * From a preset: a latent preset's N and K are divided by α = d/ℓ (so that its acc variant is
         * the preset's own N, with K rounded to α·K/α); a standard preset is the base itself, with ℓ = d/4.
         */
        public static Base of(MoeConfig p) {
            if (!p.isLatent()) return new Base(p, p.hiddenSize() / 4);
            int alpha = p.hiddenSize() / p.latentSize();
            return new Base(new MoeConfig(p.hiddenSize(), 0, Math.max(1, p.numExperts() / alpha),
                    Math.max(1, Math.round((float) p.topK() / alpha)), p.intermediateSize(), p.sharedIntermediateSize(),
                    p.routedScalingFactor(), p.normTopkProb(), p.activation(), p.scoring()), p.latentSize());
        }

        public int alpha() { return config.hiddenSize() / latent; }
    }

    /** standard, l-MoE_eff and l-MoE_acc of {@code base} at latent size {@code latent} (αK capped at the library's K limit). */
    public static List<Variant> of(MoeConfig base, int latent) {
        int d = base.hiddenSize(), alpha = d / latent;
        if (d % latent != 0) throw new IllegalArgumentException("d must be a multiple of l");
        MoeConfig eff = new MoeConfig(d, latent, alpha * base.numExperts(), base.topK(), base.intermediateSize(),
                base.sharedIntermediateSize(), base.routedScalingFactor(), base.normTopkProb(), base.activation(), base.scoring());
        MoeConfig acc = eff.withTopK(Math.min(MoeConfig.MAX_TOP_K, alpha * base.topK()));
        return List.of(new Variant("standard", base), new Variant("l-MoE_eff", eff), new Variant("l-MoE_acc", acc));
    }

    /**
     * The three variants of {@code base}, checked to be the paper's iso-cost set within the library's
     * limits: ℓ divides d with α ≥ 2, αN ≤ 2048, αK ≤ 32 (not clamped), equal routed weight bytes.
     *
     * @throws IllegalArgumentException saying which condition fails
     */
    public static List<Variant> checked(Base base) {
        MoeConfig b = base.config();
        int d = b.hiddenSize(), l = base.latent();
        if (b.isLatent()) throw new IllegalArgumentException("the base must be a standard MoE (latent size 0)");
        if (l <= 0 || l >= d || d % l != 0) {
            throw new IllegalArgumentException("ℓ must divide d with α = d/ℓ ≥ 2, got d " + d + ", ℓ " + l);
        }
        int alpha = d / l;
        if ((long) alpha * b.numExperts() > MoeConfig.MAX_EXPERTS) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "the ℓ-MoE variants need N′ = αN = %d·%d = %d experts, above the library's limit of %d",
                    alpha, b.numExperts(), alpha * b.numExperts(), MoeConfig.MAX_EXPERTS));
        }
        if ((long) alpha * b.topK() > MoeConfig.MAX_TOP_K) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "ℓ-MoE_acc needs K′ = αK = %d·%d = %d, above the library's limit of %d",
                    alpha, b.topK(), alpha * b.topK(), MoeConfig.MAX_TOP_K));
        }
        List<Variant> vs = of(b, l);
        long routed = vs.get(0).routedWeightBytes(2);
        for (Variant v : vs) {
            if (v.routedWeightBytes(2) != routed) {
                throw new IllegalStateException("routed weight bytes differ: " + v.name() + " " + v.routedWeightBytes(2)
                        + " vs standard " + routed);
            }
        }
        return vs;
    }
}
