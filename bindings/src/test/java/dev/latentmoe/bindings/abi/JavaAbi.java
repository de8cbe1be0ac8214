package dev.latentmoe.bindings.abi;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.GroupLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The Java side of a header, read reflectively from a jextract-shaped class.
 *
 * @param functions the class's {@code DESCRIPTORS} map (C name to descriptor)
 * @param constants every {@code public static final int/long} field of the class
 * @param structLayout finds the GroupLayout for a C struct name (empty when no class has it)
 * @param shapeProblems inconsistencies inside the Java class itself (handle vs descriptor vs
 *     wrapper method), reported with the header differences
 */
public record JavaAbi(Map<String, FunctionDescriptor> functions, Map<String, Long> constants,
    java.util.function.Function<String, Optional<GroupLayout>> structLayout,
    List<String> shapeProblems) {

  /** Suffix of the per-function handle fields, as in {@code lmoe_abi_version$MH}. */
  static final String HANDLE_SUFFIX = "$MH";

  /**
   * Reads {@code headerClass}: its {@code DESCRIPTORS} map, its {@code NAME$MH} handles, its
   * wrapper methods and its int/long constants. Struct classes are looked up as
   * {@code <package of headerClass>.<struct name>} with a static {@code layout()} method.
   */
  @SuppressWarnings("unchecked")
  public static JavaAbi of(Class<?> headerClass) throws ReflectiveOperationException {
    Field d = headerClass.getField("DESCRIPTORS");
    Map<String, FunctionDescriptor> fns =
        new LinkedHashMap<>((Map<String, FunctionDescriptor>) d.get(null));
    Map<String, Long> constants = new LinkedHashMap<>();
    Map<String, MethodHandle> handles = new LinkedHashMap<>();
    List<String> problems = new ArrayList<>();
    for (Field f : headerClass.getFields()) {
      int m = f.getModifiers();
      if (!Modifier.isStatic(m) || !Modifier.isFinal(m)) {
        continue;
      }
      if (f.getType() == int.class) {
        constants.put(f.getName(), (long) f.getInt(null));
      } else if (f.getType() == long.class) {
        constants.put(f.getName(), f.getLong(null));
      } else if (f.getType() == MethodHandle.class) {
        handles.put(f.getName(), (MethodHandle) f.get(null));
      }
    }
    for (var h : handles.entrySet()) {
      String field = h.getKey();
      if (!field.endsWith(HANDLE_SUFFIX)) {
        problems.add("Java: MethodHandle field " + field + " is not named <c function>" + HANDLE_SUFFIX);
        continue;
      }
      String fn = field.substring(0, field.length() - HANDLE_SUFFIX.length());
      FunctionDescriptor fd = fns.get(fn);
      if (fd == null) {
        problems.add("Java: " + field + " has no DESCRIPTORS entry \"" + fn + "\"");
      } else if (!h.getValue().type().equals(fd.toMethodType())) {
        problems.add("Java: " + field + " has type " + h.getValue().type()
            + " but its descriptor gives " + fd.toMethodType());
      }
    }
    for (var e : fns.entrySet()) {
      String fn = e.getKey();
      MethodType want = e.getValue().toMethodType();
      if (!handles.containsKey(fn + HANDLE_SUFFIX)) {
        problems.add("Java: DESCRIPTORS has " + fn + " but there is no public static final "
            + "MethodHandle " + fn + HANDLE_SUFFIX);
      }
      List<Method> wrappers = Arrays.stream(headerClass.getMethods())
          .filter(x -> x.getName().equals(fn) && Modifier.isStatic(x.getModifiers())).toList();
      boolean ok = wrappers.stream().anyMatch(x -> x.getReturnType() == want.returnType()
          && Arrays.equals(x.getParameterTypes(), want.parameterArray()));
      if (!ok) {
        problems.add("Java: no public static wrapper " + want.returnType().getSimpleName() + " "
            + fn + want.parameterList().stream().map(Class::getSimpleName)
                .collect(java.util.stream.Collectors.joining(", ", "(", ")"))
            + " matching its descriptor" + (wrappers.isEmpty() ? "" : " (found "
            + wrappers.stream().map(x -> MethodType.methodType(x.getReturnType(),
                x.getParameterTypes()).toString()).toList() + ")"));
      }
    }
    String pkg = headerClass.getPackageName();
    ClassLoader loader = headerClass.getClassLoader();
    return new JavaAbi(fns, constants, name -> structLayoutOf(pkg + "." + name, loader), problems);
  }

  private static Optional<GroupLayout> structLayoutOf(String className, ClassLoader loader) {
    try {
      Class<?> c = Class.forName(className, true, loader);
      return Optional.of((GroupLayout) c.getMethod("layout").invoke(null));
    } catch (ClassNotFoundException e) {
      return Optional.empty();
    } catch (ReflectiveOperationException | ClassCastException e) {
      throw new IllegalStateException(className + ".layout() is not usable: " + e, e);
    }
  }
}
