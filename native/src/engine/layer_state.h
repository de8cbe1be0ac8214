// What an open layer holds (freed by lmoe_layer_close): its config, the weight descriptors the
// kernels read, the checkpoint that owns the mappings, the memory it had to convert, and the
// forward workspaces. The handle around it (engine.cpp) outlives it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "latentmoe_engine.h"

namespace lmoe {
namespace engine {

struct Workspace {
  void* buf = nullptr;
  int64_t bytes = 0;
  std::vector<int32_t> ids;
  std::vector<float> wts;
  ~Workspace() { std::free(buf); }
};

struct LayerState {
  lmoe_config cfg{};
  lmoe_weights w{};
  std::unique_ptr<Checkpoint> ckpt;           // owns the mappings
  std::vector<lmoe_matrix> up, gate, down;    // per-expert descriptors
  std::vector<void*> owned;                   // widened / realigned copies (free())
  lmoe_layer_memory memory{};
  int32_t expert_dtype = LMOE_DTYPE_F32;      // lmoe_layer_weight_info
  int32_t gate_dtype = LMOE_DTYPE_F32;
  std::mutex pool_mutex;
  std::vector<Workspace*> pool;               // idle workspaces

  ~LayerState() {
    for (void* p : owned) std::free(p);
    for (Workspace* ws : pool) delete ws;
  }
};

// Opens layer `layer` of the checkpoint in dir into L (weights.cpp); throws EngineError.
void load_layer(LayerState& L, const std::string& dir, int layer);

// The layer's config from config.json and the weights' names only (no tensor is read).
lmoe_config read_layer_config(const std::string& dir, int layer);

}  // namespace engine
}  // namespace lmoe
