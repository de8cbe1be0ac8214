// The engine's strict JSON (RFC 8259): objects keep key order and reject duplicate keys, numbers
// written without fraction/exponent that fit int64 are integers (else doubles; out-of-range
// doubles are errors), strings must be valid UTF-8 (checked by the caller) with paired surrogate
// escapes and no raw control characters, nothing but whitespace after the value. Hostile input:
// nesting is bounded (no unbounded recursion), every error is a JsonError with the byte offset.
//
// Two ways to read: JsonReader pulls one token at a time and allocates nothing per value it skips
// (safetensors headers and index files of any size are read with it, keeping only the entries the
// caller wants); json_parse builds a tree of at most max_values values (config files).
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

// A pull parser over [text, text + len). quote_input false keeps the input's bytes out of error
// messages (they name offsets only): used for files that may not be what they claim to be.
class JsonReader {
 public:
  JsonReader(const char* text, size_t len, bool quote_input = true, int max_depth = 64);

  // Kind of the next value (after whitespace); errors at the end of input or on a bad byte.
  JValue::Kind peek();
  // '{' ... : then next_member() until it returns false (it consumed '}'); after each true the
  // caller reads or skips exactly one value. *key_offset (optional) is where the key starts.
  void begin_object();
  bool next_member(std::string& key, size_t* key_offset = nullptr);
  // '[' ... : then next_element() until false (it consumed ']'); one value after each true.
  void begin_array();
  bool next_element();
  // Scalars; each raises when the next value has another kind.
  std::string read_string();
  void read_string_into(std::string& out);
  JValue read_scalar();  // null, boolean or number
  // Reads (or skips, allocating nothing that outlives the call) one whole value.
  JValue read_value(int64_t max_values);
  void skip_value();
  // Whitespace only up to the end.
  void finish();
  size_t offset() const { return pos_; }
  void seek(size_t offset) { pos_ = offset; }
  [[noreturn]] void fail_at(size_t at, const std::string& m) const;

 private:
  [[noreturn]] void fail(const std::string& m) const { fail_at(pos_, m); }
  std::string describe(size_t at) const;
  void ws();
  void literal(const char* w);
  unsigned hex4();
  void number(JValue& v);
  void tree(JValue& v, int64_t& budget);
  void push(char open);

  const char* s_;
  size_t n_;
  bool quote_;
  int max_depth_;
  size_t pos_ = 0;
  std::vector<char> first_;  // per open container: no member / element read yet
  std::string scratch_;
};

// Duplicate keys of one (possibly huge) object, checked without keeping the keys: add() records
// a 64-bit hash and where the key starts; finish() sorts and re-reads equal-hash keys from text.
class DuplicateKeys {
 public:
  void add(const std::string& key, size_t offset);
  // Throws JsonError naming the first duplicate key (by offset) when there is one.
  void finish(const char* text, size_t len, bool quote_input) const;

 private:
  std::vector<std::pair<uint64_t, size_t>> seen_;
};

// Parses one JSON value from [text, text+len) into a tree of at most max_values values.
JValue json_parse(const char* text, size_t len, int max_depth = 64, int64_t max_values = 1 << 20);

// True when [p, p+n) is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool valid_utf8(const char* p, size_t n);

// s cut to n bytes ("..." appended) with control characters replaced, for messages.
std::string shorten(const std::string& s, size_t n = 200);

}  // namespace engine
}  // namespace lmoe
