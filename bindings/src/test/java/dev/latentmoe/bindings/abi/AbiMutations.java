package dev.latentmoe.bindings.abi;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

import java.lang.foreign.FunctionDescriptor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * The drift test's liveness check: drifts a real header dump (or its binding) the way headers
 * really drift, so that the comparator is shown to catch each kind on the real data, or a green
 * drift test proves nothing. Each mutation picks its victim among the names the filter accepts;
 * it is empty when the header has nothing to mutate that way.
 */
public final class AbiMutations {

  private AbiMutations() {}

  /** A drifted pair: what changed, the C side and the Java side to compare. */
  public record Mutation(String description, HeaderAbi c, JavaAbi java) {}

  /** Every mutation that applies to this header. */
  public static List<Mutation> all(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    List<Mutation> out = new ArrayList<>();
    extraJavaParameter(c, java, filter).ifPresent(out::add);
    swappedParameters(c, java, filter).ifPresent(out::add);
    parameterSignedness(c, java, filter).ifPresent(out::add);
    fieldSignedness(c, java, filter).ifPresent(out::add);
    removedStructField(c, java, filter).ifPresent(out::add);
    return out;
  }

  /** The binding grows a JAVA_DOUBLE parameter the C function does not have. */
  static Optional<Mutation> extraJavaParameter(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    for (HeaderAbi.Function f : c.functions()) {
      FunctionDescriptor fd = java.functions().get(f.name());
      if (filter.test(f.name()) && fd != null) {
        Map<String, FunctionDescriptor> m = new LinkedHashMap<>(java.functions());
        m.put(f.name(), fd.appendArgumentLayouts(JAVA_DOUBLE));
        return Optional.of(new Mutation("an extra JAVA_DOUBLE parameter on " + f.name(), c,
            java.withFunctions(m)));
      }
    }
    return Optional.empty();
  }

  /** The header swaps two neighbouring parameters of the same type: the layouts still match. */
  static Optional<Mutation> swappedParameters(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    for (int fi = 0; fi < c.functions().size(); fi++) {
      HeaderAbi.Function f = c.functions().get(fi);
      if (!filter.test(f.name())) {
        continue;
      }
      List<HeaderAbi.Param> ps = f.params();
      for (int i = 0; i + 1 < ps.size(); i++) {
        HeaderAbi.Param a = ps.get(i), b = ps.get(i + 1);
        if (a.type().equals(b.type()) && !a.name().isEmpty() && !b.name().isEmpty()
            && !a.name().equals(b.name())) {
          List<HeaderAbi.Param> swapped = new ArrayList<>(ps);
          swapped.set(i, b);
          swapped.set(i + 1, a);
          HeaderAbi.Function g = new HeaderAbi.Function(f.name(), f.returnType(), f.cReturn(), swapped,
              f.variadic());
          return Optional.of(new Mutation("parameters " + a.name() + " and " + b.name() + " ("
              + a.type() + ") of " + f.name() + " swapped", withFunction(c, fi, g), java));
        }
      }
    }
    return Optional.empty();
  }

  /** The header changes an integer parameter's signedness (int64_t <-> uint64_t): same layout. */
  static Optional<Mutation> parameterSignedness(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    for (int fi = 0; fi < c.functions().size(); fi++) {
      HeaderAbi.Function f = c.functions().get(fi);
      if (!filter.test(f.name())) {
        continue;
      }
      for (int i = 0; i < f.params().size(); i++) {
        HeaderAbi.Param p = f.params().get(i);
        if (HeaderAbi.signedness(p.type()) != 0) {
          List<HeaderAbi.Param> ps = new ArrayList<>(f.params());
          String flipped = flip(p.type());
          ps.set(i, new HeaderAbi.Param(p.name(), flipped, flipped));
          HeaderAbi.Function g = new HeaderAbi.Function(f.name(), f.returnType(), f.cReturn(), ps,
              f.variadic());
          return Optional.of(new Mutation("parameter " + p.name() + " of " + f.name() + " turned from "
              + p.type() + " into " + flipped, withFunction(c, fi, g), java));
        }
      }
    }
    return Optional.empty();
  }

  /** The header changes an integer struct field's signedness. */
  static Optional<Mutation> fieldSignedness(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    for (int si = 0; si < c.structs().size(); si++) {
      HeaderAbi.Struct s = c.structs().get(si);
      if (!filter.test(s.name())) {
        continue;
      }
      for (int i = 0; i < s.fields().size(); i++) {
        HeaderAbi.Field f = s.fields().get(i);
        if (HeaderAbi.signedness(f.type()) != 0) {
          List<HeaderAbi.Field> fs = new ArrayList<>(s.fields());
          String flipped = flip(f.type());
          fs.set(i, new HeaderAbi.Field(f.name(), flipped, flipped, f.offset(), f.size()));
          return Optional.of(new Mutation("field " + s.name() + "." + f.name() + " turned from " + f.type()
              + " into " + flipped, withStruct(c, si, new HeaderAbi.Struct(s.name(), s.size(), s.align(), fs)),
              java));
        }
      }
    }
    return Optional.empty();
  }

  /** The header removes a struct field (the later ones move down, the struct shrinks). */
  static Optional<Mutation> removedStructField(HeaderAbi c, JavaAbi java, Predicate<String> filter) {
    for (int si = 0; si < c.structs().size(); si++) {
      HeaderAbi.Struct s = c.structs().get(si);
      if (!filter.test(s.name()) || s.fields().size() < 2) {
        continue;
      }
      int victim = s.fields().size() / 2;
      HeaderAbi.Field gone = s.fields().get(victim);
      List<HeaderAbi.Field> fs = new ArrayList<>();
      for (int i = 0; i < s.fields().size(); i++) {
        HeaderAbi.Field f = s.fields().get(i);
        if (i < victim) {
          fs.add(f);
        } else if (i > victim) {
          fs.add(new HeaderAbi.Field(f.name(), f.type(), f.cType(), f.offset() - gone.size(), f.size()));
        }
      }
      HeaderAbi.Struct t = new HeaderAbi.Struct(s.name(), s.size() - gone.size(), s.align(), fs);
      return Optional.of(new Mutation("field " + s.name() + "." + gone.name() + " removed", withStruct(c, si, t),
          java));
    }
    return Optional.empty();
  }

  private static String flip(String type) {
    return type.startsWith("uint") ? type.substring(1) : "u" + type;
  }

  private static HeaderAbi withFunction(HeaderAbi c, int index, HeaderAbi.Function f) {
    List<HeaderAbi.Function> fs = new ArrayList<>(c.functions());
    fs.set(index, f);
    return new HeaderAbi(c.header(), fs, c.structs(), c.constants());
  }

  private static HeaderAbi withStruct(HeaderAbi c, int index, HeaderAbi.Struct s) {
    List<HeaderAbi.Struct> ss = new ArrayList<>(c.structs());
    ss.set(index, s);
    return new HeaderAbi(c.header(), c.functions(), ss, c.constants());
  }
}
