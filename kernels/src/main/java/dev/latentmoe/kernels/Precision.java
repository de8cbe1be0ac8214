package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;

import java.util.Locale;

/**
 * How a layer multiplies activations by weights (the C ABI's {@code lmoe_precision}), chosen when
 * the layer is created ({@link MoeLayer#of(MoeWeights, Backend, Precision)}). The router is f32 in
 * both, as in HF's fp32 router.
 *
 * <ul>
 *   <li>{@link #EXACT}: f32 activations against the stored weight values with f32 accumulation
 *       (relative error ~1e-7). The CPU's default: a layer computes what its checkpoint defines,
 *       and on AMX CPUs the exact kernel (each activation as three bf16 terms, exact products)
 *       still runs the prefill on the tile unit.</li>
 *   <li>{@link #BF16}: every GEMM's activations rounded to bf16 once, bf16 products, f32
 *       accumulation (relative error ~3e-3, what HF's bf16 model and the GPU path compute). About
 *       3x the exact mode's prefill rate on AMX; the CUDA backend's only precision.</li>
 * </ul>
 *
 * Both are deterministic: a token's output does not depend on T, on the other tokens of the
 * batch, on the chunking of the forward or on the thread count.
 */
public enum Precision {
    EXACT(latentmoe_h.LMOE_PRECISION_EXACT),
    BF16(latentmoe_h.LMOE_PRECISION_BF16);

    private final int code;

    Precision(int code) { this.code = code; }

    /** The C ABI's {@code lmoe_precision} value. */
    public int code() { return code; }

    /** "exact" or "bf16" (any case). */
    public static Precision fromName(String name) {
        return switch (name == null ? "" : name.toLowerCase(Locale.ROOT)) {
            case "exact" -> EXACT;
            case "bf16" -> BF16;
            default -> throw new IllegalArgumentException("precision must be exact or bf16, got " + name);
        };
    }

    @Override public String toString() { return name().toLowerCase(Locale.ROOT); }
}
