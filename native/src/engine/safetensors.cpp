#include "safetensors.h"

#include <cerrno>
#include <cstring>
#include <sys/mman.h>

#include "json.h"

namespace lmoe {
namespace engine {

namespace {

constexpr int kMaxRank = 64;

[[noreturn]] void bad(const std::string& file, const std::string& msg) { invalid(file + ": " + msg); }

const char* kind_name(JValue::Kind k) {
  switch (k) {
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

// One header entry, validated; dims kept only when `keep`.
struct EntryReader {
  JsonReader& r;
  const std::string& file;
  int64_t data_size;
  const char* text;  // the header, for the duplicate-key check
  size_t len;

  void read(const std::string& name, bool keep, TensorInfo& info) {
    const std::string where = "corrupt header: tensor '" + shorten(name) + "': ";
    JValue::Kind k = r.peek();
    if (k != JValue::OBJECT) bad(file, where + "entry must be an object, got " + kind_name(k));
    r.begin_object();
    bool has_dtype = false, has_shape = false, has_offsets = false;
    int64_t numel = 1;
    std::string key;
    size_t at = 0;
    DuplicateKeys dups;
    while (r.next_member(key, &at)) {
      dups.add(key, at);
      if (key == "dtype") {
        k = r.peek();
        if (k != JValue::STRING) bad(file, where + "dtype must be a string, got " + kind_name(k));
        info.dtype.clear();
        r.read_string_into(info.dtype);
        has_dtype = true;
      } else if (key == "shape") {
        k = r.peek();
        if (k != JValue::ARRAY) bad(file, where + "shape must be an array, got " + kind_name(k));
        r.begin_array();
        info.shape.clear();
        int rank = 0;
        while (r.next_element()) {
          if (r.peek() != JValue::DOUBLE) bad(file, where + "shape must hold non-negative integers");
          JValue d = r.read_scalar();
          if (d.kind != JValue::INT || d.i < 0) bad(file, where + "shape must hold non-negative integers");
          if (++rank > kMaxRank) bad(file, where + "shape has more than " + std::to_string(kMaxRank) + " dimensions");
          if (keep) info.shape.push_back(d.i);
          if (__builtin_mul_overflow(numel, d.i, &numel)) bad(file, where + "shape overflows");
        }
        has_shape = true;
      } else if (key == "data_offsets") {
        k = r.peek();
        if (k != JValue::ARRAY) bad(file, where + "data_offsets must be [begin, end] integers");
        r.begin_array();
        int64_t v[2] = {0, 0};
        int count = 0;
        while (r.next_element()) {
          if (r.peek() != JValue::DOUBLE || count >= 2) bad(file, where + "data_offsets must be [begin, end] integers");
          JValue d = r.read_scalar();
          if (d.kind != JValue::INT) bad(file, where + "data_offsets must be [begin, end] integers");
          v[count++] = d.i;
        }
        if (count != 2) bad(file, where + "data_offsets must be [begin, end] integers");
        info.begin = v[0];
        info.end = v[1];
        has_offsets = true;
      } else {
        r.skip_value();
      }
    }
    dups.finish(text, len, false);
    if (!has_dtype) bad(file, where + "dtype must be a string, got absent");
    if (!has_shape) bad(file, where + "shape must be an array, got absent");
    if (!has_offsets) bad(file, where + "data_offsets must be [begin, end] integers");
    const std::string offs = "[" + std::to_string((long long)info.begin) + ", " + std::to_string((long long)info.end) + "]";
    if (info.begin < 0 || info.begin > info.end) bad(file, where + "data_offsets " + offs + " are not 0 <= begin <= end");
    if (info.end > data_size) {
      bad(file, where + "data_offsets " + offs + " run past the " + std::to_string((long long)data_size) +
                    "-byte data region (truncated file?)");
    }
    int bits = dtype_bits(info.dtype);
    if (bits) {
      int64_t want_bits;
      if (__builtin_mul_overflow(numel, (int64_t)bits, &want_bits)) bad(file, where + "shape overflows");
      if (want_bits % 8 != 0 || want_bits / 8 != info.end - info.begin) {
        bad(file, where + shorten(info.dtype) + " needs " +
                      (want_bits % 8 == 0 ? std::to_string((long long)(want_bits / 8)) + " bytes"
                                          : std::to_string((long long)want_bits) + " bits") +
                      " but data_offsets " + offs + " span " + std::to_string((long long)(info.end - info.begin)));
      }
    }
  }
};

}  // namespace

int dtype_bits(const std::string& d) {
  static const std::unordered_map<std::string, int> bits = {
      {"BOOL", 8}, {"U8", 8}, {"I8", 8}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
      {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"I16", 16}, {"U16", 16}, {"F16", 16},
      {"BF16", 16}, {"I32", 32}, {"U32", 32}, {"F32", 32}, {"I64", 64}, {"U64", 64},
      {"F64", 64}, {"C64", 64}};
  auto it = bits.find(d);
  return it == bits.end() ? 0 : it->second;
}

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::open(const CheckpointRoot& root, const std::string& path,
                                                       const NameFilter& filter) {
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;
  int64_t size = 0;
  {
    CheckpointFile file;
    open_checkpoint_file(root, path, file);
    size = file.size;
    if (size < 8) bad(path, "truncated: " + std::to_string((long long)size) + " bytes, too short for the 8-byte header length");
    void* m = ::mmap(nullptr, (size_t)size, PROT_READ, MAP_PRIVATE, file.fd, 0);
    if (m == MAP_FAILED) bad(path, std::string("cannot map file: ") + std::strerror(errno));
    f->base_ = (const char*)m;
    f->size_ = (size_t)size;  // unmapped by the destructor from here on
  }
  // The length field is the file's own bytes: its value is never shown (the file may be anything).
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | (unsigned char)f->base_[k];
  if (n > (uint64_t)kMaxHeaderBytes) {
    bad(path, "not a safetensors file: its header length field exceeds the limit of " +
                  std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if ((int64_t)n > size - 8) {
    bad(path, "truncated or corrupt (or not a safetensors file): its header length field exceeds the " +
                  std::to_string((long long)(size - 8)) + " bytes after it");
  }
  const char* h = f->base_ + 8;
  if (!valid_utf8(h, (size_t)n)) bad(path, "corrupt header: not valid UTF-8");
  const int64_t data_size = size - 8 - (int64_t)n;
  f->data_offset_ = 8 + (int64_t)n;
  try {
    JsonReader r(h, (size_t)n, /*quote_input=*/false);
    JValue::Kind k = r.peek();
    if (k != JValue::OBJECT) bad(path, std::string("corrupt header: expected a JSON object, got ") + kind_name(k));
    r.begin_object();
    DuplicateKeys dups;
    EntryReader entry{r, path, data_size, h, (size_t)n};
    std::string name;
    size_t at = 0;
    TensorInfo scratch;
    while (r.next_member(name, &at)) {
      dups.add(name, at);
      if (name == "__metadata__") {
        k = r.peek();
        if (k != JValue::OBJECT) bad(path, std::string("corrupt header: __metadata__ must be an object, got ") + kind_name(k));
        r.begin_object();
        std::string mk;
        size_t mat = 0;
        DuplicateKeys mdups;
        while (r.next_member(mk, &mat)) {
          mdups.add(mk, mat);
          k = r.peek();
          if (k != JValue::STRING) {
            bad(path, "corrupt header: __metadata__ value of '" + shorten(mk) + "' must be a string, got " + kind_name(k));
          }
          r.skip_value();
        }
        mdups.finish(h, (size_t)n, false);
        continue;
      }
      const NameUse use = filter ? filter(name) : NameUse::kKeep;
      const bool keep = use == NameUse::kKeep;
      TensorInfo info;
      entry.read(name, keep, keep ? info : scratch);
      if (keep) {
        f->kept_order_.push_back(name);
        f->tensors_.emplace(name, std::move(info));
      } else if (use == NameUse::kUnknown && f->first_unknown_.empty()) {
        f->first_unknown_ = name;
      }
    }
    r.finish();
    dups.finish(h, (size_t)n, false);
  } catch (const JsonError& e) {
    bad(path, std::string("corrupt header: ") + e.what());
  }
  return f;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (base_) ::munmap((void*)base_, size_);
}

const TensorInfo* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace engine
}  // namespace lmoe
