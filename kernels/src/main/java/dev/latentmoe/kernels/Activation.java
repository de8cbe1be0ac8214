package dev.latentmoe.kernels;

/** Expert activation; {@link #code()} equals the C ABI's {@code lmoe_activation}. */
public enum Activation {
    /** Non-gated relu²: h = relu(z·upᵀ)² (Nemotron-H). */
    RELU2(0),
    /** Gated SwiGLU: h = silu(z·gateᵀ)·(z·upᵀ) (checkpoints with gate_proj tensors). */
    SWIGLU(1),
    /** Non-gated SiLU: h = silu(z·upᵀ) (transformers nemotron_h {@code mlp_hidden_act: silu}). */
    SILU(2);

    private final int code;

    Activation(int code) { this.code = code; }

    public int code() { return code; }

    /** The activation of a C ABI {@code lmoe_activation} code. */
    public static Activation fromCode(int code) {
        for (Activation a : values()) if (a.code == code) return a;
        throw new IllegalArgumentException("unknown activation code " + code);
    }

    /**
     * Maps an {@code mlp_hidden_act} name as transformers' {@code nemotron_h} reads it: relu2,
     * silu (non-gated), swiglu. (The checkpoint loader maps "silu" to {@link #SWIGLU} only for
     * checkpoints that hold gate_proj tensors.)
     */
    public static Activation fromConfigName(String name) {
        return switch (name) {
            case "relu2" -> RELU2;
            case "silu" -> SILU;
            case "swiglu" -> SWIGLU;
            default -> throw new IllegalArgumentException("unsupported mlp_hidden_act '" + name + "' (relu2, silu, swiglu)");
        };
    }
}
