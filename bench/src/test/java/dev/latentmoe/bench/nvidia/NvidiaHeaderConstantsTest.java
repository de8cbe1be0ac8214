package dev.latentmoe.bench.nvidia;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.latentmoe.bindings.abi.CudaHeaders;
import dev.latentmoe.bindings.abi.HeaderAbi;
import dev.latentmoe.bindings.abi.HeaderDumper;
import dev.latentmoe.bindings.abi.JavaAbi;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The enum values and macros that {@link cuda_runtime_h} and {@link cublasLt_h} bind from headers
 * other than the one the functions come from (driver_types.h, library_types.h, cublas_api.h),
 * checked against those headers with clang (dump_header.py). The functions, structs and the
 * constants of cuda_runtime_api.h / cublasLt.h themselves are checked by NvidiaHeaderDriftTest.
 * The CUDA headers come from the pinned wheels in .tools/cuda (installed on demand by
 * native/cmake/install-cuda-toolchain.sh).
 */
class NvidiaHeaderConstantsTest {

  record Spec(String header, List<String> clangArgs, Class<?> javaClass, Predicate<String> filter) {
    @Override
    public String toString() {
      return header + " <-> " + javaClass.getSimpleName() + " constants";
    }
  }

  static Stream<Spec> specs() {
    return Stream.of(
        new Spec("driver_types.h", List.of(), cuda_runtime_h.class,
            n -> n.startsWith("cuda") && !n.equals("CUDART_VERSION")),
        new Spec("library_types.h", List.of(), cublasLt_h.class, n -> n.startsWith("CUDA_R_")),
        new Spec("cublas_api.h", List.of("-DCUBLASAPI="), cublasLt_h.class,
            n -> n.startsWith("CUBLAS_") && !n.startsWith("CUBLASLT_")));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("specs")
  void constantsMatchHeader(Spec spec) throws Exception {
    Path repo = HeaderDumper.repoRoot();
    Path include = CudaHeaders.includeDir(repo);
    List<String> cmd = new ArrayList<>(List.of(HeaderDumper.python(repo).toString(),
        HeaderDumper.pythonDir(repo).resolve("dump_header.py").toString(),
        include.resolve(spec.header()).toString(), "-I" + include));
    cmd.addAll(spec.clangArgs());
    HeaderDumper.Result r = HeaderDumper.run(cmd, repo, Duration.ofMinutes(2));
    if (r.rc() != 0) {
      fail("dump_header.py failed on " + spec.header() + " (exit " + r.rc() + ")\n" + r.stderr());
    }
    HeaderAbi c = HeaderAbi.fromJson(r.stdout());
    Map<String, Long> cConstants = new HashMap<>();
    c.constants().forEach(k -> cConstants.put(k.name(), k.value()));
    Map<String, Long> java = JavaAbi.of(spec.javaClass()).constants();
    List<String> diffs = new ArrayList<>();
    int checked = 0;
    for (var e : java.entrySet()) {
      if (!spec.filter().test(e.getKey())) {
        continue;
      }
      checked++;
      Long v = cConstants.get(e.getKey());
      if (v == null) {
        diffs.add(e.getKey() + " = " + e.getValue() + ": no enum value or integer macro of that name in "
            + spec.header());
      } else if (v.longValue() != e.getValue()) {
        diffs.add(e.getKey() + ": C " + v + ", Java " + e.getValue());
      }
    }
    assertTrue(checked > 0, "the filter selected no Java constant of " + spec.javaClass().getSimpleName());
    if (!diffs.isEmpty()) {
      fail(diffs.size() + " difference(s) with " + spec.header() + ":\n  - " + String.join("\n  - ", diffs));
    }
    // Liveness: the header really defines constants and a wrong value would be seen.
    assertFalse(cConstants.isEmpty(), "clang found no constants in " + spec.header());
  }

  /**
   * {@code cublasLtMatmulHeuristicResult_t}: size, alignment, and every field's name, offset and
   * size (its struct-typed member {@code algo} against {@link cublasLtMatmulAlgo_t}).
   */
  @org.junit.jupiter.api.Test
  void heuristicResultLayoutMatchesHeader() {
    Path repo = HeaderDumper.repoRoot();
    Path include = CudaHeaders.includeDir(repo);
    HeaderAbi c = HeaderDumper.dump(repo, include.resolve("cublasLt.h"), List.of(include.toString()));
    HeaderAbi.Struct s = c.structs().stream()
        .filter(x -> x.name().equals("cublasLtMatmulHeuristicResult_t")).findFirst().orElseThrow();
    java.lang.foreign.GroupLayout j = cublasLtMatmulHeuristicResult_t.layout();
    List<String> diffs = new ArrayList<>();
    if (s.size() != j.byteSize()) {
      diffs.add("size C " + s.size() + ", Java " + j.byteSize());
    }
    if (s.align() != j.byteAlignment()) {
      diffs.add("alignment C " + s.align() + ", Java " + j.byteAlignment());
    }
    for (HeaderAbi.Field f : s.fields()) {
      var path = java.lang.foreign.MemoryLayout.PathElement.groupElement(f.name());
      try {
        long off = j.byteOffset(path);
        long size = j.select(path).byteSize();
        if (off != f.offset() || size != f.size()) {
          diffs.add(f.name() + ": C offset " + f.offset() + " size " + f.size() + ", Java " + off
              + " / " + size);
        }
      } catch (IllegalArgumentException e) {
        diffs.add(f.name() + ": missing in Java");
      }
    }
    assertTrue(s.fields().get(0).type().equals("struct cublasLtMatmulAlgo_t"), s.fields().get(0).type());
    assertTrue(j.select(java.lang.foreign.MemoryLayout.PathElement.groupElement("algo"))
        .withoutName().equals(cublasLtMatmulAlgo_t.layout().withoutName()), "algo is a cublasLtMatmulAlgo_t");
    assertTrue(j.memberLayouts().size() == s.fields().size(), "field count C " + s.fields().size()
        + ", Java " + j.memberLayouts().size());
    if (!diffs.isEmpty()) {
      fail("cublasLtMatmulHeuristicResult_t differs:\n  - " + String.join("\n  - ", diffs));
    }
  }
}
