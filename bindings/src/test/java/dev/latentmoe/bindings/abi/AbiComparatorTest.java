package dev.latentmoe.bindings.abi;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.lmoe_config;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * The drift comparator on a hand-written header dump (no python needed): it must accept a
 * matching binding and report each kind of mutation, so the drift test can actually fail.
 */
class AbiComparatorTest {

  // What dump_header.py prints for:
  //   #define T_VERSION 3
  //   typedef enum { T_A = 0, T_B = 7 } t_enum;
  //   typedef struct t_s { int32_t n; float f; const void* p; } t_s;
  //   int32_t t_f(const t_s* s, int64_t n, uint64_t seed, float x);
  //   void t_g(void);
  private static final String DUMP = """
      {"header": "t.h",
       "functions": [
        {"name": "t_f", "return": "int32_t", "c_return": "int32_t", "variadic": false,
         "params": [{"name": "s", "type": "pointer", "c_type": "const t_s *"},
                    {"name": "n", "type": "int64_t", "c_type": "int64_t"},
                    {"name": "seed", "type": "uint64_t", "c_type": "uint64_t"},
                    {"name": "x", "type": "float", "c_type": "float"}]},
        {"name": "t_g", "return": "void", "c_return": "void", "variadic": false, "params": []}],
       "structs": [
        {"name": "t_s", "size": 16, "align": 8, "fields": [
          {"name": "n", "type": "int32_t", "c_type": "int32_t", "offset": 0, "size": 4},
          {"name": "f", "type": "float", "c_type": "float", "offset": 4, "size": 4},
          {"name": "p", "type": "pointer", "c_type": "const void *", "offset": 8, "size": 8}]}],
       "constants": [
        {"name": "T_VERSION", "value": 3, "kind": "macro", "enum": null},
        {"name": "T_A", "value": 0, "kind": "enum", "enum": "t_enum"},
        {"name": "T_B", "value": 7, "kind": "enum", "enum": "t_enum"}]}
      """;

  private static final HeaderAbi C = HeaderAbi.fromJson(DUMP);

  private static final GroupLayout T_S = MemoryLayout.structLayout(
      JAVA_INT.withName("n"), JAVA_FLOAT.withName("f"), ADDRESS.withName("p")).withName("t_s");

  private static Map<String, FunctionDescriptor> fns() {
    Map<String, FunctionDescriptor> m = new LinkedHashMap<>();
    m.put("t_f", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_FLOAT));
    m.put("t_g", FunctionDescriptor.ofVoid());
    return m;
  }

  private static Map<String, Long> constants() {
    Map<String, Long> m = new LinkedHashMap<>();
    m.put("T_VERSION", 3L);
    m.put("T_A", 0L);
    m.put("T_B", 7L);
    return m;
  }

  private static JavaAbi java(Map<String, FunctionDescriptor> fns, GroupLayout s,
      Map<String, Long> constants) {
    return new JavaAbi(fns, constants,
        name -> name.equals("t_s") ? Optional.ofNullable(s) : Optional.empty(), List.of());
  }

  private static List<String> diffs(JavaAbi j) {
    return AbiComparator.compare(C, j, n -> true);
  }

  private static void assertReports(List<String> diffs, String... fragments) {
    String all = String.join("\n", diffs);
    for (String f : fragments) {
      assertTrue(all.contains(f), "expected a difference mentioning \"" + f + "\", got:\n" + all);
    }
  }

  @Test
  void matchingBindingHasNoDifferences() {
    assertEquals(List.of(), diffs(java(fns(), T_S, constants())));
  }

  @Test
  void reportsMutatedParameterType() {
    var f = fns();
    // int64_t n bound as JAVA_INT: the classic silent-truncation bug.
    f.put("t_f", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_FLOAT));
    List<String> d = diffs(java(f, T_S, constants()));
    assertEquals(1, d.size(), d::toString);
    assertReports(d, "function t_f", "parameter 1 (int64_t n): needs JAVA_LONG, Java has JAVA_INT");
  }

  @Test
  void reportsReturnAndArityChanges() {
    var f = fns();
    f.put("t_f", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG, JAVA_LONG));
    f.put("t_g", FunctionDescriptor.of(JAVA_INT));
    assertReports(diffs(java(f, T_S, constants())),
        "return: C int32_t needs JAVA_INT, Java has (none)",
        "parameter count: C has 4, Java has 3",
        "return: C void needs (none), Java has JAVA_INT");
  }

  @Test
  void reportsMissingAndExtraFunctions() {
    var f = fns();
    f.remove("t_g");
    f.put("t_gone", FunctionDescriptor.ofVoid());
    assertReports(diffs(java(f, T_S, constants())),
        "function t_g: in the header but not bound in Java",
        "function t_gone: bound in Java");
  }

  @Test
  void filterLimitsWhatCounts() {
    var f = fns();
    f.remove("t_g");
    assertEquals(List.of(), AbiComparator.compare(C, java(f, T_S, constants()),
        n -> !n.equals("t_g")));
  }

  @Test
  void reportsStructDrift() {
    GroupLayout swapped = MemoryLayout.structLayout(
        JAVA_FLOAT.withName("f"), JAVA_INT.withName("n"), ADDRESS.withName("p")).withName("t_s");
    assertReports(diffs(java(fns(), swapped, constants())),
        "field n (int32_t): offset C 0, Java 4 (field 0 in C, 1 in Java)");

    GroupLayout widened = MemoryLayout.structLayout(JAVA_LONG.withName("n"),
        JAVA_FLOAT.withName("f"), MemoryLayout.paddingLayout(4), ADDRESS.withName("p"))
        .withName("t_s");
    assertReports(diffs(java(fns(), widened, constants())),
        "size: C 16, Java 24", "field n (int32_t): size C 4, Java 8", "field f (float): offset C 4, Java 8");

    GroupLayout extra = MemoryLayout.structLayout(JAVA_INT.withName("n"), JAVA_FLOAT.withName("f"),
        ADDRESS.withName("p"), ADDRESS.withName("q")).withName("t_s");
    assertReports(diffs(java(fns(), extra, constants())), "field q: in Java (offset 16) but not in C");

    assertReports(diffs(java(fns(), null, constants())), "struct t_s: in the header but there is no Java class");
  }

  @Test
  void reportsConstantDrift() {
    var k = constants();
    k.put("T_B", 8L);
    k.remove("T_VERSION");
    k.put("T_C", 9L);
    assertReports(diffs(java(fns(), T_S, k)),
        "enum t_enum constant T_B: C 7, Java 8",
        "macro T_VERSION = 3: missing in Java",
        "constant T_C = 9: in Java but no enum value");
  }

  // ---- what a layout cannot show: parameter names, signedness (from the wrapper methods) ----

  /** t_f's wrapper as jextract writes it: names as in C, seed unsigned. */
  private static Map<String, JavaAbi.Wrapper> wrappers() {
    Map<String, JavaAbi.Wrapper> m = new LinkedHashMap<>();
    m.put("t_f", new JavaAbi.Wrapper(List.of("s", "n", "seed", "x"), false, List.of(false, false, true, false)));
    m.put("t_g", new JavaAbi.Wrapper(List.of(), false, List.of()));
    return m;
  }

  private static JavaAbi javaWithWrappers(Map<String, JavaAbi.Wrapper> w, java.util.Set<String> unsignedFields) {
    return new JavaAbi(fns(), constants(), name -> name.equals("t_s") ? Optional.of(T_S) : Optional.empty(),
        List.of(), w, name -> unsignedFields);
  }

  /** C's t_f with its parameters replaced. */
  private static HeaderAbi withParams(List<HeaderAbi.Param> ps) {
    List<HeaderAbi.Function> fs = new java.util.ArrayList<>(C.functions());
    HeaderAbi.Function f = fs.get(0);
    fs.set(0, new HeaderAbi.Function(f.name(), f.returnType(), f.cReturn(), ps, f.variadic()));
    return new HeaderAbi(C.header(), fs, C.structs(), C.constants());
  }

  @Test
  void matchingWrappersHaveNoDifferences() {
    assertEquals(List.of(), AbiComparator.compare(C, javaWithWrappers(wrappers(), java.util.Set.of()), n -> true));
  }

  @Test
  void reportsSwappedParametersOfTheSameLayout() {
    // The header swaps n and seed (int64_t, uint64_t: both JAVA_LONG) and, to hide behind the
    // signedness check too, makes both int64_t: only the names can tell.
    List<HeaderAbi.Param> ps = List.of(C.functions().get(0).params().get(0),
        new HeaderAbi.Param("seed", "int64_t", "int64_t"), new HeaderAbi.Param("n", "int64_t", "int64_t"),
        C.functions().get(0).params().get(3));
    var w = wrappers();
    w.put("t_f", new JavaAbi.Wrapper(List.of("s", "n", "seed", "x"), false, List.of(false, false, false, false)));
    List<String> d = AbiComparator.compare(withParams(ps), javaWithWrappers(w, java.util.Set.of()), n -> true);
    assertEquals(1, d.size(), d::toString);
    assertReports(d, "parameter 1 (int64_t seed): named seed in C but n in Java (Java's parameter 2 has that name: swapped?)",
        "parameter 2 (int64_t n): named n in C but seed in Java");
    // The layout-only comparison (no wrapper information) cannot see it.
    assertEquals(List.of(), AbiComparator.compare(withParams(ps), java(fns(), T_S, constants()), n -> true));
  }

  @Test
  void unnamedHeaderParametersAreNotCompared() {
    List<HeaderAbi.Param> ps = C.functions().get(0).params().stream()
        .map(p -> new HeaderAbi.Param("", p.type(), p.cType())).toList();
    assertEquals(List.of(), AbiComparator.compare(withParams(ps), javaWithWrappers(wrappers(), java.util.Set.of()), n -> true));
  }

  @Test
  void reportsSignednessChanges() {
    // uint64_t seed becomes int64_t, int64_t n becomes uint64_t: the layouts stay JAVA_LONG.
    List<HeaderAbi.Param> ps = List.of(C.functions().get(0).params().get(0),
        new HeaderAbi.Param("n", "uint64_t", "uint64_t"), new HeaderAbi.Param("seed", "int64_t", "int64_t"),
        C.functions().get(0).params().get(3));
    assertReports(AbiComparator.compare(withParams(ps), javaWithWrappers(wrappers(), java.util.Set.of()), n -> true),
        "parameter 1 (uint64_t n) is unsigned in C (uint64_t) but not @Unsigned in Java",
        "parameter 2 (int64_t seed) is signed in C (int64_t) but @Unsigned in Java");
    // A float marked unsigned, an unsigned return not marked.
    var w = wrappers();
    w.put("t_f", new JavaAbi.Wrapper(List.of("s", "n", "seed", "x"), false, List.of(false, false, true, true)));
    assertReports(AbiComparator.compare(C, javaWithWrappers(w, java.util.Set.of()), n -> true),
        "parameter 3 (float x) is float in C, not an unsigned integer, but @Unsigned in Java");
    List<HeaderAbi.Function> fs = new java.util.ArrayList<>(C.functions());
    fs.set(1, new HeaderAbi.Function("t_g", "uint64_t", "size_t", List.of(), false));
    assertReports(AbiComparator.compare(new HeaderAbi("t.h", fs, C.structs(), C.constants()),
            javaWithWrappers(wrappers(), java.util.Set.of()), n -> true),
        "return is unsigned in C (uint64_t) but not @Unsigned in Java");
  }

  @Test
  void enumsAreNeitherSignedNorUnsigned() {
    // clang gives an enum without negative values an unsigned underlying type; Java binds it as int.
    List<HeaderAbi.Function> fs = new java.util.ArrayList<>(C.functions());
    HeaderAbi.Function f = fs.get(0);
    fs.set(0, new HeaderAbi.Function(f.name(), "enum uint32_t", "t_status", f.params(), false));
    assertEquals(List.of(), AbiComparator.compare(new HeaderAbi("t.h", fs, C.structs(), C.constants()),
        javaWithWrappers(wrappers(), java.util.Set.of()), n -> true));
    assertEquals("JAVA_INT", AbiComparator.expectedLayout("enum uint32_t"));
    assertEquals("JAVA_INT[4]", AbiComparator.expectedLayout("enum int32_t[4]"));
  }

  @Test
  void reportsFieldSignednessAndARemovedField() {
    HeaderAbi.Struct s = C.structs().get(0);
    List<HeaderAbi.Field> fs = new java.util.ArrayList<>(s.fields());
    fs.set(0, new HeaderAbi.Field("n", "uint32_t", "uint32_t", 0, 4));
    HeaderAbi unsignedN = new HeaderAbi("t.h", C.functions(), List.of(new HeaderAbi.Struct("t_s", 16, 8, fs)), C.constants());
    assertReports(AbiComparator.compare(unsignedN, javaWithWrappers(wrappers(), java.util.Set.of()), n -> true),
        "field n (uint32_t) is unsigned in C (uint32_t) but not @Unsigned in Java (its getter)");
    assertEquals(List.of(), AbiComparator.compare(unsignedN, javaWithWrappers(wrappers(), java.util.Set.of("n")), n -> true));

    // The header drops f: p moves down to offset 4... no: alignment keeps p at 8; either way Java's f is extra.
    HeaderAbi noF = new HeaderAbi("t.h", C.functions(), List.of(new HeaderAbi.Struct("t_s", 16, 8,
        List.of(s.fields().get(0), s.fields().get(2)))), C.constants());
    List<String> d = AbiComparator.compare(noF, javaWithWrappers(wrappers(), java.util.Set.of()), n -> true);
    assertReports(d, "field f: in Java (offset 4) but not in C", "field p (const void *): is field 1 in C but 2 in Java");
  }

  /** A jextract-shaped class compiled with -parameters, one unsigned parameter and one unsigned return. */
  public static final class Declared {
    public static final Map<String, FunctionDescriptor> DESCRIPTORS = Map.of(
        "t_f", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_FLOAT),
        "t_v", FunctionDescriptor.of(JAVA_LONG));
    public static final MethodHandle t_f$MH = MethodHandles.empty(DESCRIPTORS.get("t_f").toMethodType());
    public static final MethodHandle t_v$MH = MethodHandles.empty(DESCRIPTORS.get("t_v").toMethodType());

    public static int t_f(MemorySegment s, long n, @dev.latentmoe.bindings.runtime.Unsigned long seed, float x) {
      return 0;
    }

    @dev.latentmoe.bindings.runtime.Unsigned
    public static long t_v() {
      return 0;
    }

    private Declared() {}
  }

  @Test
  void readsNamesAndUnsignedMarksFromTheWrappers() throws Exception {
    JavaAbi j = JavaAbi.of(Declared.class);
    assertEquals(List.of(), j.shapeProblems());
    assertEquals(new JavaAbi.Wrapper(List.of("s", "n", "seed", "x"), false, List.of(false, false, true, false)),
        j.wrappers().get("t_f"));
    assertEquals(new JavaAbi.Wrapper(List.of(), true, List.of()), j.wrappers().get("t_v"));
  }

  @Test
  void eachSelfCheckMutationIsCaughtOnTheHandWrittenDump() {
    JavaAbi j = javaWithWrappers(wrappers(), java.util.Set.of());
    List<AbiMutations.Mutation> ms = AbiMutations.all(C, j, n -> true);
    // No two neighbouring parameters of t_f share a type, so no swap applies here (the real
    // headers have them: LatentmoeHeaderDriftTest prints each mutation it applied).
    assertEquals(List.of("an extra JAVA_DOUBLE parameter on t_f", "parameter n of t_f turned from int64_t into uint64_t",
        "field t_s.n turned from int32_t into uint32_t", "field t_s.f removed"),
        ms.stream().map(AbiMutations.Mutation::description).toList());
    for (AbiMutations.Mutation m : ms) {
      assertTrue(!AbiComparator.compare(m.c(), m.java(), n -> true).isEmpty(), "missed: " + m.description());
    }
  }

  /** A class with the binding shape gone wrong, for {@link JavaAbi#of}. */
  public static final class BrokenShape {
    public static final Map<String, FunctionDescriptor> DESCRIPTORS =
        Map.of("t_g", FunctionDescriptor.ofVoid(), "t_h", FunctionDescriptor.of(JAVA_INT));
    public static final MethodHandle t_g$MH =
        MethodHandles.empty(FunctionDescriptor.of(JAVA_INT).toMethodType());
    public static final MethodHandle stray =
        MethodHandles.empty(FunctionDescriptor.ofVoid().toMethodType());

    public static void t_g() {}

    public static long t_h() {
      return 0;
    }

    private BrokenShape() {}
  }

  @Test
  void reportsJavaShapeProblems() throws Exception {
    List<String> p = JavaAbi.of(BrokenShape.class).shapeProblems();
    assertReports(p,
        "t_g$MH has type ()int but its descriptor gives ()void",
        "MethodHandle field stray is not named",
        "DESCRIPTORS has t_h but there is no public static final MethodHandle t_h$MH",
        "no public static wrapper int t_h() matching its descriptor");
  }

  @Test
  void latentmoeBindingsAreSelfConsistent() throws Exception {
    JavaAbi j = JavaAbi.of(latentmoe_h.class);
    assertEquals(List.of(), j.shapeProblems());
    assertTrue(j.functions().containsKey("lmoe_cpu_forward"));
    assertEquals(Optional.of(lmoe_config.layout()), j.structLayout().apply("lmoe_config"));
    assertEquals(2L, j.constants().get("LMOE_ABI_VERSION"));
    assertEquals("JAVA_INT", AbiComparator.expectedLayout("uint32_t"));
    assertEquals(MemorySegment.class, ADDRESS.carrier());
  }
}
