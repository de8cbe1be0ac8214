package com.example.engine;

import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.Tensor;

/**
 * The engine's own float64 LatentMoE layer (Nemotron-H semantics, sigmoid router, relu² experts),
 * over the exact values it stored in its weight memory (bf16 ones widened); written from the spec,
 * with plain loops, sharing no code with the library.
 */
final class EngineLayer {
    final MoeConfig c;
    final float[] gate, bias, latentDown, latentUp, up, down, sharedUp, sharedDown;

    EngineLayer(MoeConfig c) {
        this.c = c;
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int ms = c.sharedIntermediateSize();
        gate = new float[n * d];
        bias = new float[n];
        latentDown = new float[l * d];
        latentUp = new float[d * l];
        up = new float[n * m * l];      // fused [N, m, l]
        down = new float[n * l * m];    // fused [N, l, m]
        sharedUp = new float[ms * d];
        sharedDown = new float[d * ms];
    }

    /**
     * The relative Frobenius error of {@code out} [T, d] against this layer on {@code x}. The
     * selection is the reference's, except that where the kernel picked another expert at a float32
     * near-tie of biased scores (|Δ| ≤ 1e-5) the kernel's choice is taken; any other difference is a
     * failure (returned as +∞).
     */
    double check(Tensor x, Tensor ids, Tensor out) {
        int t = (int) x.dim(0), d = c.hiddenSize(), k = c.topK();
        double num = 0, den = 0;
        for (int tok = 0; tok < t; tok++) {
            double[] xt = new double[d];
            for (int i = 0; i < d; i++) xt[i] = x.getFloat((long) tok * d + i);
            int[] kernelIds = new int[k];
            for (int j = 0; j < k; j++) kernelIds[j] = ids.getInt((long) tok * k + j);
            double[] want = token(xt, kernelIds);
            if (want == null) return Double.POSITIVE_INFINITY;
            for (int i = 0; i < d; i++) {
                double got = out.getFloat((long) tok * d + i);
                if (Double.isNaN(got)) return Double.POSITIVE_INFINITY;
                num += (got - want[i]) * (got - want[i]);
                den += want[i] * want[i];
            }
        }
        return Math.sqrt(num / den);
    }

    private double[] token(double[] x, int[] kernelIds) {
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), k = c.topK();
        int m = c.intermediateSize(), ms = c.sharedIntermediateSize();
        double[] s = new double[n];
        for (int e = 0; e < n; e++) s[e] = 1 / (1 + Math.exp(-dot(gate, e * d, x, d)));
        boolean[] taken = new boolean[n];
        int[] ids = new int[k];
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < n; e++) if (!taken[e] && (best < 0 || s[e] + bias[e] > s[best] + bias[best])) best = e;
            int got = kernelIds[j];
            if (got != best) {
                if (got < 0 || got >= n || taken[got] || Math.abs(s[got] + bias[got] - s[best] - bias[best]) > 1e-5) return null;
                best = got;
            }
            taken[best] = true;
            ids[j] = best;
        }
        double sum = 0;
        for (int id : ids) sum += s[id];
        double[] z = new double[l];
        for (int i = 0; i < l; i++) z[i] = dot(latentDown, i * d, x, d);
        double[] acc = new double[l];
        double[] h = new double[m];
        for (int id : ids) {
            double w = s[id] / (sum + 1e-20) * c.routedScalingFactor();
            for (int j = 0; j < m; j++) {
                double r = Math.max(0, dot(up, (id * m + j) * l, z, l));
                h[j] = r * r;
            }
            for (int i = 0; i < l; i++) acc[i] += w * dot(down, (id * l + i) * m, h, m);
        }
        double[] hs = new double[ms];
        for (int j = 0; j < ms; j++) {
            double r = Math.max(0, dot(sharedUp, j * d, x, d));
            hs[j] = r * r;
        }
        double[] out = new double[d];
        for (int i = 0; i < d; i++) out[i] = dot(latentUp, i * l, acc, l) + dot(sharedDown, i * ms, hs, ms);
        return out;
    }

    private static double dot(float[] m, int offset, double[] v, int len) {
        double s = 0;
        for (int i = 0; i < len; i++) s += m[offset + i] * v[i];
        return s;
    }
}
