#include "json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <unordered_set>

namespace lmoe {
namespace engine {

const JValue* JValue::get(const std::string& key) const {
  if (kind != OBJECT) return nullptr;
  for (const auto& kv : obj)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

const char* json_type_name(const JValue* v) {
  if (!v) return "absent";
  switch (v->kind) {
    case JValue::NUL: return "null";
    case JValue::BOOL: return "boolean";
    case JValue::INT:
    case JValue::DOUBLE: return "number";
    case JValue::STRING: return "string";
    case JValue::ARRAY: return "array";
    case JValue::OBJECT: return "object";
  }
  return "?";
}

bool valid_utf8(const char* p, size_t n) {
  const unsigned char* s = (const unsigned char*)p;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - i < (size_t)len) return false;
    for (int k = 1; k < len; ++k) {
      unsigned cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    i += len;
  }
  return true;
}

std::string shorten(const std::string& s, size_t n) {
  std::string out = s.size() <= n ? s : s.substr(0, n) + "...";
  for (char& c : out)
    if ((unsigned char)c < 0x20) c = '?';
  return out;
}

// ------------------------------------------------------------------ JsonReader

JsonReader::JsonReader(const char* text, size_t len, bool quote_input, int max_depth)
    : s_(text ? text : ""), n_(text ? len : 0), quote_(quote_input), max_depth_(max_depth) {}

void JsonReader::fail_at(size_t at, const std::string& m) const {
  throw JsonError("invalid JSON at offset " + std::to_string(at) + ": " + m);
}

std::string JsonReader::describe(size_t at) const {
  if (at >= n_) return "end of input";
  if (!quote_) return "byte";
  unsigned char c = (unsigned char)s_[at];
  char buf[32];
  if (c < 0x20 || c > 0x7E) std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
  else std::snprintf(buf, sizeof buf, "'%c'", c);
  return buf;
}

void JsonReader::ws() {
  while (pos_ < n_) {
    char c = s_[pos_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') ++pos_;
    else break;
  }
}

JValue::Kind JsonReader::peek() {
  ws();
  if (pos_ >= n_) fail("unexpected end of input, expected a value");
  char c = s_[pos_];
  switch (c) {
    case '{': return JValue::OBJECT;
    case '[': return JValue::ARRAY;
    case '"': return JValue::STRING;
    case 't':
    case 'f': return JValue::BOOL;
    case 'n': return JValue::NUL;
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return JValue::DOUBLE;  // INT or DOUBLE
      fail("unexpected " + describe(pos_) + ", expected a value");
  }
}

void JsonReader::push(char open) {
  ws();
  if (pos_ >= n_ || s_[pos_] != open)
    fail(std::string("expected '") + open + "', got " + describe(pos_));
  if ((int)first_.size() >= max_depth_) fail("nesting deeper than " + std::to_string(max_depth_));
  ++pos_;
  first_.push_back(1);
}

void JsonReader::begin_object() { push('{'); }
void JsonReader::begin_array() { push('['); }

bool JsonReader::next_member(std::string& key, size_t* key_offset) {
  ws();
  if (pos_ >= n_) fail("unexpected end of input in an object");
  if (first_.back()) {
    first_.back() = 0;
    if (s_[pos_] == '}') { ++pos_; first_.pop_back(); return false; }
  } else {
    char c = s_[pos_];
    if (c == '}') { ++pos_; first_.pop_back(); return false; }
    if (c != ',') fail("expected ',' or '}' in an object, got " + describe(pos_));
    ++pos_;
    ws();
  }
  if (pos_ >= n_ || s_[pos_] != '"') fail("expected a string key, got " + describe(pos_));
  if (key_offset) *key_offset = pos_;
  key.clear();
  read_string_into(key);
  ws();
  if (pos_ >= n_ || s_[pos_] != ':') fail("expected ':' after key, got " + describe(pos_));
  ++pos_;
  return true;
}

bool JsonReader::next_element() {
  ws();
  if (pos_ >= n_) fail("unexpected end of input in an array");
  if (first_.back()) {
    first_.back() = 0;
    if (s_[pos_] == ']') { ++pos_; first_.pop_back(); return false; }
    return true;
  }
  char c = s_[pos_];
  if (c == ']') { ++pos_; first_.pop_back(); return false; }
  if (c != ',') fail("expected ',' or ']' in an array, got " + describe(pos_));
  ++pos_;
  return true;
}

void JsonReader::literal(const char* w) {
  size_t k = 0;
  while (w[k]) {
    if (pos_ + k >= n_ || s_[pos_ + k] != w[k]) fail("unexpected " + describe(pos_) + ", expected a value");
    ++k;
  }
  pos_ += k;
}

unsigned JsonReader::hex4() {
  if (pos_ + 4 > n_) fail("truncated \\u escape");
  unsigned v = 0;
  for (int k = 0; k < 4; ++k) {
    char c = s_[pos_ + k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) fail_at(pos_ + k, "invalid hex digit " + describe(pos_ + k) + " in \\u escape");
    v = (v << 4) | (unsigned)d;
  }
  pos_ += 4;
  return v;
}

namespace {
void put_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) out += (char)cp;
  else if (cp < 0x800) { out += (char)(0xC0 | (cp >> 6)); out += (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12)); out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18)); out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F)); out += (char)(0x80 | (cp & 0x3F));
  }
}
bool digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

std::string JsonReader::read_string() {
  std::string s;
  read_string_into(s);
  return s;
}

void JsonReader::read_string_into(std::string& out) {
  ws();
  if (pos_ >= n_ || s_[pos_] != '"') fail("expected a string, got " + describe(pos_));
  size_t open = pos_++;
  for (;;) {
    // Copy a run of plain characters at once.
    size_t run = pos_;
    while (run < n_ && s_[run] != '"' && s_[run] != '\\' && (unsigned char)s_[run] >= 0x20) ++run;
    out.append(s_ + pos_, run - pos_);
    pos_ = run;
    if (pos_ >= n_) fail_at(open, "unterminated string");
    unsigned char c = (unsigned char)s_[pos_];
    if (c == '"') { ++pos_; return; }
    if (c < 0x20) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "raw control character U+%04X in a string", c);
      fail(buf);
    }
    ++pos_;  // the backslash
    if (pos_ >= n_) fail_at(open, "unterminated string");
    char e = s_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        unsigned u = hex4();
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (pos_ + 1 < n_ && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
            pos_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at(pos_ - 6, "high surrogate escape not followed by a low surrogate");
            put_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
          } else {
            fail_at(pos_ - 6, "unpaired high surrogate escape");
          }
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          fail_at(pos_ - 6, "unpaired low surrogate escape");
        } else {
          put_utf8(out, u);
        }
        break;
      }
      default:
        --pos_;
        if (quote_) fail(std::string("invalid escape '\\") + (e < 0x20 || e > 0x7E ? '?' : e) + "'");
        fail("invalid escape");
    }
  }
}

void JsonReader::number(JValue& v) {
  size_t start = pos_;
  if (s_[pos_] == '-') ++pos_;
  if (pos_ >= n_) fail("truncated number");
  char c = s_[pos_];
  if (c == '0') {
    ++pos_;
    if (pos_ < n_ && digit(s_[pos_])) fail("leading zero in a number");
  } else if (c >= '1' && c <= '9') {
    while (pos_ < n_ && digit(s_[pos_])) ++pos_;
  } else {
    fail("expected a digit, got " + describe(pos_));
  }
  bool integral = true;
  if (pos_ < n_ && s_[pos_] == '.') {
    integral = false;
    ++pos_;
    if (pos_ >= n_ || !digit(s_[pos_])) fail("expected a digit after '.'");
    while (pos_ < n_ && digit(s_[pos_])) ++pos_;
  }
  if (pos_ < n_ && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
    integral = false;
    ++pos_;
    if (pos_ < n_ && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
    if (pos_ >= n_ || !digit(s_[pos_])) fail("expected a digit in the exponent");
    while (pos_ < n_ && digit(s_[pos_])) ++pos_;
  }
  const char* b = s_ + start;
  const char* e = s_ + pos_;
  if (integral && pos_ - start <= 20) {
    int64_t iv = 0;
    auto r = std::from_chars(b, e, iv);
    if (r.ec == std::errc() && r.ptr == e) {
      v.kind = JValue::INT;
      v.i = iv;
      return;
    }
  }
  double dv = 0;
  auto r = std::from_chars(b, e, dv);
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow is an error (the value would be infinite); underflow is 0.
    std::string text(b, e);
    errno = 0;
    double sv = std::strtod(text.c_str(), nullptr);
    if (std::isinf(sv)) fail_at(start, quote_ ? "number " + text.substr(0, 64) + " out of range" : "number out of range");
    dv = sv;
  } else if (r.ec != std::errc() || r.ptr != e) {
    fail_at(start, "malformed number");
  }
  if (std::isinf(dv)) fail_at(start, "number out of range");
  v.kind = JValue::DOUBLE;
  v.d = dv;
}

JValue JsonReader::read_scalar() {
  JValue v;
  switch (peek()) {
    case JValue::NUL: literal("null"); v.kind = JValue::NUL; return v;
    case JValue::BOOL:
      if (s_[pos_] == 't') { literal("true"); v.b = true; }
      else { literal("false"); v.b = false; }
      v.kind = JValue::BOOL;
      return v;
    case JValue::DOUBLE: number(v); return v;
    default: fail("expected a number, boolean or null, got " + describe(pos_));
  }
}

void JsonReader::tree(JValue& v, int64_t& budget) {
  if (--budget < 0) fail("more JSON values than the limit");
  switch (peek()) {
    case JValue::OBJECT: {
      v.kind = JValue::OBJECT;
      begin_object();
      std::unordered_set<std::string> keys;
      std::string key;
      size_t at = 0;
      while (next_member(key, &at)) {
        if (!keys.insert(key).second)
          fail_at(at, quote_ ? "duplicate key \"" + shorten(key, 64) + "\"" : "duplicate key");
        JValue child;
        tree(child, budget);
        v.obj.emplace_back(key, std::move(child));
      }
      return;
    }
    case JValue::ARRAY:
      v.kind = JValue::ARRAY;
      begin_array();
      while (next_element()) {
        v.arr.emplace_back();
        tree(v.arr.back(), budget);
      }
      return;
    case JValue::STRING:
      v.kind = JValue::STRING;
      read_string_into(v.s);
      return;
    default:
      v = read_scalar();
  }
}

JValue JsonReader::read_value(int64_t max_values) {
  JValue v;
  int64_t budget = max_values;
  tree(v, budget);
  return v;
}

void JsonReader::skip_value() {
  switch (peek()) {
    case JValue::OBJECT: {
      begin_object();
      DuplicateKeys dups;
      size_t at = 0;
      std::string key;
      while (next_member(key, &at)) {
        dups.add(key, at);
        skip_value();
      }
      dups.finish(s_, n_, quote_);
      return;
    }
    case JValue::ARRAY:
      begin_array();
      while (next_element()) skip_value();
      return;
    case JValue::STRING:
      scratch_.clear();
      read_string_into(scratch_);
      return;
    default:
      (void)read_scalar();
  }
}

void JsonReader::finish() {
  ws();
  if (pos_ != n_) fail("unexpected " + describe(pos_) + " after the value");
}

// ------------------------------------------------------------------ DuplicateKeys

void DuplicateKeys::add(const std::string& key, size_t offset) {
  seen_.emplace_back((uint64_t)std::hash<std::string>()(key), offset);
}

void DuplicateKeys::finish(const char* text, size_t len, bool quote_input) const {
  if (seen_.size() < 2) return;
  std::vector<std::pair<uint64_t, size_t>> s(seen_);
  std::sort(s.begin(), s.end());
  size_t dup_at = SIZE_MAX;
  std::string dup;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i].first != s[i + 1].first) continue;
    // Equal hashes: compare the keys themselves (re-read from the text).
    size_t j = i + 1;
    while (j < s.size() && s[j].first == s[i].first) ++j;
    for (size_t a = i; a < j; ++a) {
      JsonReader ra(text, len, quote_input);
      ra.seek(s[a].second);
      std::string ka = ra.read_string();
      for (size_t b = a + 1; b < j; ++b) {
        JsonReader rb(text, len, quote_input);
        rb.seek(s[b].second);
        if (rb.read_string() == ka && s[b].second < dup_at) {
          dup_at = s[b].second;
          dup = ka;
        }
      }
    }
    i = j - 1;
  }
  if (dup_at != SIZE_MAX) {
    JsonReader r(text, len, quote_input);
    r.fail_at(dup_at, quote_input ? "duplicate key \"" + shorten(dup, 64) + "\"" : "duplicate key");
  }
}

JValue json_parse(const char* text, size_t len, int max_depth, int64_t max_values) {
  if (!text && len) throw JsonError("invalid JSON at offset 0: input is NULL");
  JsonReader r(text, len, true, max_depth);
  JValue v = r.read_value(max_values);
  r.finish();
  return v;
}

}  // namespace engine
}  // namespace lmoe
