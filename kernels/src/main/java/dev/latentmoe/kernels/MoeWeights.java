package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weight tensors of one layer, row-major, in the checkpoint's layouts:
 * gate [N, d], gateBias [N] f32 (may be null), latentDown [ℓ, d], latentUp [d, ℓ] (null for a
 * standard MoE), expertUp[e] [m, w], expertGate[e] [m, w] (SwiGLU only), expertDown[e] [w, m],
 * sharedUp [ms, d], sharedGate [ms, d] (SwiGLU only), sharedDown [d, ms] (null without a shared
 * expert). Every matrix but the gate has {@link #weightDType()} (BF16 or F32); the gate is BF16 or
 * F32 on its own.
 */
public final class MoeWeights {
    private final MoeConfig config;
    private final DType weightDType;
    private final Tensor gate;
    private final Tensor gateBias;
    private final Tensor latentDown;
    private final Tensor latentUp;
    private final Tensor[] expertUp;
    private final Tensor[] expertGate;
    private final Tensor[] expertDown;
    private final Tensor sharedUp;
    private final Tensor sharedGate;
    private final Tensor sharedDown;

    public MoeWeights(MoeConfig config, Tensor gate, Tensor gateBias, Tensor latentDown, Tensor latentUp,
                      Tensor[] expertUp, Tensor[] expertGate, Tensor[] expertDown,
                      Tensor sharedUp, Tensor sharedGate, Tensor sharedDown) {
        this.config = config;
        this.gate = gate;
        this.gateBias = gateBias;
        this.latentDown = latentDown;
        this.latentUp = latentUp;
        this.expertUp = expertUp == null ? null : expertUp.clone();
        this.expertGate = expertGate == null ? null : expertGate.clone();
        this.expertDown = expertDown == null ? null : expertDown.clone();
        this.sharedUp = sharedUp;
        this.sharedGate = sharedGate;
        this.sharedDown = sharedDown;
        this.weightDType = validate();
    }

    public MoeConfig config() { return config; }

    public DType weightDType() { return weightDType; }

    public Tensor gate() { return gate; }

    public Tensor gateBias() { return gateBias; }

    public Tensor latentDown() { return latentDown; }

    public Tensor latentUp() { return latentUp; }

    public Tensor expertUp(int e) { return expertUp[e]; }

    public Tensor expertGate(int e) { return expertGate == null ? null : expertGate[e]; }

    public Tensor expertDown(int e) { return expertDown[e]; }

    public Tensor sharedUp() { return sharedUp; }

    public Tensor sharedGate() { return sharedGate; }

    public Tensor sharedDown() { return sharedDown; }

    /** Every tensor of the layer (nulls skipped). */
    public List<Tensor> all() {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : new Tensor[] {gate, gateBias, latentDown, latentUp, sharedUp, sharedGate, sharedDown}) {
            if (t != null) out.add(t);
        }
        out.addAll(Arrays.asList(expertUp));
        if (expertGate != null) out.addAll(Arrays.asList(expertGate));
        out.addAll(Arrays.asList(expertDown));
        return out;
    }

    /** The distinct arenas that own the weights; a forward pass checks each is still open. */
    public List<MemoryArena> owners() {
        Map<MemoryArena, Boolean> seen = new IdentityHashMap<>();
        for (Tensor t : all()) seen.put(t.arena(), Boolean.TRUE);
        return List.copyOf(seen.keySet());
    }

    private DType validate() {
        MoeConfig c = config;
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean swiglu = c.activation() == Activation.SWIGLU;
        checkMatrix("gate.weight", gate, n, d);
        if (gate.dtype() != DType.BF16 && gate.dtype() != DType.F32) {
            throw new IllegalArgumentException("gate.weight must be BF16 or F32, got " + gate.dtype());
        }
        if (gateBias != null) {
            if (gateBias.dtype() != DType.F32 || gateBias.rank() != 1 || gateBias.dim(0) != n) {
                throw new IllegalArgumentException("gate.e_score_correction_bias must be F32 [" + n + "], got " + gateBias);
            }
        }
        DType wt = expertUp == null || expertUp.length == 0 ? null : expertUp[0].dtype();
        if (wt != DType.BF16 && wt != DType.F32) {
            throw new IllegalArgumentException("expert weights must be BF16 or F32, got " + wt);
        }
        if (c.isLatent()) {
            checkMatrix("fc1_latent_proj.weight", latentDown, l, d);
            checkMatrix("fc2_latent_proj.weight", latentUp, d, l);
            checkDType("fc1_latent_proj.weight", latentDown, wt);
            checkDType("fc2_latent_proj.weight", latentUp, wt);
        } else if (latentDown != null || latentUp != null) {
            throw new IllegalArgumentException("latent projections given for a standard MoE (moe_latent_size unset)");
        }
        checkExperts("up_proj", expertUp, n, m, w, wt);
        checkExperts("down_proj", expertDown, n, w, m, wt);
        if (swiglu) {
            checkExperts("gate_proj", expertGate, n, m, w, wt);
        } else if (expertGate != null) {
            throw new IllegalArgumentException("expert gate_proj weights given but the activation is relu²");
        }
        if (ms > 0) {
            checkMatrix("shared_experts.up_proj.weight", sharedUp, ms, d);
            checkMatrix("shared_experts.down_proj.weight", sharedDown, d, ms);
            checkDType("shared_experts.up_proj.weight", sharedUp, wt);
            checkDType("shared_experts.down_proj.weight", sharedDown, wt);
            if (swiglu) {
                checkMatrix("shared_experts.gate_proj.weight", sharedGate, ms, d);
                checkDType("shared_experts.gate_proj.weight", sharedGate, wt);
            }
        } else if (sharedUp != null || sharedDown != null) {
            throw new IllegalArgumentException("shared expert weights given but moe_shared_expert_intermediate_size is 0");
        }
        for (Tensor t : all()) {
            if (!t.device().isHost()) throw new IllegalArgumentException("weight " + t + " is not in host memory");
        }
        return wt;
    }

    private static void checkExperts(String name, Tensor[] ts, int n, long rows, long cols, DType wt) {
        if (ts == null || ts.length != n) {
            throw new IllegalArgumentException("experts.*." + name + ".weight: expected " + n + " tensors, got "
                    + (ts == null ? "none" : ts.length));
        }
        for (int e = 0; e < n; e++) {
            checkMatrix("experts." + e + "." + name + ".weight", ts[e], rows, cols);
            checkDType("experts." + e + "." + name + ".weight", ts[e], wt);
        }
    }

    private static void checkMatrix(String name, Tensor t, long rows, long cols) {
        if (t == null) throw new IllegalArgumentException("missing weight " + name);
        if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) {
            throw new IllegalArgumentException("weight " + name + " has shape " + Arrays.toString(t.shape())
                    + ", expected [" + rows + ", " + cols + "]");
        }
    }

    private static void checkDType(String name, Tensor t, DType wt) {
        if (t.dtype() != wt) {
            throw new IllegalArgumentException("weight " + name + " is " + t.dtype() + " but the experts are " + wt);
        }
    }

    /**
     * Seeded random weights: each matrix uniform in ±1/sqrt(fan_in) (so activations stay O(1)),
     * the correction bias uniform in ±0.1; filled natively, multi-threaded, identical for a seed.
     */
    public static MoeWeights random(MoeConfig c, DType weightDType, long seed, MemoryArena arena) {
        return random(c, weightDType, seed, arena, null);
    }

    /** As {@link #random(MoeConfig, DType, long, MemoryArena)}, reporting each filled expert. */
    public static MoeWeights random(MoeConfig c, DType weightDType, long seed, MemoryArena arena,
                                    java.util.function.IntConsumer expertDone) {
        if (weightDType != DType.BF16 && weightDType != DType.F32) {
            throw new IllegalArgumentException("random weights must be BF16 or F32, got " + weightDType);
        }
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean swiglu = c.activation() == Activation.SWIGLU;
        long[] stream = {seed * 0x9E3779B97F4A7C15L};
        Tensor gate = rand(arena, weightDType, stream, d, n, d);
        Tensor bias = rand(arena, DType.F32, stream, 0, n);
        Tensor down = c.isLatent() ? rand(arena, weightDType, stream, d, l, d) : null;
        Tensor up = c.isLatent() ? rand(arena, weightDType, stream, l, d, l) : null;
        Tensor[] eu = new Tensor[n], ed = new Tensor[n], eg = swiglu ? new Tensor[n] : null;
        for (int e = 0; e < n; e++) {
            eu[e] = rand(arena, weightDType, stream, w, m, w);
            if (swiglu) eg[e] = rand(arena, weightDType, stream, w, m, w);
            ed[e] = rand(arena, weightDType, stream, m, w, m);
            if (expertDone != null) expertDone.accept(e);
        }
        Tensor su = ms > 0 ? rand(arena, weightDType, stream, d, ms, d) : null;
        Tensor sg = ms > 0 && swiglu ? rand(arena, weightDType, stream, d, ms, d) : null;
        Tensor sd = ms > 0 ? rand(arena, weightDType, stream, ms, d, ms) : null;
        return new MoeWeights(c, gate, bias, down, up, eu, eg, ed, su, sg, sd);
    }

    /** Uniform in ±1/sqrt(fanIn) (±0.1 when fanIn is 0); each tensor gets the next seed of the stream. */
    private static Tensor rand(MemoryArena arena, DType dt, long[] stream, int fanIn, long... shape) {
        Tensor t = arena.allocateTensor(dt, shape);
        float a = fanIn > 0 ? (float) (1.0 / Math.sqrt(fanIn)) : 0.1f;
        long s = stream[0];
        stream[0] = s + 0x632BE59BD9B4E019L;
        latentmoe_h.check(latentmoe_h.lmoe_fill_uniform(t.segment(), dt.code(), t.numel(), s, -a, a),
                "lmoe_fill_uniform");
        return t;
    }
}
