package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.List;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fails when a hand-written binding class no longer matches its C header: every function
 * prototype (name, return type, parameter types in order), struct layout (field names, order,
 * offsets, sizes, alignment) and enum value / integer macro, as parsed by clang (libclang 18.1.1
 * from PyPI, run by bindings/src/test/python/dump_header.py).
 *
 * <p>To cover another header, add a {@link Spec}: e.g. latentmoe_cuda.h with its Java class, or
 * cuda_runtime_api.h / cublasLt.h with the CUDA include dir and a filter naming only the
 * functions, structs and constants the Java class binds.
 */
class LatentmoeHeaderDriftTest {

  /**
   * One header to check.
   *
   * @param header path relative to the repo root (or absolute)
   * @param includeDirs -I directories, relative to the repo root (or absolute)
   * @param javaClass the jextract-shaped class (DESCRIPTORS, NAME$MH, constants); its struct
   *     classes are {@code <its package>.<struct name>}
   * @param filter which C names (functions, structs, constants) both sides must agree on
   */
  record Spec(String header, List<String> includeDirs, Class<?> javaClass, Predicate<String> filter) {
    @Override
    public String toString() {
      return header + " <-> " + javaClass.getSimpleName();
    }
  }

  static Stream<Spec> headers() {
    // The CUDA headers come from the pinned wheels (installed on demand when missing).
    String cudaInc = CudaHeaderConstantsTest.CudaHeaders.INCLUDE;
    CudaHeaderConstantsTest.CudaHeaders.includeDir(HeaderDumper.repoRoot());
    return Stream.of(
        new Spec("native/include/latentmoe.h", List.of("native/include"), latentmoe_h.class,
            name -> true),
        new Spec("native/include/latentmoe_cuda.h", List.of("native/include"),
            latentmoe_cuda_h.class, name -> true),
        // The engine ABI: its lmoe_* functions and LMOE_* macros, plus the DLPack / Arrow enum
        // values and integer macros it declares; the DLPack / Arrow structs are passed as
        // addresses from Java and not mirrored.
        new Spec("native/include/latentmoe_engine.h", List.of("native/include"),
            latentmoe_engine_h.class,
            name -> name.startsWith("lmoe_") || name.startsWith("LMOE_") || name.startsWith("kDL")
                || name.startsWith("DLPACK_") || name.startsWith("ARROW_FLAG_")),
        // Only what cuda_runtime_h binds; its enum constants live in driver_types.h
        // (CudaHeaderConstantsTest checks those).
        new Spec(cudaInc + "/cuda_runtime_api.h", List.of(cudaInc), cuda_runtime_h.class,
            name -> cuda_runtime_h.DESCRIPTORS.containsKey(name) || name.equals("CUDART_VERSION")),
        // Only what cublasLt_h binds.
        new Spec(cudaInc + "/cublasLt.h", List.of(cudaInc), cublasLt_h.class,
            name -> cublasLt_h.DESCRIPTORS.containsKey(name)
                || (name.startsWith("CUBLASLT_") && declaresConstant(cublasLt_h.class, name))
                || name.equals("cublasLtMatmulAlgo_t")));
    // cublasLtMatmulHeuristicResult_t is checked by CudaHeaderConstantsTest: its struct-typed
    // member "algo" is named "algo" in Java (jextract's shape), which AbiComparator reads as the
    // struct type's name.
  }

  /** Whether {@code c} has a public static int/long constant {@code name}. */
  private static boolean declaresConstant(Class<?> c, String name) {
    try {
      Class<?> t = c.getField(name).getType();
      return t == int.class || t == long.class;
    } catch (NoSuchFieldException e) {
      return false;
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("headers")
  void javaBindingsMatchHeader(Spec spec) throws Exception {
    Path repo = HeaderDumper.repoRoot();
    HeaderAbi c = HeaderDumper.dump(repo, repo.resolve(spec.header()), spec.includeDirs());
    assertFalse(c.functions().isEmpty(), "clang found no functions in " + spec.header());
    List<String> diffs = AbiComparator.compare(c, JavaAbi.of(spec.javaClass()), spec.filter());
    if (!diffs.isEmpty()) {
      String report = diffs.size() + " difference(s) between " + spec.header() + " and "
          + spec.javaClass().getName() + ":\n  - " + String.join("\n  - ", diffs);
      System.err.println(report);
      fail(report);
    }
    // Liveness: the same dump must flag a mutated descriptor, or a green run proves nothing.
    JavaAbi real = JavaAbi.of(spec.javaClass());
    var mutated = new java.util.LinkedHashMap<>(real.functions());
    String victim = mutated.keySet().iterator().next();
    mutated.put(victim, mutated.get(victim).appendArgumentLayouts(JAVA_DOUBLE));
    List<String> caught = AbiComparator.compare(c,
        new JavaAbi(mutated, real.constants(), real.structLayout(), List.of()), spec.filter());
    assertFalse(caught.isEmpty(), "comparator missed an extra JAVA_DOUBLE parameter on " + victim);
  }
}
