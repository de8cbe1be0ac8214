// A small strict JSON (RFC 8259) parser for config.json, index.json and safetensors headers, with
// the same rules as the Java library's dev.latentmoe.memory.Json: objects keep key order and
// reject duplicate keys, numbers written without fraction/exponent that fit int64 are integers
// (else doubles; out-of-range doubles are errors), strings must be valid UTF-8 (checked by the
// caller) with paired surrogate escapes and no raw control characters, nothing but whitespace
// after the value. Hostile input: nesting is bounded (no unbounded recursion), size is bounded by
// the caller, every error is a JsonError with the byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lmoe {
namespace engine {

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct JValue {
  enum Kind { NUL, BOOL, INT, DOUBLE, STRING, ARRAY, OBJECT };
  Kind kind = NUL;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<JValue> arr;
  std::vector<std::pair<std::string, JValue>> obj;

  bool is_number() const { return kind == INT || kind == DOUBLE; }
  double as_double() const { return kind == INT ? (double)i : d; }
  // The member named key, or nullptr (objects only).
  const JValue* get(const std::string& key) const;
};

const char* json_type_name(const JValue* v);

// Parses one JSON value from [text, text+len); throws JsonError.
JValue json_parse(const char* text, size_t len, int max_depth = 64);

// True when [p, p+n) is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool valid_utf8(const char* p, size_t n);

}  // namespace engine
}  // namespace lmoe
