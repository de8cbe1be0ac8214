package dev.latentmoe.bindings.runtime;

import java.util.Locale;

/**
 * Every setting the Java side reads from its environment: the {@code -Dlatentmoe.*} system
 * properties and the environment variables. No other class calls {@code System.getenv} or reads a
 * {@code latentmoe.*} property, so this list is complete; {@code latentmoe help} prints it. (The
 * launcher's {@code LATENTMOE_*} and the CUDA library's {@code LMOE_CUDA_*} variables are read by
 * the shell and by native code.) A new knob is a new constant here.
 */
public enum Knob {
  // ---- the library ----
  NATIVE_DIR(false, "latentmoe.native.dir", null,
      "directory holding liblatentmoe*.so (default: the copies packaged in the jar)"),
  CUDA_LIB_DIR(false, "latentmoe.cuda.lib.dir", null,
      "extra directories (path-separated) searched first for libcudart/libcublasLt (bench)"),
  CUDA_HOME(true, "CUDA_HOME", null, "CUDA toolkit: its lib64/ and lib/ are searched for CUDA libraries"),
  CUDA_PATH(true, "CUDA_PATH", null, "as CUDA_HOME"),
  CUDA_ROOT(true, "CUDA_ROOT", null, "as CUDA_HOME"),
  LD_LIBRARY_PATH(true, "LD_LIBRARY_PATH", null, "searched for CUDA libraries after the toolkit"),
  REPO_DIR(false, "latentmoe.repo.dir", null,
      "the repository root (default: found above the working directory); for .tools/ and the tests"),
  // ---- the command line ----
  WEIGHTS_CACHE(false, "latentmoe.weights.cache", ".tools/bench-weights",
      "where the benchmarks' seeded random checkpoints are written once and mapped after"),
  TRACE(false, "latentmoe.trace", "false", "print the stack trace of a failing command"),
  // ---- the tests ----
  TEST_BACKEND(false, "latentmoe.test.backend", "cpu", "backend the correctness tests run on: cpu or cuda"),
  TEST_REQUIRE(false, "latentmoe.test.require", "false",
      "fail instead of skipping when the test backend is unavailable (the GPU bundle)"),
  SEED(false, "latentmoe.seed", null, "fixed seed for the randomised tests (default: a fresh one, printed)"),
  SOAK_CALLS(false, "latentmoe.soak.calls", "100000", "forward calls of SoakTest"),
  SOAK_MAX_SECONDS(false, "latentmoe.soak.maxSeconds", "15", "time limit of SoakTest (0: none)"),
  SOAK_RSS_SLACK_MIB(false, "latentmoe.soak.rssSlackMiB", "24", "VmRSS growth SoakTest tolerates"),
  CLOSE_STRESS_ROUNDS(false, "latentmoe.closeStress.rounds", "2000",
      "rounds of CloseDuringCallTest (threads calling a layer while another closes it)");

  private final boolean environment;
  private final String key;
  private final String fallback;
  private final String description;

  Knob(boolean environment, String key, String fallback, String description) {
    this.environment = environment;
    this.key = key;
    this.fallback = fallback;
    this.description = description;
  }

  /** True for an environment variable, false for a system property. */
  public boolean isEnvironment() {
    return environment;
  }

  /** The property or variable name. */
  public String key() {
    return key;
  }

  /** The value in effect when it is not set (null: none). */
  public String fallback() {
    return fallback;
  }

  public String description() {
    return description;
  }

  /** The value as set, or {@link #fallback()} when it is not (may be null). */
  public String get() {
    String v = environment ? System.getenv(key) : System.getProperty(key);
    return v != null ? v : fallback;
  }

  /** True when set, non-blank. */
  public boolean isSet() {
    String v = environment ? System.getenv(key) : System.getProperty(key);
    return v != null && !v.isBlank();
  }

  /** The value as a boolean ({@link Boolean#parseBoolean}: only "true", any case, is true). */
  public boolean flag() {
    return Boolean.parseBoolean(get());
  }

  /** The value as a long; the fallback when it is not set or not a number (as {@link Long#getLong}). */
  public long longValue() {
    String v = get();
    try {
      return Long.decode(v.strip());
    } catch (NumberFormatException | NullPointerException e) {
      return Long.decode(fallback);
    }
  }

  /** One line for {@code help}: the knob, its default and what it does. */
  public String usage() {
    String name = environment ? key : "-D" + key;
    String def = fallback == null ? "" : " (default " + fallback + ")";
    return String.format(Locale.ROOT, "  %-30s %s%s", name, description, def);
  }
}
