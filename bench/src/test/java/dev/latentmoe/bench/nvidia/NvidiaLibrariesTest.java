package dev.latentmoe.bench.nvidia;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.bindings.runtime.LatentMoeNativeException;
import dev.latentmoe.bindings.runtime.NativeErrors;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NVIDIA's libraries load (or say where they were looked for) without a GPU: libcudart.so.13 and
 * libcublasLt.so.13 through SystemLibraries. Where the runtime is found (the repo's .tools/cuda
 * wheels on a build machine), calls that need no GPU work.
 */
class NvidiaLibrariesTest {

  @Test
  void cudaRuntimeLoadsOrListsWhereItLooked() {
    System.out.println("libcudart: " + (cuda_runtime_h.isAvailable() ? cuda_runtime_h.libraryPath()
        : cuda_runtime_h.unavailableReason().orElseThrow()));
    Assumptions.assumeTrue(cuda_runtime_h.isAvailable(), "libcudart.so.13 not found here");
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ValueLayout.JAVA_INT);
      cuda_runtime_h.check(cuda_runtime_h.cudaRuntimeGetVersion(v), "cudaRuntimeGetVersion");
      int version = v.get(ValueLayout.JAVA_INT, 0);
      assertTrue(version >= 13000 && version < 14000, "runtime version " + version);
      MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
      int st = cuda_runtime_h.cudaGetDeviceCount(n);
      System.out.println("cudaGetDeviceCount: " + st + " (" + cuda_runtime_h.errorString(st)
          + "), count " + n.get(ValueLayout.JAVA_INT, 0));
      if (st != cuda_runtime_h.cudaSuccess) {
        assertFalse(cuda_runtime_h.errorString(st).isEmpty());
        LatentMoeNativeException e = assertThrows(LatentMoeNativeException.class,
            () -> cuda_runtime_h.check(st, "cudaGetDeviceCount"));
        assertEquals(st, e.status());
      }
    }
  }

  @Test
  void cublasLtLoadsOrListsWhereItLooked() {
    System.out.println("libcublasLt: " + (cublasLt_h.isAvailable() ? cublasLt_h.libraryPath()
        : cublasLt_h.unavailableReason().orElseThrow()));
    Assumptions.assumeTrue(cublasLt_h.isAvailable(), "libcublasLt.so.13 not found here");
    long v = cublasLt_h.cublasLtGetVersion();
    assertTrue(v >= 130000 && v < 140000, "cublasLt version " + v);
    assertEquals("CUBLAS_STATUS_SUCCESS", NativeErrors.cString(cublasLt_h.cublasLtGetStatusName(0)));
    assertEquals(96, cublasLtMatmulHeuristicResult_t.sizeof());
  }

  @Test
  void missingLibraryReportsEveryPlaceSearched(@TempDir Path dir) throws Exception {
    Path a = dir.resolve("a");
    Path b = dir.resolve("b");
    Files.createDirectories(a);
    SystemLibraries.Found f = SystemLibraries.loadFirst("libnope.so.7", List.of(a, b));
    assertFalse(f.isLoaded());
    assertNotNull(f.reason());
    assertTrue(f.reason().contains(a.toString()) && f.reason().contains(b.toString()), f.reason());
    assertTrue(f.reason().contains("libnope.so.7") && f.reason().contains("dynamic loader"), f.reason());
    assertEquals(2, f.searched().size());
  }

  @Test
  void cudaSearchPathCoversToolkitLibraryPathAndWheels() {
    List<Path> dirs = SystemLibraries.cudaLibraryDirs(List.of("nvidia/cu13/lib"));
    assertTrue(dirs.contains(Path.of("/usr/local/cuda/lib64")), dirs.toString());
    SystemLibraries.repoRoot().ifPresent(r ->
        assertTrue(dirs.contains(r.resolve(".tools/cuda/nvidia/cu13/lib")), dirs.toString()));
    for (Path sp : SystemLibraries.pythonSitePackages()) {
      assertTrue(dirs.contains(sp.resolve("nvidia/cu13/lib")), dirs.toString());
    }
  }
}
