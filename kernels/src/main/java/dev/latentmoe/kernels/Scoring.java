package dev.latentmoe.kernels;

/** Router scoring function; {@link #code()} equals the C ABI's {@code lmoe_scoring}. */
public enum Scoring {
    SIGMOID(0),
    SOFTMAX(1);

    private final int code;

    Scoring(int code) { this.code = code; }

    public int code() { return code; }

    /** The scoring of a C ABI {@code lmoe_scoring} code. */
    public static Scoring fromCode(int code) {
        for (Scoring s : values()) if (s.code == code) return s;
        throw new IllegalArgumentException("unknown scoring code " + code);
    }

    public static Scoring fromConfigName(String name) {
        return switch (name) {
            case "sigmoid" -> SIGMOID;
            case "softmax" -> SOFTMAX;
            default -> throw new IllegalArgumentException("unsupported scoring_func '" + name + "' (sigmoid, softmax)");
        };
    }
}
