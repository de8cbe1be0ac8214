// config.json of a Nemotron-H style checkpoint, for one layer: the MoE hyper-parameters (keys and
// defaults in latentmoe_engine.h), the layer's kind (layers_block_type / hybrid_override_pattern:
// asking for a mamba, attention or MLP layer is an error that says so) and what the loader must
// refuse (mlp_bias: true, group-limited routing).
#pragma once

#include <string>

#include "json.h"
#include "latentmoe.h"

namespace lmoe {
namespace engine {

struct LayerConfig {
  lmoe_config cfg{};  // activation: RELU2, or SILU for "silu"/"swiglu" until the weights decide
  std::string act;    // mlp_hidden_act as written: relu2, silu or swiglu
};

// Throws EngineError with messages naming config.json's keys.
LayerConfig parse_layer_config(const JValue& config, const std::string& path, int layer);

}  // namespace engine
}  // namespace lmoe
