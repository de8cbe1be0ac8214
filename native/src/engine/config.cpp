#include "config.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <vector>

#include "files.h"

namespace lmoe {
namespace engine {

namespace {

[[noreturn]] void bad_config(const std::string& m) { invalid("invalid MoE config: " + m); }

bool absent(const JValue* v) { return !v || v->kind == JValue::NUL; }

std::string show(const JValue* v) {
  if (!v) return "absent";
  switch (v->kind) {
    case JValue::INT: return std::to_string((long long)v->i);
    case JValue::DOUBLE: { char b[64]; std::snprintf(b, sizeof b, "%.17g", v->d); return b; }
    case JValue::STRING: return "'" + shorten(v->s, 64) + "'";
    case JValue::BOOL: return v->b ? "true" : "false";
    default: return json_type_name(v);
  }
}

int int_key(const JValue& j, const char* key, bool has_fallback, int fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) {
    if (has_fallback) return fallback;
    bad_config(std::string("config.json has no '") + key + "'");
  }
  if (v->is_number()) {
    double dv = v->as_double();
    if (dv == std::rint(dv) && std::fabs(dv) <= (double)INT_MAX) return (int)dv;
  }
  bad_config(std::string("'") + key + "' must be an integer, got " + show(v));
}

double double_key(const JValue& j, const char* key, double fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->is_number()) return v->as_double();
  bad_config(std::string("'") + key + "' must be a number, got " + show(v));
}

bool bool_key(const JValue& j, const char* key, bool fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->kind == JValue::BOOL) return v->b;
  bad_config(std::string("'") + key + "' must be true or false, got " + show(v));
}

std::string string_key(const JValue& j, const char* key, const char* fallback) {
  const JValue* v = j.get(key);
  if (absent(v)) return fallback;
  if (v->kind == JValue::STRING) return v->s;
  bad_config(std::string("'") + key + "' must be a string, got " + show(v));
}

// The kind of layer `layer` ("moe", "mamba", "attention", "mlp"), or "" when config.json does not
// say (no layers_block_type, no hybrid_override_pattern: any layer index may hold a MoE).
std::string layer_kind(const JValue& j, const std::string& path, int layer) {
  std::vector<std::string> kinds;
  const char* from = nullptr;
  const JValue* types = j.get("layers_block_type");
  const JValue* pattern = j.get("hybrid_override_pattern");
  if (!absent(types)) {
    from = "layers_block_type";
    if (types->kind != JValue::ARRAY) bad_config("'layers_block_type' must be an array, got " + show(types));
    for (const JValue& t : types->arr) {
      if (t.kind != JValue::STRING) bad_config("'layers_block_type' must hold strings, got " + show(&t));
      // transformers 5 names (linear_attention, full_attention) and the legacy ones.
      if (t.s == "moe") kinds.push_back("moe");
      else if (t.s == "mamba" || t.s == "linear_attention") kinds.push_back("mamba");
      else if (t.s == "attention" || t.s == "full_attention") kinds.push_back("attention");
      else if (t.s == "mlp") kinds.push_back("mlp");
      else kinds.push_back(shorten(t.s, 32));
    }
  } else if (!absent(pattern)) {
    from = "hybrid_override_pattern";
    if (pattern->kind != JValue::STRING) bad_config("'hybrid_override_pattern' must be a string, got " + show(pattern));
    for (char c : pattern->s) {
      switch (c) {
        case 'E': kinds.push_back("moe"); break;
        case 'M': kinds.push_back("mamba"); break;
        case '*': kinds.push_back("attention"); break;
        case '-': kinds.push_back("mlp"); break;
        default: kinds.push_back(std::string("'") + ((unsigned char)c < 0x20 || (unsigned char)c > 0x7E ? '?' : c) + "'");
      }
    }
  } else {
    return "";
  }
  if (layer >= (int)kinds.size()) {
    invalid(path + ": layer " + std::to_string(layer) + " does not exist: " + from + " lists " +
            std::to_string(kinds.size()) + " layers");
  }
  return kinds[(size_t)layer];
}

}  // namespace

LayerConfig parse_layer_config(const JValue& j, const std::string& path, int layer) {
  const std::string kind = layer_kind(j, path, layer);
  if (!kind.empty() && kind != "moe") {
    const std::string shown = kind == "mlp" ? "MLP" : kind;
    const bool an = shown == "attention" || shown == "MLP";
    invalid(path + ": layer " + std::to_string(layer) + " is " + (an ? "an " : "a ") + shown +
            " layer, not a MoE layer");
  }
  LayerConfig out;
  lmoe_config& c = out.cfg;
  c.hidden_size = int_key(j, "hidden_size", false, 0);
  c.latent_size = absent(j.get("moe_latent_size")) ? 0 : int_key(j, "moe_latent_size", false, 0);
  c.num_experts = int_key(j, "n_routed_experts", false, 0);
  c.top_k = int_key(j, "num_experts_per_tok", false, 0);
  c.expert_intermediate_size = int_key(j, "moe_intermediate_size", false, 0);
  c.shared_intermediate_size = int_key(j, "moe_shared_expert_intermediate_size", true, 0);
  c.routed_scaling_factor = (float)double_key(j, "routed_scaling_factor", 1.0);
  c.norm_topk_prob = bool_key(j, "norm_topk_prob", true) ? 1 : 0;
  c.precision = LMOE_PRECISION_EXACT;
  out.act = string_key(j, "mlp_hidden_act", "relu2");
  if (out.act == "relu2") c.activation = LMOE_ACT_RELU2;
  else if (out.act == "silu" || out.act == "swiglu") c.activation = LMOE_ACT_SILU;  // gated or not: the weights say
  else fail(LMOE_ERR_UNSUPPORTED, "unsupported mlp_hidden_act '" + shorten(out.act, 64) + "' (relu2, silu, swiglu)");
  std::string sc = string_key(j, "scoring_func", "sigmoid");
  if (sc == "sigmoid") c.scoring = LMOE_SCORING_SIGMOID;
  else if (sc == "softmax") c.scoring = LMOE_SCORING_SOFTMAX;
  else fail(LMOE_ERR_UNSUPPORTED, "unsupported scoring_func '" + shorten(sc, 64) + "' (sigmoid, softmax)");
  const JValue* groups = j.get("n_group");
  if (!absent(groups) && int_key(j, "n_group", true, 1) > 1) {
    fail(LMOE_ERR_UNSUPPORTED, "invalid MoE config: group-limited routing (n_group = " + show(groups) +
                                   ") is not supported");
  }
  // transformers' nemotron_h adds biases to fc1/fc2_latent_proj and the shared expert's up/down
  // projections; the kernels have none, so such a layer is refused rather than computed without them.
  if (bool_key(j, "mlp_bias", false)) {
    fail(LMOE_ERR_UNSUPPORTED, path + ": mlp_bias is true: transformers then adds biases to fc1_latent_proj, "
                               "fc2_latent_proj and the shared expert's up_proj / down_proj, which this library "
                               "does not apply; refusing the checkpoint rather than computing another layer");
  }
  if (c.hidden_size <= 0) bad_config("hidden_size must be > 0, got " + std::to_string(c.hidden_size));
  if (c.latent_size < 0) bad_config("moe_latent_size must be >= 0, got " + std::to_string(c.latent_size));
  if (c.num_experts < 1 || c.num_experts > 2048)
    bad_config("n_routed_experts must be in 1..2048, got " + std::to_string(c.num_experts));
  if (c.top_k < 1 || c.top_k > 32)
    bad_config("num_experts_per_tok must be in 1..32, got " + std::to_string(c.top_k));
  if (c.top_k > c.num_experts)
    bad_config("num_experts_per_tok (" + std::to_string(c.top_k) + ") > n_routed_experts (" +
               std::to_string(c.num_experts) + ")");
  if (c.expert_intermediate_size <= 0)
    bad_config("moe_intermediate_size must be > 0, got " + std::to_string(c.expert_intermediate_size));
  if (c.shared_intermediate_size < 0)
    bad_config("moe_shared_expert_intermediate_size must be >= 0, got " + std::to_string(c.shared_intermediate_size));
  if (!std::isfinite(c.routed_scaling_factor)) bad_config("routed_scaling_factor must be finite");
  return out;
}

}  // namespace engine
}  // namespace lmoe
