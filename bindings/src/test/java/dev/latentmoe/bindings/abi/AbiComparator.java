package dev.latentmoe.bindings.abi;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Compares a header's ABI (from clang) with its Java bindings and lists every difference as one
 * readable line. Types are compared as layout names: the C type's expected layout
 * (int32_t/uint32_t/enum: JAVA_INT, int64_t/uint64_t: JAVA_LONG, float: JAVA_FLOAT, double:
 * JAVA_DOUBLE, any pointer: ADDRESS, void return: no return layout) against the Java layout's.
 * What a layout cannot show is compared with the wrapper methods and struct getters: parameter
 * names where the header names them (two swapped parameters of one layout differ only there), and
 * signedness ({@code uintN_t} must be {@link dev.latentmoe.bindings.runtime.Unsigned}, {@code intN_t}
 * must not; enums are neither).
 */
public final class AbiComparator {

  private AbiComparator() {}

  /** Differences between {@code c} and {@code java}; only names that {@code filter} accepts count. */
  public static List<String> compare(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    List<String> out = new ArrayList<>(java.shapeProblems());
    compareFunctions(c, java, filter, out);
    compareStructs(c, java, filter, out);
    compareConstants(c, java, filter, out);
    return out;
  }

  /** The Java layout name a C type (dump_header.py vocabulary) must map to. */
  static String expectedLayout(String cType) {
    if (cType.startsWith("enum ")) {
      return expectedLayout(cType.substring("enum ".length()));
    }
    return switch (cType) {
      case "void" -> "(none)";
      case "int8_t", "uint8_t" -> "JAVA_BYTE";
      case "int16_t", "uint16_t" -> "JAVA_SHORT";
      case "int32_t", "uint32_t" -> "JAVA_INT";
      case "int64_t", "uint64_t" -> "JAVA_LONG";
      case "float" -> "JAVA_FLOAT";
      case "double" -> "JAVA_DOUBLE";
      case "pointer" -> "ADDRESS";
      default -> {
        if (cType.startsWith("struct ")) {
          yield cType;
        }
        int b = cType.lastIndexOf('[');
        if (b > 0 && cType.endsWith("]")) {
          yield expectedLayout(cType.substring(0, b)) + cType.substring(b);
        }
        yield "(no Java mapping for C type " + cType + ")";
      }
    };
  }

  /** A readable name for a Java layout, in the same vocabulary as {@link #expectedLayout}. */
  static String layoutName(MemoryLayout l) {
    if (l == null) {
      return "(none)";
    }
    if (l instanceof AddressLayout) {
      return "ADDRESS";
    }
    if (l instanceof ValueLayout v) {
      Class<?> t = v.carrier();
      String base = t == int.class ? "JAVA_INT" : t == long.class ? "JAVA_LONG"
          : t == float.class ? "JAVA_FLOAT" : t == double.class ? "JAVA_DOUBLE"
          : t == byte.class ? "JAVA_BYTE" : t == short.class ? "JAVA_SHORT"
          : t == char.class ? "JAVA_CHAR" : t == boolean.class ? "JAVA_BOOLEAN"
          : t == MemorySegment.class ? "ADDRESS" : t.getName();
      // A non-native byte order would be an ABI bug even with the right carrier.
      return v.order() == ByteOrder.nativeOrder() ? base : base + "(" + v.order() + ")";
    }
    if (l instanceof GroupLayout g) {
      return "struct " + g.name().orElse("(unnamed)");
    }
    if (l instanceof SequenceLayout s) {
      return layoutName(s.elementLayout()) + "[" + s.elementCount() + "]";
    }
    return l.toString();
  }

  /** A difference between the C signedness of {@code cType} and a Java {@code @Unsigned} mark, or null. */
  private static String signednessDiff(String cType, boolean javaUnsigned) {
    int s = HeaderAbi.signedness(cType);
    if (s > 0 && !javaUnsigned) {
      return "is unsigned in C (" + cType + ") but not @Unsigned in Java";
    }
    if (s < 0 && javaUnsigned) {
      return "is signed in C (" + cType + ") but @Unsigned in Java";
    }
    if (s == 0 && javaUnsigned) {
      return "is " + cType + " in C, not an unsigned integer, but @Unsigned in Java";
    }
    return null;
  }

  private static void compareFunctions(HeaderAbi c, JavaAbi java, Predicate<String> filter,
      List<String> out) {
    Set<String> cNames = new HashSet<>();
    for (HeaderAbi.Function f : c.functions()) {
      if (!filter.test(f.name())) {
        continue;
      }
      cNames.add(f.name());
      String sig = signature(f);
      FunctionDescriptor fd = java.functions().get(f.name());
      if (fd == null) {
        out.add("function " + f.name() + ": in the header but not bound in Java\n    C: " + sig);
        continue;
      }
      List<String> d = new ArrayList<>();
      if (f.variadic()) {
        d.add("is variadic (needs Linker.Option.firstVariadicArg; not checked)");
      }
      String wantRet = expectedLayout(f.returnType());
      String haveRet = layoutName(fd.returnLayout().orElse(null));
      if (!wantRet.equals(haveRet)) {
        d.add("return: C " + f.cReturn() + " needs " + wantRet + ", Java has " + haveRet);
      }
      List<MemoryLayout> args = fd.argumentLayouts();
      if (args.size() != f.params().size()) {
        d.add("parameter count: C has " + f.params().size() + ", Java has " + args.size());
      }
      JavaAbi.Wrapper w = java.wrappers().get(f.name());
      if (w != null) {
        String ret = signednessDiff(f.returnType(), w.unsignedReturn());
        if (ret != null) {
          d.add("return " + ret);
        }
      }
      for (int i = 0; i < Math.min(args.size(), f.params().size()); i++) {
        HeaderAbi.Param p = f.params().get(i);
        String where = "parameter " + i + " (" + p.cType() + " " + p.name() + ")";
        String want = expectedLayout(p.type());
        String have = layoutName(args.get(i));
        if (!want.equals(have)) {
          d.add(where + ": needs " + want + ", Java has " + have);
        }
        if (w == null) {
          continue;
        }
        List<String> names = w.parameterNames();
        if (!p.name().isEmpty() && names != null && i < names.size() && !p.name().equals(names.get(i))) {
          int elsewhere = names.indexOf(p.name());
          d.add(where + ": named " + p.name() + " in C but " + names.get(i) + " in Java"
              + (elsewhere >= 0 ? " (Java's parameter " + elsewhere + " has that name: swapped?)" : ""));
        }
        if (i < w.unsignedParameters().size()) {
          String sd = signednessDiff(p.type(), w.unsignedParameters().get(i));
          if (sd != null) {
            d.add(where + " " + sd);
          }
        }
      }
      if (!d.isEmpty()) {
        out.add("function " + f.name() + ":\n    " + String.join("\n    ", d)
            + "\n    C:    " + sig + "\n    Java: " + fd);
      }
    }
    for (String name : java.functions().keySet()) {
      if (filter.test(name) && !cNames.contains(name)) {
        out.add("function " + name + ": bound in Java (" + java.functions().get(name)
            + ") but not declared in " + c.header());
      }
    }
  }

  private static String signature(HeaderAbi.Function f) {
    StringBuilder b = new StringBuilder(f.cReturn()).append(' ').append(f.name()).append('(');
    for (int i = 0; i < f.params().size(); i++) {
      HeaderAbi.Param p = f.params().get(i);
      b.append(i == 0 ? "" : ", ").append(p.cType()).append(p.name().isEmpty() ? "" : " " + p.name());
    }
    return b.append(f.variadic() ? ", ...)" : ")").toString();
  }

  /** A named member of a Java struct layout with its offset from the start of the struct. */
  private record Member(String name, long offset, MemoryLayout layout) {}

  private static List<Member> members(GroupLayout g) {
    List<Member> ms = new ArrayList<>();
    long off = 0;
    for (MemoryLayout m : g.memberLayouts()) {
      if (!(m instanceof PaddingLayout)) {
        ms.add(new Member(m.name().orElse("(unnamed)"), off, m));
      }
      // Struct members follow each other; union members all start at 0.
      if (g instanceof StructLayout) {
        off += m.byteSize();
      }
    }
    return ms;
  }

  private static void compareStructs(HeaderAbi c, JavaAbi java, Predicate<String> filter,
      List<String> out) {
    for (HeaderAbi.Struct s : c.structs()) {
      if (!filter.test(s.name())) {
        continue;
      }
      Optional<GroupLayout> g = java.structLayout().apply(s.name());
      if (g.isEmpty()) {
        out.add("struct " + s.name() + ": in the header but there is no Java class " + s.name()
            + " with a static layout()");
        continue;
      }
      GroupLayout j = g.get();
      List<String> d = new ArrayList<>();
      if (!j.name().equals(Optional.of(s.name()))) {
        d.add("layout name: Java has " + j.name().orElse("(none)"));
      }
      if (j.byteSize() != s.size()) {
        d.add("size: C " + s.size() + ", Java " + j.byteSize());
      }
      if (j.byteAlignment() != s.align()) {
        d.add("alignment: C " + s.align() + ", Java " + j.byteAlignment());
      }
      List<Member> ms = members(j);
      Set<String> unsigned = java.unsignedFields() == null ? null : java.unsignedFields().apply(s.name());
      Map<String, Member> byName = new HashMap<>();
      ms.forEach(m -> byName.put(m.name(), m));
      for (int i = 0; i < s.fields().size(); i++) {
        HeaderAbi.Field f = s.fields().get(i);
        Member m = byName.get(f.name());
        String where = "field " + f.name() + " (" + f.cType() + ")";
        if (m == null) {
          d.add(where + ": missing in Java");
          continue;
        }
        int jIndex = ms.indexOf(m);
        if (m.offset() != f.offset()) {
          d.add(where + ": offset C " + f.offset() + ", Java " + m.offset()
              + (jIndex != i ? " (field " + i + " in C, " + jIndex + " in Java)" : ""));
        } else if (jIndex != i) {
          d.add(where + ": is field " + i + " in C but " + jIndex + " in Java");
        }
        if (m.layout().byteSize() != f.size()) {
          d.add(where + ": size C " + f.size() + ", Java " + m.layout().byteSize());
        }
        String want = expectedLayout(f.type());
        String have = layoutName(m.layout());
        if (want.startsWith("struct ") && m.layout() instanceof GroupLayout nested) {
          // jextract names a nested struct member after the field; its layout must be the struct class's.
          String tag = want.substring("struct ".length());
          Optional<GroupLayout> cls = java.structLayout().apply(tag);
          have = cls.isPresent() && cls.get().withoutName().equals(nested.withoutName()) ? want
              : "a nested layout that is not " + tag + ".layout()";
        }
        if (!want.equals(have)) {
          d.add(where + ": needs " + want + ", Java has " + have);
        }
        if (unsigned != null) {
          String sd = signednessDiff(f.type(), unsigned.contains(f.name()));
          if (sd != null) {
            d.add(where + " " + sd.replace("in Java", "in Java (its getter)"));
          }
        }
      }
      Set<String> cFields = new HashSet<>();
      s.fields().forEach(f -> cFields.add(f.name()));
      for (Member m : ms) {
        if (!cFields.contains(m.name())) {
          d.add("field " + m.name() + ": in Java (offset " + m.offset() + ") but not in C");
        }
      }
      if (!d.isEmpty()) {
        out.add("struct " + s.name() + ":\n    " + String.join("\n    ", d) + "\n    Java: " + j);
      }
    }
  }

  private static void compareConstants(HeaderAbi c, JavaAbi java, Predicate<String> filter,
      List<String> out) {
    Set<String> cNames = new HashSet<>();
    for (HeaderAbi.Constant k : c.constants()) {
      if (!filter.test(k.name())) {
        continue;
      }
      cNames.add(k.name());
      String what = k.kind().equals("enum") ? "enum " + k.enumName() + " constant " + k.name()
          : "macro " + k.name();
      Long v = java.constants().get(k.name());
      if (v == null) {
        out.add(what + " = " + k.value() + ": missing in Java");
      } else if (!sameValue(k.value(), v)) {
        out.add(what + ": C " + k.value() + ", Java " + v);
      }
    }
    for (var e : java.constants().entrySet()) {
      if (filter.test(e.getKey()) && !cNames.contains(e.getKey())) {
        out.add("constant " + e.getKey() + " = " + e.getValue()
            + ": in Java but no enum value or integer macro of that name in " + c.header());
      }
    }
  }

  /** Equal, allowing an unsigned 32-bit C value held in a Java int (e.g. 0xFFFFFFFF == -1). */
  private static boolean sameValue(long c, long java) {
    return c == java || (c >= 0 && c <= 0xFFFF_FFFFL && (int) c == java);
  }
}
