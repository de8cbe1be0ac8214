package dev.latentmoe.bindings.abi;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** Where the pinned CUDA wheels' headers are ({@code .tools/cuda}), installing them when missing. */
public final class CudaHeaders {
  private CudaHeaders() {}

  /** The include folder, relative to the repository root. */
  public static final String INCLUDE = ".tools/cuda/nvidia/cu13/include";

  /** The include folder under {@code repo}; runs native/cmake/install-cuda-toolchain.sh first when it lacks the headers. */
  public static synchronized Path includeDir(Path repo) {
    Path inc = repo.resolve(INCLUDE);
    if (!Files.isRegularFile(inc.resolve("cuda_runtime_api.h"))
        || !Files.isRegularFile(inc.resolve("cublasLt.h"))) {
      HeaderDumper.Result r = HeaderDumper.run(
          List.of("bash", repo.resolve("native/cmake/install-cuda-toolchain.sh").toString()),
          repo, Duration.ofMinutes(20));
      if (r.rc() != 0 || !Files.isRegularFile(inc.resolve("cuda_runtime_api.h"))) {
        throw new AssertionError("the CUDA headers are missing at " + inc
            + " and native/cmake/install-cuda-toolchain.sh could not install them (exit " + r.rc()
            + "; needs PyPI access)\n" + r.stderr());
      }
    }
    return inc;
  }
}
