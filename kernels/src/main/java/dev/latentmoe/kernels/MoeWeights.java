package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weight matrices of one layer in the checkpoint's layouts ([out, in], row-major):
 * gate [N, d] (F32 or BF16), gateBias [N] f32 (may be null), latentDown [ℓ, d], latentUp [d, ℓ]
 * (null for a standard MoE), expertUp[e] [m, w], expertGate[e] [m, w] (SwiGLU only), expertDown[e]
 * [w, m], sharedUp [ms, d], sharedGate [ms, d] (SwiGLU only), sharedDown [d, ms] (null without a
 * shared expert). Each matrix has its own {@link WeightFormat}: a checkpoint may hold BF16 latent
 * projections, an FP8 shared expert and NVFP4 routed experts.
 */
public final class MoeWeights {
    private final MoeConfig config;
    private final WeightMatrix gate;
    private final Tensor gateBias;
    private final WeightMatrix latentDown;
    private final WeightMatrix latentUp;
    private final WeightMatrix[] expertUp;
    private final WeightMatrix[] expertGate;
    private final WeightMatrix[] expertDown;
    private final WeightMatrix sharedUp;
    private final WeightMatrix sharedGate;
    private final WeightMatrix sharedDown;

    /** Plain F32 / BF16 tensors (each matrix may have either dtype). */
    public MoeWeights(MoeConfig config, Tensor gate, Tensor gateBias, Tensor latentDown, Tensor latentUp,
                      Tensor[] expertUp, Tensor[] expertGate, Tensor[] expertDown,
                      Tensor sharedUp, Tensor sharedGate, Tensor sharedDown) {
        this(config, plain("gate.weight", gate), gateBias, plain("fc1_latent_proj.weight", latentDown),
                plain("fc2_latent_proj.weight", latentUp), plain("up_proj", expertUp), plain("gate_proj", expertGate),
                plain("down_proj", expertDown), plain("shared_experts.up_proj.weight", sharedUp),
                plain("shared_experts.gate_proj.weight", sharedGate), plain("shared_experts.down_proj.weight", sharedDown));
    }

    /** Matrices in any {@link WeightFormat} (the gate F32 or BF16). */
    public MoeWeights(MoeConfig config, WeightMatrix gate, Tensor gateBias, WeightMatrix latentDown,
                      WeightMatrix latentUp, WeightMatrix[] expertUp, WeightMatrix[] expertGate,
                      WeightMatrix[] expertDown, WeightMatrix sharedUp, WeightMatrix sharedGate,
                      WeightMatrix sharedDown) {
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
        validate();
    }

    private static WeightMatrix plain(String name, Tensor t) {
        if (t == null) return null;
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException("weight " + name + " must be BF16 or F32, got " + t.dtype());
        }
        return WeightMatrix.of(t);
    }

    private static WeightMatrix[] plain(String name, Tensor[] ts) {
        if (ts == null) return null;
        WeightMatrix[] out = new WeightMatrix[ts.length];
        for (int e = 0; e < ts.length; e++) out[e] = ts[e] == null ? null : plain("experts." + e + "." + name + ".weight", ts[e]);
        return out;
    }

    public MoeConfig config() { return config; }

    public WeightMatrix gate() { return gate; }

    public Tensor gateBias() { return gateBias; }

    public WeightMatrix latentDown() { return latentDown; }

    public WeightMatrix latentUp() { return latentUp; }

    public WeightMatrix expertUp(int e) { return expertUp[e]; }

    public WeightMatrix expertGate(int e) { return expertGate == null ? null : expertGate[e]; }

    public WeightMatrix expertDown(int e) { return expertDown[e]; }

    public WeightMatrix sharedUp() { return sharedUp; }

    public WeightMatrix sharedGate() { return sharedGate; }

    public WeightMatrix sharedDown() { return sharedDown; }

    /** The format of the routed experts' up projections (expert 0), for reports. */
    public WeightFormat expertFormat() { return expertUp[0].format(); }

    /** Every weight matrix of the layer (nulls skipped). */
    public List<WeightMatrix> matrices() {
        List<WeightMatrix> out = new ArrayList<>();
        for (WeightMatrix m : new WeightMatrix[] {gate, latentDown, latentUp, sharedUp, sharedGate, sharedDown}) {
            if (m != null) out.add(m);
        }
        for (WeightMatrix[] ms : new WeightMatrix[][] {expertUp, expertGate, expertDown}) {
            if (ms != null) out.addAll(List.of(ms));
        }
        return out;
    }

    /** Every tensor of the layer (data, block scales, the bias; nulls skipped). */
    public List<Tensor> all() {
        List<Tensor> out = new ArrayList<>();
        if (gateBias != null) out.add(gateBias);
        for (WeightMatrix m : matrices()) {
            out.add(m.data());
            if (m.blockScales() != null) out.add(m.blockScales());
        }
        return out;
    }

    /** Bytes of every weight tensor (what the layer keeps in memory). */
    public long byteSize() {
        long b = 0;
        for (Tensor t : all()) b += t.byteSize();
        return b;
    }

    /** The distinct arenas that own the weights; a forward pass checks each is still open. */
    public List<MemoryArena> owners() {
        Map<MemoryArena, Boolean> seen = new IdentityHashMap<>();
        for (Tensor t : all()) seen.put(t.arena(), Boolean.TRUE);
        return List.copyOf(seen.keySet());
    }

    private void validate() {
        MoeConfig c = config;
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize();
        int w = c.expertWidth(), ms = c.sharedIntermediateSize();
        boolean swiglu = c.activation() == Activation.SWIGLU;
        checkMatrix("gate.weight", gate, n, d);
        if (gate.format() != WeightFormat.BF16 && gate.format() != WeightFormat.F32) {
            throw new IllegalArgumentException("gate.weight must be BF16 or F32, got " + gate.format());
        }
        if (gateBias != null) {
            if (gateBias.dtype() != DType.F32 || gateBias.rank() != 1 || gateBias.dim(0) != n) {
                throw new IllegalArgumentException("gate.e_score_correction_bias must be F32 [" + n + "], got " + gateBias);
            }
        }
        if (c.isLatent()) {
            checkMatrix("fc1_latent_proj.weight", latentDown, l, d);
            checkMatrix("fc2_latent_proj.weight", latentUp, d, l);
        } else if (latentDown != null || latentUp != null) {
            throw new IllegalArgumentException("latent projections given for a standard MoE (moe_latent_size unset)");
        }
        checkExperts("up_proj", expertUp, n, m, w);
        checkExperts("down_proj", expertDown, n, w, m);
        if (swiglu) {
            checkExperts("gate_proj", expertGate, n, m, w);
        } else if (expertGate != null) {
            throw new IllegalArgumentException("expert gate_proj weights given but the activation is " + c.activation());
        }
        if (ms > 0) {
            checkMatrix("shared_experts.up_proj.weight", sharedUp, ms, d);
            checkMatrix("shared_experts.down_proj.weight", sharedDown, d, ms);
            if (swiglu) checkMatrix("shared_experts.gate_proj.weight", sharedGate, ms, d);
        } else if (sharedUp != null || sharedDown != null) {
            throw new IllegalArgumentException("shared expert weights given but moe_shared_expert_intermediate_size is 0");
        }
        for (Tensor t : all()) {
            if (!t.device().isHost()) throw new IllegalArgumentException("weight " + t + " is not in host memory");
        }
    }

    private static void checkExperts(String name, WeightMatrix[] ms, int n, long rows, long cols) {
        if (ms == null || ms.length != n) {
            throw new IllegalArgumentException("experts.*." + name + ".weight: expected " + n + " tensors, got "
                    + (ms == null ? "none" : ms.length));
        }
        for (int e = 0; e < n; e++) checkMatrix("experts." + e + "." + name + ".weight", ms[e], rows, cols);
    }

    private static void checkMatrix(String name, WeightMatrix m, long rows, long cols) {
        if (m == null) throw new IllegalArgumentException("missing weight " + name);
        m.check(name, rows, cols);
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
