package dev.latentmoe.natives.linux_x86_64;

import dev.latentmoe.bindings.runtime.NativeLibraryBundle;

/** The {@code linux-x86_64} jar: {@code liblatentmoe.so} (CPU kernels and the engine ABI). */
public final class CpuBundle implements NativeLibraryBundle {
  /** For {@link java.util.ServiceLoader}. */
  public CpuBundle() {}

  @Override
  public String classifier() {
    return "linux-x86_64";
  }
}
