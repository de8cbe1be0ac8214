package dev.latentmoe.kernels;

import dev.latentmoe.memory.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tensor names of one layer's {@link MoeWeights} in a Nemotron-H checkpoint, under
 * {@code backbone.layers.{i}.mixer.}, for writing a layer ({@link #tensors}). Reading checkpoints
 * is the native loader's ({@link MoeLayer#fromCheckpoint}): its rules are defined once, in
 * latentmoe_engine.h.
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

}
