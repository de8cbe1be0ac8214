package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.io.Checkpoint;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One layer's {@link MoeWeights} in a Nemotron-H checkpoint: the tensor names under
 * {@code backbone.layers.{i}.mixer.}, reading them ({@link #read}, zero-copy where the dtype
 * allows) and naming a layer's tensors for writing ({@link #tensors}).
 */
public final class CheckpointWeights {
    private CheckpointWeights() {}

    static final String GATE = "gate.weight";
    static final String GATE_BIAS = "gate.e_score_correction_bias";
    static final String LATENT_DOWN = "fc1_latent_proj.weight";
    static final String LATENT_UP = "fc2_latent_proj.weight";
    static final String SHARED_UP = "shared_experts.up_proj.weight";
    static final String SHARED_DOWN = "shared_experts.down_proj.weight";
    static final String SHARED_GATE = "shared_experts.gate_proj.weight";

    /** Tensor name prefix of layer {@code layer}. */
    public static String prefix(int layer) { return "backbone.layers." + layer + ".mixer."; }

    /** {@code experts.{e}.{proj}_proj.weight}, proj one of up, down, gate. */
    static String expert(int e, String proj) { return "experts." + e + "." + proj + "_proj.weight"; }

    private static void put(Map<String, Tensor> m, String name, WeightMatrix w) {
        if (w == null) return;
        if (w.format().isQuantized()) {
            throw new UnsupportedOperationException(name + ": writing " + w.format() + " weights is not supported here");
        }
        m.put(name, w.data());
    }

    /** Every tensor of {@code w} under its checkpoint name for layer {@code layer} (nulls left out). */
    public static Map<String, Tensor> tensors(MoeWeights w, int layer) {
        String p = prefix(layer);
        Map<String, Tensor> m = new LinkedHashMap<>();
        put(m, p + GATE, w.gate());
        if (w.gateBias() != null) m.put(p + GATE_BIAS, w.gateBias());
        put(m, p + LATENT_DOWN, w.latentDown());
        put(m, p + LATENT_UP, w.latentUp());
        for (int e = 0; e < w.config().numExperts(); e++) {
            put(m, p + expert(e, "up"), w.expertUp(e));
            put(m, p + expert(e, "down"), w.expertDown(e));
            put(m, p + expert(e, "gate"), w.expertGate(e));
        }
        put(m, p + SHARED_UP, w.sharedUp());
        put(m, p + SHARED_DOWN, w.sharedDown());
        put(m, p + SHARED_GATE, w.sharedGate());
        return m;
    }

    /**
     * Views layer {@code layer} of a checkpoint. BF16 and F32 tensors are used in place (zero copy);
     * when the non-gate matrices are not all BF16 they are converted to F32 into {@code arena}
     * (exact for F16 and BF16), as is an F16 gate and a non-F32 correction bias.
     */
    public static MoeWeights read(Checkpoint ckpt, int layer, MoeConfig c, MemoryArena arena) {
        if (layer < 0) throw new IllegalArgumentException("layer index " + layer + " < 0");
        String p = prefix(layer);
        boolean swiglu = c.activation() == Activation.SWIGLU;
        int n = c.numExperts();
        Tensor gate = need(ckpt, p + GATE);
        Tensor bias = ckpt.has(p + GATE_BIAS) ? ckpt.tensor(p + GATE_BIAS) : null;
        Tensor down = c.isLatent() ? need(ckpt, p + LATENT_DOWN) : null;
        Tensor up = c.isLatent() ? need(ckpt, p + LATENT_UP) : null;
        Tensor[] eu = new Tensor[n], ed = new Tensor[n], eg = swiglu ? new Tensor[n] : null;
        for (int e = 0; e < n; e++) {
            eu[e] = need(ckpt, p + expert(e, "up"));
            ed[e] = need(ckpt, p + expert(e, "down"));
            if (swiglu) eg[e] = need(ckpt, p + expert(e, "gate"));
        }
        Tensor su = null, sd = null, sg = null;
        if (c.hasSharedExpert()) {
            su = need(ckpt, p + SHARED_UP);
            sd = need(ckpt, p + SHARED_DOWN);
            if (swiglu) sg = need(ckpt, p + SHARED_GATE);
        }
        // One dtype for the non-gate matrices: BF16 when all are BF16, else F32.
        List<Tensor> mats = new ArrayList<>(Arrays.asList(eu));
        mats.addAll(Arrays.asList(ed));
        if (eg != null) mats.addAll(Arrays.asList(eg));
        for (Tensor t : new Tensor[] {down, up, su, sd, sg}) if (t != null) mats.add(t);
        boolean allBf16 = mats.stream().allMatch(t -> t.dtype() == DType.BF16);
        DType wt = allBf16 ? DType.BF16 : DType.F32;
        gate = gate.dtype() == DType.F16 ? gate.convertTo(DType.F32, arena) : gate;
        if (bias != null && bias.dtype() != DType.F32) bias = bias.convertTo(DType.F32, arena);
        if (bias != null && bias.rank() == 2 && bias.dim(0) == 1) bias = bias.reshape(bias.dim(1));
        return new MoeWeights(c, gate, bias, conv(down, wt, arena), conv(up, wt, arena),
                conv(eu, wt, arena), eg == null ? null : conv(eg, wt, arena), conv(ed, wt, arena),
                conv(su, wt, arena), conv(sg, wt, arena), conv(sd, wt, arena));
    }

    private static Tensor need(Checkpoint ckpt, String name) {
        if (!ckpt.has(name)) throw new IllegalArgumentException("checkpoint has no tensor '" + name + "'");
        return ckpt.tensor(name);
    }

    private static Tensor conv(Tensor t, DType wt, MemoryArena arena) {
        if (t == null || t.dtype() == wt) return t;
        if (!t.dtype().isFloatingPoint()) throw new IllegalArgumentException("weight " + t + " is not floating point");
        return t.convertTo(wt, arena);
    }

    private static Tensor[] conv(Tensor[] ts, DType wt, MemoryArena arena) {
        Tensor[] out = new Tensor[ts.length];
        for (int i = 0; i < ts.length; i++) out[i] = conv(ts[i], wt, arena);
        return out;
    }
}
