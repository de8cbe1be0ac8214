#include "json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

namespace {

class Parser {
 public:
  Parser(const char* s, size_t n, int max_depth) : s_(s), n_(n), max_depth_(max_depth) {}

  JValue parse() {
    ws();
    JValue v;
    value(v, 0);
    ws();
    if (pos_ != n_) fail("unexpected " + describe(pos_) + " after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& m) const { fail_at(pos_, m); }
  [[noreturn]] void fail_at(size_t at, const std::string& m) const {
    throw JsonError("invalid JSON at offset " + std::to_string(at) + ": " + m);
  }
  std::string describe(size_t at) const {
    if (at >= n_) return "end of input";
    unsigned char c = (unsigned char)s_[at];
    char buf[32];
    if (c < 0x20 || c > 0x7E) std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    else std::snprintf(buf, sizeof buf, "'%c'", c);
    return buf;
  }
  void ws() {
    while (pos_ < n_) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') ++pos_;
      else break;
    }
  }
  void value(JValue& v, int depth) {
    if (pos_ >= n_) fail("unexpected end of input, expected a value");
    char c = s_[pos_];
    switch (c) {
      case '{': object(v, depth + 1); return;
      case '[': array(v, depth + 1); return;
      case '"': v.kind = JValue::STRING; string(v.s); return;
      case 't': literal("true"); v.kind = JValue::BOOL; v.b = true; return;
      case 'f': literal("false"); v.kind = JValue::BOOL; v.b = false; return;
      case 'n': literal("null"); v.kind = JValue::NUL; return;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) { number(v); return; }
        fail("unexpected " + describe(pos_) + ", expected a value");
    }
  }
  void literal(const char* w) {
    size_t k = 0;
    while (w[k]) {
      if (pos_ + k >= n_ || s_[pos_ + k] != w[k]) fail("unexpected " + describe(pos_) + ", expected a value");
      ++k;
    }
    pos_ += k;
  }
  void object(JValue& v, int depth) {
    if (depth > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_));
    v.kind = JValue::OBJECT;
    ++pos_;
    ws();
    if (pos_ < n_ && s_[pos_] == '}') { ++pos_; return; }
    std::unordered_set<std::string> keys;
    for (;;) {
      ws();
      if (pos_ >= n_ || s_[pos_] != '"') fail("expected a string key, got " + describe(pos_));
      size_t key_at = pos_;
      std::string key;
      string(key);
      ws();
      if (pos_ >= n_ || s_[pos_] != ':') fail("expected ':' after key, got " + describe(pos_));
      ++pos_;
      ws();
      JValue child;
      value(child, depth);
      if (!keys.insert(key).second) {
        std::string shown = key.size() <= 64 ? key : key.substr(0, 61) + "...";
        fail_at(key_at, "duplicate key \"" + shown + "\"");
      }
      v.obj.emplace_back(std::move(key), std::move(child));
      ws();
      if (pos_ >= n_) fail("unexpected end of input in an object");
      char c = s_[pos_++];
      if (c == '}') return;
      if (c != ',') { --pos_; fail("expected ',' or '}' in an object, got " + describe(pos_)); }
    }
  }
  void array(JValue& v, int depth) {
    if (depth > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_));
    v.kind = JValue::ARRAY;
    ++pos_;
    ws();
    if (pos_ < n_ && s_[pos_] == ']') { ++pos_; return; }
    for (;;) {
      ws();
      v.arr.emplace_back();
      value(v.arr.back(), depth);
      ws();
      if (pos_ >= n_) fail("unexpected end of input in an array");
      char c = s_[pos_++];
      if (c == ']') return;
      if (c != ',') { --pos_; fail("expected ',' or ']' in an array, got " + describe(pos_)); }
    }
  }
  unsigned hex4() {
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
  static void put_utf8(std::string& out, unsigned cp) {
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
  void string(std::string& out) {
    size_t open = pos_++;
    for (;;) {
      if (pos_ >= n_) fail_at(open, "unterminated string");
      unsigned char c = (unsigned char)s_[pos_];
      if (c == '"') { ++pos_; return; }
      if (c < 0x20) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "raw control character U+%04X in a string", c);
        fail(buf);
      }
      if (c != '\\') { out += (char)c; ++pos_; continue; }
      ++pos_;
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
          fail(std::string("invalid escape '\\") + (e < 0x20 || e > 0x7E ? '?' : e) + "'");
      }
    }
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  void number(JValue& v) {
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
      // Overflow is an error (as in Java, where the value would be infinite); underflow is 0.
      std::string text(b, e);
      errno = 0;
      double sv = std::strtod(text.c_str(), nullptr);
      if (std::isinf(sv)) fail_at(start, "number " + text.substr(0, 64) + " out of range");
      dv = sv;
    } else if (r.ec != std::errc() || r.ptr != e) {
      fail_at(start, "malformed number");
    }
    if (std::isinf(dv)) fail_at(start, "number out of range");
    v.kind = JValue::DOUBLE;
    v.d = dv;
  }

  const char* s_;
  size_t n_;
  int max_depth_;
  size_t pos_ = 0;
};

}  // namespace

JValue json_parse(const char* text, size_t len, int max_depth) {
  if (!text && len) throw JsonError("invalid JSON at offset 0: input is NULL");
  Parser p(text ? text : "", len, max_depth);
  return p.parse();
}

}  // namespace engine
}  // namespace lmoe
