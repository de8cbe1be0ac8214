package dev.latentmoe.bindings;

import dev.latentmoe.bindings.abi.HeaderSpec;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fails when a hand-written binding class of one of our headers no longer matches the header, as
 * parsed by clang (libclang 18.1.1 from PyPI, run by bindings/src/test/python/dump_header.py); see
 * {@link HeaderSpec}. The NVIDIA headers the bench binds are checked in the bench's tests.
 */
class LatentmoeHeaderDriftTest {

  static Stream<HeaderSpec> headers() {
    return Stream.of(
        new HeaderSpec("native/include/latentmoe.h", List.of("native/include"), latentmoe_h.class,
            name -> true),
        new HeaderSpec("native/include/latentmoe_cuda.h", List.of("native/include"),
            latentmoe_cuda_h.class, name -> true),
        // The engine ABI: its lmoe_* functions and LMOE_* macros, plus the DLPack / Arrow enum
        // values and integer macros it declares; the DLPack / Arrow structs are passed as
        // addresses from Java and not mirrored.
        new HeaderSpec("native/include/latentmoe_engine.h", List.of("native/include"),
            latentmoe_engine_h.class,
            name -> name.startsWith("lmoe_") || name.startsWith("LMOE_") || name.startsWith("kDL")
                || name.startsWith("DLPACK_") || name.startsWith("ARROW_FLAG_")));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("headers")
  void javaBindingsMatchHeader(HeaderSpec spec) throws Exception {
    spec.assertMatches();
  }
}
