#include "quant.h"

#include <fnmatch.h>

#include "files.h"

namespace lmoe {
namespace engine {

namespace {

struct Source {
  std::string algo;                                    // "" = none
  std::vector<std::string> excluded;
  std::vector<std::pair<std::string, QuantAlgo>> layers;
  bool present = false;
};

[[noreturn]] void unsupported(const std::string& m) { fail(LMOE_ERR_UNSUPPORTED, m); }

bool absent(const JValue* v) { return !v || v->kind == JValue::NUL; }

std::string str_or_empty(const JValue* v, const std::string& where) {
  if (absent(v)) return "";
  if (v->kind != JValue::STRING) invalid(where + " must be a string, got " + json_type_name(v));
  return v->s;
}

void read_names(const JValue* v, const std::string& where, std::vector<std::string>& out) {
  if (absent(v)) return;
  if (v->kind != JValue::ARRAY) invalid(where + " must be an array of module names, got " + json_type_name(v));
  for (const JValue& e : v->arr) {
    if (e.kind != JValue::STRING) invalid(where + " must hold module names (strings), got " + json_type_name(&e));
    out.push_back(normalize_module_name(e.s));
  }
}

void check_group_size(const JValue* g, const std::string& where) {
  if (absent(g)) return;
  if (g->kind != JValue::INT) invalid(where + " group_size must be an integer, got " + json_type_name(g));
  if (g->i != 16) unsupported(where + " group_size " + std::to_string((long long)g->i) + " is not supported (NVFP4 blocks of 16)");
}

QuantAlgo parse_algo(const std::string& a, const std::string& where) {
  if (a == "FP8") return QuantAlgo::kFp8;
  if (a == "NVFP4") return QuantAlgo::kNvfp4;
  unsupported(where + " quant_algo '" + shorten(a, 64) +
              "' is not supported (this library runs ModelOpt FP8, NVFP4 and MIXED_PRECISION checkpoints)");
}

void read_layers(const JValue* v, const std::string& where, Source& s) {
  if (absent(v)) return;
  if (v->kind != JValue::OBJECT) invalid(where + " quantized_layers must be an object, got " + json_type_name(v));
  for (auto& kv : v->obj) {
    const std::string module = normalize_module_name(kv.first);
    const std::string at = where + " quantized_layers['" + shorten(module, 120) + "']";
    if (kv.second.kind != JValue::OBJECT) invalid(at + " must be an object, got " + json_type_name(&kv.second));
    const std::string algo = str_or_empty(kv.second.get("quant_algo"), at + " quant_algo");
    if (algo.empty()) invalid(at + " has no quant_algo");
    QuantAlgo a = parse_algo(algo, at);
    if (a == QuantAlgo::kNvfp4) check_group_size(kv.second.get("group_size"), at);
    s.layers.emplace_back(module, a);
  }
}

Source from_hf(const JValue& hf, const std::string& path) {
  Source s;
  s.present = true;
  const JValue* q = hf.get("quantization");
  if (!q || q->kind != JValue::OBJECT) invalid(path + ": 'quantization' must be an object, got " + json_type_name(q));
  s.algo = str_or_empty(q->get("quant_algo"), path + ": quantization.quant_algo");
  read_names(q->get("exclude_modules"), path + ": quantization.exclude_modules", s.excluded);
  read_layers(q->get("quantized_layers"), path + ":", s);
  if (s.algo == "NVFP4") check_group_size(q->get("group_size"), path + ":");
  return s;
}

Source from_config(const JValue& config, const std::string& path) {
  Source s;
  const JValue* q = config.get("quantization_config");
  if (absent(q)) return s;
  s.present = true;
  const std::string where = path + ": quantization_config";
  if (q->kind != JValue::OBJECT) invalid(where + " must be an object, got " + json_type_name(q));
  const std::string method = str_or_empty(q->get("quant_method"), where + ".quant_method");
  if (method != "modelopt") {
    unsupported(where + ".quant_method '" + shorten(method, 64) +
                "' is not supported (this library reads ModelOpt checkpoints: quant_method 'modelopt')");
  }
  s.algo = str_or_empty(q->get("quant_algo"), where + ".quant_algo");
  read_names(q->get("ignore"), where + ".ignore", s.excluded);
  read_names(q->get("exclude_modules"), where + ".exclude_modules", s.excluded);
  read_layers(q->get("quantized_layers"), where, s);
  return s;
}

}  // namespace

const char* quant_algo_name(QuantAlgo a) {
  switch (a) {
    case QuantAlgo::kFp8: return "FP8";
    case QuantAlgo::kNvfp4: return "NVFP4";
    default: return "unquantized";
  }
}

std::string normalize_module_name(const std::string& name) {
  size_t z = name.find('\0');
  std::string head = z == std::string::npos ? name : name.substr(0, z);
  const bool glob = z != std::string::npos && !name.empty() && name.back() == '*';
  if (glob) return head + "*";
  while (!head.empty() && head.back() == '.') head.pop_back();
  return head;
}

bool module_matches(const std::string& pattern, const std::string& module) {
  if (pattern.empty()) return false;
  if (pattern.find_first_of("*?[") == std::string::npos) {
    return module == pattern ||
           (module.size() > pattern.size() && module.compare(0, pattern.size(), pattern) == 0 &&
            module[pattern.size()] == '.');
  }
  // A glob names a module when it matches the module or one of the modules above it.
  std::string m = module;
  for (;;) {
    if (::fnmatch(pattern.c_str(), m.c_str(), 0) == 0) return true;
    size_t dot = m.rfind('.');
    if (dot == std::string::npos) return false;
    m.resize(dot);
  }
}

QuantConfig QuantConfig::read(const JValue& config, const std::string& config_path, const JValue* hf_quant,
                              const std::string& quant_path) {
  Source a = hf_quant ? from_hf(*hf_quant, quant_path) : Source();
  Source b = from_config(config, config_path);
  if (a.present && b.present && a.algo != b.algo) {
    invalid(quant_path + " says quant_algo '" + shorten(a.algo, 64) + "' but " + config_path +
            " quantization_config says '" + shorten(b.algo, 64) + "'");
  }
  const Source& main = a.present ? a : b;
  QuantConfig q;
  if (!main.present || main.algo.empty()) return q;
  q.source_ = "quant_algo " + main.algo + " (" + (a.present ? quant_path : config_path) + ")";
  if (main.algo == "MIXED_PRECISION") {
    q.mixed_ = true;
  } else {
    q.global_ = parse_algo(main.algo, a.present ? quant_path + ":" : config_path + ": quantization_config");
  }
  for (const Source* s : {&a, &b}) {
    q.excluded_.insert(q.excluded_.end(), s->excluded.begin(), s->excluded.end());
    for (auto& l : s->layers) {
      bool dup = false;
      for (auto& have : q.layers_) {
        if (have.first != l.first) continue;
        dup = true;
        if (have.second != l.second) {
          invalid("module '" + shorten(l.first, 120) + "' is " + quant_algo_name(have.second) + " in " + quant_path +
                  " but " + quant_algo_name(l.second) + " in " + config_path);
        }
      }
      if (!dup) q.layers_.push_back(l);
    }
  }
  if (q.mixed_ && q.layers_.empty()) invalid(q.source_ + ": MIXED_PRECISION without quantized_layers");
  return q;
}

QuantAlgo QuantConfig::algo_of(const std::string& module) const {
  for (auto& p : excluded_)
    if (module_matches(p, module)) return QuantAlgo::kNone;
  if (!mixed_) return global_;
  // The most specific (longest) entry naming the module wins.
  size_t best = 0;
  QuantAlgo algo = QuantAlgo::kNone;
  for (auto& kv : layers_) {
    if (kv.first.size() >= best && module_matches(kv.first, module)) {
      best = kv.first.size();
      algo = kv.second;
    }
  }
  return algo;
}

void QuantConfig::unknown_module(const std::string& m) const {
  invalid(source_ + ": quantized_layers names module '" + shorten(m, 160) +
          "', which is not a module of this MoE layer");
}

}  // namespace engine
}  // namespace lmoe
