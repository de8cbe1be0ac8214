// Checkpoint reading for the engine ABI: config.json, model.safetensors or a sharded index, with
// the validation rules of the Java library's Checkpoint / SafeTensorsFile.
#pragma once

#include "json.h"
#include "latentmoe.h"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace lmoe {
namespace engine {

// A failure to report through lmoe_last_error with its status.
struct EngineError : std::runtime_error {
  lmoe_status status;
  EngineError(lmoe_status s, const std::string& m) : std::runtime_error(m), status(s) {}
};

[[noreturn]] void fail(lmoe_status s, const std::string& msg);

struct TensorInfo {
  std::string dtype;            // as written in the header
  std::vector<int64_t> shape;   // as written ([] for a scalar)
  int64_t begin = 0, end = 0;   // relative to the data region
};

// A memory-mapped, fully validated safetensors file.
class SafeTensorsFile {
 public:
  static constexpr int64_t kMaxHeaderBytes = 100LL * 1024 * 1024;
  static std::unique_ptr<SafeTensorsFile> open(const std::string& path);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const TensorInfo* find(const std::string& name) const;
  const char* data_of(const TensorInfo& t) const { return base_ + data_offset_ + t.begin; }
  const std::string& path() const { return path_; }
  size_t mapped_bytes() const { return size_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& kv : tensors_) out.push_back(kv.first);
    return out;
  }

 private:
  SafeTensorsFile() = default;
  std::string path_;
  const char* base_ = nullptr;
  size_t size_ = 0;
  int64_t data_offset_ = 0;
  std::unordered_map<std::string, TensorInfo> tensors_;
};

// A tensor of a supported dtype (F32, BF16, F16, I32), shape rank-0 reported as [1].
struct TensorView {
  std::string name;
  int dtype = LMOE_DTYPE_F32;  // lmoe_dtype
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t numel = 0;
};

class Checkpoint {
 public:
  static constexpr int64_t kMaxJsonBytes = 64LL * 1024 * 1024;
  explicit Checkpoint(const std::string& dir);  // throws EngineError

  const JValue& config() const { return config_; }
  bool has(const std::string& name) const { return weight_map_.count(name) != 0; }
  TensorView tensor(const std::string& name);  // maps its shard on first use
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  JValue config_;
  std::unordered_map<std::string, int> weight_map_;  // tensor -> shard index
  std::vector<std::string> shard_paths_;
  std::vector<std::unique_ptr<SafeTensorsFile>> shards_;
};

// Reads a UTF-8 JSON object file of at most Checkpoint::kMaxJsonBytes (errors name the file).
JValue read_json_object(const std::string& path);

}  // namespace engine
}  // namespace lmoe
