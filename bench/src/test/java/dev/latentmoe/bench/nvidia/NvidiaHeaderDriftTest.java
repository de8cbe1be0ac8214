package dev.latentmoe.bench.nvidia;

import dev.latentmoe.bindings.abi.CudaHeaders;
import dev.latentmoe.bindings.abi.HeaderDumper;
import dev.latentmoe.bindings.abi.HeaderSpec;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bench's bindings of NVIDIA headers against those headers (from the pinned CUDA wheels,
 * installed on demand), with the bindings module's clang checker ({@link HeaderSpec}); only what
 * the Java classes bind is compared.
 */
class NvidiaHeaderDriftTest {

  static Stream<HeaderSpec> headers() {
    String cudaInc = CudaHeaders.INCLUDE;
    CudaHeaders.includeDir(HeaderDumper.repoRoot());
    return Stream.of(
        // Only what cuda_runtime_h binds; its enum constants live in driver_types.h
        // (NvidiaHeaderConstantsTest checks those).
        new HeaderSpec(cudaInc + "/cuda_runtime_api.h", List.of(cudaInc), cuda_runtime_h.class,
            name -> cuda_runtime_h.DESCRIPTORS.containsKey(name) || name.equals("CUDART_VERSION")),
        // Only what cublasLt_h binds.
        new HeaderSpec(cudaInc + "/cublasLt.h", List.of(cudaInc), cublasLt_h.class,
            name -> cublasLt_h.DESCRIPTORS.containsKey(name)
                || (name.startsWith("CUBLASLT_") && HeaderSpec.declaresConstant(cublasLt_h.class, name))
                || name.equals("cublasLtMatmulAlgo_t")));
    // cublasLtMatmulHeuristicResult_t is checked by NvidiaHeaderConstantsTest: its struct-typed
    // member "algo" is named "algo" in Java (jextract's shape), which AbiComparator reads as the
    // struct type's name.
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("headers")
  void javaBindingsMatchHeader(HeaderSpec spec) throws Exception {
    spec.assertMatches();
  }
}
