// The checkpoint's quantization as ModelOpt describes it, in hf_quant_config.json
// ("quantization": {quant_algo, exclude_modules, quantized_layers, group_size}) and/or config.json
// ("quantization_config": {quant_method: "modelopt", quant_algo, ignore, quantized_layers}). Both
// are read and must agree. quant_algo FP8 or NVFP4 quantizes every linear module not excluded;
// MIXED_PRECISION quantizes exactly the modules quantized_layers lists (the fused experts of a
// layer as one key, "backbone.layers.{i}.mixer.experts"). Module names are taken as ModelOpt 0.47
// writes them for NemotronH too: cut at a NUL ("...fc1_latent_proj.\u0000backbone.pt_name_sentinel"),
// a trailing '.' dropped unless a '*' glob follows it. A name matches its module and the modules
// under it; '*' matches any characters.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "json.h"

namespace lmoe {
namespace engine {

enum class QuantAlgo { kNone, kFp8, kNvfp4 };

const char* quant_algo_name(QuantAlgo a);

class QuantConfig {
 public:
  // config_path / quant_path name the files for messages; hf_quant may be nullptr.
  static QuantConfig read(const JValue& config, const std::string& config_path, const JValue* hf_quant,
                          const std::string& quant_path);

  bool any() const { return global_ != QuantAlgo::kNone || mixed_; }
  // How module (e.g. "backbone.layers.0.mixer.experts.3.up_proj") is stored.
  QuantAlgo algo_of(const std::string& module) const;
  // Checks that every module the per-module map names under layer_prefix ("backbone.layers.{i}.")
  // is one `exists` accepts (a module of this layer or a parent of one); throws naming it.
  template <class Exists>
  void check_named_modules(const std::string& layer_prefix, Exists exists) const {
    for (auto& kv : layers_) {
      const std::string& m = kv.first;
      if (m.compare(0, layer_prefix.size(), layer_prefix) != 0 || m.find('*') != std::string::npos) continue;
      if (!exists(m)) unknown_module(m);
    }
  }
  // "quant_algo FP8 (hf_quant_config.json)" and the like, for messages.
  const std::string& source() const { return source_; }

 private:
  [[noreturn]] void unknown_module(const std::string& m) const;
  QuantAlgo global_ = QuantAlgo::kNone;
  bool mixed_ = false;
  std::vector<std::string> excluded_;                       // normalised names / globs
  std::vector<std::pair<std::string, QuantAlgo>> layers_;  // MIXED_PRECISION map
  std::string source_;
};

// A module name as ModelOpt may write it, normalised (see the file comment).
std::string normalize_module_name(const std::string& name);
// True when pattern (a normalised name, maybe with '*') names module or a module above it.
bool module_matches(const std::string& pattern, const std::string& module);

}  // namespace engine
}  // namespace lmoe
