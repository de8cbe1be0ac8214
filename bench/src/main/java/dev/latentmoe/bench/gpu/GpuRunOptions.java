package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.Args;

/**
 * The options every GPU timing command shares: weights and inputs seed, calls per batch, warm-up,
 * input sets, and the ceilings (on or off, copy size, GEMM size).
 */
record GpuRunOptions(long seed, int reps, int warmup, int inputs, boolean ceilings, long copyBytes, int gemmSize) {

    /** Reads the options (validate after {@link Args#finish()}, so an unknown option is reported first). */
    static GpuRunOptions read(Args a) {
        return new GpuRunOptions(a.longValue("seed", 42), a.intValue("reps", 20), a.intValue("warmup", 3),
                a.intValue("inputs", 4), !a.flag("no-ceilings"), a.longValue("copy-mib", 1024) << 20,
                a.intValue("gemm-size", 8192));
    }

    GpuRunOptions validate() {
        if (reps < 1) throw new Args.UsageException("--reps must be >= 1, got " + reps);
        if (warmup < 0) throw new Args.UsageException("--warmup must be >= 0, got " + warmup);
        if (inputs < 1) throw new Args.UsageException("--inputs must be >= 1, got " + inputs);
        if (copyBytes < (1L << 20)) throw new Args.UsageException("--copy-mib must be >= 1, got " + (copyBytes >> 20));
        if (gemmSize < 16 || gemmSize % 16 != 0) throw new Args.UsageException("--gemm-size must be a multiple of 16, got " + gemmSize);
        return this;
    }
}
