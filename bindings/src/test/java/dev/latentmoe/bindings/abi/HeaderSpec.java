package dev.latentmoe.bindings.abi;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * One header against its jextract-shaped class, checked with clang: every function prototype
 * (name, return type, parameter types in order, parameter names where the header names them, the
 * signedness of integers), struct layout (field names, order, offsets, sizes, alignment, integer
 * signedness) and enum value / integer macro that {@code filter} selects. The Java classes must be
 * compiled with {@code -parameters} and mark unsigned integers {@code @Unsigned}.
 *
 * @param header path relative to the repo root (or absolute)
 * @param includeDirs -I directories, relative to the repo root (or absolute)
 * @param javaClass the jextract-shaped class (DESCRIPTORS, NAME$MH, constants); its struct
 *     classes are {@code <its package>.<struct name>}
 * @param filter which C names (functions, structs, constants) both sides must agree on
 */
public record HeaderSpec(String header, List<String> includeDirs, Class<?> javaClass, Predicate<String> filter) {

  @Override
  public String toString() {
    return header + " <-> " + javaClass.getSimpleName();
  }

  /**
   * Fails with every difference; then checks that each drift of {@link AbiMutations} (an extra Java
   * parameter, two same-type parameters swapped, a parameter's and a field's signedness changed, a
   * struct field removed) applied to this very dump would have been caught.
   */
  public void assertMatches() throws ReflectiveOperationException {
    Path repo = HeaderDumper.repoRoot();
    HeaderAbi c = HeaderDumper.dump(repo, repo.resolve(header), includeDirs);
    assertFalse(c.functions().isEmpty(), "clang found no functions in " + header);
    List<String> diffs = AbiComparator.compare(c, JavaAbi.of(javaClass), filter);
    if (!diffs.isEmpty()) {
      String report = diffs.size() + " difference(s) between " + header + " and "
          + javaClass.getName() + ":\n  - " + String.join("\n  - ", diffs);
      System.err.println(report);
      fail(report);
    }
    // Liveness: the same dump, drifted each way a header drifts, must be flagged, or a green run
    // proves nothing.
    List<AbiMutations.Mutation> mutations = AbiMutations.all(c, JavaAbi.of(javaClass), filter);
    assertFalse(mutations.isEmpty(), "no mutation applies to " + header);
    List<String> missed = new ArrayList<>();
    for (AbiMutations.Mutation m : mutations) {
      if (AbiComparator.compare(m.c(), m.java(), filter).isEmpty()) {
        missed.add(m.description());
      }
    }
    System.out.println("drift self-check " + header + ": " + (mutations.size() - missed.size()) + " of "
        + mutations.size() + " mutations caught: " + mutations.stream().map(AbiMutations.Mutation::description).toList());
    assertTrue(missed.isEmpty(), "the comparator missed, in " + header + ": " + missed);
  }

  /** Whether {@code c} has a public static int/long constant {@code name}. */
  public static boolean declaresConstant(Class<?> c, String name) {
    try {
      Class<?> t = c.getField(name).getType();
      return t == int.class || t == long.class;
    } catch (NoSuchFieldException e) {
      return false;
    }
  }
}
