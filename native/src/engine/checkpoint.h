// A checkpoint directory as the engine reads it: config.json, hf_quant_config.json (optional),
// then model.safetensors or, when that is absent, model.safetensors.index.json whose weight_map
// names the shard of every tensor. Every file goes through the policy of files.h (regular files
// inside the directory or its hub blobs, never a blocking open). Only the tensors a NameFilter
// keeps are indexed, so memory is bounded by the layer, not by the checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "files.h"
#include "json.h"
#include "safetensors.h"

namespace lmoe {
namespace engine {

// A tensor's header entry and bytes (mapped, read-only).
struct TensorView {
  std::string name;
  std::string dtype;           // safetensors dtype name
  std::vector<int64_t> shape;  // as written ([] for a scalar)
  const void* data = nullptr;
  int64_t nbytes = 0;
  std::string file;            // for messages
};

class Checkpoint {
 public:
  static constexpr int64_t kMaxConfigBytes = 16LL * 1024 * 1024;  // config.json, hf_quant_config.json
  static constexpr int64_t kMaxIndexBytes = 64LL * 1024 * 1024;   // model.safetensors.index.json
  static constexpr int64_t kMaxConfigValues = 1 << 20;            // JSON values in a config file

  explicit Checkpoint(const std::string& dir);  // throws EngineError

  const JValue& config() const { return config_; }
  // hf_quant_config.json, or nullptr when the checkpoint has none.
  const JValue* quant_config() const { return has_quant_config_ ? &quant_config_ : nullptr; }
  const CheckpointRoot& root() const { return root_; }
  std::string file(const char* name) const { return (root_.dir == "/" ? "" : root_.dir) + "/" + name; }

  // Indexes the tensors `filter` keeps (model.safetensors' header, or the index's weight map).
  void index(const NameFilter& filter);
  bool has(const std::string& name) const { return weight_map_.count(name) != 0; }
  TensorView tensor(const std::string& name);  // maps its shard on first use
  // The first tensor name the filter called unknown, "" when none.
  const std::string& first_unknown() const { return first_unknown_; }
  // Bytes of the files mapped so far.
  int64_t mapped_bytes() const;

 private:
  CheckpointRoot root_;
  JValue config_;
  JValue quant_config_;
  bool has_quant_config_ = false;
  NameFilter filter_;
  std::unordered_map<std::string, int> weight_map_;  // tensor -> shard index
  std::vector<std::string> shard_paths_;
  std::vector<std::unique_ptr<SafeTensorsFile>> shards_;
  std::string first_unknown_;
};

// Reads a UTF-8 JSON object file of at most max_bytes (errors name the file).
JValue read_json_object(const CheckpointRoot& root, const std::string& path, int64_t max_bytes);

}  // namespace engine
}  // namespace lmoe
