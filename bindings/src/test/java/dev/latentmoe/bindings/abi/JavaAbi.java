package dev.latentmoe.bindings.abi;

import dev.latentmoe.bindings.runtime.Unsigned;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The Java side of a header, read reflectively from a jextract-shaped class.
 *
 * @param functions the class's {@code DESCRIPTORS} map (C name to descriptor)
 * @param constants every {@code public static final int/long} field of the class
 * @param structLayout finds the GroupLayout for a C struct name (empty when no class has it)
 * @param shapeProblems inconsistencies inside the Java class itself (handle vs descriptor vs
 *     wrapper method), reported with the header differences
 * @param wrappers per C function, what its wrapper method declares beyond the descriptor: the
 *     parameter names and which integers are {@link Unsigned} (absent: not compared)
 * @param unsignedFields the fields a C struct's Java class marks {@link Unsigned} (on their getter);
 *     null: struct field signedness is not compared
 */
public record JavaAbi(Map<String, FunctionDescriptor> functions, Map<String, Long> constants,
    java.util.function.Function<String, Optional<GroupLayout>> structLayout,
    List<String> shapeProblems, Map<String, Wrapper> wrappers,
    java.util.function.Function<String, Set<String>> unsignedFields) {

  /**
   * A wrapper method's declarations: parameter names (null when the class was compiled without
   * {@code -parameters}), whether the return value and each parameter are {@link Unsigned}.
   */
  public record Wrapper(List<String> parameterNames, boolean unsignedReturn, List<Boolean> unsignedParameters) {}

  /** Descriptors, constants and struct layouts only: names and signedness are not compared. */
  public JavaAbi(Map<String, FunctionDescriptor> functions, Map<String, Long> constants,
      java.util.function.Function<String, Optional<GroupLayout>> structLayout,
      List<String> shapeProblems) {
    this(functions, constants, structLayout, shapeProblems, Map.of(), null);
  }

  /** This binding with {@code functions} in place of its descriptors (for mutation checks). */
  public JavaAbi withFunctions(Map<String, FunctionDescriptor> functions) {
    return new JavaAbi(functions, constants, structLayout, List.of(), wrappers, unsignedFields);
  }

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
    Map<String, Wrapper> declared = new LinkedHashMap<>();
    for (var e : fns.entrySet()) {
      String fn = e.getKey();
      MethodType want = e.getValue().toMethodType();
      if (!handles.containsKey(fn + HANDLE_SUFFIX)) {
        problems.add("Java: DESCRIPTORS has " + fn + " but there is no public static final "
            + "MethodHandle " + fn + HANDLE_SUFFIX);
      }
      List<Method> wrappers = Arrays.stream(headerClass.getMethods())
          .filter(x -> x.getName().equals(fn) && Modifier.isStatic(x.getModifiers())).toList();
      Optional<Method> match = wrappers.stream().filter(x -> x.getReturnType() == want.returnType()
          && Arrays.equals(x.getParameterTypes(), want.parameterArray())).findFirst();
      boolean ok = match.isPresent();
      if (ok) {
        Wrapper w = wrapper(match.get());
        declared.put(fn, w);
        if (w.parameterNames() == null && match.get().getParameterCount() > 0) {
          problems.add("Java: " + headerClass.getSimpleName() + " was compiled without -parameters: the "
              + "parameter names of " + fn + " cannot be compared with the header's");
        }
      }
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
    return new JavaAbi(fns, constants, name -> structLayoutOf(pkg + "." + name, loader), problems,
        declared, name -> unsignedFieldsOf(pkg + "." + name, loader));
  }

  private static Wrapper wrapper(Method m) {
    Parameter[] ps = m.getParameters();
    boolean named = Arrays.stream(ps).allMatch(Parameter::isNamePresent);
    return new Wrapper(named ? Arrays.stream(ps).map(Parameter::getName).toList() : null,
        m.isAnnotationPresent(Unsigned.class),
        Arrays.stream(ps).map(p -> p.isAnnotationPresent(Unsigned.class)).toList());
  }

  /** Fields whose getter ({@code static T field(MemorySegment struct[, long index])}) is {@link Unsigned}. */
  private static Set<String> unsignedFieldsOf(String className, ClassLoader loader) {
    Set<String> out = new LinkedHashSet<>();
    try {
      Class<?> c = Class.forName(className, true, loader);
      for (Method m : c.getMethods()) {
        if (Modifier.isStatic(m.getModifiers()) && m.getReturnType() != void.class
            && m.getParameterCount() >= 1 && m.getParameterTypes()[0] == MemorySegment.class
            && m.isAnnotationPresent(Unsigned.class)) {
          out.add(m.getName());
        }
      }
    } catch (ClassNotFoundException e) {
      // no struct class: reported by the layout comparison
    }
    return out;
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
