package dev.latentmoe.bindings.abi;

import java.util.List;
import java.util.Map;

/** The C side of a header, as dumped by dump_header.py (types in its canonical vocabulary). */
public record HeaderAbi(String header, List<Function> functions, List<Struct> structs,
    List<Constant> constants) {

  public record Param(String name, String type, String cType) {}

  public record Function(String name, String returnType, String cReturn, List<Param> params,
      boolean variadic) {}

  public record Field(String name, String type, String cType, long offset, long size) {}

  public record Struct(String name, long size, long align, List<Field> fields) {}

  /** kind: "enum" or "macro"; enumName null for macros. */
  public record Constant(String name, long value, String kind, String enumName) {}

  /**
   * 1 for an unsigned C integer type of the dump's vocabulary (or an array of them), -1 for a
   * signed one, 0 for anything else (floats, pointers, structs, and enums: "enum uint32_t").
   */
  public static int signedness(String type) {
    int b = type.indexOf('[');
    String t = b > 0 ? type.substring(0, b) : type;
    return t.startsWith("uint") ? 1 : t.startsWith("int") ? -1 : 0;
  }

  @SuppressWarnings("unchecked")
  public static HeaderAbi fromJson(String json) {
    Map<String, Object> root = (Map<String, Object>) Json.parse(json);
    List<Function> fns = ((List<Object>) root.get("functions")).stream().map(o -> {
      Map<String, Object> f = (Map<String, Object>) o;
      List<Param> ps = ((List<Object>) f.get("params")).stream().map(p -> {
        Map<String, Object> m = (Map<String, Object>) p;
        return new Param((String) m.get("name"), (String) m.get("type"), (String) m.get("c_type"));
      }).toList();
      return new Function((String) f.get("name"), (String) f.get("return"),
          (String) f.get("c_return"), ps, Boolean.TRUE.equals(f.get("variadic")));
    }).toList();
    List<Struct> sts = ((List<Object>) root.get("structs")).stream().map(o -> {
      Map<String, Object> s = (Map<String, Object>) o;
      List<Field> fs = ((List<Object>) s.get("fields")).stream().map(p -> {
        Map<String, Object> m = (Map<String, Object>) p;
        return new Field((String) m.get("name"), (String) m.get("type"), (String) m.get("c_type"),
            (Long) m.get("offset"), (Long) m.get("size"));
      }).toList();
      return new Struct((String) s.get("name"), (Long) s.get("size"), (Long) s.get("align"), fs);
    }).toList();
    List<Constant> cs = ((List<Object>) root.get("constants")).stream().map(o -> {
      Map<String, Object> c = (Map<String, Object>) o;
      return new Constant((String) c.get("name"), (Long) c.get("value"), (String) c.get("kind"),
          (String) c.get("enum"));
    }).toList();
    return new HeaderAbi((String) root.get("header"), fns, sts, cs);
  }
}
