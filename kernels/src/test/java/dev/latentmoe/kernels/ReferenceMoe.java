package dev.latentmoe.kernels;

import dev.latentmoe.memory.Tensor;

import java.util.Arrays;
import java.util.Comparator;

/**
 * An independent float64 reference of the layer, written from the spec (HF transformers
 * nemotron_h MoE semantics) with plain loops. It reads the same (bf16-rounded) weight values the
 * kernels read, widened to double.
 */
final class ReferenceMoe {
    final MoeConfig c;
    final double[][] gate;
    final double[] bias;
    final double[][] latentDown, latentUp, sharedUp, sharedGate, sharedDown;
    final double[][][] up, gateProj, down;

    ReferenceMoe(MoeWeights w) {
        c = w.config();
        gate = mat(w.gate());
        bias = w.gateBias() == null ? new double[c.numExperts()] : vec(w.gateBias());
        latentDown = mat(w.latentDown());
        latentUp = mat(w.latentUp());
        sharedUp = mat(w.sharedUp());
        sharedGate = mat(w.sharedGate());
        sharedDown = mat(w.sharedDown());
        int n = c.numExperts();
        up = new double[n][][];
        down = new double[n][][];
        gateProj = new double[n][][];
        for (int e = 0; e < n; e++) {
            up[e] = mat(w.expertUp(e));
            down[e] = mat(w.expertDown(e));
            gateProj[e] = mat(w.expertGate(e));
        }
    }

    static double[][] mat(WeightMatrix w) {
        if (w == null) return null;
        int rows = (int) w.rows(), cols = (int) w.cols();
        float[] v = w.dequantized();
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++) for (int k = 0; k < cols; k++) m[r][k] = v[r * cols + k];
        return m;
    }

    static double[] vec(Tensor t) {
        float[] v = t.toFloatArray();
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i];
        return out;
    }

    static double[] matvec(double[][] m, double[] x) {
        double[] y = new double[m.length];
        for (int r = 0; r < m.length; r++) {
            double s = 0;
            double[] row = m[r];
            for (int k = 0; k < row.length; k++) s += row[k] * x[k];
            y[r] = s;
        }
        return y;
    }

    /** Router scores s (sigmoid or softmax of the logits) for one token. */
    double[] scores(double[] x) {
        double[] logits = matvec(gate, x);
        double[] s = new double[logits.length];
        if (c.scoring() == Scoring.SIGMOID) {
            for (int i = 0; i < s.length; i++) s[i] = 1.0 / (1.0 + Math.exp(-logits[i]));
        } else {
            double max = Arrays.stream(logits).max().orElse(0);
            double sum = 0;
            for (int i = 0; i < s.length; i++) sum += s[i] = Math.exp(logits[i] - max);
            for (int i = 0; i < s.length; i++) s[i] /= sum;
        }
        return s;
    }

    /** Top-K of s + bias, descending, ties to the lower id. */
    int[] select(double[] s) {
        Integer[] ids = new Integer[s.length];
        for (int i = 0; i < ids.length; i++) ids[i] = i;
        Arrays.sort(ids, Comparator.<Integer>comparingDouble(i -> -(s[i] + bias[i])).thenComparingInt(i -> i));
        int[] out = new int[c.topK()];
        for (int k = 0; k < out.length; k++) out[k] = ids[k];
        return out;
    }

    /** Routing weights for given selected ids: unbiased scores, normalised, scaled. */
    double[] routeWeights(double[] s, int[] ids) {
        double[] w = new double[ids.length];
        double sum = 0;
        for (int k = 0; k < ids.length; k++) sum += w[k] = s[ids[k]];
        for (int k = 0; k < ids.length; k++) {
            if (c.normTopkProb()) w[k] /= (sum + 1e-20);
            w[k] *= c.routedScalingFactor();
        }
        return w;
    }

    double act(double g, double u) {
        if (c.activation() == Activation.RELU2) {
            double r = Math.max(0, u);
            return r * r;
        }
        if (c.activation() == Activation.SILU) return u / (1.0 + Math.exp(-u)); // non-gated: silu(z up^T)
        return g / (1.0 + Math.exp(-g)) * u;
    }

    /** z for one token: W_down x (latent) or x itself (standard). */
    double[] latent(double[] x) {
        return c.isLatent() ? matvec(latentDown, x) : x.clone();
    }

    /** One expert on one latent row. */
    double[] expert(int e, double[] z) {
        double[] u = matvec(up[e], z);
        double[] g = c.activation() == Activation.SWIGLU ? matvec(gateProj[e], z) : u;
        double[] h = new double[u.length];
        for (int i = 0; i < h.length; i++) h[i] = act(g[i], u[i]);
        return matvec(down[e], h);
    }

    double[] shared(double[] x) {
        double[] u = matvec(sharedUp, x);
        double[] g = c.activation() == Activation.SWIGLU ? matvec(sharedGate, x) : u;
        double[] h = new double[u.length];
        for (int i = 0; i < h.length; i++) h[i] = act(g[i], u[i]);
        return matvec(sharedDown, h);
    }

    /** The layer output for one token, given the expert ids to use (normally select(scores(x))). */
    double[] forwardToken(double[] x, int[] ids) {
        double[] s = scores(x);
        double[] w = routeWeights(s, ids);
        double[] z = latent(x);
        double[] acc = new double[c.expertWidth()];
        for (int k = 0; k < ids.length; k++) {
            double[] y = expert(ids[k], z);
            for (int i = 0; i < acc.length; i++) acc[i] += w[k] * y[i];
        }
        double[] out = c.isLatent() ? matvec(latentUp, acc) : acc;
        if (c.hasSharedExpert()) {
            double[] sh = shared(x);
            for (int i = 0; i < out.length; i++) out[i] += sh[i];
        }
        return out;
    }

    /**
     * The ids to compare against for a token: the reference selection, except that positions
     * where the kernel chose differently must be float32 near-ties (|Δ biased score| ≤ tol), in
     * which case the kernel's choice is taken. Returns null when a difference is not a near-tie.
     */
    int[] reconcile(double[] s, int[] kernelIds, double tol) {
        int[] ref = select(s);
        if (Arrays.equals(ref, kernelIds)) return ref;
        for (int k = 0; k < ref.length; k++) {
            int a = ref[k], b = kernelIds[k];
            if (b < 0 || b >= s.length) return null;
            if (a != b && Math.abs((s[a] + bias[a]) - (s[b] + bias[b])) > tol) return null;
        }
        int[] sorted = kernelIds.clone();
        Arrays.sort(sorted);
        for (int k = 1; k < sorted.length; k++) if (sorted[k] == sorted[k - 1]) return null;
        return kernelIds.clone();
    }

    static double relFrobenius(double[] ref, float[] got) {
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double dlt = ref[i] - got[i];
            if (Double.isNaN(got[i])) return Double.POSITIVE_INFINITY;
            num += dlt * dlt;
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }
}
