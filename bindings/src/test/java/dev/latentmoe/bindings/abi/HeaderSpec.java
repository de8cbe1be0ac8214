package dev.latentmoe.bindings.abi;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.FunctionDescriptor;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * One header against its jextract-shaped class, checked with clang: every function prototype
 * (name, return type, parameter types in order), struct layout (field names, order, offsets,
 * sizes, alignment) and enum value / integer macro that {@code filter} selects.
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

  /** Fails with every difference; then checks that a mutated descriptor would have been caught. */
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
    // Liveness: the same dump must flag a mutated descriptor, or a green run proves nothing.
    JavaAbi real = JavaAbi.of(javaClass);
    Map<String, FunctionDescriptor> mutated = new LinkedHashMap<>(real.functions());
    String victim = mutated.keySet().iterator().next();
    mutated.put(victim, mutated.get(victim).appendArgumentLayouts(JAVA_DOUBLE));
    List<String> caught = AbiComparator.compare(c,
        new JavaAbi(mutated, real.constants(), real.structLayout(), List.of()), filter);
    assertFalse(caught.isEmpty(), "comparator missed an extra JAVA_DOUBLE parameter on " + victim);
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
