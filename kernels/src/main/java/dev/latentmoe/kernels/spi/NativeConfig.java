package dev.latentmoe.kernels.spi;

import dev.latentmoe.bindings.lmoe_config;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.Precision;
import dev.latentmoe.memory.MemoryArena;

import java.lang.foreign.MemorySegment;

/** A {@link MoeConfig} as the C ABI's {@code lmoe_config} struct, which every backend passes to its kernels. */
public final class NativeConfig {
    private NativeConfig() {}

    /** A new {@code lmoe_config} holding {@code c} (precision EXACT), in {@code arena}. */
    public static MemorySegment allocate(MoeConfig c, MemoryArena arena) {
        return write(c, arena.allocate(lmoe_config.sizeof()));
    }

    /** A new {@code lmoe_config} holding {@code c} and {@code precision}, in {@code arena}. */
    public static MemorySegment allocate(MoeConfig c, Precision precision, MemoryArena arena) {
        MemorySegment out = write(c, arena.allocate(lmoe_config.sizeof()));
        lmoe_config.precision(out, precision.code());
        return out;
    }

    /** Writes {@code c} (precision EXACT) into {@code out} (at least {@code lmoe_config.sizeof()} bytes); returns it. */
    public static MemorySegment write(MoeConfig c, MemorySegment out) {
        lmoe_config.hidden_size(out, c.hiddenSize());
        lmoe_config.latent_size(out, c.latentSize());
        lmoe_config.num_experts(out, c.numExperts());
        lmoe_config.top_k(out, c.topK());
        lmoe_config.expert_intermediate_size(out, c.intermediateSize());
        lmoe_config.shared_intermediate_size(out, c.sharedIntermediateSize());
        lmoe_config.activation(out, c.activation().code());
        lmoe_config.scoring(out, c.scoring().code());
        lmoe_config.norm_topk_prob(out, c.normTopkProb() ? 1 : 0);
        lmoe_config.routed_scaling_factor(out, c.routedScalingFactor());
        lmoe_config.precision(out, Precision.EXACT.code());
        return out;
    }
}
