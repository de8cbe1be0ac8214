package dev.latentmoe.bench;

import dev.latentmoe.kernels.Activation;
import dev.latentmoe.kernels.MoeConfig;

import dev.latentmoe.bench.report.Table;
import java.util.List;

/**
 * The per-token cost model of Table 1 of the LatentMoE paper (arXiv 2601.18089), for a standard MoE
 * and its two latent variants at α = d/ℓ: ℓ-MoE_eff (N′ = αN experts, K active, experts in ℓ) and
 * ℓ-MoE_acc (N′ = αN, K′ = αK). Per token, with b bytes per weight element and mats = 2 (relu²) or
 * 3 (SwiGLU) matrices per expert:
 * <pre>
 * active weights  = N′·d (router) + 2·d·ℓ (latent projections, latent only) + K′·mats·w·m (routed, w = d or ℓ)
 *                   + mats·d·ms (shared expert)
 * weight bytes    = b · active weights;     FLOPs = 2 · active weights (one multiply-add per weight)
 * all-to-all      = 2 · K′ · w · b · (EP−1)/EP   (dispatch + combine of each routed copy that leaves its device)
 * </pre>
 * So routed weights per active expert are 2·d·m (standard) and 2·ℓ·m (latent), and the all-to-all is
 * ∝ K·d standard, K·ℓ eff, αK·ℓ = K·d acc.
 */
public final class CostModel {
    private CostModel() {}

    /** One variant's per-token costs (bytes at the given element size). */
    public record Row(String name, int numExperts, int topK, int width, long activeWeights, long weightBytes,
                      long flops, double allToAllBytes, long storedRoutedWeights) {}

    /**
     * The three variants for a base (standard) config with hidden d, N, K, m and shared ms, at latent
     * size {@code latent} (α = d/ℓ must be an integer), {@code bytes} per element, expert parallelism ep.
     */
    public static List<Row> table(MoeConfig base, int latent, int bytes, int ep) {
        int d = base.hiddenSize();
        if (latent <= 0 || d % latent != 0) throw new IllegalArgumentException("d = " + d + " must be a multiple of ℓ = " + latent);
        if (ep < 1) throw new IllegalArgumentException("--ep must be >= 1, got " + ep);
        int alpha = d / latent;
        int n = base.numExperts(), k = base.topK();
        return List.of(
                row("standard MoE", base, n, k, d, 0, bytes, ep),
                row("l-MoE_eff (aN, K)", base, alpha * n, k, latent, latent, bytes, ep),
                row("l-MoE_acc (aN, aK)", base, alpha * n, alpha * k, latent, latent, bytes, ep));
    }

    static Row row(String name, MoeConfig c, int n, int k, int w, int latent, int bytes, int ep) {
        long d = c.hiddenSize(), m = c.intermediateSize(), ms = c.sharedIntermediateSize();
        long mats = c.activation() == Activation.SWIGLU ? 3 : 2;
        long active = (long) n * d + 2 * d * latent + (long) k * mats * w * m + mats * d * ms;
        double a2a = 2.0 * k * w * bytes * (ep - 1) / ep;
        return new Row(name, n, k, w, active, active * bytes, 2 * active, a2a, (long) n * mats * w * m);
    }

    /**
     * The standard base of a preset: the preset's d, N, K, m and shared expert (its latent size, if any,
     * becomes the ℓ of the latent variants; a standard preset uses ℓ = d/4 unless given).
     */
    public static MoeConfig standardBase(MoeConfig preset) {
        return new MoeConfig(preset.hiddenSize(), 0, preset.numExperts(), preset.topK(), preset.intermediateSize(),
                preset.sharedIntermediateSize(), preset.routedScalingFactor(), preset.normTopkProb(), preset.activation(),
                preset.scoring());
    }

    public static String format(List<Row> rows, String title) {
        Table t = new Table().column("variant", "%-20s", "%-20s").column("N", "%6s", "%6d").column("K", "%4s", "%4d")
                .column("width", "%6s", "%6d").column("active_weights", "%16s", "%,16d").column("weight_bytes", "%16s", "%,16d")
                .column("FLOPs", "%16s", "%,16d").column("all2all_bytes", "%14s", "%,14.0f")
                .column("stored_routed_w", "%18s", "%,18d");
        for (Row r : rows) {
            t.row(r.name(), r.numExperts(), r.topK(), r.width(), r.activeWeights(), r.weightBytes(), r.flops(), r.allToAllBytes(),
                    r.storedRoutedWeights());
        }
        return title + '\n' + t;
    }
}
