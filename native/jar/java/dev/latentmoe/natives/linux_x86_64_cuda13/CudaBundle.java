package dev.latentmoe.natives.linux_x86_64_cuda13;

import dev.latentmoe.bindings.runtime.NativeLibraryBundle;

/**
 * The {@code linux-x86_64-cuda13} jar: {@code liblatentmoe.so} and {@code liblatentmoe_cuda.so}
 * (sm_90a, CUDA 13 runtime linked in statically; needs an NVIDIA driver of the CUDA 13 series).
 */
public final class CudaBundle implements NativeLibraryBundle {
  /** For {@link java.util.ServiceLoader}. */
  public CudaBundle() {}

  @Override
  public String classifier() {
    return "linux-x86_64-cuda13";
  }
}
