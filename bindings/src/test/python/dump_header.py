#!/usr/bin/env python3
"""Dumps the ABI of one C header as JSON, parsed by clang (libclang==18.1.1 from PyPI).

Usage: dump_header.py HEADER [-I DIR]... [-D NAME[=VALUE]]...

Only declarations written in HEADER itself are listed (not those of headers it includes).
Types are canonicalised (typedefs resolved) to a small vocabulary so the Java side can compare:
  void, float, double, pointer, int8_t..int64_t, uint8_t..uint64_t (the signedness is kept: the Java
  side declares it too), "enum T" for an enum of underlying integer type T (its signedness is the
  compiler's choice, not the header's, so it is not compared), "struct NAME" for records passed by
  value, "T[N]" for fixed arrays; anything else is "unsupported:<spelling>" and will not match a
  Java layout. Parameter names are as written in the header ("" when unnamed).
Output:
  {"header": ..., "functions": [{"name", "return", "params": [{"name", "type", "c_type"}],
                                 "c_return", "variadic"}],
   "structs": [{"name", "size", "align", "fields": [{"name", "type", "c_type", "offset", "size"}]}],
   "constants": [{"name", "value", "kind": "enum"|"macro", "enum"}]}
Exits 1 with clang's diagnostics on stderr when the header does not parse cleanly.
"""
import json
import os
import subprocess
import sys

import clang.cindex as ci
from clang.cindex import CursorKind, TypeKind

SIGNED = {TypeKind.CHAR_S, TypeKind.SCHAR, TypeKind.SHORT, TypeKind.INT, TypeKind.LONG,
          TypeKind.LONGLONG, TypeKind.INT128, TypeKind.WCHAR}
UNSIGNED = {TypeKind.BOOL, TypeKind.CHAR_U, TypeKind.UCHAR, TypeKind.USHORT, TypeKind.UINT,
            TypeKind.ULONG, TypeKind.ULONGLONG, TypeKind.UINT128, TypeKind.CHAR16,
            TypeKind.CHAR32}


def canon(t):
    t = t.get_canonical()
    k = t.kind
    if k == TypeKind.VOID:
        return "void"
    if k in (TypeKind.POINTER, TypeKind.BLOCKPOINTER):
        return "pointer"
    if k == TypeKind.FLOAT:
        return "float"
    if k == TypeKind.DOUBLE:
        return "double"
    if k == TypeKind.ENUM:
        return "enum " + canon(t.get_declaration().enum_type)
    if k in SIGNED:
        return "int%d_t" % (8 * t.get_size())
    if k in UNSIGNED:
        return "uint%d_t" % (8 * t.get_size())
    if k == TypeKind.RECORD:
        return "struct " + record_name(t.get_declaration())
    if k in (TypeKind.INCOMPLETEARRAY, TypeKind.VARIABLEARRAY):
        # Only parameters use these in the headers we check; C adjusts "T p[]" to "T* p".
        return "pointer"
    if k == TypeKind.CONSTANTARRAY:
        return "%s[%d]" % (canon(t.element_type), t.element_count)
    return "unsupported:" + t.spelling


def record_name(decl):
    # Anonymous "typedef struct {...} name;" takes the typedef's name.
    if decl.is_anonymous() or not decl.spelling or "(unnamed" in decl.spelling \
            or "(anonymous" in decl.spelling:
        td = TYPEDEF_OF.get(decl.hash)
        if td:
            return td
    return decl.spelling


TYPEDEF_OF = {}


def system_include_dirs():
    # The libclang wheel ships no resource headers (stddef.h, ...), so borrow the C compiler's.
    dirs = []
    for cc in ("cc", "gcc", "clang"):
        try:
            out = subprocess.run([cc, "-print-file-name=include"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out and os.path.isdir(out):
            dirs.append(out)
            break
    return dirs


def parse_int(text):
    t = text.rstrip("uUlL")
    try:
        return int(t, 0)
    except ValueError:
        return None


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    header = os.path.realpath(argv[0])
    extra = argv[1:]
    args = ["-x", "c", "-std=c11"] + extra + ["-isystem" + d for d in system_include_dirs()]
    index = ci.Index.create()
    tu = index.parse(header, args=args,
                     options=ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD
                     | ci.TranslationUnit.PARSE_SKIP_FUNCTION_BODIES)
    errors = [d for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    if errors:
        for d in errors:
            print("clang: %s" % d, file=sys.stderr)
        return 1

    def here(c):
        return c.location.file is not None and os.path.realpath(c.location.file.name) == header

    top = list(tu.cursor.get_children())
    for c in top:
        if c.kind == CursorKind.TYPEDEF_DECL:
            u = c.underlying_typedef_type.get_canonical()
            if u.kind == TypeKind.RECORD:
                TYPEDEF_OF.setdefault(u.get_declaration().hash, c.spelling)

    functions, structs, constants = [], [], []
    seen_funcs, seen_structs = set(), set()
    for c in top:
        if not here(c):
            continue
        if c.kind == CursorKind.FUNCTION_DECL and c.spelling not in seen_funcs:
            seen_funcs.add(c.spelling)
            functions.append({
                "name": c.spelling,
                "return": canon(c.result_type),
                "c_return": c.result_type.spelling,
                "params": [{"name": a.spelling, "type": canon(a.type), "c_type": a.type.spelling}
                           for a in c.get_arguments()],
                "variadic": c.type.kind == TypeKind.FUNCTIONPROTO and c.type.is_function_variadic(),
            })
        elif c.kind in (CursorKind.STRUCT_DECL, CursorKind.TYPEDEF_DECL):
            decl = c if c.kind == CursorKind.STRUCT_DECL else \
                c.underlying_typedef_type.get_canonical().get_declaration()
            if decl.kind != CursorKind.STRUCT_DECL or not decl.is_definition():
                continue
            name = record_name(decl)
            if name in seen_structs:
                continue
            seen_structs.add(name)
            t = decl.type
            fields = []
            for f in t.get_fields():
                fields.append({"name": f.spelling, "type": canon(f.type), "c_type": f.type.spelling,
                               "offset": f.get_field_offsetof() // 8, "size": f.type.get_size()})
            structs.append({"name": name, "size": t.get_size(), "align": t.get_align(),
                            "fields": fields})
        elif c.kind == CursorKind.ENUM_DECL:
            for e in c.get_children():
                if e.kind == CursorKind.ENUM_CONSTANT_DECL:
                    constants.append({"name": e.spelling, "value": e.enum_value, "kind": "enum",
                                      "enum": c.spelling})
        elif c.kind == CursorKind.MACRO_DEFINITION:
            toks = [t.spelling for t in c.get_tokens()]
            # Object-like integer macros only: "NAME 123" (include guards have no value).
            if len(toks) == 2 and parse_int(toks[1]) is not None:
                constants.append({"name": toks[0], "value": parse_int(toks[1]), "kind": "macro",
                                  "enum": None})
    json.dump({"header": header, "functions": functions, "structs": structs,
               "constants": constants}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
