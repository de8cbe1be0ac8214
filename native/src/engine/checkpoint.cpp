#include "checkpoint.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lmoe {
namespace engine {

void fail(lmoe_status s, const std::string& msg) { throw EngineError(s, msg); }

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& msg) {
  fail(LMOE_ERR_INVALID_ARGUMENT, file + ": " + msg);
}

std::string shorten(const std::string& s, size_t n = 200) {
  std::string out = s.size() <= n ? s : s.substr(0, n) + "...";
  for (char& c : out)
    if ((unsigned char)c < 0x20) c = '?';
  return out;
}

int dtype_bits(const std::string& d) {
  static const std::unordered_map<std::string, int> bits = {
      {"BOOL", 8}, {"U8", 8}, {"I8", 8}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
      {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"I16", 16}, {"U16", 16}, {"F16", 16},
      {"BF16", 16}, {"I32", 32}, {"U32", 32}, {"F32", 32}, {"I64", 64}, {"U64", 64},
      {"F64", 64}, {"C64", 64}};
  auto it = bits.find(d);
  return it == bits.end() ? 0 : it->second;
}

bool is_regular(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Lexical normalisation of an absolute path: "." and empty components dropped, ".." pops.
std::string normalize_abs(const std::string& p) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string c = p.substr(i, j - i);
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!c.empty() && c != ".") {
      parts.push_back(c);
    }
    i = j + 1;
  }
  std::string out;
  for (auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return normalize_abs(p);
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) fail(LMOE_ERR_INVALID_ARGUMENT, "cannot resolve the working directory");
  return normalize_abs(std::string(buf) + "/" + p);
}

std::string resolve_shard(const std::string& dir, const std::string& index, const std::string& name) {
  const char* problem = nullptr;
  std::string rel;
  if (name.empty() || name.find('\0') != std::string::npos || name.find('\\') != std::string::npos) {
    problem = "is not a plain relative file name";
  } else if (name[0] == '/') {
    problem = "is an absolute path";
  } else {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i <= name.size() && !problem) {
      size_t j = name.find('/', i);
      if (j == std::string::npos) j = name.size();
      std::string c = name.substr(i, j - i);
      if (c == "..") {
        if (parts.empty()) problem = "escapes the checkpoint directory";
        else parts.pop_back();
      } else if (!c.empty() && c != ".") {
        parts.push_back(c);
      }
      i = j + 1;
    }
    if (!problem && parts.empty()) problem = "escapes the checkpoint directory";
    for (auto& c : parts) rel += "/" + c;
  }
  if (problem) {
    std::string shown = name.size() > 200 ? name.substr(0, 200) + "..." : name;
    std::string esc;
    for (char c : shown) esc += c == '\0' ? std::string("\\0") : std::string(1, c);
    bad(index, "shard file name '" + shorten(esc, 220) + "' " + problem);
  }
  return (dir == "/" ? "" : dir) + rel;
}

}  // namespace

JValue read_json_object(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    bad(path, "file not found");
  }
  if (st.st_size > Checkpoint::kMaxJsonBytes) {
    ::close(fd);
    bad(path, std::to_string((long long)st.st_size) + " bytes exceeds the limit of " +
                  std::to_string(Checkpoint::kMaxJsonBytes));
  }
  std::string text((size_t)st.st_size, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t r = ::read(fd, &text[got], text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  ::close(fd);
  text.resize(got);
  if (!valid_utf8(text.data(), text.size())) bad(path, "not valid UTF-8");
  size_t skip = text.size() >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
                        (unsigned char)text[2] == 0xBF ? 3 : 0;
  JValue v;
  try {
    v = json_parse(text.data() + skip, text.size() - skip);
  } catch (const JsonError& e) {
    bad(path, e.what());
  }
  if (v.kind != JValue::OBJECT) bad(path, std::string("expected a JSON object, got ") + json_type_name(&v));
  return v;
}

// ------------------------------------------------------------------ safetensors

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad(path, std::string("cannot map file: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad(path, "cannot map file: not a regular file");
  }
  const int64_t size = st.st_size;
  if (size < 8) {
    ::close(fd);
    bad(path, "truncated: " + std::to_string((long long)size) +
                  " bytes, too short for the 8-byte header length");
  }
  void* m = ::mmap(nullptr, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) bad(path, std::string("cannot map file: ") + std::strerror(errno));
  f->base_ = (const char*)m;
  f->size_ = (size_t)size;  // unmapped by the destructor from here on
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | (unsigned char)f->base_[k];
  if (n > (uint64_t)kMaxHeaderBytes) {
    bad(path, "header length " + std::to_string((unsigned long long)n) + " exceeds the limit of " +
                  std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if ((int64_t)n > size - 8) {
    bad(path, "truncated or corrupt: header length " + std::to_string((unsigned long long)n) +
                  " exceeds the " + std::to_string((long long)(size - 8)) +
                  " bytes after the length field");
  }
  const char* h = f->base_ + 8;
  if (!valid_utf8(h, (size_t)n)) bad(path, "corrupt header: not valid UTF-8");
  JValue root;
  try {
    root = json_parse(h, (size_t)n);
  } catch (const JsonError& e) {
    bad(path, std::string("corrupt header: ") + e.what());
  }
  if (root.kind != JValue::OBJECT) {
    bad(path, std::string("corrupt header: expected a JSON object, got ") + json_type_name(&root));
  }
  const int64_t data_size = size - 8 - (int64_t)n;
  f->data_offset_ = 8 + (int64_t)n;
  for (auto& kv : root.obj) {
    const std::string& name = kv.first;
    const JValue& v = kv.second;
    if (name == "__metadata__") {
      if (v.kind != JValue::OBJECT) {
        bad(path, std::string("corrupt header: __metadata__ must be an object, got ") + json_type_name(&v));
      }
      for (auto& mkv : v.obj) {
        if (mkv.second.kind != JValue::STRING) {
          bad(path, "corrupt header: __metadata__ value of '" + shorten(mkv.first) +
                        "' must be a string, got " + json_type_name(&mkv.second));
        }
      }
      continue;
    }
    std::string where = "corrupt header: tensor '" + shorten(name) + "': ";
    if (v.kind != JValue::OBJECT) bad(path, where + "entry must be an object, got " + json_type_name(&v));
    const JValue* dt = v.get("dtype");
    if (!dt || dt->kind != JValue::STRING) bad(path, where + "dtype must be a string, got " + json_type_name(dt));
    const JValue* sh = v.get("shape");
    if (!sh || sh->kind != JValue::ARRAY) bad(path, where + "shape must be an array, got " + json_type_name(sh));
    TensorInfo info;
    info.dtype = dt->s;
    int64_t numel = 1;
    for (const JValue& d : sh->arr) {
      if (d.kind != JValue::INT || d.i < 0) bad(path, where + "shape must hold non-negative integers");
      info.shape.push_back(d.i);
      if (__builtin_mul_overflow(numel, d.i, &numel)) bad(path, where + "shape overflows");
    }
    const JValue* offs = v.get("data_offsets");
    if (!offs || offs->kind != JValue::ARRAY || offs->arr.size() != 2 || offs->arr[0].kind != JValue::INT ||
        offs->arr[1].kind != JValue::INT) {
      bad(path, where + "data_offsets must be [begin, end] integers");
    }
    info.begin = offs->arr[0].i;
    info.end = offs->arr[1].i;
    std::string offs_text = "[" + std::to_string((long long)info.begin) + ", " + std::to_string((long long)info.end) + "]";
    if (info.begin < 0 || info.begin > info.end) bad(path, where + "data_offsets " + offs_text + " are not 0 <= begin <= end");
    if (info.end > data_size) {
      bad(path, where + "data_offsets " + offs_text + " run past the " + std::to_string((long long)data_size) +
                    "-byte data region (truncated file?)");
    }
    int bits = dtype_bits(info.dtype);
    if (bits) {
      int64_t want_bits;
      if (__builtin_mul_overflow(numel, (int64_t)bits, &want_bits)) bad(path, where + "shape overflows");
      if (want_bits % 8 != 0 || want_bits / 8 != info.end - info.begin) {
        bad(path, where + shorten(info.dtype) + " needs " +
                      (want_bits % 8 == 0 ? std::to_string((long long)(want_bits / 8)) + " bytes"
                                          : std::to_string((long long)want_bits) + " bits") +
                      " but data_offsets " + offs_text + " span " + std::to_string((long long)(info.end - info.begin)));
      }
    }
    f->tensors_.emplace(name, std::move(info));
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

// ------------------------------------------------------------------ checkpoint

Checkpoint::Checkpoint(const std::string& dir_in) {
  dir_ = absolute(dir_in);
  if (!is_dir(dir_)) bad(dir_, "not a checkpoint directory");
  const std::string base = dir_ == "/" ? "" : dir_;
  config_ = read_json_object(base + "/config.json");
  const std::string single = base + "/model.safetensors";
  const std::string index = base + "/model.safetensors.index.json";
  if (exists(single)) {
    shards_.push_back(SafeTensorsFile::open(single));
    shard_paths_.push_back(single);
    for (auto& n : shards_[0]->names()) weight_map_.emplace(n, 0);
    return;
  }
  if (!exists(index)) bad(dir_, "neither model.safetensors nor model.safetensors.index.json found");
  JValue idx = read_json_object(index);
  const JValue* wm = idx.get("weight_map");
  if (!wm || wm->kind != JValue::OBJECT) {
    bad(index, std::string("weight_map must be an object, got ") + json_type_name(wm));
  }
  std::unordered_map<std::string, int> shard_of_name;
  for (auto& kv : wm->obj) {
    if (kv.second.kind != JValue::STRING) {
      bad(index, "weight_map entry of '" + shorten(kv.first) + "' must be a file name, got " +
                     json_type_name(&kv.second));
    }
    auto it = shard_of_name.find(kv.second.s);
    int s;
    if (it == shard_of_name.end()) {
      std::string p = resolve_shard(dir_, index, kv.second.s);
      if (!is_regular(p)) {
        bad(index, "shard '" + shorten(kv.second.s) + "' of tensor '" + shorten(kv.first) + "' does not exist");
      }
      s = (int)shard_paths_.size();
      shard_paths_.push_back(p);
      shards_.emplace_back();
      shard_of_name.emplace(kv.second.s, s);
    } else {
      s = it->second;
    }
    weight_map_.emplace(kv.first, s);
  }
}

TensorView Checkpoint::tensor(const std::string& name) {
  auto it = weight_map_.find(name);
  if (it == weight_map_.end()) bad(dir_, "no tensor '" + shorten(name) + "' in checkpoint");
  const int s = it->second;
  if (!shards_[s]) shards_[s] = SafeTensorsFile::open(shard_paths_[s]);
  const SafeTensorsFile& f = *shards_[s];
  const TensorInfo* info = f.find(name);
  if (!info) {
    bad(f.path(), "tensor '" + shorten(name) + "' is listed in model.safetensors.index.json but missing from the shard");
  }
  TensorView t;
  t.name = name;
  if (info->dtype == "F32") t.dtype = LMOE_DTYPE_F32;
  else if (info->dtype == "BF16") t.dtype = LMOE_DTYPE_BF16;
  else if (info->dtype == "F16") t.dtype = LMOE_DTYPE_F16;
  else if (info->dtype == "I32") t.dtype = LMOE_DTYPE_I32;
  else bad(f.path(), "tensor '" + shorten(name) + "' has unsupported dtype " + shorten(info->dtype) +
                         " (supported: F32, BF16, F16, I32)");
  t.shape = info->shape.empty() ? std::vector<int64_t>{1} : info->shape;
  t.numel = 1;
  for (int64_t d : t.shape) t.numel *= d;  // validated not to overflow
  t.data = f.data_of(*info);
  return t;
}

}  // namespace engine
}  // namespace lmoe
